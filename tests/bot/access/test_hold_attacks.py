"""Issue 13, the attack review of the held approval notices (APPROVED_HOLD) and of the ledger's take / run(then=):
each test failed before its fix."""

from __future__ import annotations

from sqlalchemy import select

from bot.access.notifications import APPROVED_HOLD, SENDING_HOLD
from bot.models import APPLIED, PENDING, Delivery
from tests.bot.access.helpers import _not_org_admin, dms, only_request
from tests.bot.access.test_removals import _two_admins
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, GONE, REQUESTER, Clock

DAN = "U0DAN"


def thread(slack, req) -> list[str]:
    return [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts)]


def statuses(db, request_id: str) -> dict[tuple[str, str, str], tuple[str, int]]:
    with db.session() as s:
        q = select(Delivery).where(Delivery.request_id == request_id)
        return {(d.kind, d.recipient, d.key): (d.status, d.attempts) for d in s.scalars(q)}


# 1. A bot-opened request (Slack deactivation -> offboarding) goes through mark_told, whose _in_thread uses
#    told=True: the held "Approved by ..." reply is superseded and the outcome never names the approver.
def test_bot_opened_offboarding_thread_still_names_who_approved(service, db, sandbox, slack, groups):
    _two_admins(service, sandbox, slack, db)
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    req = service.slack_user_deactivated(GONE)
    assert service.decide(req.id, ADMIN, approve=True, note="left the company") is None
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    replies = thread(slack, req)
    # now: ['... Applied in Polaris. Removed gone@example.com from every group ...'] -- no approver, no comment
    assert any(f"<@{ADMIN}>" in r for r in replies), replies
    assert any("left the company" in r for r in replies), replies


# 2. A `then` that fails makes run() return after=None, which DirectMessages._dm_settled reads as "not the
#    requester's DM": ADMINS are never told that the requester cannot get DMs (and notified_state stays unset).
def test_a_failing_follow_up_does_not_lose_the_admins_fallback(service, db, sandbox, slack, groups):
    slack.fail_for("conversations.open", "user_disabled", users=REQUESTER)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    dm = service.notifications.dms
    real, calls = dm._settle_state, []

    def flaky(row, s):  # the follow-up hits a transient database error once
        calls.append(row.key)
        if len(calls) == 1:
            raise RuntimeError("could not serialize access")
        return real(row, s)

    dm._settle_state = flaky
    service.run_due()
    assert service.get(req.id).state == APPLIED
    assert statuses(db, req.id)[("dm", REQUESTER, "applied")][0] == "failed"
    # now: ADMIN got nothing; the relay row 'dm:U0ALICE' is never owed, and no later pass makes it good
    assert any("I could not send" in t for t in dms(slack, ADMIN)), dms(slack, ADMIN)


# 3. The hold expires while the apply is slow; another process's deliveries pass takes the held "approved" DM
#    and, while its Slack call is in flight, the apply ends: _approval_told sees the row still pending, the
#    outcome DM names the approver and is sent first, then the in-flight "applying it now" lands after "Done".
#    The ledger records the delivered DM as 'superseded'.
def test_a_held_approval_dm_in_flight_is_not_sent_after_the_outcome(service, db, sandbox, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=True, note="fine")
    clock.advance(APPROVED_HOLD + 1)  # the apply has not ended within the hold (slow Polaris, busy worker)
    gateway, real, fired = service.ctx.slack, service.ctx.slack.send_dm, []

    def send_dm(user, text, blocks=None, **kw):
        if "applying it in Polaris now" in text and not fired:
            fired.append(1)
            service.execution.apply(req.id)  # process B's apply ends while process A's Slack call is in flight
        return real(user, text, blocks, **kw)

    gateway.send_dm = send_dm
    for row in service.deliveries.due():  # process A's deliveries pass
        service.notifications.deliver_due(row)
    gateway.send_dm = real
    # The approval's DM was being sent: the outcome's waits (SENDING_HOLD), so it comes second, and does not
    # name the approver again. Before: "Done ... Approved by" first, then "approved ...; applying it" after it.
    clock.advance(SENDING_HOLD + 1)
    service.run_due()
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 2 and "applying it in Polaris now" in told[0], told
    assert told[-1].startswith(":white_check_mark: Done") and "Approved by" not in told[-1], told
    assert statuses(db, req.id)[("dm", REQUESTER, "approved")][0] == "delivered"


# 4. _hold_for_approvals sends an approved request back to pending (its group became privileged; the approval
#    is revoked), superseding the held DM but not the held thread reply: 10 s later the thread says
#    "Approved by erin. Applying it in Polaris." about a pending request whose card shows the buttons again.
def test_a_request_sent_back_to_pending_does_not_post_the_held_approved_reply(service, db, sandbox, slack, groups):
    clock = Clock(service)
    _not_org_admin(sandbox, groups)
    service.handle_command(ADMIN, "request Data Analyst month end")
    req = only_request(db)
    service.decide(req.id, APPROVER2, approve=True, note="ok")
    sandbox.add_group_permissions(groups["Data Analyst"], [{"name": "AdministerUsers"}])
    service.run_due()
    assert service.get(req.id).state == PENDING
    clock.advance(APPROVED_HOLD + 1)
    service.run_due()
    req = service.get(req.id)
    assert req.state == PENDING
    # now: [':white_check_mark: Approved by <@U0ERIN> — “ok”. Applying it in Polaris.'] posted after the revert
    assert not any("Applying it in Polaris" in r for r in thread(slack, req)), thread(slack, req)


# 5. The approver's comment is for the requester (README: "shown on the card, sent to the requester"). When the
#    apply is fast, approved_note is appended to the text that is also sent "For your information" to the person
#    it is for, so the invitee (or the person whose password is reset) gets the approver's comment; when the apply
#    is slow they do not. What a third party is sent depends on timing.
def test_the_person_it_is_for_gets_the_same_fyi_whether_the_apply_was_fast_or_slow(service, db, sandbox, slack, groups):
    slack.add_user(DAN, "dan", "dan@example.com", first_name="Dan", last_name="Tester")
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True, note="carol: check his NDA first")
    service.run_due()
    assert service.get(req.id).state == APPLIED
    fyi = [t for t in dms(slack, DAN) if t.startswith("For your information")]
    # now: 'For your information: ... Done ... Approved by <@U0BOB>. Comment: carol: check his NDA first'
    assert fyi and not any("NDA" in t for t in fyi), fyi
