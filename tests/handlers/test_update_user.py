"""Issue 11's ``/polaris update-user`` through signed requests to the real Bolt app: the command opens the user
form filled in from Polaris (an unknown user is a sentence, no form), ``view_submission`` errors in the form
(bad names, no change), an ``update_user`` request decided by another admin (never the requester nor the
person), applied with GET then PUT of the whole user (nothing else lost), and disabling the last enabled
Organization Admin refused when asked and again when applied. On SQLite and PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest
from sqlalchemy import select

from bot import wiring
from bot.models import APPLIED, APPROVED, EXPIRED, FAILED, PENDING, UPDATE_USER, AccessRequest
from tests.bot.access.helpers import audit_actions, dms
from tests.conftest import (
    ADMIN,
    APPROVER,
    APPROVER2,
    CHANNEL,
    OTHER,
    REQUESTER,
    click_body,
    make_settings,
    slash_body,
    wait_for,
)
from tests.handlers.conftest import dispatch


@pytest.fixture
def core(sandbox, slack, db, groups):
    """ADMINS: carol, bob, erin and oscar (carol, bob and erin Organization Admins in Polaris, from ``groups``)."""
    admins = frozenset({ADMIN, APPROVER, APPROVER2, OTHER})
    c = wiring.build_core(make_settings(sandbox, slack, db.url, admins=admins), db=db)
    c.polaris.backoff_initial, c.polaris.backoff_max = 0.01, 0.05
    yield c
    c.service.drain()


def _requests(db) -> list[AccessRequest]:
    with db.session() as s:
        q = select(AccessRequest).where(AccessRequest.kind == UPDATE_USER).order_by(AccessRequest.created_at)
        return list(s.scalars(q))


def _state(db, req) -> str:
    return next(r for r in _requests(db) if r.id == req.id).state


def _say(bolt, core, slack, user: str, words: str) -> str:
    """``/polaris <words>`` from ``user``: the ephemeral answers (response_url) it got, as JSON."""
    before = len(slack.responses)
    assert dispatch(bolt, slash_body(slack, user, words)).status == 200
    core.service.drain()
    return json.dumps(slack.responses[before:])


def _opened(bolt, core, slack, user: str, words: str) -> dict:
    """The user form ``/polaris <words>`` opened (``views.open``)."""
    before = len(slack.views)
    assert dispatch(bolt, slash_body(slack, user, words)).status == 200
    core.service.drain()
    return wait_for(lambda: [v for v in slack.views[before:] if v["method"] == "views.open"])[-1]["view"]


def _submit(bolt, view: dict, user: str, first: str, last: str, enabled: bool):
    values = {
        "first_name": {"first_name_input": {"type": "plain_text_input", "value": first}},
        "last_name": {"last_name_input": {"type": "plain_text_input", "value": last}},
        "enabled": {
            "enabled_choice": {
                "type": "radio_buttons",
                "selected_option": {"value": "enabled" if enabled else "disabled"},
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
    return dispatch(bolt, urllib.parse.urlencode({"payload": json.dumps(payload)}))


def _errors(response) -> dict:
    body = json.loads(response.body)
    assert body["response_action"] == "errors"
    return body["errors"]


def _click(bolt, core, slack, user: str, req: AccessRequest) -> str:
    """Approve ``req`` as ``user``; the worker's pass then applies what is approved. The answers, as JSON."""
    before = len(slack.responses)
    assert dispatch(bolt, click_body(slack, user, "approve_request", req.id)).status == 200
    core.service.drain()
    core.service.run_due()
    return json.dumps(slack.responses[before:])


def _card(slack, req: AccessRequest) -> str:
    return json.dumps(slack.find_message(CHANNEL, req.approval_ts)["blocks"], ensure_ascii=False)


def _oscar(sandbox, groups, *names):
    return sandbox.create_user(
        "oscar@example.com",
        "Oscar",
        "Old",
        groups=[groups[n] for n in names],
        actions=["VERIFY_EMAIL"],
        permissions=[{"name": "AccessReports", "resources": ["projects/*"]}],
        email_verified=True,
    )


