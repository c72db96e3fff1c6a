"""One worker pass (bot/access/schedule.py).

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.models import APPLIED, APPROVED, EXPIRED, AccessRequest
from tests.bot.access.helpers import only_request
from tests.conftest import APPROVER, REQUESTER


def test_worker_expires_overdue_requests(service, db, sandbox, slack, groups):
    service.handle_command(REQUESTER, "request Viewer")
    req = only_request(db)
    later = service.clock() + dt.timedelta(seconds=service.settings.request_ttl + 1)
    service.clock = lambda: later
    service.run_due()
    assert service.get(req.id).state == EXPIRED


def test_a_failing_step_does_not_stop_the_pass(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.handle_command(REQUESTER, 'request "Data Analyst" queries')
    with db.session() as s:
        ids = [r.id for r in s.scalars(select(AccessRequest).order_by(AccessRequest.created_at))]
    for rid in ids:
        service.decide(rid, APPROVER, approve=True)
    real = service.execution.apply
    service.execution.apply = lambda rid, **kw: (
        (_ for _ in ()).throw(RuntimeError("boom")) if rid == ids[0] else real(rid, **kw)
    )
    try:
        assert service.run_due() == 1  # the first apply crashed, the second still ran
    finally:
        service.execution.apply = real
    assert service.get(ids[1]).state == APPLIED and service.get(ids[0]).state == APPROVED
