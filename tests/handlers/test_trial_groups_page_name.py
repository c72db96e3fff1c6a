"""Trial finding (issue 11, paging): ``/polaris groups Page Views`` (a group whose name begins with "page",
unquoted as README allows: "with or without quotes") is read as ``groups page <N>``: "`page` takes a whole
number … (you wrote `Views`)". ``members Page Views`` finds the group."""

from __future__ import annotations

from tests.conftest import ADMIN
from tests.handlers.test_groups import _say, core  # noqa: F401 - the core fixture


def test_groups_finds_a_group_whose_name_begins_with_page(bolt, core, slack, sandbox, groups):  # noqa: F811
    sandbox.create_group("Page Views", [{"name": "ViewTables", "resources": ["projects/*"]}])
    answer = _say(bolt, core, slack, ADMIN, "groups Page Views")
    assert "Group Page Views" in answer, answer