def test_the_command_opens_the_form_filled_in_from_polaris(bolt, core, slack, sandbox, groups):
    oscar = _oscar(sandbox, groups, "Viewer")
    view = _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    assert view["callback_id"] == "user_modal"
    assert json.loads(view["private_metadata"])["id"] == oscar["id"]
    first, last, enabled = view["blocks"][1], view["blocks"][2], view["blocks"][3]
    assert first["element"]["initial_value"] == "Oscar" and last["element"]["initial_value"] == "Old"
    assert enabled["element"]["initial_option"]["value"] == "enabled"
    # by @mention too
    view = _opened(bolt, core, slack, ADMIN, f"update-user <@{OTHER}|oscar>")
    assert json.loads(view["private_metadata"])["slack"] == OTHER


def test_unknown_user_or_not_an_admin_is_a_sentence_and_no_form(bolt, core, slack, sandbox, db, groups):
    before = len(slack.views)
    assert "No Polaris user has the email `nobody@example.com`" in _say(
        bolt, core, slack, ADMIN, "update-user nobody@example.com"
    )
    assert "Only admins" in _say(bolt, core, slack, REQUESTER, "update-user carol@example.com")
    assert "Whose account?" in _say(bolt, core, slack, ADMIN, "update-user")
    assert [v for v in slack.views[before:] if v["method"] == "views.open"] == []
    assert _requests(db) == [] and sandbox.writes() == []


