"""Trial finding (issue 11, edit-group): the approval policy is keyed by group name, so a rename approved by one
other admin moves a group out of its own rule (here: two approvals and a reason) to ``[defaults]`` (here:
auto-approve), and the rename's card says nothing about it. An admin expects the card to say which rule the
group has now and which it will have (or the rename to be decided under the group's own rule)."""

from __future__ import annotations

from bot.models import EDIT_GROUP
from tests.conftest import ADMIN
from tests.handlers.conftest import dispatch
from tests.handlers.test_decision_forms import put_policy
from tests.handlers.test_groups import (  # noqa: F401 - the core fixture
    _card,
    _card_of,
    _click,
    _opened_form,
    _state,
    _submission,
    core,
)

POLICY = """
[defaults]
auto_approve = true

[groups."Sensitive Reports"]
auto_approve = false
approvals = 2
reason_required = true
"""


def test_a_rename_card_says_the_group_leaves_its_policy_rule(bolt, core, slack, sandbox, db, tmp_path):  # noqa: F811
    put_policy(core.service, tmp_path, POLICY)
    sandbox.create_group("Sensitive Reports", [{"name": "AccessReports", "resources": ["projects/*"]}])
    view = _opened_form(bolt, core, slack, ADMIN, 'edit-group "Sensitive Reports"')
    response = dispatch(bolt, _submission(view, ADMIN, "Reports", ["AccessReports"], "all"))
    assert response.status == 200
    core.service.drain()
    req = _card_of(db, EDIT_GROUP)
    card = _card(slack, req)
    assert "Sensitive Reports → Reports" in card
    # the approver is told that the group's rule (2 approvals, a reason) no longer applies after the rename
    assert "2 approvals" in card or "policy" in card.lower() or "auto" in card.lower(), card
