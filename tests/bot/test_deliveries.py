"""Every Slack delivery the worker retries (DMs, card posts, card updates, manager copies): per-recipient
state in the ``deliveries`` table, exponential backoff with a cap, an attempt limit, no retry for a permanent
error, fallbacks, audit. Runs against the Slack stand-in and the Polaris sandbox, on SQLite or PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.deliveries import DELIVERY_MAX_ATTEMPTS
from bot.models import APPLIED, DENIED, FAILED, PENDING, Delivery, SlackEvent
from standins.polaris_sandbox import Fault
from tests.bot.access.helpers import audit_actions, buttons, card, dms, only_request
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, REQUESTER, Clock

DAN = "U0DAN"


def calls(slack, method: str, **match) -> list[dict]:
    with slack.lock:
        return [a for m, a in slack.calls if m == method and all(str(a.get(k)) == v for k, v in match.items())]


def rows(db, request_id: str) -> list[Delivery]:
    with db.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.request_id == request_id).order_by(Delivery.id)))


# ----------------------------------------------------------------------------------- finding 2
def test_requester_refusing_dms_does_not_make_the_target_get_the_done_dm_every_pass(service, db, slack, groups):
    """Carol (ADMIN) invites Dan; Slack refuses DMs to Carol (user_disabled); an approver approves. Dan gets one
    "For your information: Done" DM over 75 s of worker passes, Carol's DM is tried once, never again."""
    slack.add_user(DAN, "dan", "dan@example.com", first_name="Dan", last_name="Tester")
    slack.fail_for("conversations.open", "user_disabled", users=ADMIN)
    clock = Clock(service)
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True) is None
    for _ in range(15):
        service.run_due()
        clock.advance(5)
    req = service.get(req.id)
    assert req.state == APPLIED
    assert [t for t in dms(slack, DAN) if "For your information" in t] == [dms(slack, DAN)[0]]
    assert len(dms(slack, DAN)) == 1 and "approved it, and it is done" in dms(slack, DAN)[0]
    assert len(calls(slack, "conversations.open", users=ADMIN)) == 1  # permanent: never tried again
    assert req.notified_state == APPLIED  # settled (given up), not left for the worker to resend
    carol = {r.key: (r.status, r.last_error) for r in rows(db, req.id) if r.recipient == ADMIN}
    # The approval's DM was held back and superseded by the outcome's (issue 13), which Slack refused for good.
    assert carol == {"approved": ("superseded", None), "applied": ("failed", "user_disabled")}
    assert ("bot", "notify.gave_up", "error") in audit_actions(db, req.id)


