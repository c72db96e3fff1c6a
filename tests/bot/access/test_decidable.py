"""A request fewer people could ever decide than it needs is refused when asked, nothing saved (new-user trial:
a privileged invite, a bulk invite naming an approver, a user update disabling an Organization Admin, each left
pending until it expired, because the requester and the people it is for never decide)."""

from __future__ import annotations

import pytest

from bot.access.user_changes import UserChange
from bot.commands import UsageError
from tests.bot.access.helpers import only_request, only_request_count
from tests.conftest import ADMIN, APPROVER, REQUESTER, make_settings


@pytest.fixture
def settings(sandbox, slack, db):
    """bob approves; carol and bob are the admins: who may decide is {bob, carol}, never the requester."""
    return make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER}), admins=frozenset({ADMIN, APPROVER}))


def test_a_privileged_invite_only_one_other_person_could_approve_is_refused(service, db, groups):
    reply = service.handle_command(ADMIN, "invite dan@example.com Organization Admin oncall")
    assert "Nobody could approve this: it needs 2 approvals, and only 1 other person may decide it" in reply.text
    assert only_request_count(db) == 0
    # one approval, and bob may give it
    assert "went to the approvers" in service.handle_command(ADMIN, "invite dan@example.com Viewer oncall").text
    assert only_request(db).approvals_required == 1


def test_a_bulk_invite_whose_people_include_an_approver_counts_only_the_others(service, db, groups):
    reply = service.handle_command(REQUESTER, f"invite <@{APPROVER}> <@{ADMIN}> dan@example.com Viewer onboarding")
    assert "Nobody could approve this: it needs 1 approval, and nobody else" in reply.text, reply.text
    assert only_request_count(db) == 0
    reply = service.handle_command(REQUESTER, f"invite <@{APPROVER}> dan@example.com Viewer onboarding")
    assert "went to the approvers" in reply.text, reply.text  # carol may decide it


def test_disabling_an_organization_admin_only_they_and_the_requester_could_decide_is_refused(
    service, db, sandbox, groups
):
    carol = sandbox.find_user("carol@example.com")
    updates = service.dispatch.user_updates
    with pytest.raises(UsageError, match="Nobody could approve this: it needs 2 approvals, and nobody else"):
        updates.ask(APPROVER, carol["id"], None, UserChange(carol["firstName"], carol["lastName"], False))
    assert only_request_count(db) == 0
