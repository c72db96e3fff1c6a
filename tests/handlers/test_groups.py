"""Issue 11's groups through signed requests to the real Bolt app: ``groups <name>`` in detail, ``create-group``
(the command form and the form), ``edit-group`` (the form, filled in), ``delete-group``, each decided by another
admin (two Organization Admins when privileged) and applied once in Polaris; ``view_submission`` errors in the
form; predefined groups refused at once."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from sqlalchemy import select

from bot import wiring
from bot.models import APPLIED, CREATE_GROUP, DELETE_GROUP, EDIT_GROUP, FAILED, PENDING, AccessRequest
from standins.polaris_sandbox import DEMO_PROJECT_IDS
from tests.conftest import (
    ADMIN,
    APPROVER,
    APPROVER2,
    CHANNEL,
    REQUESTER,
    click_body,
    make_settings,
    slash_body,
    wait_for,
)
from tests.handlers.conftest import dispatch

ANALYTICS = DEMO_PROJECT_IDS[1]


@pytest.fixture
def core(sandbox, slack, db, groups):
    """ADMINS: carol, bob and erin (all Organization Admins in Polaris, seeded by ``groups``)."""
    c = wiring.build_core(make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER, APPROVER2})), db=db)
    c.polaris.backoff_initial, c.polaris.backoff_max = 0.01, 0.05
    yield c
    c.service.drain()


def _requests(db, kind=None) -> list[AccessRequest]:
    with db.session() as s:
        q = select(AccessRequest).order_by(AccessRequest.created_at)
        return [r for r in s.scalars(q) if kind is None or r.kind == kind]


def _say(bolt, core, slack, user: str, words: str) -> str:
    """The ephemeral answer (response_url) to ``/polaris <words>`` sent by ``user``."""
    before = len(slack.responses)
    assert dispatch(bolt, slash_body(slack, user, words)).status == 200
    core.service.drain()
    return json.dumps(wait_for(lambda: slack.responses[before:])[-1])


def _click(bolt, core, slack, user: str, req: AccessRequest) -> str:
    """Approve ``req`` as ``user``; the worker's pass then applies what is approved."""
    before = len(slack.responses)
    assert dispatch(bolt, click_body(slack, user, "approve_request", req.id)).status == 200
    core.service.drain()
    core.service.run_due()
    return json.dumps(slack.responses[before:])


def _card(slack, req: AccessRequest) -> str:
    return json.dumps(slack.find_message(CHANNEL, req.approval_ts)["blocks"], ensure_ascii=False)


def _card_of(db, kind) -> AccessRequest:
    return wait_for(lambda: [r for r in _requests(db, kind) if r.approval_ts])[-1]


def _group(sandbox, name):
    return sandbox.group_by_name(name)


def _state(db, req) -> str:
    return next(r for r in _requests(db) if r.id == req.id).state


def _posts(sandbox) -> list:
    return [c for c in sandbox.calls if (c.method, c.path) == ("POST", "/v1/groups")]


# ------------------------------------------------------------------------------------------- groups <name>
def test_groups_name_shows_one_group_in_detail(bolt, core, slack, sandbox, groups):
    answer = _say(bolt, core, slack, REQUESTER, "groups viewer")
    assert "Group Viewer" in answer and "predefined (read-only in Polaris)" in answer
    assert "all projects" in answer and "Who approves" in answer and "the default approvers" in answer
    sandbox.create_group("Scoped", [{"name": "AccessReports", "resources": [f"projects/{ANALYTICS}"]}])
    answer = _say(bolt, core, slack, REQUESTER, 'groups "Scoped"')
    assert "*analytics*: AccessReports" in answer and "custom (can be edited or deleted)" in answer
    assert "*Members*\\n0" in answer
    answer = _say(bolt, core, slack, REQUESTER, "groups Organization Admn")
    assert "Did you mean *Organization Admin*" in answer
    assert "Polaris groups" in _say(bolt, core, slack, REQUESTER, "groups")  # the list, as before


