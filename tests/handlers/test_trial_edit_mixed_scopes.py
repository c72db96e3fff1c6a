"""Trial finding (issue 11, edit-group): the form has one project scope for all project-scoped permissions, and
it is filled in from the group. A group whose permissions have different scopes (one on a project, one on all
projects; made in Polaris's console or by the API) comes back "All projects", so renaming it with the form as
filled in widens the project-scoped permission to every project."""

from __future__ import annotations

from bot.models import APPLIED, EDIT_GROUP
from tests.conftest import ADMIN, APPROVER, wait_for
from tests.handlers.conftest import dispatch
from tests.handlers.test_groups import (  # noqa: F401 - the core fixture
    ANALYTICS,
    _card,
    _card_of,
    _click,
    _opened_form,
    _state,
    _submission,
    core,
)


def _as_filled_in(view):
    blocks = {b["block_id"]: b["element"] for b in view["blocks"] if b.get("type") == "input"}
    perms = [o["value"] for o in blocks["group_permissions"].get("initial_options", [])]
    scope = blocks["group_scope"]["initial_option"]["value"]
    projects = [o["value"] for o in blocks.get("group_projects", {}).get("initial_options", [])]
    return perms, scope, projects


def test_a_rename_keeps_each_permissions_own_scope(bolt, core, slack, sandbox, db):  # noqa: F811
    g = sandbox.create_group(
        "Mixed",
        [
            {"name": "AdministerAlerts", "resources": [f"projects/{ANALYTICS}"]},
            {"name": "ViewTables", "resources": ["projects/*"]},
        ],
    )
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Mixed")
    perms, scope, projects = _as_filled_in(view)
    response = dispatch(bolt, _submission(view, ADMIN, "Mixed renamed", perms, scope, projects))
    assert response.status == 200
    core.service.drain()
    req = _card_of(db, EDIT_GROUP)
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    after = {p["name"]: p.get("resources") for p in sandbox.get_group(g["id"])["permissions"]}
    assert after["AdministerAlerts"] == [f"projects/{ANALYTICS}"], (after, _card(slack, req))


def test_adding_a_permission_keeps_the_others_scopes(bolt, core, slack, sandbox, db):  # noqa: F811
    g = sandbox.create_group(
        "Mixed",
        [
            {"name": "AdministerAlerts", "resources": [f"projects/{ANALYTICS}"]},
            {"name": "ViewTables", "resources": ["projects/*"]},
        ],
    )
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Mixed")
    perms, scope, projects = _as_filled_in(view)
    response = dispatch(bolt, _submission(view, ADMIN, "Mixed", [*perms, "ManageApiKeys"], scope, projects))
    assert response.status == 200
    core.service.drain()
    req = _card_of(db, EDIT_GROUP)
    card = _card(slack, req)
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    after = {p["name"]: p.get("resources") for p in sandbox.get_group(g["id"])["permissions"]}
    assert after["AdministerAlerts"] == [f"projects/{ANALYTICS}"], (after, card)
