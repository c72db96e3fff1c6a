"""Attacks on issue 11's admin operations through signed requests to the real Bolt app: forged
``view_submission`` payloads, Block Kit limits of the group form, bad page numbers. Each test here failed when
written and names a defect (tests only, no fixes, on branch ``attack``)."""

from __future__ import annotations

import json

import pytest

from bot.models import EDIT_GROUP
from bot import wiring
from tests.conftest import ADMIN, APPROVER, APPROVER2, REQUESTER, make_settings, slash_body, wait_for
from tests.handlers.conftest import dispatch
from tests.handlers.test_groups import _opened_form, _requests, _submission
from tests.handlers.test_invite_names import _invite


@pytest.fixture
def core(sandbox, slack, db, groups):
    """As in tests/handlers/test_groups.py: ADMINS carol, bob and erin (Organization Admins in Polaris)."""
    c = wiring.build_core(make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER, APPROVER2})), db=db)
    c.polaris.backoff_initial, c.polaris.backoff_max = 0.01, 0.05
    yield c
    c.service.drain()


def test_a_forged_form_with_a_project_that_does_not_exist_is_refused(bolt, core, slack, sandbox, db):
    """The form's projects are a multi_static_select of `GET /v1/projects`, but the submission's values are
    taken as they come: a forged ``view_submission`` with project ``nosuchproject`` is saved and carded as
    "*nosuchproject*: AccessReports" (the label falls back to the ID, so an ID spelled like a project's name
    reads as that project). The command form refuses it ("There is no Polaris project"); the form should too."""
    view = _opened_form(bolt, core, slack, ADMIN, "create-group")
    response = dispatch(bolt, _submission(view, ADMIN, "Forged", ["AccessReports"], "chosen", ["nosuchproject"]))
    assert response.status == 200
    core.service.drain()
    assert _requests(db) == [], [r.plan for r in _requests(db)]


def test_edit_form_of_a_group_scoped_to_a_project_past_the_first_100_keeps_its_scope(bolt, core, slack, sandbox, db):
    """An organization with 120 projects; a group scoped to the last one (by name). The edit form offers only
    the first 100 projects, so it opens on "The projects chosen below" with none chosen: submitted as filled in,
    only renamed, it is refused ("Choose the projects"); the group cannot be edited from Slack without losing its
    scope."""
    for i in range(120):
        sandbox.projects.append(
            {
                "metadata": {
                    "uid": f"proj{i:03d}",
                    "name": f"project {i:03d}",
                    "createdOnTimestamp": "2023-01-10T08:00:00.000Z",
                }
            }
        )
    gid = sandbox.create_group("Late", [{"name": "AccessReports", "resources": ["projects/proj119"]}])["id"]
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Late")
    blocks = {b.get("block_id"): b["element"] for b in view["blocks"] if b["type"] == "input"}
    perms = [o["value"] for o in blocks["group_permissions"].get("initial_options", [])]
    scope = blocks["group_scope"]["initial_option"]["value"]
    projects = [o["value"] for o in blocks["group_projects"].get("initial_options", [])]
    response = dispatch(bolt, _submission(view, ADMIN, "Late Renamed", perms, scope, projects))
    assert not response.body or "errors" not in json.loads(response.body), response.body
    core.service.drain()
    edits = [r for r in _requests(db) if r.kind == EDIT_GROUP]
    assert edits and json.loads(edits[0].plan)["after"] == [
        {"name": "AccessReports", "resources": ["projects/proj119"]}
    ], gid


@pytest.mark.parametrize("words", ["members Viewer page ²", "groups page ²", "whois page ³"])
def test_a_page_number_in_superscript_gets_a_sentence(bolt, core, slack, sandbox, db, words):
    """`page ²`: ``str.isdigit`` is true for superscript digits but ``int`` refuses them (bot/commands.py
    ``split_page``). `members … page ²` answers "Something went wrong on my side"; `groups page ²` and
    `whois page ³` are parsed in the listener after the ack (``command_lane``), so the ValueError kills the
    listener and the person gets no answer at all. Either should be the page sentence."""
    before = len(slack.responses)
    assert dispatch(bolt, slash_body(slack, REQUESTER, words)).status == 200
    core.service.drain()
    try:
        answers = wait_for(lambda: slack.responses[before:], timeout=3)
    except AssertionError:
        answers = []
    answer = json.dumps(answers)
    assert answers and "Something went wrong" not in answer and "whole number" in answer, answer


def test_a_forged_private_metadata_never_reaches_another_polaris_path(bolt, core, slack, sandbox, db):
    """The edit form's ``private_metadata`` (the group ID) is put into ``/v1/groups/{id}`` unchecked: a forged
    ``../users/<bob's id>`` makes the bot GET ``/v1/users/<id>``, parse bob as a group with no name, and post a
    card "asks to change the group **" (before: none; name → X). It should be refused as no such group, with
    nothing saved and no call outside ``/v1/groups``."""
    view = _opened_form(bolt, core, slack, ADMIN, "create-group")
    bob = sandbox.find_user("bob@example.com")["id"]
    forged = {**view, "private_metadata": f"../users/{bob}"}
    sandbox.reset_calls()
    response = dispatch(bolt, _submission(forged, ADMIN, "X", ["AccessReports"], "all"))
    assert response.status == 200
    core.service.drain()
    strays = [c.path for c in sandbox.calls if c.path.startswith("/v1/users/")]
    assert _requests(db) == [] and strays == [], (strays, [r.plan for r in _requests(db)])


def test_an_invitee_who_is_a_member_without_names_is_not_called_a_stranger(bolt, core, slack, sandbox, db):
    """zed is a workspace member (``users.lookupByEmail`` finds U0ZED) whose profile has no first, last or real
    name. The reply and the card say "unknown: the email belongs to no member of this workspace", which is
    false: the approver is told the invitee is outside the workspace."""
    slack.add_user("U0ZED", "zed", "zed@example.com", real_name="")
    req, reply, card = _invite(bolt, slack, db, "invite zed@example.com Viewer onboarding")
    assert req.target_slack_id == "U0ZED"
    assert "no member of this workspace" not in reply and "no member of this workspace" not in card, reply


def test_renaming_in_the_form_keeps_a_permission_the_catalogue_does_not_list(bolt, core, slack, sandbox, db):
    """The group has AccessReports and a permission ``GET /v1/permissions`` does not list (retired, or newer than
    the catalogue). The edit form can only offer catalogue permissions, so submitted as filled in with only a new
    name it plans "Removed: AccessLegacyThing": a rename silently asks to take a permission away."""
    gid = sandbox.create_group("Legacy", [{"name": "AccessReports", "resources": ["projects/*"]}])["id"]
    sandbox._groups[gid]["permissions"].append({"name": "AccessLegacyThing", "resources": ["projects/*"]})
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Legacy")
    blocks = {b.get("block_id"): b["element"] for b in view["blocks"] if b["type"] == "input"}
    perms = [o["value"] for o in blocks["group_permissions"].get("initial_options", [])]
    scope = blocks["group_scope"]["initial_option"]["value"]
    assert dispatch(bolt, _submission(view, ADMIN, "Legacy Renamed", perms, scope, [])).status == 200
    core.service.drain()
    plan = json.loads(next(r for r in _requests(db) if r.kind == EDIT_GROUP).plan)
    assert plan["new_name"] == "Legacy Renamed"
    assert not plan["permissions_changed"], plan["after"]
