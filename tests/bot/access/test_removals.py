"""Taking access away (bot/access/removals.py, bot/access/removal_side.py): leave, remove, offboard, cancel and
the offboarding card after a Slack deactivation (issue 10). Against the Polaris sandbox (HTTP) and the Slack
stand-in, on SQLite or PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.models import (
    APPLIED,
    APPROVED,
    BOT_REQUESTER,
    CANCELLED,
    FAILED,
    LEASE_ACTIVE,
    LEASE_ENDED,
    LEAVE,
    OFFBOARD,
    PENDING,
    REMOVE,
    AccessRequest,
    Delivery,
    Lease,
)
from tests.bot.access.helpers import audit_actions, buttons, card, dms, only_request
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, GONE, OTHER, REQUESTER, make_settings


def _requests(db, kind=None) -> list[AccessRequest]:
    with db.session() as s:
        q = select(AccessRequest).order_by(AccessRequest.created_at)
        if kind:
            q = q.where(AccessRequest.kind == kind)
        return list(s.scalars(q))


def _group_names(sandbox, email) -> list[str]:
    return sorted(g["name"] for g in sandbox.find_user(email)["groups"])


def _active_lease(db, req: AccessRequest, group_id: str, group_name: str, now) -> str:
    """An active lease of ``req``'s person in ``group_id`` (the lead's worker writes these; here directly)."""
    lease = Lease(
        request_id=req.id,
        email=req.target_email,
        slack_id=req.target_slack_id,
        group_id=group_id,
        group_name=group_name,
        state=LEASE_ACTIVE,
        duration_seconds=7200,
        active_key=Lease.make_active_key(req.target_email, group_id),
        started_at=now,
        ends_at=now + dt.timedelta(hours=2),
        created_at=now,
        updated_at=now,
    )
    with db.session() as s:
        s.add(lease)
    return lease.id


def _lease(db, lease_id) -> Lease:
    with db.session() as s:
        return s.get(Lease, lease_id)


def _oscar(sandbox, groups, *names, **kw):
    return sandbox.create_user(
        "oscar@example.com", "Oscar", "Keep", groups=[groups[n] for n in names], actions=[], **kw
    )


def _channel_messages(slack):
    return slack.messages_in(CHANNEL)


# ----------------------------------------------------------------------------------- leave
def test_leave_removes_you_at_once_without_a_card_and_ends_your_lease(service, db, sandbox, slack, groups):
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"], groups["Data Analyst"]])
    service.handle_command(REQUESTER, "request Data Manager")  # an unrelated open request, kept
    grant = only_request(db)
    lease = _active_lease(db, grant, groups["Viewer"], "Viewer", service.clock())
    posted = len(_channel_messages(slack))
    reply = service.handle_command(REQUESTER, "leave viewer")
    assert "Removed alice@example.com from Viewer" in reply.text
    assert _group_names(sandbox, "alice@example.com") == ["Data Analyst"]
    req = _requests(db, LEAVE)[0]
    assert (req.state, req.decided_by, req.open_key) == (APPLIED, REQUESTER, None)
    assert len(_channel_messages(slack)) == posted  # no approval card for a leave
    assert dms(slack, REQUESTER) == []  # answered in the command, not again by DM
    actions = [a for _, a, _ in audit_actions(db, req.id)]
    assert actions[:2] == ["request.created", "decision.self_service"] and "apply.done" in actions
    assert "lease.ended" in actions
    ended = _lease(db, lease)
    assert (ended.state, ended.end_reason, ended.ended_by) == (LEASE_ENDED, "left", REQUESTER)
    assert service.get(grant.id).state == PENDING
    assert len(sandbox.writes("DELETE")) == 1
    assert service.run_due() == 0 and len(sandbox.writes()) == 1


def test_leave_of_a_group_you_are_not_in_is_refused_and_nothing_saved(service, db, sandbox, groups):
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    reply = service.handle_command(REQUESTER, 'leave "Data Analyst"')
    assert "not a member of *Data Analyst*" in reply.text
    assert _requests(db) == [] and sandbox.writes() == []
    assert ("command.invalid", "refused") in [(a, o) for _, a, o in audit_actions(db)]


def test_leave_that_polaris_fails_is_retried_by_the_worker_and_told_by_dm(service, db, sandbox, slack, groups):
    from standins.polaris_sandbox import Fault

    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    sandbox.add_fault(Fault(method="DELETE", path=r"^/v1/groups/.*/members$", status=503, times=10))
    reply = service.handle_command(REQUESTER, "leave Viewer")
    assert "is being applied in Polaris; I will message you" in reply.text
    req = _requests(db, LEAVE)[0]
    assert req.state == APPROVED
    sandbox.clear_faults()
    service.store.set(req.id, next_attempt_at=None)
    service.run_due()
    assert service.get(req.id).state == APPLIED
    assert _group_names(sandbox, "alice@example.com") == []
    assert any("Done: leaving *Viewer*" in t for t in dms(slack, REQUESTER))


# ----------------------------------------------------------------------------------- remove
def test_remove_is_decided_by_the_groups_approvers_then_applied(service, db, sandbox, slack, groups):
    _oscar(sandbox, groups, "Viewer", "Data Analyst")
    reply = service.handle_command(REQUESTER, "remove <@U0OSCAR|oscar> Data Analyst left the team")
    assert "went to the approvers" in reply.text
    req = only_request(db)
    assert (req.kind, req.state, req.target_slack_id, req.group_name) == (REMOVE, PENDING, OTHER, "Data Analyst")
    shown = str(card(slack, req)["blocks"])
    assert "asks to remove `oscar@example.com` from *Data Analyst*" in shown
    assert buttons(card(slack, req)) == ["Approve", "Approve with options…", "Deny"]
    assert "your own request" in service.decide(req.id, REQUESTER, approve=True)
    assert "is for you" in service.decide(req.id, OTHER, approve=True)
    assert service.decide(req.id, APPROVER, approve=True) is None
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED and "Removed oscar@example.com from Data Analyst" in req.outcome
    assert _group_names(sandbox, "oscar@example.com") == ["Viewer"]
    assert buttons(card(slack, req)) == []
    assert any("Done: the removal of `oscar@example.com` from *Data Analyst*" in t for t in dms(slack, REQUESTER))
    again = service.handle_command(REQUESTER, "remove oscar@example.com Data Analyst")
    assert "not a member" in again.text and len(_requests(db)) == 1


def test_removing_a_deactivated_slack_account_is_approved_and_applied(service, db, sandbox, slack, groups):
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    service.handle_command(REQUESTER, "remove gone@example.com Viewer")
    req = only_request(db)
    assert req.target_slack_id == GONE
    assert service.decide(req.id, APPROVER, approve=True) is None  # the _parties check does not block it
    service.run_due()
    assert service.get(req.id).state == APPLIED and _group_names(sandbox, "gone@example.com") == []


def test_removing_yourself_points_to_leave(service, db, sandbox, groups):
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    assert "/polaris leave" in service.handle_command(REQUESTER, "remove alice@example.com Viewer").text
    assert _requests(db) == []


def test_organization_admin_removal_needs_two_organization_admins(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, approvers=frozenset({APPROVER, APPROVER2, OTHER}))
    _oscar(sandbox, groups, "Viewer")  # an approver who is no Organization Admin
    service.handle_command(REQUESTER, "remove <@U0BOB|bob> Organization Admin")
    req = only_request(db)
    assert req.approvals_required == 2
    assert "Privileged" in str(card(slack, req)["blocks"])
    assert "is for you" in service.decide(req.id, APPROVER, approve=True)
    assert "Only members of Organization Admin" in service.decide(req.id, OTHER, approve=True)
    assert "(1 of 2)" in service.decide(req.id, APPROVER2, approve=True)
    assert service.get(req.id).state == PENDING
    assert service.decide(req.id, ADMIN, approve=True) is None
    service.run_due()
    assert service.get(req.id).state == APPLIED
    assert _group_names(sandbox, "bob@example.com") == []


def _only_admin_left(sandbox, groups, keep="bob@example.com"):
    for email in ("bob@example.com", "erin@example.com", "carol@example.com", "oscar@example.com"):
        if email != keep and sandbox.find_user(email) is not None:
            uid = sandbox.find_user(email)["id"]
            sandbox._users[uid]["enabled"] = False  # disabled members do not count


def test_the_last_enabled_organization_admin_is_refused_at_request_time(service, db, sandbox, groups):
    _only_admin_left(sandbox, groups)
    reply = service.handle_command(REQUESTER, "remove bob@example.com Organization Admin")
    assert "last enabled Organization Admin" in reply.text
    assert _requests(db) == [] and sandbox.writes() == []
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Organization Admin"]])
    sandbox._users[sandbox.find_user("bob@example.com")["id"]]["enabled"] = False
    assert "last enabled Organization Admin" in service.handle_command(REQUESTER, "leave Organization Admin").text
    assert _requests(db) == []


def test_the_last_enabled_organization_admin_is_refused_again_at_apply_time(service, db, sandbox, slack, groups):
    """An offboarding of an Organization Admin member is approved by two other enabled members; the others are
    disabled before it is applied, so it would remove the last one: refused then, nothing written."""
    service.settings = make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER, OTHER}))
    sandbox.create_user(
        "oscar@example.com", "Oscar", "T", groups=[groups["Organization Admin"]], actions=[]
    )  # a third Organization Admin member, who approves with bob
    service.handle_command(ADMIN, "offboard erin@example.com")
    req = only_request(db)
    assert req.approvals_required == 2  # taking Organization Admin away needs two of its members
    service.decide(req.id, APPROVER, approve=True)
    service.decide(req.id, OTHER, approve=True)
    assert service.get(req.id).state == APPROVED
    _only_admin_left(sandbox, groups, keep="erin@example.com")  # the others were disabled in between
    service.run_due()
    req = service.get(req.id)
    assert req.state == FAILED and "last enabled Organization Admin" in req.outcome
    assert _group_names(sandbox, "erin@example.com") == ["Organization Admin"]
    assert sandbox.find_user("erin@example.com")["enabled"] is True and sandbox.writes() == []
    assert ("bot", "apply.refused", "refused") in audit_actions(db, req.id)


def test_a_removal_whose_user_was_deleted_in_polaris_is_done_quietly(service, db, sandbox, groups):
    oscar = _oscar(sandbox, groups, "Viewer")
    service.handle_command(REQUESTER, "remove oscar@example.com Viewer")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    sandbox.handle("DELETE", f"/v1/users/{oscar['id']}", {}, {"Authorization": f"Basic {_key()}"}, b"")
    sandbox.reset_calls()
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED and "no Polaris user oscar@example.com any more" in req.outcome
    assert sandbox.writes() == []


def test_a_removal_whose_group_was_deleted_in_polaris_is_done(service, db, sandbox, groups):
    group = sandbox.create_group("Finance Readers", [{"name": "ViewTables", "resources": ["projects/*"]}])
    sandbox.create_user("oscar@example.com", "Oscar", "Keep", groups=[group["id"]], actions=[])
    service.handle_command(REQUESTER, "remove oscar@example.com Finance Readers")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    sandbox.handle("DELETE", f"/v1/groups/{group['id']}", {}, {"Authorization": f"Basic {_key()}"}, b"")
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED and "not a member of Finance Readers" in req.outcome


def _key():
    from standins.polaris_sandbox import SANDBOX_API_KEY

    return SANDBOX_API_KEY


# ----------------------------------------------------------------------------------- offboard
def _two_admins(service, sandbox, slack, db):
    service.settings = make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER2}))


def test_offboarding_removes_every_group_disables_the_user_and_keeps_the_rest(service, db, sandbox, slack, groups):
    _two_admins(service, sandbox, slack, db)
    _oscar(
        sandbox,
        groups,
        "Viewer",
        "Data Analyst",
        permissions=[{"name": "ViewTables", "resources": ["projects/p1"]}],
        email_verified=True,
    )
    before = sandbox.find_user("oscar@example.com")
    service.handle_command(OTHER, "request Data Manager need it")  # oscar's own pending request
    own = only_request(db)
    service.handle_command(REQUESTER, "invite oscar@example.com Organization Admin")  # one for oscar by alice
    invite = [r for r in _requests(db) if r.requester_id == REQUESTER][0]
    lease = _active_lease(db, own, groups["Viewer"], "Viewer", service.clock())
    reply = service.handle_command(ADMIN, "offboard <@U0OSCAR|oscar> left the company")
    assert "went to the approvers" in reply.text
    req = _requests(db, OFFBOARD)[0]
    shown = str(card(slack, req)["blocks"])
    assert "asks to offboard `oscar@example.com`" in shown
    for listed in ("Data Analyst", "Viewer", own.id[:8], invite.id[:8], "will be disabled", "until"):
        assert listed in shown, listed
    assert "your own request" in service.decide(req.id, ADMIN, approve=True)
    assert "Only admins can decide an offboarding" in service.decide(
        req.id, APPROVER, approve=True
    )  # an approver, not an admin
    assert "is for you" in service.decide(req.id, OTHER, approve=True)
    assert sandbox.writes() == []
    assert service.decide(req.id, APPROVER2, approve=True) is None
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED, req.outcome
    assert "Removed oscar@example.com from every group" in req.outcome
    after = sandbox.find_user("oscar@example.com")
    assert after["groups"] == [] and after["enabled"] is False
    for key in set(before) - {"groups", "enabled"}:
        assert after[key] == before[key], key
    assert [c.method for c in sandbox.writes()] == ["PUT"]
    ended = _lease(db, lease)
    assert (ended.state, ended.end_reason) == (LEASE_ENDED, "offboarded")
    for closed in (own, invite):
        closed = service.get(closed.id)
        assert (closed.state, closed.decided_by, closed.open_key) == (CANCELLED, BOT_REQUESTER, None)
        assert "oscar@example.com was offboarded" in closed.outcome
        assert buttons(card(slack, closed)) == [] and "Cancelled by the bot" in str(card(slack, closed)["blocks"])
    assert any("was cancelled by the bot" in t and invite.id[:8] in t for t in dms(slack, REQUESTER))
    assert not any("cancelled" in t for t in dms(slack, OTHER))  # the person offboarded is not told
    assert "Cancelled by the bot" in service.decide(invite.id, APPROVER, approve=True)


def test_offboarding_is_for_admins_only_and_never_yourself(service, db, sandbox, groups):
    _oscar(sandbox, groups, "Viewer")
    assert "Only admins" in service.handle_command(REQUESTER, "offboard oscar@example.com").text
    assert "cannot offboard yourself" in service.handle_command(ADMIN, "offboard carol@example.com").text
    assert "No Polaris user" in service.handle_command(ADMIN, "offboard nobody@example.com").text
    assert _requests(db) == []


def test_offboarding_the_last_enabled_organization_admin_is_refused(service, db, sandbox, slack, groups):
    _only_admin_left(sandbox, groups, keep="erin@example.com")
    assert "last enabled Organization Admin" in service.handle_command(ADMIN, "offboard erin@example.com").text
    assert _requests(db) == []


def test_offboard_policy_section_names_the_approvers_and_approvals(service, db, sandbox, slack, groups, tmp_path):
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(f'[offboard]\napprovers = ["{APPROVER}", "{APPROVER2}"]\napprovals = 2\n')
    service.policy = load_policy(str(path))
    _oscar(sandbox, groups, "Viewer")
    service.handle_command(ADMIN, "offboard oscar@example.com")
    req = only_request(db)
    assert req.approvals_required == 2
    assert "(1 of 2)" in service.decide(req.id, APPROVER, approve=True)
    assert service.decide(req.id, APPROVER2, approve=True) is None
    service.run_due()
    assert service.get(req.id).state == APPLIED
    assert "*Offboarding*: approvers: <@U0BOB>, <@U0ERIN>; 2 approvals" in str(service.cmd_policy(ADMIN).blocks)


# ----------------------------------------------------------------------------------- a Slack deactivation
def test_a_deactivated_slack_account_gets_an_offboarding_card_for_the_admins(service, db, sandbox, slack, groups):
    _two_admins(service, sandbox, slack, db)
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    req = service.slack_user_deactivated(GONE)
    assert (req.kind, req.requester_id, req.target_slack_id, req.state) == (OFFBOARD, BOT_REQUESTER, GONE, PENDING)
    shown = str(card(slack, req)["blocks"])
    assert "was deactivated: the bot asks to offboard `gone@example.com`" in shown and "Viewer" in shown
    assert sandbox.writes() == []
    assert service.slack_user_deactivated(GONE) is None  # an offboarding is open already
    assert len(_requests(db)) == 1
    assert "Only admins can decide an offboarding" in service.decide(req.id, APPROVER, approve=True)
    assert service.decide(req.id, ADMIN, approve=True) is None
    service.run_due()
    assert service.get(req.id).state == APPLIED
    assert sandbox.find_user("gone@example.com")["enabled"] is False
    with db.session() as s:
        assert not list(s.scalars(select(Delivery).where(Delivery.recipient == BOT_REQUESTER)))
    service.run_due()  # nobody to tell: the worker does not keep trying
    assert service.get(req.id).notified_state == APPLIED


def test_a_deactivation_without_an_enabled_polaris_account_opens_nothing(service, db, sandbox, slack, groups):
    assert service.slack_user_deactivated(GONE) is None
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], enabled=False)
    assert service.slack_user_deactivated(GONE) is None
    assert service.slack_user_deactivated(OTHER) is None  # not deactivated (read now)
    assert _requests(db) == []
    details = [r.detail for r in service.audit.for_actor("bot") if r.action == "slack.user_deactivated"]
    assert any("no enabled Polaris account" in d for d in details)
    assert any("active again" in d for d in details)


# ----------------------------------------------------------------------------------- cancel
def test_cancel_withdraws_your_pending_request_and_a_later_click_is_refused(service, db, sandbox, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    assert "is not yours" in service.handle_command(OTHER, f"cancel {req.id[:8]}").text
    reply = service.handle_command(REQUESTER, f"cancel {req.id[:8].upper()}")
    assert "Cancelled request" in reply.text
    req = service.get(req.id)
    assert (req.state, req.decided_by, req.open_key) == (CANCELLED, REQUESTER, None)
    assert buttons(card(slack, req)) == [] and f"Cancelled by <@{REQUESTER}>" in str(card(slack, req)["blocks"])
    assert service.decide(req.id, APPROVER, approve=True) == f"Cancelled by <@{REQUESTER}>."
    assert service.run_due() == 0 and sandbox.writes() == []
    assert "Cancelled by" in service.handle_command(REQUESTER, f"cancel {req.id}").text
    actions = [(a, act) for a, act, _ in audit_actions(db, req.id)]
    assert (REQUESTER, "request.cancelled") in actions and (OTHER, "request.cancel_refused") in actions
    assert "went to the approvers" in service.handle_command(REQUESTER, "request Viewer").text  # its key is free


def test_an_approved_request_cannot_be_cancelled(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    assert "can no longer be cancelled" in service.cancel_request(req.id, REQUESTER)
    assert service.get(req.id).state == APPROVED
    assert "There is no request" in service.handle_command(REQUESTER, "cancel 00000000").text


def test_status_and_the_home_tab_offer_cancel_for_your_pending_requests(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    for blocks in (service.cmd_status(REQUESTER).blocks, service.home_view(REQUESTER)["blocks"]):
        cancel = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
        assert [(e["text"]["text"], e["value"]) for e in cancel] == [(f"Cancel {req.id[:8]}", req.id)]
    service.decide(req.id, APPROVER, approve=True)
    assert not [b for b in service.cmd_status(REQUESTER).blocks if b["type"] == "actions"]
