"""The attack review of issue 13's state messages (bot/access/state_messages.py: a state change owes its messages
in its own transaction), AuditLog.carry and refresh_card(current=). Each test failed before its fix: the card
drawn from the caller's older copy of the request (now read in the card's own transaction), the FYI to the person
a request is for owed only after the commit (now owed with the rest), a message taken in the state's transaction
and sent after its lease ran out (now its lease is checked, and extended, before sending), and a card no worker
pass would update after a process died (now the state change owes it: CARD_GRACE)."""

from __future__ import annotations

from bot.models import APPLIED, APPROVED
from tests.bot.access.helpers import Died, die_before_the_card, card, dms, only_request
from tests.conftest import APPROVER, APPROVER2, CHANNEL, REQUESTER, Clock


def updates(slack, since: int = 0) -> list[str]:
    """The rendered text of every chat.update of the approval channel since call ``since``."""
    return [str(a.get("blocks")) for m, a in slack.calls[since:] if m == "chat.update" and a.get("channel") == CHANNEL]


def test_two_approvers_at_once_the_first_does_not_put_the_pending_card_back(service, db, slack, groups):
    service.handle_command(REQUESTER, "request organization admin on-call")
    service.drain()
    req = only_request(db)
    notifications = service.notifications
    real = notifications.refresh_card
    marks = {}

    def refresh(request_id, note=None, **kw):
        if not marks:  # erin's click: her decision committed (1 of 2); bob's click lands and ends first
            notifications.refresh_card = real
            assert service.decide(req.id, APPROVER, approve=True) is None
            marks["a"] = len(slack.calls)
        return real(request_id, note, **kw)

    notifications.refresh_card = refresh
    assert "1 of 2" in (service.decide(req.id, APPROVER2, approve=True) or "")
    notifications.refresh_card = real
    assert service.get(req.id).state == APPROVED
    after = updates(slack, marks["a"])
    assert "Approved, applying" in str(card(slack, service.get(req.id))["blocks"])
    # The approved card must not be rewritten with the pending one (buttons, "1 of 2") the first click read.
    # before the fix: ['pending', 'approved']: the card goes back to pending (buttons, "So far: erin, bob"), then forward.
    shown = ["pending" if "Pending approval" in u else "approved" if "Approved, applying" in u else "?" for u in after]
    assert shown == [], shown


DAN = "U0DAN"


def test_an_invite_whose_apply_dies_after_its_commit_still_tells_the_invitee(service, db, sandbox, slack, groups):
    from bot.deliveries import DELIVERY_LEASE
    from tests.conftest import ADMIN

    clock = Clock(service)
    slack.add_user(DAN, "dan", "dan@example.com", first_name="Dan", last_name="Tester")
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding")
    service.drain()
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    die_before_the_card(service)
    try:
        service.execution.apply(req.id)
    except Died:
        pass
    assert service.get(req.id).state == APPLIED
    for _ in range(3):  # the worker, later: the dead process's lease ran out
        clock.advance(DELIVERY_LEASE + 30)
        service.run_due()
    assert any(t.startswith(":white_check_mark: Done") for t in dms(slack, ADMIN))  # the requester is told
    # before the fix: dan never hears: the FYI is owed only after the commit, by the process that died
    assert any(t.startswith("For your information") for t in dms(slack, DAN)), dms(slack, DAN)


def test_a_denied_invite_whose_click_dies_after_its_commit_still_tells_the_invitee(service, db, sandbox, slack, groups):
    from bot.deliveries import DELIVERY_LEASE
    from tests.conftest import ADMIN

    clock = Clock(service)
    slack.add_user(DAN, "dan", "dan@example.com", first_name="Dan", last_name="Tester")
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding")
    service.drain()
    req = only_request(db)
    die_before_the_card(service)
    try:
        service.decide(req.id, APPROVER, approve=False, note="no NDA yet")
    except Died:
        pass
    assert service.get(req.id).state == "denied"
    for _ in range(3):
        clock.advance(DELIVERY_LEASE + 30)
        service.run_due()
    assert any("denied" in t for t in dms(slack, ADMIN))
    assert any(t.startswith("For your information") for t in dms(slack, DAN)), dms(slack, DAN)


