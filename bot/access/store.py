"""The request and approval queries, and the compare-and-set updates: the only place that writes
``access_requests`` and ``approvals``.

Every state change is an ``UPDATE ... WHERE id = :id AND state = :expected`` (:meth:`RequestStore.update` with
``expect=``); its row count says whether this caller won, so a double click or two processes at once change a
request once. A caller that must write an audit row in the same transaction passes its ``session``.
:meth:`RequestStore.set` is the one unconditional write: the apply's bookkeeping columns (``write_started_at``,
``next_attempt_at``, ...), and the deliberate seam for tests that put a request in a state directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update

from .. import prepared
from ..db import Database
from ..deliveries import CARD, DM, owe_cards
from ..models import (
    APPLIED,
    APPROVED,
    BOT_REQUESTER,
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    INVITE,
    JOIN,
    LEAVE,
    OFFBOARD,
    OPEN_STATES,
    PENDING,
    REMOVE,
    RESET_PASSWORD,
    AccessRequest,
    Approval,
    Delivery,
    utcnow,
)


@dataclass
class DueWork:
    """What one worker pass finds due (request IDs): ``overdue`` pending past their TTL, ``unposted`` cards
    never tried, ``untold`` requesters never told the current state, ``due`` approved requests to apply, as
    (request ID, the email it is for) pairs."""

    overdue: list[str]
    unposted: list[str]
    untold: list[str]
    due: list[tuple[str, str]]


# Built once (bot/prepared.py); _CONDITIONS: RequestStore.update's expect, live_at and expired_at.
_T = AccessRequest.__table__
_ID = _T.c.id == bindparam("i")
_GET = select(AccessRequest).where(_ID).execution_options(populate_existing=True)
_APPROVERS = select(Approval.approver_id).where(Approval.request_id == bindparam("r")).order_by(Approval.id)
_CONDITIONS = (_T.c.state == bindparam("e"), _T.c.expires_at > bindparam("l"), _T.c.expires_at <= bindparam("x"))


class RequestStore:
    """Data access for ``access_requests`` and ``approvals`` on ``db``. Thread-safe."""

    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------------------- reads
    def get(self, request_id: str, *, session=None) -> AccessRequest | None:
        """The request, read fresh (in ``session``'s transaction when given), or ``None``."""
        with self.db.joining(session) as s:
            return s.scalar(_GET, {"i": request_id})

    def approver_ids(self, request_id: str, *, session=None) -> list[str]:
        """The approvers who approved ``request_id``, first first."""
        with self.db.joining(session) as s:
            return list(s.scalars(_APPROVERS, {"r": request_id}))

    def count_open(self, requester_id: str, *, session=None) -> int:
        with self.db.joining(session) as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(AccessRequest)
                    .where(AccessRequest.requester_id == requester_id, AccessRequest.state.in_(OPEN_STATES))
                )
                or 0
            )

    def open_duplicate(self, kind: str, email: str, group_id: str | None) -> AccessRequest | None:
        """An open request for the same person and group (or password reset, or offboarding), of any kind that
        grants it (a join or invite) or, for a removal (leave, remove), of any kind that removes it."""
        kinds = (kind,) if kind in (LEAVE, REMOVE) else (kind, JOIN, INVITE) if group_id else (kind,)
        with self.db.session() as s:
            return s.scalar(
                select(AccessRequest)
                .where(
                    AccessRequest.state.in_(OPEN_STATES),
                    AccessRequest.kind.in_(kinds),
                    func.lower(AccessRequest.target_email) == email.lower(),
                    AccessRequest.group_id == group_id if group_id else AccessRequest.group_id.is_(None),
                )
                .limit(1)
            )

    def by_prefix(self, prefix: str, *, limit: int = 2) -> list[AccessRequest]:
        """Requests whose ID starts with ``prefix`` (the full ID, or the 8 characters shown), at most ``limit``."""
        with self.db.session() as s:
            return list(s.scalars(select(AccessRequest).where(AccessRequest.id.startswith(prefix)).limit(limit)))

    def open_of_person(self, email: str, slack_id: str | None, *, other_than: str, session) -> list[AccessRequest]:
        """What an offboarding of ``email`` closes: the open (pending or approved) requests for them, and the
        pending ones they made for someone else (by ``slack_id``), but ``other_than`` (the offboarding)."""
        mine = func.lower(AccessRequest.target_email) == email.lower()
        if slack_id:
            mine = or_(mine, and_(AccessRequest.requester_id == slack_id, AccessRequest.state == PENDING))
        return list(
            session.scalars(
                select(AccessRequest)
                .where(AccessRequest.state.in_(OPEN_STATES), AccessRequest.id != other_than, mine)
                .order_by(AccessRequest.created_at)
            )
        )

    def open_grants_of(
        self, email: str, group_id: str, *, kinds=(JOIN, INVITE), other_than: str = "", session=None
    ) -> list[AccessRequest]:
        """The open requests of ``kinds`` (grants by default) of ``email`` in ``group_id``, but ``other_than``."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(AccessRequest).where(
                        AccessRequest.id != other_than,
                        AccessRequest.kind.in_(kinds),
                        AccessRequest.state.in_(OPEN_STATES),
                        AccessRequest.group_id == group_id,
                        func.lower(AccessRequest.target_email) == email.lower(),
                    )
                )
            )

    def last_bot_offboarding(self, email: str) -> AccessRequest | None:
        """The newest offboarding the bot itself opened for ``email`` (after a Slack deactivation), or ``None``."""
        with self.db.session() as s:
            return s.scalar(
                select(AccessRequest)
                .where(
                    AccessRequest.kind == OFFBOARD,
                    AccessRequest.requester_id == BOT_REQUESTER,
                    func.lower(AccessRequest.target_email) == email.lower(),
                )
                .order_by(AccessRequest.created_at.desc())
                .limit(1)
            )

    def last_reset_answered(self, email: str, *, before: dt.datetime, other_than: str) -> dt.datetime | None:
        """When Polaris last answered a password-reset PUT of ``email`` (another request's, at or before
        ``before``), or ``None``: a reset's audit event older than that belongs to the earlier reset."""
        with self.db.joining(None) as s:
            return s.scalar(
                select(func.max(AccessRequest.write_answered_at)).where(
                    AccessRequest.kind == RESET_PASSWORD,
                    AccessRequest.id != other_than,
                    func.lower(AccessRequest.target_email) == email.lower(),
                    AccessRequest.write_answered_at <= before,
                )
            )

    def of_requester(self, user_id: str, *, failed_since: dt.datetime) -> list[AccessRequest]:
        """``user_id``'s open requests and those failed since ``failed_since``, newest first (25)."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(AccessRequest)
                    .where(
                        AccessRequest.requester_id == user_id,
                        or_(
                            AccessRequest.state.in_(OPEN_STATES),
                            and_(AccessRequest.state == FAILED, AccessRequest.updated_at >= failed_since),
                        ),
                    )
                    .order_by(AccessRequest.created_at.desc())
                    .limit(25)
                )
            )

    def pending_of_others(self, user_id: str, now: dt.datetime) -> list[AccessRequest]:
        """Pending, unexpired requests not made by ``user_id``, oldest first (200)."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(AccessRequest)
                    .where(
                        AccessRequest.state == PENDING,
                        AccessRequest.requester_id != user_id,
                        AccessRequest.expires_at > now,
                    )
                    .order_by(AccessRequest.created_at)
                    .limit(200)
                )
            )

    def due_work(self, now: dt.datetime, limit: int) -> DueWork:
        """What a worker pass has to do now (at most ``limit`` of each), read in one session."""
        card_owed = exists().where(Delivery.request_id == AccessRequest.id, Delivery.kind == CARD)
        dm_owed = exists().where(
            Delivery.request_id == AccessRequest.id,
            Delivery.kind == DM,
            Delivery.recipient == AccessRequest.requester_id,
            Delivery.state == AccessRequest.state,
        )
        with self.db.session() as s:
            overdue = list(
                s.scalars(
                    select(AccessRequest.id)
                    .where(AccessRequest.state == PENDING, AccessRequest.expires_at <= now)
                    .limit(limit)
                )
            )
            unposted = list(
                s.scalars(
                    select(AccessRequest.id)
                    .where(
                        AccessRequest.state == PENDING,
                        AccessRequest.approval_ts.is_(None),
                        AccessRequest.created_at <= now - dt.timedelta(seconds=30),
                        ~card_owed,
                    )
                    .limit(limit)
                )
            )
            untold = list(
                s.scalars(
                    select(AccessRequest.id)
                    .where(
                        AccessRequest.state.in_((APPROVED, APPLIED, FAILED, DENIED, EXPIRED)),
                        AccessRequest.updated_at.between(now - dt.timedelta(days=1), now - dt.timedelta(seconds=20)),
                        or_(
                            AccessRequest.notified_state.is_(None), AccessRequest.notified_state != AccessRequest.state
                        ),
                        ~dm_owed,
                    )
                    .limit(limit)
                )
            )
            due = list(
                s.execute(  # (id, target_email) rows
                    select(AccessRequest.id, AccessRequest.target_email)
                    .where(
                        AccessRequest.state == APPROVED,
                        or_(AccessRequest.next_attempt_at.is_(None), AccessRequest.next_attempt_at <= now),
                    )
                    .order_by(AccessRequest.decided_at)
                    .limit(limit)
                )
            )
        return DueWork(overdue, unposted, untold, due)

    def due_nudges(self, now: dt.datetime, limit: int) -> tuple[list[str], list[str]]:
        """(escalations, reminders): the pending, unexpired requests whose escalation, and whose next reminder,
        is due (indexes ``ix_access_requests_state_escalate``, ``..._state_remind``), read in one transaction."""
        with self.db.session() as s:
            return self._due(AccessRequest.escalate_at, now, limit, s), self._due(
                AccessRequest.remind_at, now, limit, s
            )

    def _due(self, column, now: dt.datetime, limit: int, session=None) -> list[str]:
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(AccessRequest.id)
                    .where(AccessRequest.state == PENDING, column <= now, AccessRequest.expires_at > now)
                    .order_by(column)
                    .limit(limit)
                )
            )

    # ------------------------------------------------------------------------------- writes
    def take_reminder(
        self, request_id: str, *, expected_at: dt.datetime, sent: int, next_at: dt.datetime | None, now: dt.datetime
    ) -> int:
        """Compare-and-set: reminder ``sent + 1`` of a pending request is this caller's to send (its
        ``remind_at`` and ``reminders_sent`` are still ``expected_at`` and ``sent``); the next one is due at
        ``next_at`` (``None``: no more). Returns 1 when this caller won, else 0 (another process, or decided)."""
        with self.db.session() as s:
            return s.execute(
                update(AccessRequest)
                .where(
                    AccessRequest.id == request_id,
                    AccessRequest.state == PENDING,
                    AccessRequest.remind_at == expected_at,
                    AccessRequest.reminders_sent == sent,
                )
                .values(remind_at=next_at, reminders_sent=sent + 1, updated_at=now)
            ).rowcount

    def stop_reminders(self, request_id: str, *, expected_at: dt.datetime) -> int:
        """No more reminders for this request (the policy allows no more than were sent)."""
        with self.db.session() as s:
            return s.execute(
                update(AccessRequest)
                .where(AccessRequest.id == request_id, AccessRequest.remind_at == expected_at)
                .values(remind_at=None)
            ).rowcount

    def take_escalation(self, request_id: str, *, expected_at: dt.datetime, now: dt.datetime, escalate: bool) -> int:
        """Compare-and-set: the escalation of a pending request due at ``expected_at`` is this caller's
        (``escalate``: it is escalated now; otherwise only cleared, the policy no longer escalates). Returns 1
        when this caller won."""
        values = {"escalate_at": None, **({"escalated_at": now, "updated_at": now} if escalate else {})}
        with self.db.session() as s:
            return s.execute(
                update(AccessRequest)
                .where(
                    AccessRequest.id == request_id,
                    AccessRequest.state == PENDING,
                    AccessRequest.escalate_at == expected_at,
                )
                .values(**values)
            ).rowcount

    def set(self, request_id: str, **values) -> None:
        """Unconditional write of ``values`` on the request (no compare-and-set): the apply's bookkeeping
        columns; and the deliberate seam for tests that put a request in a state (``state=FAILED``)."""
        self.update(request_id, **values)

    def update(
        self,
        request_id: str,
        *,
        session=None,
        expect: str | None = None,
        live_at: dt.datetime | None = None,
        expired_at: dt.datetime | None = None,
        **values,
    ) -> int:
        """Compare-and-set: write ``values`` where the request is (when given) in state ``expect``, not expired at
        ``live_at`` (``expires_at > live_at``), expired at ``expired_at`` (``expires_at <= expired_at``).
        Returns the number of rows changed (0: another caller won, or the request is not as expected)."""
        shape = (expect is not None, live_at is not None, expired_at is not None)
        where = [_ID, *(c for on, c in zip(shape, _CONDITIONS, strict=True) if on)]
        key = ("requests.update", *shape, *prepared.shape(values))
        stmt = prepared.once(key, lambda: prepared.setting(_T, where, values))
        params = {"i": request_id, "e": expect, "l": live_at, "x": expired_at, **prepared.values(values)}
        with self.db.joining(session) as s:
            changed = s.execute(stmt, params).rowcount
            if changed and "state" in values:  # what its cards show changed: owed an update, with the change
                owe_cards(s, request_id, values.get("updated_at") or utcnow())
            return changed

    def close(self, req: AccessRequest, *, by: str, now: dt.datetime, outcome: str, session) -> int:
        """Close an open request (compare-and-set from the state it was read in to ``cancelled``) because something
        else decided it (an offboarding, a removal, I'm done): ``outcome`` says what. Returns the rows changed."""
        return self.update(
            req.id,
            session=session,
            expect=req.state,
            state=CANCELLED,
            decided_by=by,
            decided_at=now,
            updated_at=now,
            open_key=None,
            next_attempt_at=None,
            outcome=outcome,
        )

    def insert(self, req: AccessRequest, *, session) -> None:
        """A new request (``IntegrityError`` when its ``open_key`` is taken: the same one is already open)."""
        session.add(req)

    def record_card_post(self, request_id: str, channel: str, ts: str) -> None:
        """The approval card was posted in ``channel`` at ``ts`` (kept if another post recorded one first)."""
        with self.db.session() as s:
            s.execute(
                update(AccessRequest)
                .where(AccessRequest.id == request_id, AccessRequest.approval_ts.is_(None))
                .values(approval_channel=channel, approval_ts=ts, post_attempts=AccessRequest.post_attempts + 1)
            )

    def count_post_attempt(self, request_id: str) -> None:
        self.set(request_id, post_attempts=AccessRequest.post_attempts + 1)

    def has_approved(self, request_id: str, approver_id: str, *, session) -> bool:
        return (
            session.scalar(
                select(Approval.id).where(Approval.request_id == request_id, Approval.approver_id == approver_id)
            )
            is not None
        )

    def add_approval(self, request_id: str, approver_id: str, now: dt.datetime, *, session) -> int:
        """Record an approval; returns how many the request has now."""
        session.add(Approval(request_id=request_id, approver_id=approver_id, created_at=now))
        session.flush()
        return session.scalar(select(func.count()).select_from(Approval).where(Approval.request_id == request_id))

    def revoke_approval(self, request_id: str, approver_id: str, *, session) -> None:
        session.execute(delete(Approval).where(Approval.request_id == request_id, Approval.approver_id == approver_id))
