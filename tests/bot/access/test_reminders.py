"""Reminders and escalation (bot/access/reminders.py) with a fake clock: on time, at most max_reminders, none
after a decision, once with two processes (SQLite and PostgreSQL); escalation reaches escalate_to, who may then
decide; everything in the card's thread and audited."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select

from bot import wiring
from bot.db import Database
from bot.models import APPROVED, DENIED, PENDING, AccessRequest, Delivery
from tests.bot.access.helpers import audit_actions, card, only_request
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, OTHER, REQUESTER, Clock

HOUR = 3600


def put_policy(service, tmp_path, text: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(text)
    service.policy = load_policy(str(path))


def thread(slack, req) -> list[str]:
    return [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts)]


def reminders_in_thread(slack, req) -> list[str]:
    return [t for t in thread(slack, req) if t.startswith(":bell: Reminder")]


def reminder_dms(slack, user_id) -> list[dict]:
    return [m for m in slack.messages_in(slack.dm_channel(user_id)) if "for a decision (reminder" in m["text"]]


def request(service, db, text="request Viewer dashboards") -> AccessRequest:
    service.handle_command(REQUESTER, text)
    return only_request(db)


def test_reminders_come_on_time_at_most_max_reminders(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, '[defaults]\nremind_after = "1h"\nmax_reminders = 2\n')
    clock = Clock(service)
    req = request(service, db)
    assert req.remind_at == req.created_at + dt.timedelta(hours=1) and req.reminders_sent == 0
    clock.advance(HOUR - 1)
    service.run_due()
    assert reminders_in_thread(slack, req) == []
    clock.advance(1)
    service.run_due()
    service.run_due()  # once per reminder
    assert reminders_in_thread(slack, req) == [reminders_in_thread(slack, req)[0]]
    assert "Reminder 1 of 2" in reminders_in_thread(slack, req)[0]
    for who in (APPROVER, APPROVER2, ADMIN):  # the approvers named individually (APPROVERS and ADMINS here)
        (dm,) = reminder_dms(slack, who)
        labels = [e["text"]["text"] for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert labels == ["Approve", "Approve with options…", "Deny"]
    assert reminder_dms(slack, REQUESTER) == []
    assert "Approvers reminded 1 time" in str(card(slack, service.get(req.id))["blocks"])
    clock.advance(HOUR)
    service.run_due()
    assert [t.split(":")[2].strip()[:16] for t in reminders_in_thread(slack, req)] == [
        "Reminder 1 of 2",
        "Reminder 2 of 2",
    ]
    for _ in range(5):
        clock.advance(HOUR)
        service.run_due()
    assert len(reminders_in_thread(slack, req)) == 2 and len(reminder_dms(slack, APPROVER)) == 2
    assert audit_actions(db, req.id).count(("bot", "request.reminded", "ok")) == 2
    assert service.get(req.id).remind_at is None and service.get(req.id).reminders_sent == 2
    assert len(slack.messages_in(CHANNEL)) == 1  # the channel shows the card; the rest is in its thread


def test_the_default_policy_reminds_after_four_hours(service, db, slack, groups):
    clock = Clock(service)
    req = request(service, db)
    clock.advance(4 * HOUR - 60)
    service.run_due()
    assert reminders_in_thread(slack, req) == []
    clock.advance(60)
    service.run_due()
    assert len(reminders_in_thread(slack, req)) == 1


def test_no_reminder_after_a_decision_and_none_left_in_the_ledger(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, '[defaults]\nremind_after = "1h"\nmax_reminders = 3\n')
    clock = Clock(service)
    req = request(service, db)
    slack.fail_for("chat.postMessage", "internal_error", channel=slack.dm_channel(APPROVER))  # retried later
    clock.advance(HOUR)
    service.run_due()
    assert len(reminders_in_thread(slack, req)) == 1 and reminder_dms(slack, APPROVER) == []
    assert service.decide(req.id, APPROVER2, approve=False) is None
    slack.clear_failures()
    for _ in range(4):
        clock.advance(HOUR)
        service.run_due()
    assert service.get(req.id).state == DENIED
    assert len(reminders_in_thread(slack, req)) == 1
    assert reminder_dms(slack, APPROVER) == []  # the one owed was superseded by the decision
    with db.session() as s:
        owed = s.scalars(select(Delivery).where(Delivery.key.startswith("remind:"), Delivery.status == "pending"))
        assert list(owed) == []


def test_no_reminder_after_a_cancel_and_the_thread_says_so(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, '[defaults]\nremind_after = "1h"\nmax_reminders = 3\n')
    clock = Clock(service)
    req = request(service, db)
    slack.fail_for("chat.postMessage", "internal_error", channel=slack.dm_channel(APPROVER))  # retried later
    clock.advance(HOUR)
    service.run_due()
    assert "Cancelled request" in service.handle_command(REQUESTER, f"cancel {req.id[:8]}").text
    slack.clear_failures()
    for _ in range(4):
        clock.advance(HOUR)
        service.run_due()
    assert len(reminders_in_thread(slack, req)) == 1 and reminder_dms(slack, APPROVER) == []
    assert thread(slack, req)[-1] == f":heavy_multiplication_x: Cancelled by <@{REQUESTER}>; nothing to decide."


def test_no_reminder_after_expiry(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, '[defaults]\nremind_after = "1h"\nmax_reminders = 5\nttl_hours = 1.5\n')
    clock = Clock(service)
    req = request(service, db)
    for _ in range(4):
        clock.advance(HOUR)
        service.run_due()
    assert service.get(req.id).state == "expired"
    assert len(reminders_in_thread(slack, req)) == 1


def test_approvers_who_approved_are_not_reminded(service, db, slack, groups, tmp_path):
    put_policy(
        service,
        tmp_path,
        f'[defaults]\nremind_after = "1h"\n[groups.Viewer]\napprovers = ["{APPROVER}", "{APPROVER2}"]\napprovals = 2\n',
    )
    clock = Clock(service)
    req = request(service, db)
    assert service.decide(req.id, APPROVER, approve=True).startswith("Your approval is recorded")
    clock.advance(HOUR)
    service.run_due()
    assert reminder_dms(slack, APPROVER) == [] and len(reminder_dms(slack, APPROVER2)) == 1
    assert reminder_dms(slack, ADMIN) == []  # the rule names its approvers: ADMINS are not among them
    assert any("approved (1 of 2)" in t for t in thread(slack, req))


def test_each_reminder_is_sent_once_by_two_processes_after_a_restart(settings, db, slack, groups, tmp_path):
    """Two cores on one database (two `serve` processes; on PostgreSQL with TEST_DATABASE_URL): the request is
    made by one, which then stops; both later passes run at the same moment; each reminder goes out once."""
    first = wiring.build_core(settings, db=Database(db.url))
    put_policy(first.service, tmp_path, '[defaults]\nremind_after = "1h"\nmax_reminders = 2\n')
    clock = Clock(first.service)
    req = request(first.service, db)
    first.service.drain()
    cores = [wiring.build_core(settings, db=Database(db.url)) for _ in range(2)]  # after a restart
    for c in cores:
        c.service.policy = first.service.policy
        c.service.clock = clock
    for hour in (1, 2, 3):
        clock.now = req.created_at + dt.timedelta(hours=hour)
        barrier = threading.Barrier(2)

        def run(c, barrier=barrier):
            barrier.wait()
            c.service.run_due()

        workers = [threading.Thread(target=run, args=(c,)) for c in cores]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert [t[7:22] for t in reminders_in_thread(slack, req)] == ["Reminder 1 of 2", "Reminder 2 of 2"]
    for who in (APPROVER, APPROVER2, ADMIN):
        assert len(reminder_dms(slack, who)) == 2, who
    assert audit_actions(db, req.id).count(("bot", "request.reminded", "ok")) == 2
    for c in [first, *cores]:
        c.service.drain()
        c.db.dispose()


# ----------------------------------------------------------------------------------- escalation
ESCALATE = f'[defaults]\nremind_after = "1h"\nmax_reminders = 1\nescalate_after = "2h"\nescalate_to = ["{OTHER}"]\n'


def test_escalation_reaches_escalate_to_who_may_then_decide(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, ESCALATE)
    clock = Clock(service)
    req = request(service, db)
    assert service.decide(req.id, OTHER, approve=True) == "Only approvers can decide access requests."
    clock.advance(2 * HOUR - 1)
    service.run_due()
    assert service.get(req.id).escalated_at is None
    clock.advance(1)
    service.run_due()
    service.run_due()
    req = service.get(req.id)
    assert req.escalated_at == clock.now and req.escalate_at is None
    assert f"Escalated to <@{OTHER}>" in str(card(slack, req)["blocks"])
    assert sum(t.startswith(":arrow_double_up: Escalated to") for t in thread(slack, req)) == 1
    (dm,) = [m for m in slack.messages_in(slack.dm_channel(OTHER)) if "Escalated to you" in m["text"]]
    assert "Approve" in str(dm["blocks"])
    assert ("bot", "request.escalated", "ok") in audit_actions(db, req.id)
    assert service.decide(req.id, OTHER, approve=True) is None
    assert service.get(req.id).state == APPROVED and service.get(req.id).decided_by == OTHER


def test_escalation_to_a_user_group_lets_its_members_decide(service, db, slack, groups, tmp_path):
    slack.usergroups["S0ONCALL"] = [OTHER]
    put_policy(service, tmp_path, '[defaults]\nescalate_after = "30m"\nescalate_to = ["S0ONCALL"]\n')
    clock = Clock(service)
    req = request(service, db)
    clock.advance(1800)
    service.run_due()
    assert "<!subteam^S0ONCALL>" in str(card(slack, service.get(req.id))["blocks"])
    assert service.decide(req.id, OTHER, approve=False) is None
    assert service.get(req.id).state == DENIED


def test_no_escalation_after_a_decision(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, ESCALATE)
    clock = Clock(service)
    req = request(service, db)
    service.decide(req.id, APPROVER, approve=False)
    clock.advance(3 * HOUR)
    service.run_due()
    assert service.get(req.id).escalated_at is None
    assert not [m for m in slack.messages_in(slack.dm_channel(OTHER)) if "Escalated" in m["text"]]


def test_escalated_people_are_reminded_too_and_pending_says_when(service, db, slack, groups, tmp_path):
    put_policy(
        service, tmp_path, f'[defaults]\nremind_after = "3h"\nescalate_after = "1h"\nescalate_to = ["{OTHER}"]\n'
    )
    clock = Clock(service)
    req = request(service, db)
    clock.advance(1800)
    text = str(service.cmd_pending(APPROVER).blocks)
    assert "waited 30 minutes" in text and "reminds in 2 hours 30 minutes" in text
    assert "escalates in 30 minutes" in text and "expires in 23 hours 30 minutes" in text
    clock.advance(1800)
    service.run_due()
    assert "escalated" in str(service.cmd_pending(OTHER).blocks)  # it awaits them now
    clock.advance(2 * HOUR)
    service.run_due()
    assert len(reminder_dms(slack, OTHER)) == 1
    assert service.get(req.id).state == PENDING
    home = str(service.home_view(APPROVER)["blocks"])
    assert "waited 3 hours" in home and "expires in" in home


def test_a_removal_waiting_for_approval_is_reminded_like_a_grant(service, db, sandbox, slack, groups):
    from tests.bot.access.test_removals import _oscar

    _oscar(sandbox, groups, "Viewer", "Data Analyst")
    clock = Clock(service)
    service.handle_command(REQUESTER, "remove <@U0OSCAR|oscar> Data Analyst left the team")
    req = only_request(db)
    assert req.kind == "remove" and req.remind_at == req.created_at + dt.timedelta(hours=4)
    clock.advance(4 * HOUR)
    service.run_due()
    assert len(reminders_in_thread(slack, req)) == 1 and len(reminder_dms(slack, APPROVER)) == 1