def test_an_apply_that_ends_before_the_clicks_card_update_is_not_undone_by_it(service, db, slack, groups):
    # A worker (another process, or the worker thread on its interval) applies the request between the
    # decision's commit and the click's own card update: seen with real threads in about 1 run of 8.
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    notifications = service.notifications
    real = notifications.refresh_card
    marks = {}

    def refresh(request_id, note=None, **kw):
        notifications.refresh_card = real
        service.run_due()  # the apply ends, and shows the card applied
        marks["a"] = len(slack.calls)
        return real(request_id, note, **kw)

    notifications.refresh_card = refresh
    assert service.decide(req.id, APPROVER, approve=True) is None
    req = service.get(req.id)
    assert req.state == APPLIED
    shown = [
        "approved" if "Approved, applying" in u else "applied" if "pplied" in u else "?"
        for u in updates(slack, marks["a"])
    ]
    # before the fix: ['approved', 'applied']: the click rewrites the applied card with the approved one it read, then again
    assert shown == [], shown


def test_a_slow_card_update_does_not_let_the_denial_dm_be_sent_twice(service, db, slack, groups):
    # The denial's DM and thread reply are taken (their attempt lease starts) in the decision's transaction, and
    # sent only after the card's update. When that update is slow (Slack slow, retried by slack_sdk; the card
    # claim waited for; Polaris read for the card), the lease (DELIVERY_LEASE) runs out and another process's
    # worker sends them: then this click sends them again.
    from bot.deliveries import DELIVERY_LEASE

    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    gateway = service.ctx.slack
    real = gateway.update

    def slow_update(*a, **kw):
        gateway.update = real
        clock.advance(DELIVERY_LEASE + 1)  # the update takes this long
        for row in service.deliveries.due():  # another process's worker pass meanwhile
            service.notifications.deliver_due(row)
        return real(*a, **kw)

    gateway.update = slow_update
    service.decide(req.id, APPROVER, approve=False, note="not this quarter")
    service.run_due()
    told = [t for t in dms(slack, REQUESTER)[before:] if "denied" in t]
    replies = [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts or service.get(req.id).approval_ts)]
    # before the fix: the denial DM twice, and the thread reply twice
    assert len(told) == 1 and len(replies) == 1, (told, replies)


def test_a_slow_card_update_does_not_let_the_applied_dm_be_sent_twice(service, db, slack, groups):
    # The same for an apply: _record_applied takes the outcome's DM and reply; the card update that follows
    # first reads the group from Polaris again (the catalog was just invalidated) and then calls Slack.
    from bot.deliveries import DELIVERY_LEASE

    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=True)
    gateway = service.ctx.slack
    real = gateway.update

    def slow_update(*a, **kw):
        if service.store.get(req.id).state == APPLIED:
            gateway.update = real
            clock.advance(DELIVERY_LEASE + 1)
            for row in service.deliveries.due():  # another process's worker pass meanwhile
                service.notifications.deliver_due(row)
        return real(*a, **kw)

    gateway.update = slow_update
    service.execution.apply(req.id)
    gateway.update = real
    told = [t for t in dms(slack, REQUESTER)[before:] if t.startswith(":white_check_mark: Done")]
    replies = [m["text"] for m in slack.thread_replies(CHANNEL, service.get(req.id).approval_ts)]
    replies = [r for r in replies if "pplied in Polaris" in r]
    # before the fix: "Done" twice, and the applied reply twice
    assert len(told) == 1 and len(replies) == 1, (told, replies)


def test_a_denial_that_dies_after_its_commit_still_gets_its_card_updated(service, db, slack, groups):
    # Older than this change (the card was never owed before it either): the change's promise, "a process dying
    # between the commit and Slack leaves the messages owed", stopped at the DM and the reply: the card kept its
    # Approve/Deny buttons on a denied request for good; no worker pass owed it.
    from bot.deliveries import DELIVERY_LEASE

    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    die_before_the_card(service)
    try:
        service.decide(req.id, APPROVER, approve=False, note="no")
    except Died:
        pass
    for _ in range(3):
        clock.advance(DELIVERY_LEASE + 30)
        service.run_due()
    req = service.get(req.id)
    assert req.state == "denied" and any("denied" in t for t in dms(slack, REQUESTER))
    blocks = str(card(slack, req)["blocks"])
    # before the fix: ':hourglass_flowing_sand: *Pending approval*' with the Approve and Deny buttons
    assert "Pending approval" not in blocks and "Denied" in blocks, blocks[-600:]
