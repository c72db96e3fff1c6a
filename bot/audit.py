"""The audit trail: one append-only row in ``audit_log`` per command, request, decision, refused click,
Polaris call and notification.

Rows carry an allow-list of fields (see :class:`bot.models.AuditEvent`); free text goes through
:func:`bot.redact.redact` and is capped, so no header, token or key can land in the table.
:func:`audit_context` tells the Polaris call hook which actor and request a call belongs to.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Iterator

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .audit_chain import Sealer, append, attach
from .db import Database
from .models import AuditEvent, utcnow
from .redact import redact

log = logging.getLogger(__name__)
DETAIL_MAX = 500
_context: contextvars.ContextVar[tuple[str, str | None]] = contextvars.ContextVar(
    "audit_context", default=("bot", None)
)
_batch: contextvars.ContextVar[list | None] = contextvars.ContextVar("audit_batch", default=None)


@contextlib.contextmanager
def audit_context(actor: str, request_id: str | None = None) -> Iterator[None]:
    """Within the block, Polaris calls are audited as made for ``actor`` and ``request_id``."""
    token = _context.set((actor, request_id))
    try:
        yield
    finally:
        _context.reset(token)


def current_request_id() -> str | None:
    """The access request the current :func:`audit_context` is about, or ``None`` (log lines carry it)."""
    return _context.get()[1]


def _clean(text: str | None, limit: int = DETAIL_MAX) -> str | None:
    if text is None:
        return None
    text = redact(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_FROM_BATCH = "audit_rows_from_batch"


def _go_with(session: Session, batch: list, sealer) -> None:
    """Queue the rows held in ``batch`` on ``session`` (sealed and inserted when it commits, before the rows the
    caller adds). They stay in the batch until that commit succeeds: a rollback leaves them to be written when
    the batch ends, so none is lost (and no new connection is opened while the session may hold SQLite's write
    lock)."""
    queued = session.info.get(_FROM_BATCH, (batch, []))[1]
    moved = [r for r in batch if not any(r is q for q in queued)]
    for r in moved:
        attach(session, sealer, r)
    session.info[_FROM_BATCH] = (batch, queued + moved)


@event.listens_for(Session, "after_commit")
def _written_with_session(session: Session) -> None:
    batch, rows = session.info.pop(_FROM_BATCH, (None, []))
    if batch is not None:
        batch[:] = [r for r in batch if not any(r is w for w in rows)]


@event.listens_for(Session, "after_rollback")
def _left_in_batch(session: Session) -> None:
    session.info.pop(_FROM_BATCH, None)  # still in the batch: written when it ends


class AuditLog:
    """Writes audit rows to ``db``. Writing never raises into the caller's flow except when a session is
    passed (then the row is part of that transaction and commits or rolls back with it).

    Each row is sealed into the audit chain when its transaction commits (:mod:`bot.audit_chain`): HMAC-SHA256
    with ``key`` (``AUDIT_KEY``), plain SHA-256 without one."""

    def __init__(self, db: Database, *, key: str | None = None):
        self.db = db
        self.sealer = Sealer(key)

    def record(
        self,
        actor: str,
        action: str,
        *,
        request_id: str | None = None,
        target: str | None = None,
        outcome: str = "ok",
        detail: str | None = None,
        session: Session | None = None,
        polaris_method: str | None = None,
        polaris_path: str | None = None,
        polaris_status: int | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Append one row. ``actor`` is a Slack user ID or ``bot``; ``action`` a dotted verb such as
        ``decision.approve``; ``detail`` a short plain text (redacted, capped at 500 characters)."""
        row = AuditEvent(
            at=utcnow(),
            actor=(actor or "bot")[:32],
            action=action[:40],
            request_id=request_id,
            target=_clean(target, 320),
            outcome=outcome[:20],
            detail=_clean(detail),
            polaris_method=polaris_method,
            polaris_path=_clean(polaris_path, 300),
            polaris_status=polaris_status,
            duration_ms=None if duration_ms is None else round(duration_ms, 2),
        )
        batch = _batch.get()
        if session is not None:
            self.carry(session)  # the rows held before this one go first: the chain keeps the events' order
            attach(session, self.sealer, row)  # sealed and inserted when the caller's transaction commits
            return
        if batch is not None:
            batch.append(row)  # written with the others when the batch() block ends
            return
        self._write([row])

    def carry(self, session: Session) -> None:
        """The rows held in the current :meth:`batch` (none outside one) go with ``session``: sealed and inserted
        when it commits, before the rows it adds itself, and so not written in a transaction of their own when
        the batch ends. For the last transaction of a flow that writes anyway (issue 13: one transaction
        fewer per flow, the chain's lock taken as often). A rollback leaves them in the batch."""
        batch = _batch.get()
        if batch:
            _go_with(session, batch, self.sealer)

    def _write(self, rows: list[AuditEvent]) -> None:
        """Seal and insert ``rows`` in one transaction of their own (Core, no ORM session); logs, never raises."""
        try:
            with self.db.engine.begin() as conn:
                append(conn, self.sealer, rows)
        except Exception:
            what = ", ".join(sorted({r.action for r in rows}))
            log.exception("could not write audit row %s for %s (%d rows)", what, rows[0].request_id, len(rows))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Within the block (one flow on one thread: a click, a command, one worker step), rows recorded without
        a session (Polaris calls, Slack notifications) are held and written together, in one transaction, when
        the block ends, however it ends; rows with a session still go with that session. Nested blocks write
        with the outermost. A process that dies inside the block loses the held rows (as it would lose a row
        whose call it had not yet audited)."""
        if _batch.get() is not None:
            yield
            return
        rows: list[AuditEvent] = []
        token = _batch.set(rows)
        try:
            yield
        finally:
            _batch.reset(token)
            if rows:
                self._write(rows)

    def polaris_hook(
        self, method: str, path: str, status: int | None, duration_ms: float, error_code: str | None
    ) -> None:
        """:class:`bot.polaris.PolarisClient` ``on_call`` hook: one ``polaris.call`` row per HTTP attempt."""
        actor, request_id = _context.get()
        ok = status is not None and 200 <= status < 300
        self.record(
            actor,
            "polaris.call",
            request_id=request_id,
            outcome="ok" if ok else "error",
            detail=error_code,
            polaris_method=method,
            polaris_path=path,
            polaris_status=status,
            duration_ms=duration_ms,
        )

    def for_request(self, request_id: str) -> list[AuditEvent]:
        """Every row about one access request, oldest first."""
        with self.db.session() as s:
            return list(
                s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.id))
            )

    def for_actor(self, actor: str, limit: int = 50) -> list[AuditEvent]:
        """The newest ``limit`` rows by one actor, newest first (uses index ``ix_audit_log_actor_at``)."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(AuditEvent).where(AuditEvent.actor == actor).order_by(AuditEvent.at.desc()).limit(limit)
                )
            )