# ------------------------------------------------------------------------------------------- create-group
def test_create_group_command_is_approved_by_another_admin_and_posted_once(bolt, core, slack, sandbox, db):
    assert "Only admins" in _say(bolt, core, slack, REQUESTER, 'create-group "Report Readers" AccessReports')
    answer = _say(bolt, core, slack, ADMIN, 'create-group "Report Readers" accessreports ViewTables in analytics')
    assert "went to the admins" in answer, answer
    req = _card_of(db, CREATE_GROUP)
    assert req.target_email == "group:report readers" and req.approvals_required == 1
    card = _card(slack, req)
    assert "Creates the group* Report Readers" in card and "*analytics*: AccessReports, ViewTables" in card
    assert "group:" not in card and "on someone else's behalf" not in card  # a group change is for nobody
    assert "You cannot decide your own request" in _click(bolt, core, slack, ADMIN, req)
    assert "Only approvers" in _click(bolt, core, slack, REQUESTER, req)  # not an admin
    assert _posts(sandbox) == []
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    group = _group(sandbox, "Report Readers")
    assert group["permissions"] == [
        {"name": "AccessReports", "resources": [f"projects/{ANALYTICS}"]},
        {"name": "ViewTables", "resources": [f"projects/{ANALYTICS}"]},
    ]
    assert [c.status for c in _posts(sandbox)] == [201]
    assert "Created the Polaris group Report Readers" in _card(slack, req)
    # the same name again: refused when asked, nothing saved
    assert "already a Polaris group called *Report Readers*" in _say(
        bolt, core, slack, ADMIN, 'create-group "report readers" AccessReports'
    )
    assert len(_requests(db, CREATE_GROUP)) == 1


def test_create_group_bad_input_is_a_sentence(bolt, core, slack, db):
    assert "Did you mean `AccessReports`" in _say(bolt, core, slack, ADMIN, 'create-group "X" AccesReports')
    assert "no Polaris project `nowhere`" in _say(bolt, core, slack, ADMIN, 'create-group "X" AccessReports in nowhere')
    assert "project-scoped permissions only" in _say(
        bolt, core, slack, ADMIN, 'create-group "X" AdministerBilling in demo'
    )
    assert "Usage" in _say(bolt, core, slack, ADMIN, 'create-group "X"')
    assert "not closed" in _say(bolt, core, slack, ADMIN, 'create-group "X AccessReports')
    assert _requests(db) == []


def test_a_privileged_group_needs_two_organization_admins(bolt, core, slack, sandbox, db):
    _say(bolt, core, slack, ADMIN, 'create-group "User Admins" AdministerUsers')
    req = _card_of(db, CREATE_GROUP)
    assert req.approvals_required == 2 and "Privileged (AdministerUsers)" in _card(slack, req)
    _click(bolt, core, slack, APPROVER, req)
    assert _state(db, req) == PENDING and _group(sandbox, "User Admins") is None
    _click(bolt, core, slack, APPROVER2, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    assert _group(sandbox, "User Admins")["permissions"] == [{"name": "AdministerUsers"}]


def test_a_group_of_that_name_made_meanwhile_is_not_created_again(bolt, core, slack, sandbox, db):
    _say(bolt, core, slack, ADMIN, 'create-group "Late" AccessReports')
    req = _card_of(db, CREATE_GROUP)
    sandbox.create_group("late", [])  # made in Polaris since
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == FAILED, timeout=15)
    assert "exists already" in next(r for r in _requests(db) if r.id == req.id).outcome
    assert _posts(sandbox) == []


# ------------------------------------------------------------------------------------------- delete-group
def test_delete_group_card_counts_members_and_predefined_is_refused_at_once(bolt, core, slack, sandbox, db, groups):
    assert "predefined Polaris group (read-only)" in _say(bolt, core, slack, ADMIN, "delete-group Viewer")
    assert _requests(db) == [] and sandbox.writes() == []
    made = sandbox.create_group("Temp Team", [])
    for email in ("a@example.com", "b@example.com"):
        sandbox.create_user(email, "A", "B", groups=[made["id"]], actions=[])
    assert "went to the admins" in _say(bolt, core, slack, ADMIN, "delete-group Temp Team project over")
    req = _card_of(db, DELETE_GROUP)
    assert "2 members lose it" in _card(slack, req) and req.reason == "project over"
    assert "already an open request" in _say(bolt, core, slack, APPROVER, "delete-group Temp Team")
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    assert _group(sandbox, "Temp Team") is None
    assert sandbox.find_user("a@example.com")["groups"] == []


# ------------------------------------------------------------------------------------------- the form
def _submission(view: dict, user: str, name: str, perms: list[str], scope: str, projects: list[str] = ()) -> str:
    values = {
        "group_name": {"group_name_input": {"type": "plain_text_input", "value": name}},
        "group_permissions": {
            "group_permissions_select": {
                "type": "multi_static_select",
                "selected_options": [{"value": p} for p in perms],
            }
        },
        "group_scope": {"group_scope_select": {"type": "radio_buttons", "selected_option": {"value": scope}}},
        "group_projects": {
            "group_projects_select": {
                "type": "multi_static_select",
                "selected_options": [{"value": p} for p in projects],
            }
        },
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user},
        "api_app_id": "A0TEST",
        "view": {**view, "state": {"values": values}},
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def _opened_form(bolt, core, slack, user, words) -> dict:
    assert dispatch(bolt, slash_body(slack, user, words)).status == 200
    core.service.drain()
    return wait_for(lambda: [v for v in slack.views if v["method"] == "views.update"])[-1]["view"]


