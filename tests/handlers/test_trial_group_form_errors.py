"""Trial findings (issue 11, the group form): (1) projects chosen while the scope is left at its default
"All projects" are dropped silently and the group is asked for every project; (2) organization-level
permissions only, scoped to chosen projects, and an edit that changes nothing, are answered by DM after the
form has closed, not as ``view_submission`` errors in the form (issue 11: errors shown in the modal)."""

from __future__ import annotations

import json

from bot.models import CREATE_GROUP
from tests.conftest import ADMIN
from tests.handlers.conftest import dispatch
from tests.handlers.test_groups import (  # noqa: F401 - the core fixture
    ANALYTICS,
    _opened_form,
    _requests,
    _submission,
    core,
)


def _errors(response) -> dict:
    return json.loads(response.body or "{}").get("errors") or {}


def test_projects_chosen_with_scope_all_are_not_dropped_silently(bolt, core, slack, sandbox, db):  # noqa: F811
    view = _opened_form(bolt, core, slack, ADMIN, "create-group")
    response = dispatch(bolt, _submission(view, ADMIN, "Scope Test", ["ViewTables"], "all", [ANALYTICS]))
    core.service.drain()
    asked = [r for r in _requests(db, CREATE_GROUP)]
    assert _errors(response) or not asked, "asked for every project although a project was chosen"


def test_org_level_only_with_chosen_projects_is_an_error_in_the_form(bolt, core, slack, sandbox, db):  # noqa: F811
    view = _opened_form(bolt, core, slack, ADMIN, "create-group")
    response = dispatch(bolt, _submission(view, ADMIN, "Org Only", ["ManageApiKeys"], "chosen", [ANALYTICS]))
    assert _errors(response), response.body


def test_an_edit_that_changes_nothing_is_an_error_in_the_form(bolt, core, slack, sandbox, db):  # noqa: F811
    sandbox.create_group("Same", [{"name": "AccessReports", "resources": ["projects/*"]}])
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group Same")
    response = dispatch(bolt, _submission(view, ADMIN, "Same", ["AccessReports"], "all"))
    assert _errors(response), response.body
