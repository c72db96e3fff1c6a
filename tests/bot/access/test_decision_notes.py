"""A decision's reason or comment and a shorter time (bot/access/decisions.py, verdicts.py): a deny reason the
policy requires is enforced; the reason reaches the card, the requester, the thread and the audit; a shorter
duration is applied and the lease ends on time; never longer than asked or than the group's maximum."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.models import APPLIED, DENIED, LEASE_ACTIVE, LEASE_ENDED, PENDING, AuditEvent, Lease
from tests.bot.access.helpers import audit_actions, card, dms, only_request
from tests.conftest import APPROVER, CHANNEL, REQUESTER, Clock


def put_policy(service, tmp_path, text: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(text)
    service.policy = load_policy(str(path))


def details(db, request_id, action) -> list[str | None]:
    with db.session() as s:
        q = select(AuditEvent.detail).where(AuditEvent.request_id == request_id, AuditEvent.action == action)
        return list(s.scalars(q))


def thread(slack, req) -> list[str]:
    return [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts)]


def test_a_deny_reason_the_policy_requires_is_enforced(service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, "[defaults]\ndeny_reason_required = true\n")
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    message = service.decide(req.id, APPROVER, approve=False)
    assert message == "A reason is required to deny this request: say why in the Deny form."
    message = service.decide(req.id, APPROVER, approve=False, note="   ")
    assert message.startswith("A reason is required")
    assert service.get(req.id).state == PENDING
    assert audit_actions(db, req.id).count((APPROVER, "decision.refused", "refused")) == 2


def test_the_deny_reason_reaches_the_card_the_requester_the_thread_and_the_audit(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    reason = "Use the <!channel> shared dashboards & ask again next quarter"
    assert service.decide(req.id, APPROVER, approve=False, note=reason) is None
    req = service.get(req.id)
    assert req.state == DENIED and req.decision_note == reason
    shown = "Use the &lt;!channel&gt; shared dashboards &amp; ask again next quarter"
    assert f"*Reason for denial:* {shown}" in str(card(slack, req)["blocks"])
    assert any("was denied by" in t and f"Reason: {shown}" in t for t in dms(slack, REQUESTER))
    assert any(t.startswith(":no_entry_sign: Denied by") and shown in t for t in thread(slack, req))
    assert details(db, req.id, "decision.deny") == [reason]
    assert len(slack.messages_in(CHANNEL)) == 1


def test_a_reason_over_500_characters_is_refused_not_cut(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    message = service.decide(req.id, APPROVER, approve=False, note="x" * 501)
    assert "501 characters" in message and "limit is 500" in message
    assert service.get(req.id).state == PENDING
    assert service.decide(req.id, APPROVER, approve=False, note="x" * 500) is None
    assert service.get(req.id).decision_note == "x" * 500


def test_an_approval_carries_a_comment(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True, note="OK for the Q3 review") is None
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    assert "*Approver's comment:* OK for the Q3 review" in str(card(slack, req)["blocks"])
    assert any("Comment: OK for the Q3 review" in t for t in dms(slack, REQUESTER))
    assert details(db, req.id, "decision.approve") == ["comment: OK for the Q3 review"]
    replies = thread(slack, req)
    # Applied within the hold (issue 13): one reply, the outcome's, naming the approver and the comment.
    assert replies[0].startswith(
        ":white_check_mark: Approved by <@U0BOB> — “OK for the Q3 review”, and applied in Polaris."
    )
    assert len(replies) == 1


def test_a_shorter_duration_is_applied_and_the_lease_ends_on_time(service, db, sandbox, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer for 4h dashboards")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True, duration=3600) is None
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED and (req.duration_seconds, req.asked_duration_seconds) == (3600, 4 * 3600)
    with db.session() as s:
        (lease,) = s.scalars(select(Lease))
    assert lease.state == LEASE_ACTIVE and lease.ends_at == req.applied_at + dt.timedelta(hours=1)
    assert "Granted for 1 hour (asked 4 hours)" in str(card(slack, req)["blocks"])
    assert any("granted 1 hour of the 4 hours you asked for" in t for t in dms(slack, REQUESTER))
    assert details(db, req.id, "decision.approve") == ["granted 1 hour of 4 hours asked"]
    assert any("granted for 1 hour (asked 4 hours)" in t for t in thread(slack, req))
    clock.advance(3599)
    service.run_due()
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    clock.advance(2)
    service.run_due()
    with db.session() as s:
        assert s.scalars(select(Lease)).one().state == LEASE_ENDED
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]


def test_never_longer_than_asked_nor_than_the_maximum_and_nothing_to_shorten_for_good(service, db, groups, tmp_path):
    service.handle_command(REQUESTER, "request Viewer for 2h dashboards")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True, duration=3 * 3600).startswith("You can grant at most")
    assert service.decide(req.id, APPROVER, approve=True, duration=30).startswith("Time-bound access lasts at least")
    put_policy(service, tmp_path, '[groups.Viewer]\nmax_duration = "1h"\n')  # the maximum was lowered since
    assert service.decide(req.id, APPROVER, approve=True, duration=5400) == "This group's access lasts at most 1 hour."
    assert service.get(req.id).state == PENDING and service.get(req.id).duration_seconds == 7200
    assert service.decide(req.id, APPROVER, approve=True, duration=3600) is None
    assert (service.get(req.id).duration_seconds, service.get(req.id).asked_duration_seconds) == (3600, 7200)


def test_granting_what_was_asked_shortens_nothing(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer for 2h dashboards")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True, duration=7200) is None
    req = service.get(req.id)
    assert (req.duration_seconds, req.asked_duration_seconds) == (7200, None)
    assert details(db, req.id, "decision.approve") == [None]


def test_a_request_for_good_has_no_time_to_shorten(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=True, duration=3600).startswith("This request is for good")
    assert service.get(req.id).state == PENDING
