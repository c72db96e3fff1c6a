"""Helpers shared by the tests of bot/access (and tests/bot/test_deliveries.py): the one request, audit rows, the
card, DMs, clock moves, a process that dies mid-call (through the PolarisClient.transport seam)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.models import AccessRequest, AuditEvent
from tests.conftest import CHANNEL


def only_request(db) -> AccessRequest:
    with db.session() as s:
        rows = list(s.scalars(select(AccessRequest)))
    assert len(rows) == 1, rows
    return rows[0]


def audit_actions(db, request_id=None) -> list[tuple[str, str, str]]:
    with db.session() as s:
        q = select(AuditEvent).order_by(AuditEvent.id)
        if request_id:
            q = q.where(AuditEvent.request_id == request_id)
        return [(r.actor, r.action, r.outcome) for r in s.scalars(q)]


def card(slack, req: AccessRequest) -> dict:
    msg = slack.find_message(CHANNEL, req.approval_ts)
    assert msg is not None
    return msg


def buttons(message: dict) -> list[str]:
    return [e["text"]["text"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def dms(slack, user_id: str) -> list[str]:
    return [m["text"] for m in slack.messages_in(slack.dm_channel(user_id))]


def sandbox_key():
    from standins.polaris_sandbox import SANDBOX_API_KEY

    return SANDBOX_API_KEY


def only_request_count(db) -> int:
    with db.session() as s:
        return len(list(s.scalars(select(AccessRequest))))


# ------------------------------------------------------------------ issue 8, finding 11: groups made outside
def _finance_readers(sandbox) -> str:
    return sandbox.create_group("Finance Readers", [{"name": "ViewTables", "resources": ["projects/*"]}])["id"]


def _not_org_admin(sandbox, groups, email="erin@example.com"):
    user = sandbox.find_user(email)
    sandbox.handle(
        "PUT",
        f"/v1/users/{user['id']}",
        {},
        {"Authorization": f"Basic {sandbox_key()}"},
        b'{"username": "%s", "groups": [{"id": "%s"}]}' % (email.encode(), groups["Viewer"].encode()),
    )


# --- findings 3 and 7: a write whose answer was lost
class _Crash(BaseException):
    """The process dies here (not an Exception: nothing in the bot catches it)."""


def _later(service, seconds):
    now = service.clock() + dt.timedelta(seconds=seconds)
    service.clock = lambda: now


def _puts(sandbox):
    return [c for c in sandbox.calls if c.method == "PUT"]


def _crash_after_put(service):
    real = service.polaris.transport

    def once(method, path, params, body, ok):
        response = real(method, path, params, body, ok)
        if method == "PUT":
            raise _Crash()  # the PUT landed; the process dies before it hears the answer
        return response

    service.polaris.transport = once
    return real


# ------------------------------------------------------------------ issue 10: time-bound access
def leases_of(db) -> list:
    """Every lease, oldest first."""
    from bot.models import Lease

    with db.session() as s:
        return list(s.scalars(select(Lease).order_by(Lease.created_at)))


def requests_of(db) -> list[AccessRequest]:
    with db.session() as s:
        return list(s.scalars(select(AccessRequest).order_by(AccessRequest.created_at)))


def newest(db, before: set[str]) -> AccessRequest:
    """The one request made since ``before`` (IDs): under a frozen clock ``created_at`` cannot order them."""
    (made,) = [r for r in requests_of(db) if r.id not in before]
    return made


def grant(service, text: str, actor: str | None = None, approver: str | None = None) -> AccessRequest:
    """``/polaris <text>`` by ``actor`` (alice), approved by ``approver`` (bob), applied by one worker pass."""
    from tests.conftest import APPROVER, REQUESTER

    before = {r.id for r in requests_of(service.db)}
    reply = service.handle_command(actor or REQUESTER, text)
    made = newest(service.db, before)
    assert made.state == "pending", reply.text
    assert service.decide(made.id, approver or APPROVER, approve=True) is None
    service.run_due()
    return service.get(made.id)


class Died(BaseException):
    """The process stops here (not an Exception: nothing on the way catches it)."""


def die_before_the_card(service) -> None:
    """The next card sync raises :class:`Died`: the process dies between a state change's commit and its first
    Slack call (then the real ``refresh_card`` is back)."""
    real = service.notifications.refresh_card

    def die(*a, **kw):
        service.notifications.refresh_card = real
        raise Died()

    service.notifications.refresh_card = die
