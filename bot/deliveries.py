"""The delivery ledger: every Slack message the bot owes someone, one row each in ``deliveries``.

A row is one message to one recipient about one access request: a DM (``kind="dm"``: the requester's state
DMs, partial approvals, the person a request is for), a notice to an admin (``"relay"``), or an approval card
(``"card"``: the card in the approval channel, or the manager's copy; ``content_hash`` is what the card
should show, and the row goes back to pending when that changes). ``(request_id, kind, recipient, key)`` is
unique, so a message is owed once however many processes try; ``status`` is ``pending``, ``delivered``,
``failed`` (given up) or ``superseded`` (a newer message to the same person replaced it before it went out).

:meth:`DeliveryLedger.run` makes one attempt: it takes the row by compare-and-set (``attempts`` unchanged,
due, pending; ``next_attempt_at`` becomes a lease), sends, and records the outcome. A permanent Slack error
(:data:`bot.slack_errors.PERMANENT_ERRORS`, e.g. ``user_disabled``, ``not_in_channel``, ``message_not_found``) gives up at once;
any other error is tried again after ``base * 2**(n-1)`` seconds (jittered, at most ``cap``, at least Slack's
``Retry-After``), up to :data:`DELIVERY_MAX_ATTEMPTS` attempts. Giving up is audited (``notify.gave_up``); the
caller decides the fallback. The worker picks due rows with :meth:`DeliveryLedger.due` (index
``ix_deliveries_status_next``: it costs what is due, not what exists).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, bindparam, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import prepared
from .audit import AuditLog
from .db import Database
from .models import Delivery
from .slack import SlackError
from .slack_errors import RECIPIENT_ERRORS, is_permanent

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED, SUPERSEDED = "pending", "delivered", "failed", "superseded"
DM, RELAY, CARD, THREAD = "dm", "relay", "card", "thread"  # THREAD: a reply in the card's thread

DELIVERY_BACKOFF_BASE = 10.0  # seconds before the 2nd attempt; doubles each time
DELIVERY_BACKOFF_CAP = 900.0  # at most 15 minutes between attempts
DELIVERY_MAX_ATTEMPTS = 8  # about 45 minutes of trying in all
DELIVERY_LEASE = 120.0  # seconds an attempt holds its row; a crashed sender's row is due again after

# Built once (bot/prepared.py): a row by its key; an attempt taken; an attempt's outcome recorded.
_D = Delivery.__table__
_FIND = select(Delivery).where(
    _D.c.request_id == bindparam("r"), _D.c.kind == bindparam("k"), _D.c.recipient == bindparam("to"),
    _D.c.key == bindparam("ky"),
).execution_options(populate_existing=True)  # fmt: skip
_TAKE = update(_D).where(
    _D.c.id == bindparam("i"), _D.c.status == PENDING, _D.c.attempts == bindparam("n"),
    or_(_D.c.next_attempt_at.is_(None), _D.c.next_attempt_at <= bindparam("now")),
).values(attempts=bindparam("n1"), next_attempt_at=bindparam("lease"), updated_at=bindparam("now"))  # fmt: skip
_PENDING_ROW = (_D.c.id == bindparam("i"), _D.c.status == PENDING)
_MINE = (*_PENDING_ROW, _D.c.attempts == bindparam("n"))  # the row, while it is this attempt's
_CARDS_SHOWN = (_D.c.request_id == bindparam("r"), _D.c.kind == CARD, _D.c.key == "card", _D.c.status == DELIVERED)
#: Seconds after a request's state changed before the worker updates a card its process did not (it died first).
CARD_GRACE = 30.0


def owe_cards(session, request_id: str, now: dt.datetime) -> None:
    """In ``session`` (one that changes the request's state): its cards shown so far are owed an update, due
    after :data:`CARD_GRACE` seconds unless the caller shows them first (new content makes them due at once:
    :meth:`DeliveryLedger.want`), so a card never keeps an earlier state when a process dies in between."""
    new = {"status": PENDING, "next_attempt_at": now + dt.timedelta(seconds=CARD_GRACE)}
    stmt = prepared.once(("deliveries.owe_cards",), lambda: prepared.setting(_D, _CARDS_SHOWN, new))
    session.execute(stmt, {"r": request_id, **prepared.values(new)})


def in_flight():
    """A pending row whose first attempt is under way (taken, no error yet): not superseded (Slack may take it)."""
    return and_(Delivery.attempts > 0, Delivery.last_error.is_(None))


def content_hash(text: str, blocks: list | None) -> str:
    """A short, stable hash of a message's content (fallback text and blocks): 32 hex characters."""
    raw = json.dumps([text, blocks or []], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass
class Attempt:
    """The outcome of :meth:`DeliveryLedger.run`: ``outcome`` is ``delivered``, ``retry`` (transient error,
    due again later), ``gave_up`` (permanent error or attempt limit) or ``skipped`` (not due, not pending, or
    another process took it); ``error`` is Slack's error code; ``result`` what ``send`` returned."""

    outcome: str
    error: str | None = None
    result: object = None
    row: Delivery | None = None
    after: object = None  # what the caller's ``then`` returned

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


class DeliveryLedger:
    """The ``deliveries`` table. Thread- and process-safe (every state change is a compare-and-set).

    ``clock`` returns aware UTC now (the service's injected clock); ``base``/``cap`` in seconds;
    ``jitter`` returns the factor applied to each backoff (default uniform 0.8-1.2)."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Callable[[], dt.datetime],
        *,
        base: float = DELIVERY_BACKOFF_BASE,
        cap: float = DELIVERY_BACKOFF_CAP,
        max_attempts: int = DELIVERY_MAX_ATTEMPTS,
        lease: float = DELIVERY_LEASE,
    ):
        self.db, self.audit, self.clock = db, audit, clock
        self.base, self.cap, self.max_attempts, self.lease = base, cap, max_attempts, lease
        self.jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2)

    # ------------------------------------------------------------------------------- rows
    def want(
        self,
        request_id: str,
        kind: str,
        recipient: str,
        key: str,
        *,
        text: str | None = None,
        blocks: list | None = None,
        state: str | None = None,
        content: str | None = None,
        supersede: bool = False,
        not_before: dt.datetime | None = None,
        session=None,
    ) -> Delivery:
        """The row owed for (``request_id``, ``kind``, ``recipient``, ``key``), created pending if new (in
        ``session``'s transaction when given, so the caller can take it in the same one: :meth:`take`).

        ``text``: a DM's text (sent as is on every attempt), ``blocks`` its Block Kit blocks (buttons), kept as
        JSON; ``state``: the request state a requester DM tells; ``content``: for a card, the hash of what it
        should show now: a delivered or pending row with another hash goes back to pending with a fresh attempt
        count (a failed one stays failed). ``supersede``: older pending rows of the same kind to the same
        recipient are superseded by this one (but one being sent: :func:`in_flight`).
        ``not_before``: a new row's first attempt is not due before then (a notice held back: see
        :data:`bot.access.state_messages.APPROVED_HOLD`).
        Two processes owing the same row at once make one (``INSERT ... ON CONFLICT DO NOTHING``)."""
        now = self.clock()
        with self.db.joining(session) as s:  # one transaction: found, made, or moved to the new content
            row = self._find(s, request_id, kind, recipient, key)
            if row is None:
                if supersede:
                    s.execute(
                        update(Delivery)
                        .where(
                            Delivery.request_id == request_id,
                            Delivery.kind == kind,
                            Delivery.recipient == recipient,
                            Delivery.status == PENDING,
                            not_(in_flight()),
                        )
                        .values(status=SUPERSEDED, updated_at=now)
                        .execution_options(synchronize_session=False)
                    )
                insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
                values = dict(
                    request_id=request_id,
                    kind=kind,
                    recipient=recipient[:64],
                    key=key[:64],
                    state=state,
                    text=text,
                    blocks=json.dumps(blocks) if blocks else None,
                    content_hash=content,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=not_before,
                    created_at=now,
                    updated_at=now,
                )
                s.execute(insert(Delivery).values(**values).on_conflict_do_nothing())
                return self._find(s, request_id, kind, recipient, key)  # ours, or another process's
            if content is not None and row.content_hash != content and row.status in (PENDING, DELIVERED):
                s.execute(
                    update(Delivery)
                    .where(
                        Delivery.id == row.id,
                        Delivery.status == row.status,
                        Delivery.content_hash == row.content_hash,
                    )
                    .values(
                        content_hash=content,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=None,
                        last_error=None,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                row = s.get(Delivery, row.id, populate_existing=True)
            return row

    @staticmethod
    def _find(s, request_id: str, kind: str, recipient: str, key: str) -> Delivery | None:
        return s.scalar(_FIND, {"r": request_id, "k": kind, "to": recipient[:64], "ky": key[:64]})

    def find(self, request_id: str, kind: str, recipient: str, key: str, *, session=None) -> Delivery | None:
        """The row for (``request_id``, ``kind``, ``recipient``, ``key``), or ``None`` (in ``session`` if given)."""
        with self.db.joining(session) as s:
            return self._find(s, request_id, kind, recipient, key)

    def owes(self, request_id: str, kind: str, *, session=None) -> bool:
        """True when a pending row of ``kind`` (e.g. ``card``) is owed for ``request_id`` (in ``session``)."""
        with self.db.joining(session) as s:
            where = (Delivery.request_id == request_id, Delivery.kind == kind, Delivery.status == PENDING)
            return s.scalar(select(Delivery.id).where(*where).limit(1)) is not None

    def reopen(self, row: Delivery | None) -> None:
        """Owe a settled row again from scratch (attempts 0, due now, no content): a card to post afresh."""
        if row is None:
            return
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == row.id)
                .values(status=PENDING, attempts=0, next_attempt_at=None, content_hash=None, updated_at=self.clock())
            )

    def due(self, limit: int = 20) -> list[Delivery]:
        """Pending rows whose next attempt is due, oldest first (index ``ix_deliveries_status_next``)."""
        now = self.clock()
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Delivery)
                    .where(
                        Delivery.status == PENDING,
                        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                    )
                    .order_by(Delivery.next_attempt_at)
                    .limit(limit)
                )
            )

    def unreachable(self, request_id: str, recipient: str, *, session=None) -> str | None:
        """The error of an earlier DM of this request that found ``recipient`` unable to get any DM
        (:data:`RECIPIENT_ERRORS`), or ``None`` (in ``session`` if given)."""
        with self.db.joining(session) as s:
            errors = s.scalars(
                select(Delivery.last_error).where(
                    Delivery.request_id == request_id,
                    Delivery.recipient == recipient,
                    Delivery.status == FAILED,
                    Delivery.kind.in_((DM, RELAY)),
                )
            )
            return next((e for e in errors if e in RECIPIENT_ERRORS), None)

    def supersede(self, request_id: str, key_prefixes: tuple[str, ...], *, keep: str = "", session=None) -> int:
        """Supersede the pending rows of a request whose key starts with one of ``key_prefixes`` (reminders
        not yet sent when the request is decided: none goes out after), but the row keyed ``keep`` and rows being
        sent (:func:`in_flight`). Returns how many (in ``session``)."""
        with self.db.joining(session) as s:
            return s.execute(
                update(Delivery)
                .where(
                    Delivery.request_id == request_id,
                    Delivery.status == PENDING,
                    Delivery.key != keep,
                    not_(in_flight()),
                    or_(*(Delivery.key.startswith(p, autoescape=True) for p in key_prefixes)),
                )
                .values(status=SUPERSEDED, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            ).rowcount

    def settle(self, row: Delivery, status: str, error: str | None = None, *, session=None) -> bool:
        """Mark a pending row ``delivered``/``failed``/``superseded``, unsent (compare-and-set; in ``session``)."""
        new = {"status": status, "last_error": error, "updated_at": self.clock()}
        stmt = prepared.once(("deliveries.settle",), lambda: prepared.setting(_D, _PENDING_ROW, new))
        with self.db.joining(session) as s:
            return bool(s.execute(stmt, {"i": row.id, **prepared.values(new)}).rowcount)

    # ------------------------------------------------------------------------------- attempts
    def take(self, row: Delivery, *, session=None) -> bool:
        """Take a pending, due ``row`` for one attempt (compare-and-set on its ``attempts``; the lease is
        ``next_attempt_at``), in ``session`` if given. True when this caller may send it: then pass
        ``taken=True`` to :meth:`run`. ``row`` keeps the attempt count it was read with, and is told till when
        it is this caller's (``taken_until``: see :meth:`run`)."""
        now = self.clock()
        lease = now + dt.timedelta(seconds=self.lease)
        with self.db.joining(session) as s:
            params = {"i": row.id, "n": row.attempts, "n1": row.attempts + 1, "now": now, "lease": lease}
            if not s.execute(_TAKE, params).rowcount:
                return False
        row.taken_until = lease  # not a column: the lease this caller holds
        return True

    def _still_taken(self, row: Delivery) -> bool:
        """Before sending a row taken earlier (in the transaction that owed it, then other work): True when at
        least half its lease is left, or it is extended now by compare-and-set on its attempt count; False when
        the lease ran out and another process took it (that one sends)."""
        until = getattr(row, "taken_until", None)
        now = self.clock()
        if until is None or now < until - dt.timedelta(seconds=self.lease / 2):
            return True
        new = {"next_attempt_at": now + dt.timedelta(seconds=self.lease)}
        stmt = prepared.once(("deliveries.extend",), lambda: prepared.setting(_D, _MINE, new))
        with self.db.session() as s:
            if not s.execute(stmt, {"i": row.id, "n": row.attempts + 1, **prepared.values(new)}).rowcount:
                return False
        row.taken_until = new["next_attempt_at"]
        return True

    def run(
        self,
        row: Delivery,
        send: Callable[[], object],
        *,
        what: str = "",
        taken: bool = False,
        then: Callable[[object, str], object] | None = None,
        carry: bool = False,
    ) -> Attempt:
        """One attempt at ``row``: take it (compare-and-set, unless the caller did: ``taken``), call ``send``
        (which raises :class:`bot.slack.SlackError` on failure) and record the outcome, audited with ``what``
        (a short description such as ``DM to U123``). Only the process that took the row sends. ``then(session,
        outcome)`` runs in the transaction that records the outcome (``delivered``, ``retry``, ``gave_up``);
        what it returns is :attr:`Attempt.after`. ``carry``: the flow's held audit rows go with that transaction
        (:meth:`bot.audit.AuditLog.carry`; for the flow's last message)."""
        if not (self._still_taken(row) if taken else self.take(row)):
            return Attempt("skipped", row=row)
        attempts = row.attempts + 1
        mine = {"i": row.id, "n": attempts}  # _MINE's parameters
        try:
            result = send()
        except SlackError as e:
            later = self.clock()
            if is_permanent(e.error) or attempts >= self.max_attempts:
                why = "permanent error" if is_permanent(e.error) else f"attempt limit ({self.max_attempts})"
                values = dict(status=FAILED, last_error=e.error[:80], next_attempt_at=None, updated_at=later)
                detail = f"{what or row.kind}: {e.error} after {attempts} attempt(s); {why}"
                after = self._record(row, mine, values, then, "gave_up", ("notify.gave_up", detail), carry)
                log.warning("gave up for request %s: %s", row.request_id, detail)
                return Attempt("gave_up", e.error, row=row, after=after)
            delay = min(self.cap, self.base * 2 ** (attempts - 1)) * self.jitter()
            delay = max(delay, min(getattr(e, "retry_after", None) or 0.0, self.cap))
            values = dict(
                last_error=e.error[:80], next_attempt_at=later + dt.timedelta(seconds=delay), updated_at=later
            )
            detail = f"{what or row.kind}: {e.error}; attempt {attempts} of {self.max_attempts}, next in {delay:.0f}s"
            after = self._record(row, mine, values, then, "retry", ("notify.retry_later", detail), carry)
            return Attempt("retry", e.error, row=row, after=after)
        values = dict(status=DELIVERED, last_error=None, next_attempt_at=None, updated_at=self.clock())
        after = self._record(row, mine, values, then, "delivered", None, carry)
        return Attempt("delivered", result=result, row=row, after=after)

    def _record(
        self, row: Delivery, mine: dict, values: dict, then, outcome: str, audited, carry: bool = False
    ) -> object:
        """Record an attempt's outcome (``values`` where the row is still this attempt's; ``audited``: an
        (action, detail) audit row, or ``None``) with the caller's ``then`` in the same transaction. A ``then``
        that fails is logged and the outcome recorded without it: a message sent is never owed again."""

        def mark(s) -> None:
            if carry:
                self.audit.carry(s)
            s.execute(
                prepared.once(("deliveries.mark", *values), lambda: prepared.setting(_D, _MINE, values)),
                {**mine, **prepared.values(values)},
            )
            if audited:
                action, detail = audited
                self.audit.record(
                    "bot",
                    action,
                    request_id=row.request_id,
                    target=row.recipient,
                    outcome="error",
                    session=s,
                    detail=detail,
                )

        try:
            with self.db.session() as s:
                mark(s)
                return then(s, outcome) if then else None
        except Exception:
            if then is None:
                raise
            log.exception("after delivery %s (%s): the follow-up failed; recording the outcome alone", row.id, outcome)
            with self.db.session() as s:
                mark(s)
            return None