def test_a_form_slack_did_not_open_is_a_sentence(bolt, core, slack, sandbox, db, groups):
    _oscar(sandbox, groups, "Viewer")
    slack.fail_next("views.open", status=200, error="expired_trigger_id")
    answer = _say(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    assert "could not open the form" in answer and "Nothing was changed" in answer
    assert _requests(db) == [] and sandbox.writes() == []


def test_bad_names_and_no_change_are_errors_in_the_form(bolt, core, slack, sandbox, db, groups):
    _oscar(sandbox, groups, "Viewer")
    view = _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    errors = _errors(_submit(bolt, view, ADMIN, "  ", "x" * 201, True))
    assert errors == {"first_name": "Give a first name.", "last_name": errors["last_name"]}
    assert "201 characters" in errors["last_name"]
    assert "Nothing would change" in _errors(_submit(bolt, view, ADMIN, " Oscar ", "Old", True))["first_name"]
    core.service.drain()
    assert _requests(db) == [] and sandbox.writes() == []


def test_a_change_is_decided_by_another_admin_and_applied_with_get_then_put(bolt, core, slack, sandbox, db, groups):
    oscar = _oscar(sandbox, groups, "Viewer", "Data Analyst")
    kept = {k: v for k, v in sandbox.get_user(oscar["id"]).items() if k not in ("firstName", "lastName")}
    view = _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    response = _submit(bolt, view, ADMIN, "Oscar", "New", True)
    assert response.status == 200 and not response.body
    core.service.drain()
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[-1]
    assert req.state == PENDING and req.polaris_user_id == oscar["id"] and req.target_slack_id == OTHER
    assert any("went to the admins" in t for t in dms(slack, ADMIN))
    card = _card(slack, req)
    assert "Last name: Old → New" in card and "First name" not in card and "everything else kept" in card
    assert "*Whose account*" in card and "oscar@example.com" in card and "behalf" not in card
    assert "You cannot decide your own request" in _click(bolt, core, slack, ADMIN, req)
    assert "You cannot decide a request that is for you" in _click(bolt, core, slack, OTHER, req)
    assert "Only approvers" in _click(bolt, core, slack, REQUESTER, req)
    assert sandbox.writes() == []
    # the same person again while it is open: refused in the DM, nothing saved
    _submit(bolt, view, APPROVER, "Oz", "Old", True)
    core.service.drain()
    assert any("already an open request" in t for t in dms(slack, APPROVER)) and len(_requests(db)) == 1
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    after = sandbox.get_user(oscar["id"])
    assert (after["firstName"], after["lastName"]) == ("Oscar", "New")
    assert {k: v for k, v in after.items() if k not in ("firstName", "lastName")} == kept  # nothing else lost
    calls = [c.method for c in sandbox.calls if c.path == f"/v1/users/{oscar['id']}"]
    assert calls[-2:] == ["GET", "PUT"] and calls.count("PUT") == 1
    assert "Changed the Polaris user oscar@example.com" in _card(slack, req)
    trail = audit_actions(db, req.id)
    assert (ADMIN, "request.created", "ok") in trail and (APPROVER, "decision.approve", "ok") in trail
    assert [a for a in trail if a[1] == "decision.refused"] == [
        (ADMIN, "decision.refused", "refused"),
        (OTHER, "decision.refused", "refused"),
        (REQUESTER, "decision.refused", "refused"),
    ]
    assert ("bot", "apply.done", "ok") in trail
    assert any("Changed the Polaris user" in t for t in dms(slack, ADMIN))  # the requester is told


def _only_admin_left(sandbox, keep: str) -> None:
    for email in ("bob@example.com", "erin@example.com", "carol@example.com", "oscar@example.com"):
        if email != keep and sandbox.find_user(email) is not None:
            sandbox._users[sandbox.find_user(email)["id"]]["enabled"] = False  # disabled members do not count


def test_disabling_the_last_enabled_organization_admin_is_refused_when_asked(bolt, core, slack, sandbox, db, groups):
    view = _opened(bolt, core, slack, ADMIN, "update-user erin@example.com")
    _only_admin_left(sandbox, keep="erin@example.com")
    _submit(bolt, view, ADMIN, "Erin", "Tester", False)
    core.service.drain()
    assert any("last enabled Organization Admin" in t and "disabling" in t for t in dms(slack, ADMIN))
    assert _requests(db) == [] and sandbox.writes() == []


def test_disabling_an_organization_admin_needs_two_and_is_refused_again_at_apply(
    bolt, core, slack, sandbox, db, groups
):
    _oscar(sandbox, groups, "Organization Admin")  # a fourth Organization Admin, who approves with bob
    view = _opened(bolt, core, slack, ADMIN, "update-user erin@example.com")
    _submit(bolt, view, ADMIN, "Erin", "Tester", False)
    core.service.drain()
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[-1]
    assert req.approvals_required == 2 and "Enabled: yes → no" in _card(slack, req)
    _click(bolt, core, slack, APPROVER, req)
    assert _state(db, req) == PENDING
    core.service.decide(req.id, OTHER, approve=True)  # approved, not yet applied
    assert _state(db, req) == APPROVED
    _only_admin_left(sandbox, keep="erin@example.com")  # the others were disabled in between
    core.service.run_due()
    wait_for(lambda: _state(db, req) == FAILED, timeout=15)
    failed = next(r for r in _requests(db) if r.id == req.id)
    assert "last enabled Organization Admin" in failed.outcome
    assert sandbox.find_user("erin@example.com")["enabled"] is True and sandbox.writes() == []
    assert ("bot", "apply.refused", "refused") in audit_actions(db, req.id)
    # bob is enabled again: Retry (another admin's click) applies it, with GET then PUT of the whole user
    sandbox._users[sandbox.find_user("bob@example.com")["id"]]["enabled"] = True
    assert dispatch(bolt, click_body(slack, APPROVER, "retry_request", req.id)).status == 200
    core.service.drain()
    core.service.run_due()
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    erin = sandbox.find_user("erin@example.com")
    assert erin["enabled"] is False and [g["name"] for g in erin["groups"]] == ["Organization Admin"]
    assert (APPROVER, "decision.retry", "ok") in audit_actions(db, req.id)


def test_an_update_nobody_decides_expires(bolt, core, slack, sandbox, db, groups):
    _oscar(sandbox, groups, "Viewer")
    _submit(bolt, _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com"), ADMIN, "Os", "Old", True)
    core.service.drain()
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[-1]
    later = core.service.clock() + dt.timedelta(seconds=core.service.settings.request_ttl + 1)
    core.service.clock = lambda: later
    core.service.run_due()
    assert _state(db, req) == EXPIRED and "Expired" in _card(slack, req)
    assert "expired" in _click(bolt, core, slack, APPROVER, req) and sandbox.writes() == []
