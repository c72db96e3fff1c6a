"""Replies in the card's thread (bot/access/threads.py) go through the delivery ledger: retried when Slack does
not take them, sent once, and a reply owed before the card is posted waits for its thread."""

from __future__ import annotations

from tests.bot.access.helpers import audit_actions, only_request
from tests.conftest import APPROVER, CHANNEL, REQUESTER, Clock


def replies(slack, req) -> list[str]:
    return [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts)]


def test_a_reply_slack_did_not_take_is_retried_and_sent_once(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    slack.fail_for("chat.postMessage", "internal_error", times=1, thread_ts=req.approval_ts)
    service.decide(req.id, APPROVER, approve=False, note="no")
    assert replies(slack, req) == []
    assert ("bot", "notify.retry_later", "error") in audit_actions(db, req.id)
    for _ in range(4):
        clock.advance(11)
        service.run_due()
    assert replies(slack, req) == [":no_entry_sign: Denied by <@U0BOB> — “no”."]


def test_a_reply_owed_before_the_card_is_posted_waits_for_its_thread(service, db, slack, groups):
    clock = Clock(service)
    slack.fail_for("chat.postMessage", "internal_error", times=1, channel=CHANNEL)  # the card's first post
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    assert req.approval_ts is None
    service.decide(req.id, APPROVER, approve=False, note="not now")
    for _ in range(10):
        clock.advance(30)
        service.run_due()
    req = service.get(req.id)
    assert req.approval_ts is not None
    assert replies(slack, req) == [":no_entry_sign: Denied by <@U0BOB> — “not now”."]
    assert len(slack.messages_in(CHANNEL)) == 1
