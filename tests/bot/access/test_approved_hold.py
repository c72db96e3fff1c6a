"""Issue 13: the "approved, applying" DM and thread reply are held back (APPROVED_HOLD), so an apply that follows
at once sends one message (its outcome, naming the approvers and their comment) instead of two; an apply that
does not follow in time still gets the approval told."""

from __future__ import annotations

from sqlalchemy import select

from bot.access.notifications import APPROVED_HOLD
from bot.models import APPLIED, APPROVED, DENIED, Delivery
from standins.polaris_sandbox import Fault
from tests.bot.access.helpers import card, dms, only_request
from tests.conftest import APPROVER, CHANNEL, REQUESTER, Clock


def thread(slack, req) -> list[str]:
    return [m["text"] for m in slack.thread_replies(CHANNEL, req.approval_ts)]


def statuses(db, request_id: str) -> dict[tuple[str, str], str]:
    with db.session() as s:
        return {(d.kind, d.key): d.status for d in s.scalars(select(Delivery).where(Delivery.request_id == request_id))}


def test_an_apply_that_follows_sends_one_dm_and_one_reply_naming_the_approver(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    assert service.decide(req.id, APPROVER, approve=True, note="fine for Q3") is None
    req = service.get(req.id)
    assert req.state == APPROVED
    assert len(dms(slack, REQUESTER)) == before and thread(slack, req) == []  # held, not sent
    assert "Approved, applying" in str(card(slack, req)["blocks"])  # the card is not held: the approver sees it
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 1 and told[0].startswith(":white_check_mark: Done")
    assert f"Approved by <@{APPROVER}>. (request `{req.id[:8]}`) Comment: fine for Q3" in told[0]
    replies = thread(slack, req)
    assert len(replies) == 1
    assert replies[0].startswith(
        f":white_check_mark: Approved by <@{APPROVER}> — “fine for Q3”, and applied in Polaris."
    )
    rows = statuses(db, req.id)
    assert rows[("dm", "approved")] == rows[("thread", "state:approved")] == "superseded"
    assert rows[("dm", "applied")] == rows[("thread", "state:applied")] == "delivered"


def test_an_apply_that_does_not_follow_still_tells_the_approval_after_the_hold(service, db, sandbox, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=True)
    sandbox.add_fault(Fault(status=503, times=None))  # Polaris down: the apply backs off
    service.run_due()
    assert service.get(req.id).state == APPROVED and len(dms(slack, REQUESTER)) == before
    clock.advance(APPROVED_HOLD + 1)
    service.run_due()  # the apply is due again in this pass: the held approval waits for it (it fails again)
    assert len(dms(slack, REQUESTER)) == before
    service.run_due()  # the next pass, with the apply backing off, tells the approval
    req = service.get(req.id)
    assert req.state == APPROVED
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 1 and f"was approved by <@{APPROVER}>; applying it in Polaris now" in told[0]
    assert thread(slack, req) == [f":white_check_mark: Approved by <@{APPROVER}>. Applying it in Polaris."]
    sandbox.clear_faults()
    clock.advance(600)
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    done = dms(slack, REQUESTER)[before + 1 :]
    assert len(done) == 1 and done[0].startswith(":white_check_mark: Done") and "Approved by" not in done[0]
    assert len(thread(slack, req)) == 2 and "Approved by" not in thread(slack, req)[1]


def test_a_denial_is_told_at_once(service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=False, note="not this quarter")
    req = service.get(req.id)
    assert req.state == DENIED
    assert len(dms(slack, REQUESTER)) == before + 1 and "was denied" in dms(slack, REQUESTER)[-1]
    assert len(thread(slack, req)) == 1


def test_an_apply_that_fails_at_once_names_the_approver_in_its_failure(service, db, sandbox, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=400, times=None))  # refused for good
    service.decide(req.id, APPROVER, approve=True, note="fine")
    service.run_due()
    req = service.get(req.id)
    assert req.state == "failed"
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 1 and f"was approved by <@{APPROVER}> but Polaris refused or failed" in told[0]
    assert told[0].endswith("Comment: fine")
    reply = thread(slack, req)
    assert len(reply) == 1 and reply[0].startswith(f":x: Approved by <@{APPROVER}> — “fine”, but Polaris refused")


def test_a_worker_that_comes_late_sends_the_outcome_only(service, db, slack, groups):
    # New-user trial: serve with SERVE_WORKER=false, the worker started after the hold: the held "approved" DM
    # and "Done" arrived together (and two thread replies). The pass that applies the request tells only its
    # outcome, naming the approver.
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=True)
    clock.advance(APPROVED_HOLD + 30)  # no worker ran meanwhile
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 1 and told[0].startswith(":white_check_mark: Done"), told
    assert f"Approved by <@{APPROVER}>" in told[0], told
    assert len(thread(slack, req)) == 1, thread(slack, req)