def test_create_group_form_errors_in_the_form_then_a_card(bolt, core, slack, sandbox, db):
    view = _opened_form(bolt, core, slack, ADMIN, "create-group")
    shown = json.dumps(view["blocks"])
    assert "AdministerUsers" in shown and "analytics" in shown and view["callback_id"] == "group_modal"
    select = view["blocks"][1]["element"]
    assert all(len(g["options"]) <= 100 for g in select["option_groups"])
    for group in select["option_groups"]:  # by name, as `/polaris permissions` lists them (new-user trial)
        names = [o["value"] for o in group["options"]]
        assert names == sorted(names, key=str.lower), names
    response = dispatch(bolt, _submission(view, ADMIN, "  ", [], "chosen"))
    errors = json.loads(response.body)["errors"]
    assert set(errors) == {"group_name", "group_permissions", "group_projects"}
    response = dispatch(bolt, _submission(view, ADMIN, "viewer", ["AccessReports"], "all"))
    assert "already a group called Viewer" in json.loads(response.body)["errors"]["group_name"]
    assert _requests(db) == []
    response = dispatch(
        bolt, _submission(view, ADMIN, "Form Made", ["AccessReports", "ManageApiKeys"], "chosen", [ANALYTICS])
    )
    assert response.status == 200 and not response.body
    core.service.drain()
    req = _card_of(db, CREATE_GROUP)
    assert "*analytics*: AccessReports" in _card(slack, req) and "*Organization*: ManageApiKeys" in _card(slack, req)


def test_the_form_is_for_admins_only(bolt, core, slack):
    view = _opened_form(bolt, core, slack, REQUESTER, "create-group")
    assert "Only admins" in json.dumps(view["blocks"])


def test_edit_group_form_filled_in_and_applied_with_get_then_put(bolt, core, slack, sandbox, db):
    scoped = [{"name": "AdministerReports", "resources": [f"projects/{p}" for p in DEMO_PROJECT_IDS]}]
    alerts = sandbox.create_group("Alerts and reports", scoped)
    sandbox.create_user("member@example.com", "M", "E", groups=[alerts["id"]], actions=[])
    assert "predefined" in json.dumps(_opened_form(bolt, core, slack, ADMIN, "edit-group Viewer")["blocks"])
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group alerts and reports")
    assert view["private_metadata"] == alerts["id"]
    name_el = view["blocks"][0]["element"]
    assert name_el["initial_value"] == "Alerts and reports"
    assert [o["value"] for o in view["blocks"][1]["element"]["initial_options"]] == ["AdministerReports"]
    response = dispatch(
        bolt, _submission(view, ADMIN, "Alerts", ["AdministerReports", "AccessAlerts"], "chosen", [ANALYTICS])
    )
    assert response.status == 200
    core.service.drain()
    req = _card_of(db, EDIT_GROUP)
    card = _card(slack, req)
    assert "Alerts and reports → Alerts" in card and "Permissions before" in card and "Permissions after" in card
    assert "*Added*: *analytics*: AccessAlerts" in card  # AdministerReports on analytics is kept, not added
    assert "*Removed*: *demo*: AdministerReports" in card
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    after = sandbox.get_group(alerts["id"])
    assert after["name"] == "Alerts" and after["userCount"] == 1
    assert sorted(p["name"] for p in after["permissions"]) == ["AccessAlerts", "AdministerReports"]
    assert all(p["resources"] == [f"projects/{ANALYTICS}"] for p in after["permissions"])
    assert [c.method for c in sandbox.calls if c.path == f"/v1/groups/{alerts['id']}"][-2:] == ["GET", "PUT"]


def test_a_group_with_a_change_open_is_refused_when_the_edit_form_opens(bolt, core, slack, sandbox, db, groups):
    """New-user trial: with a delete of the group pending, the edit form opened anyway and the refusal came by
    DM once the form was filled in and closed. Now it is said in the form, and by typed edit-group and
    delete-group at once."""
    sandbox.create_group("Temp Team", [{"name": "ViewTables", "resources": ["projects/*"]}])
    assert "went to the admins" in _say(bolt, core, slack, ADMIN, "delete-group Temp Team project over")
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Temp Team")
    shown = json.dumps(view["blocks"])
    assert "There is already an open request for" in shown and "group_permissions" not in shown, shown
    assert "There is already an open request for" in _say(bolt, core, slack, ADMIN, "delete-group Temp Team again")
    assert len(_requests(db, DELETE_GROUP)) == 1