def test_transient_dm_failure_backs_off_exponentially_then_delivers_once(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    slack.fail_for(
        "chat.postMessage", "fatal_error", times=2, channel=slack.dm_channel(REQUESTER)
    )  # the DM, not the thread reply
    service.decide(req.id, APPROVER, approve=False)
    dm_posts = lambda: len(calls(slack, "chat.postMessage", channel=slack.dm_channel(REQUESTER)))  # noqa: E731
    assert dm_posts() == 1
    tried_at = {}
    for second in range(0, 61):
        before = dm_posts()
        service.run_due()
        if dm_posts() > before:
            tried_at[second] = dm_posts()
        clock.advance(1)
    base = service.deliveries.base
    assert list(tried_at) == [int(base), int(base + 2 * base)]  # 10 s, then 20 s later
    assert sum("denied" in t for t in dms(slack, REQUESTER)) == 1
    assert service.get(req.id).notified_state == DENIED
    assert [r.status for r in rows(db, req.id) if r.recipient == REQUESTER and r.kind == "dm"] == ["delivered"]
    assert audit_actions(db, req.id).count(("bot", "notify.retry_later", "error")) == 2


def test_dm_attempt_limit_gives_up_audited_and_admins_are_told(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    slack.fail_for("chat.postMessage", "fatal_error", channel=slack.dm_channel(REQUESTER))
    service.decide(req.id, APPROVER, approve=False)
    for _ in range(3 * DELIVERY_MAX_ATTEMPTS):
        clock.advance(service.deliveries.cap + 1)
        service.run_due()
    assert len(calls(slack, "chat.postMessage", channel=slack.dm_channel(REQUESTER))) == DELIVERY_MAX_ATTEMPTS
    assert ("bot", "notify.gave_up", "error") in audit_actions(db, req.id)
    told = dms(slack, ADMIN)
    assert len(told) == 1 and REQUESTER in told[0] and req.id[:8] in told[0] and "denied" in told[0]
    assert ("bot", "notify.fallback", "ok") in audit_actions(db, req.id)
    assert service.get(req.id).notified_state == DENIED


# ----------------------------------------------------------------------------------- finding 10
def test_card_update_refused_for_good_is_tried_once_then_a_fresh_card_is_posted(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    old = only_request(db)
    slack.fail_for("chat.update", "message_not_found", ts=old.approval_ts)
    service.decide(old.id, APPROVER, approve=True)
    for _ in range(12):
        service.run_due()
        clock.advance(5)
    req = service.get(old.id)
    assert req.state == APPLIED
    assert len(calls(slack, "chat.update", ts=old.approval_ts)) == 1
    assert req.approval_ts != old.approval_ts and len(slack.messages_in(CHANNEL)) == 2
    fresh = card(slack, req)
    assert "Approved and applied" in str(fresh["blocks"]) and buttons(fresh) == []
    assert "replaces" in str(fresh["blocks"])
    actions = audit_actions(db, req.id)
    assert ("bot", "notify.gave_up", "error") in actions and ("bot", "notify.fallback", "ok") in actions


def test_card_update_not_in_channel_after_approval_is_one_call_then_admins_are_told(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    slack.fail_for("chat.update", "not_in_channel", channel=CHANNEL)
    slack.fail_for("chat.postMessage", "not_in_channel", channel=CHANNEL)
    service.decide(req.id, APPROVER, approve=True)
    for _ in range(12):
        service.run_due()
        clock.advance(5)
    assert service.get(req.id).state == APPLIED
    assert len(calls(slack, "chat.update", channel=CHANNEL)) == 1
    assert len(calls(slack, "chat.postMessage", channel=CHANNEL)) == 2  # the card, and one fresh card
    assert any(
        "not_in_channel" in t and req.id[:8] in t and "could not be updated or posted again" in t
        for t in dms(slack, ADMIN)
    )
    # The approvers did see it and decided: the requester is not told they never saw it (attack review).
    assert not any("could not post your request" in t for t in dms(slack, REQUESTER))
    assert any("Done" in t or "applied" in t.lower() for t in dms(slack, REQUESTER))
    assert audit_actions(db, req.id).count(("bot", "notify.update", "error")) == 1


def test_card_post_channel_not_found_is_not_retried_and_requester_and_admins_are_told(service, db, slack, groups):
    clock = Clock(service)
    slack.fail_for("chat.postMessage", "channel_not_found", channel=CHANNEL)
    reply = service.handle_command(REQUESTER, "request Viewer")
    assert "could not post it" in reply.text
    req = only_request(db)
    for _ in range(20):
        clock.advance(5)
        service.run_due()
    assert service.get(req.id).state == PENDING
    assert len(calls(slack, "chat.postMessage", channel=CHANNEL)) == 1
    assert any("channel_not_found" in t and req.id[:8] in t for t in dms(slack, ADMIN))
    assert sum("approval card" in t and "could not" in t for t in dms(slack, REQUESTER)) == 1
    assert ("bot", "notify.gave_up", "error") in audit_actions(db, req.id)


def test_transient_card_post_failure_backs_off_then_posts_and_tells_the_requester(service, db, slack, groups):
    clock = Clock(service)
    slack.fail_next("chat.postMessage", status=200, error="fatal_error", times=1)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    service.run_due()
    assert service.get(req.id).approval_ts is None  # not due yet
    clock.advance(service.deliveries.base + 1)
    service.run_due()
    req = service.get(req.id)
    assert req.approval_ts and buttons(card(slack, req)) == ["Approve", "Approve with options…", "Deny"]
    assert any("waiting for approval" in t for t in dms(slack, REQUESTER))
    assert len(calls(slack, "chat.update")) == 0


def test_slack_events_older_than_a_day_are_pruned_by_the_worker(service, db):
    now = service.clock()
    with db.session() as s:
        s.add(SlackEvent(event_id="Ev_old", received_at=now - dt.timedelta(days=2)))
        s.add(SlackEvent(event_id="Ev_new", received_at=now - dt.timedelta(hours=1)))
    service.run_due()
    with db.session() as s:
        assert list(s.scalars(select(SlackEvent.event_id))) == ["Ev_new"]
    assert service.first_delivery("Ev_new") is False


# ----------------------------------------------------------------------------------- finding 19
def test_a_fresh_card_is_posted_once_and_not_updated(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.run_due()
    assert len(calls(slack, "chat.postMessage", channel=CHANNEL)) == 1
    assert len(calls(slack, "chat.update")) == 0
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=False)
    assert len(calls(slack, "chat.update")) == 1  # a real change is still shown
    service.refresh_card(req.id)
    assert len(calls(slack, "chat.update")) == 1


# ----------------------------------------------------------------------------------- finding 20
def test_requester_dm_names_every_approver(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Organization Admin")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    assert service.decide(req.id, APPROVER2, approve=True) is None
    service.run_due()  # applied within the hold: the outcome's DM is the one that names them (issue 13)
    told = [t for t in dms(slack, REQUESTER) if "Approved by" in t or "was approved by" in t]
    assert len(told) == 1 and told[0].startswith(":white_check_mark: Done")
    assert f"<@{APPROVER}>" in told[0] and f"<@{APPROVER2}>" in told[0]


def test_a_retry_that_fails_the_same_way_shows_the_attempt_and_time_on_the_card(service, db, sandbox, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=400, times=None))
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    req = service.get(req.id)
    assert req.state == FAILED
    first = str(card(slack, req)["blocks"])
    clock.advance(120)
    assert service.retry(req.id, APPROVER) == "Retrying it now."
    service.run_due()
    req = service.get(req.id)
    assert req.state == FAILED
    second = str(card(slack, req)["blocks"])
    assert second != first
    assert "Attempt 2" in second and f"{clock.now:%H:%M}" in second
    assert sum(":x:" in t for t in dms(slack, REQUESTER)) == 2  # told of each failure


def test_failure_text_names_the_group_by_name_not_id(service, db, sandbox, slack, groups):
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]], actions=[])
    service.handle_command(REQUESTER, "request Data Analyst dashboards for the team")
    req = only_request(db)
    gid = groups["Data Analyst"]
    sandbox.add_fault(
        Fault(
            method="POST",
            path=r"/members$",
            status=404,
            body=('{"code": "ObjectNotFound", "message": "Group \'%s\' not found"}' % gid).encode(),
        )
    )
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    req = service.get(req.id)
    assert req.state == FAILED
    told = [t for t in dms(slack, REQUESTER) if ":x:" in t]
    shown = told[0] + str(card(slack, req)["blocks"])
    assert gid not in shown and "Data Analyst" in told[0]


def test_requester_pressing_retry_is_told_only_an_approver_can(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    service.store.set(req.id, state=FAILED, outcome="x")
    answer = service.retry(req.id, REQUESTER)
    assert "cannot decide your own request" not in answer
    assert "Only an approver can retry" in answer and f"<@{APPROVER}>" in answer
    assert service.get(req.id).state == FAILED


def test_a_due_dm_is_sent_once_when_several_workers_pass_at_once(service, db, slack, groups):
    import threading

    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    slack.fail_next("chat.postMessage", status=200, error="fatal_error", times=1)
    service.decide(req.id, APPROVER, approve=False)
    clock.advance(60)
    barrier = threading.Barrier(6)

    def work():
        barrier.wait()
        service.run_due()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("denied" in t for t in dms(slack, REQUESTER)) == 1


def test_manager_copy_that_cannot_be_updated_is_sent_afresh_once(service, db, slack, groups):
    from dataclasses import replace

    from bot.policy import load_policy
    from tests.conftest import OTHER

    base = load_policy(None)
    service.policy = replace(
        base,
        managers={REQUESTER: OTHER},
        groups={"data analyst": replace(base.defaults, approvers=("manager", APPROVER2))},
    )
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Data Analyst quarterly dashboards")
    old = only_request(db)
    assert old.manager_dm_ts
    slack.fail_for("chat.update", "message_not_found", ts=old.manager_dm_ts, channel=old.manager_dm_channel)
    assert service.decide(old.id, OTHER, approve=True) is None
    for _ in range(6):
        service.run_due()
        clock.advance(30)
    req = service.get(old.id)
    assert req.state == APPLIED
    assert len(calls(slack, "chat.update", ts=old.manager_dm_ts, channel=old.manager_dm_channel)) == 1
    copies = slack.messages_in(slack.dm_channel(OTHER))
    assert len([m for m in copies if m["blocks"]]) == 2 and req.manager_dm_ts == copies[-1]["ts"]
    assert "Approved and applied" in str(copies[-1]["blocks"]) and "replaces" in str(copies[-1]["blocks"])
    assert "Approved and applied" in str(card(slack, req)["blocks"])
