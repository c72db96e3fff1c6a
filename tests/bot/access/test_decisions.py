"""Decisions (bot/access/decisions.py): approve, deny, Retry, expiry; authority at click time.

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from bot.models import APPLIED, APPROVED, DENIED, EXPIRED, FAILED, PENDING, Approval
from tests.bot.access.helpers import only_request, audit_actions, card, buttons, dms, _not_org_admin
from tests.conftest import ADMIN, APPROVER, APPROVER2, BOT, GONE, GUEST, OTHER, REQUESTER, make_settings


def test_requester_and_non_approvers_cannot_decide(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    assert "your own request" in service.decide(req.id, REQUESTER, approve=True)
    assert "Only approvers" in service.decide(req.id, OTHER, approve=True)
    assert "Only approvers" in service.decide(req.id, OTHER, approve=False)
    assert service.get(req.id).state == PENDING
    refused = [(a, act) for a, act, o in audit_actions(db, req.id) if act == "decision.refused"]
    assert refused == [(REQUESTER, "decision.refused"), (OTHER, "decision.refused"), (OTHER, "decision.refused")]


@pytest.mark.parametrize("who,flag", [(GUEST, "is_restricted"), (GONE, "deleted"), (BOT, "is_bot")])
def test_guest_deactivated_or_bot_approver_is_refused_at_click_time(service, db, slack, sandbox, groups, who, flag):
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER, who}))
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    assert "cannot decide" in service.decide(req.id, who, approve=True)
    assert service.get(req.id).state == PENDING


def test_approver_removed_after_card_was_posted_cannot_decide(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER2}))
    assert "Only approvers" in service.decide(req.id, APPROVER, approve=True)
    assert service.get(req.id).state == PENDING


def test_deny_updates_card_and_tells_requester(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=False) is None
    req = service.get(req.id)
    assert (req.state, req.decided_by) == (DENIED, APPROVER)
    assert buttons(card(slack, req)) == [] and "Denied" in str(card(slack, req)["blocks"])
    assert any("denied" in t for t in dms(slack, REQUESTER))
    assert "Already denied" in service.decide(req.id, APPROVER2, approve=True)
    assert service.run_due() == 0 and sandbox.writes() == []


def test_double_click_applies_once(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True) is None
    assert "Already approved" in service.decide(req.id, APPROVER, approve=True)
    assert "Already approved by <@U0BOB>" in service.decide(req.id, APPROVER2, approve=True)
    service.run_due()
    service.run_due()
    assert len(sandbox.writes()) == 1


def test_twenty_concurrent_approvals_make_one_decision_and_one_write(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    barrier = threading.Barrier(20)
    results = []

    def click(i):
        barrier.wait()
        results.append(service.decide(req.id, APPROVER if i % 2 else APPROVER2, approve=True))

    threads = [threading.Thread(target=click, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 1, results
    assert all("Already approved" in r for r in results if r is not None)
    with db.session() as s:
        assert len(list(s.scalars(select(Approval).where(Approval.request_id == req.id)))) == 1
    appliers = [threading.Thread(target=service.run_due) for _ in range(4)]
    for t in appliers:
        t.start()
    for t in appliers:
        t.join()
    assert service.get(req.id).state == APPLIED
    assert len(sandbox.writes()) == 1
    assert len([a for a in audit_actions(db, req.id) if a[1] == "decision.approve"]) == 1


def test_organization_admin_needs_two_approvers_who_are_org_admins(service, db, sandbox, slack, groups):
    service.handle_command(REQUESTER, "request organization admin on-call")
    req = only_request(db)
    assert req.approvals_required == 2
    assert "1 of 2" in service.decide(req.id, APPROVER, approve=True)
    assert "already approved" in service.decide(req.id, APPROVER, approve=True)
    assert service.get(req.id).state == PENDING
    assert service.decide(req.id, APPROVER2, approve=True) is None
    assert service.get(req.id).state == APPROVED
    service.run_due()
    assert groups["Organization Admin"] in {g["id"] for g in sandbox.find_user("alice@example.com")["groups"]}


def test_organization_admin_approval_refused_for_approver_not_org_admin_in_polaris(service, db, sandbox, slack, groups):
    _not_org_admin(sandbox, groups)  # erin is in Viewer only, no longer an Organization Admin
    service.handle_command(REQUESTER, "request Organization Admin")
    req = only_request(db)
    assert "Only members of Organization Admin" in service.decide(req.id, APPROVER2, approve=True)
    assert service.get(req.id).state == PENDING


def test_pending_request_expires_and_cannot_be_approved(service, db, sandbox, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    later = service.clock() + dt.timedelta(seconds=service.settings.request_ttl + 1)
    service.clock = lambda: later
    assert "expired" in service.decide(req.id, APPROVER, approve=True)
    req = service.get(req.id)
    assert req.state == EXPIRED
    assert buttons(card(slack, req)) == [] and "Expired" in str(card(slack, req)["blocks"])
    assert any("expired" in t for t in dms(slack, REQUESTER))
    service.run_due()
    assert sandbox.writes() == []


def test_custom_group_granting_administer_users_is_treated_like_organization_admin(service, db, sandbox, groups):
    sandbox.create_group("Break Glass", [{"name": "AdministerUsers"}])
    service.catalog.invalidate()
    _not_org_admin(sandbox, groups)  # erin is in Viewer only, no longer an Organization Admin
    service.handle_command(REQUESTER, "request Break Glass incident")
    req = only_request(db)
    assert req.approvals_required == 2
    assert "Only members of Organization Admin" in service.decide(req.id, APPROVER2, approve=True)
    assert "1 of 2" in service.decide(req.id, APPROVER, approve=True)
    assert service.get(req.id).state == PENDING


def test_earlier_approval_stops_counting_when_its_approver_loses_authority(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER, APPROVER2, OTHER}))
    sandbox.create_user("oscar@example.com", "Oscar", "Tester", groups=[groups["Organization Admin"]])
    service.handle_command(REQUESTER, "request Organization Admin")
    req = only_request(db)
    assert "1 of 2" in service.decide(req.id, APPROVER, approve=True)
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER2, OTHER}))  # bob removed
    assert "1 of 2" in service.decide(req.id, APPROVER2, approve=True)
    assert service.get(req.id).state == PENDING
    assert ("U0BOB", "approval.revoked", "refused") in audit_actions(db, req.id)
    assert service.decide(req.id, OTHER, approve=True) is None
    assert service.get(req.id).state == APPROVED


def test_retry_needs_current_authority(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER, GONE}))
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    service.store.set(req.id, state=FAILED, outcome="x")
    assert "cannot decide" in service.retry(req.id, GONE)
    assert "Only an approver can retry" in service.retry(req.id, REQUESTER)
    assert service.get(req.id).state == FAILED


def test_requester_is_told_of_a_partial_approval(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Organization Admin")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    assert any("1 of 2 approvals" in t for t in dms(slack, REQUESTER))


def test_request_of_someone_deactivated_since_cannot_be_approved_but_can_be_denied(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    slack.users[REQUESTER]["deleted"] = True
    assert "now deactivated" in service.decide(req.id, APPROVER, approve=True)
    assert service.get(req.id).state == PENDING
    assert service.decide(req.id, APPROVER, approve=False) is None
    assert service.get(req.id).state == DENIED


def test_group_made_privileged_after_the_request_needs_two_org_admin_approvals_at_click_time(
    service, db, sandbox, slack, groups
):
    """Carol asks for Data Analyst (1 approval); AdministerUsers is then added to it in Polaris (the cached
    group does not show it); an approver who is not an Organization Admin cannot approve it alone."""
    _not_org_admin(sandbox, groups)
    service.catalog.all()  # the cache holds Data Analyst as it was
    service.handle_command(ADMIN, "request Data Analyst month end")
    req = only_request(db)
    assert req.approvals_required == 1
    sandbox.add_group_permissions(groups["Data Analyst"], [{"name": "AdministerUsers"}])
    assert "Only members of Organization Admin" in service.decide(req.id, APPROVER2, approve=True)
    assert service.get(req.id).state == PENDING
    assert "1 of 2" in service.decide(req.id, APPROVER, approve=True)
    req = service.get(req.id)
    assert (req.state, req.approvals_required) == (PENDING, 2)
    assert service.run_due() == 0
    assert groups["Data Analyst"] not in {g["id"] for g in sandbox.find_user("carol@example.com")["groups"]}


@pytest.mark.parametrize(
    "permission",
    [
        "AdministerUsers",
        "AdministerApiKeys",
        "AdministerClients",
        "AdministerProjects",
        "AdministerBilling",
        "AdministerCustomizations",
    ],
)
def test_every_organization_level_administration_permission_is_privileged(service, sandbox, groups, permission):
    from bot.polaris import Group, Permission

    assert service.is_privileged(Group(id="g", name="Custom", permissions=(Permission(permission),)))
    assert not service.is_privileged(
        Group(id="g", name="Custom", permissions=(Permission("AdministerReports", ("projects/*",)),))
    )


def test_card_and_policy_name_what_makes_a_group_privileged(service, db, sandbox, slack, groups):
    sandbox.create_group("Key Keepers", [{"name": "AdministerApiKeys"}])
    service.catalog.invalidate()
    service.handle_command(REQUESTER, "request Key Keepers rotation")
    req = only_request(db)
    assert req.approvals_required == 2
    text = str(card(slack, req)["blocks"])
    assert "Privileged (AdministerApiKeys)" in text and "Organization Admin members" in text
    policy = str(service.cmd_policy(ADMIN).blocks)
    for name in (
        "AdministerUsers",
        "AdministerApiKeys",
        "AdministerClients",
        "AdministerProjects",
        "AdministerBilling",
        "AdministerCustomizations",
    ):
        assert name in policy


def test_retry_of_a_request_whose_group_was_deleted_says_so(service, db, sandbox, slack, groups):
    """Attack review: Retry answered "I could not check your authority right now; try again" for ever, although
    Polaris had answered (404: the group is gone)."""
    gid = sandbox.create_group("Finance Readers", [])["id"]
    service.catalog.invalidate()
    service.handle_command(REQUESTER, "request Finance Readers month end")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.polaris.delete_group(gid)  # deleted in Polaris between approval and apply
    service.run_due()
    assert service.get(req.id).state == FAILED
    answer = service.retry(req.id, APPROVER)
    assert "no longer exists in Polaris" in answer and "authority" not in answer, answer
    assert service.get(req.id).state == FAILED
