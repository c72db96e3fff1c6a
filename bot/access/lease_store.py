"""The queries and compare-and-set updates of ``leases`` (time-bound memberships): the only place that writes
that table, as :mod:`bot.access.store` is for requests.

A lease goes ``pending`` (written, committed, just before its membership is added in Polaris) -> ``active``
(in the same transaction that marks its grant applied) -> ``ended`` (once the membership is removed, or kept
on purpose). ``active_key`` is unique while pending or active, so there is at most one lease per person and
group. Every state change is ``UPDATE ... WHERE id = :id AND state = :expected``; its row count says whether
this caller won. A caller that writes an audit row in the same transaction passes its ``session``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, or_, select, update

from ..db import Database
from ..models import GRANTS, LEASE_ACTIVE, LEASE_ENDED, LEASE_PENDING, AccessRequest, Lease

LIVE = (LEASE_PENDING, LEASE_ACTIVE)
#: How long before its end a lease's person is offered Extend and I'm done: a tenth of the duration, at most this.
WARN_AT_MOST = dt.timedelta(hours=1)


def warn_time(ends_at: dt.datetime, duration_seconds: int) -> dt.datetime:
    """When the person holding a lease of ``duration_seconds`` ending at ``ends_at`` is warned: a tenth of the
    duration before the end, at most :data:`WARN_AT_MOST`."""
    return ends_at - min(dt.timedelta(seconds=duration_seconds / 10), WARN_AT_MOST)


class LeaseStore:
    """Data access for ``leases`` on ``db``. Thread-safe: every call opens its own session unless given one."""

    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------------------- reads
    def get(self, lease_id: str, *, session=None) -> Lease | None:
        with self.db.joining(session) as s:
            return s.get(Lease, lease_id)

    def live_for(self, email: str, group_id: str, *, session=None) -> Lease | None:
        """The pending or active lease of ``email`` in ``group_id``, or ``None``."""
        with self.db.joining(session) as s:
            return s.scalar(select(Lease).where(Lease.active_key == Lease.make_active_key(email, group_id)))

    def of_request(self, request_id: str, *, session=None) -> Lease | None:
        """The lease a grant made or last extended (the newest), or ``None``."""
        with self.db.joining(session) as s:
            return s.scalar(
                select(Lease)
                .where(or_(Lease.request_id == request_id, Lease.extended_by == request_id))
                .order_by(Lease.created_at.desc())
                .limit(1)
            )

    def for_grant(self, req: AccessRequest, *, session=None) -> Lease | None:
        """The lease an applied grant made or extended (its card names the end): by the grant's ID, else the
        lease of that person and group that was live when it was applied (a grant in the middle of a chain of
        extensions)."""
        lease = self.of_request(req.id, session=session)
        if lease is not None or req.applied_at is None or not req.group_id:
            return lease
        with self.db.joining(session) as s:
            return s.scalar(
                select(Lease)
                .where(
                    func.lower(Lease.email) == req.target_email.lower(),
                    Lease.group_id == req.group_id,
                    Lease.created_at <= req.applied_at,
                    or_(Lease.ended_at.is_(None), Lease.ended_at >= req.applied_at),
                    Lease.started_at.is_not(None),
                )
                .order_by(Lease.created_at.desc())
                .limit(1)
            )

    def active_of(self, email: str, *, slack_id: str | None = None, limit: int = 50) -> list[Lease]:
        """The active leases of a person (by email, or their Slack ID), soonest end first."""
        who = func.lower(Lease.email) == email.lower()
        if slack_id:
            who = or_(who, Lease.slack_id == slack_id)
        with self.db.session() as s:
            return list(
                s.scalars(select(Lease).where(Lease.state == LEASE_ACTIVE, who).order_by(Lease.ends_at).limit(limit))
            )

    def due_ends(self, now: dt.datetime, limit: int, *, session=None) -> list[str]:
        """Active leases whose end has come and whose removal is not backing off (index ``ix_leases_state_ends``:
        costs what is due, not what exists)."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(Lease.id)
                    .where(
                        Lease.state == LEASE_ACTIVE,
                        Lease.ends_at <= now,
                        or_(Lease.next_attempt_at.is_(None), Lease.next_attempt_at <= now),
                    )
                    .order_by(Lease.ends_at)
                    .limit(limit)
                )
            )

    def due_warnings(self, now: dt.datetime, limit: int, *, session=None) -> list[str]:
        """Active leases whose warning time has come and whose person was not warned yet."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(Lease.id)
                    .where(
                        Lease.state == LEASE_ACTIVE,
                        Lease.warn_at <= now,
                        Lease.warned_at.is_(None),
                        Lease.ends_at > now,
                    )
                    .order_by(Lease.warn_at)
                    .limit(limit)
                )
            )

    def stale_pending(self, now: dt.datetime, limit: int, *, session=None) -> list[str]:
        """Pending leases whose grant is no longer being applied (failed, or gone): to be closed."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(Lease.id)
                    .join(AccessRequest, AccessRequest.id == Lease.request_id)
                    .where(Lease.state == LEASE_PENDING, AccessRequest.state.notin_(("approved",)))
                    .limit(limit)
                )
            )

    def count_active(self, now: dt.datetime) -> tuple[int, int]:
        """(active leases, of which overdue: ended by time and not removed yet)."""
        with self.db.session() as s:
            active = s.scalar(select(func.count()).select_from(Lease).where(Lease.state == LEASE_ACTIVE)) or 0
            overdue = (
                s.scalar(
                    select(func.count())
                    .select_from(Lease)
                    .where(and_(Lease.state == LEASE_ACTIVE, Lease.ends_at <= now))
                )
                or 0
            )
        return active, overdue

    def grants_of(self, lease: Lease) -> list[str]:
        """The grants a lease carried: the one that made it and every grant of that person and group applied
        while it was live (each extended it, and its card names the end)."""
        with self.db.session() as s:
            ids = list(
                s.scalars(
                    select(AccessRequest.id).where(
                        AccessRequest.kind.in_(GRANTS),
                        AccessRequest.state == "applied",
                        AccessRequest.group_id == lease.group_id,
                        func.lower(AccessRequest.target_email) == lease.email.lower(),
                        AccessRequest.applied_at >= lease.created_at,
                        AccessRequest.applied_at <= (lease.ended_at or lease.updated_at),
                    )
                )
            )
        return list(dict.fromkeys([lease.request_id, *ids]))

    # ------------------------------------------------------------------------------- writes
    def prepare(self, req: AccessRequest, now: dt.datetime, *, session=None) -> Lease:
        """A pending lease for the grant ``req`` (time-bound), written before its membership is added, so a
        resumed apply knows the membership it finds is its own. Raises ``IntegrityError`` when the person
        already has a live lease in that group (extend it instead)."""
        lease = Lease(
            request_id=req.id,
            email=req.target_email.lower(),
            slack_id=req.target_slack_id,
            polaris_user_id=req.polaris_user_id,
            group_id=req.group_id,
            group_name=req.group_name,
            state=LEASE_PENDING,
            duration_seconds=req.duration_seconds,
            active_key=Lease.make_active_key(req.target_email, req.group_id),
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        with self.db.joining(session) as s:
            s.add(lease)
            s.flush()
            s.expunge(lease)
        return lease

    def activate(self, lease_id: str, *, started_at: dt.datetime, polaris_user_id: str | None, session) -> int:
        """Pending -> active: the membership is applied; the time counts from ``started_at``."""
        lease = session.get(Lease, lease_id)
        if lease is None:
            return 0
        ends = started_at + dt.timedelta(seconds=lease.duration_seconds)
        return session.execute(
            update(Lease)
            .where(Lease.id == lease_id, Lease.state == LEASE_PENDING)
            .values(
                state=LEASE_ACTIVE,
                started_at=started_at,
                ends_at=ends,
                warn_at=warn_time(ends, lease.duration_seconds),
                polaris_user_id=polaris_user_id or lease.polaris_user_id,
                updated_at=started_at,
            )
        ).rowcount

    def adopt(self, lease_id: str, *, request_id: str, duration_seconds: int, session) -> int:
        """A pending lease left by a grant that failed becomes the pending lease of grant ``request_id``."""
        return session.execute(
            update(Lease)
            .where(Lease.id == lease_id, Lease.state == LEASE_PENDING)
            .values(request_id=request_id, duration_seconds=duration_seconds)
        ).rowcount

    def extend(self, lease_id: str, *, ends_at: dt.datetime, duration_seconds: int, by: str, now, session) -> int:
        """An active lease now ends at ``ends_at`` (a later grant ``by``: the later end wins); its warning is
        due again before the new end."""
        return session.execute(
            update(Lease)
            .where(Lease.id == lease_id, Lease.state == LEASE_ACTIVE)
            .values(
                ends_at=ends_at,
                warn_at=warn_time(ends_at, duration_seconds),
                warned_at=None,
                extended_by=by,
                end_reason=None,  # a later grant wins over an "I'm done" that Polaris has not taken yet
                ended_by=None,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                updated_at=now,
            )
        ).rowcount

    def end(self, lease_id: str, *, reason: str, by: str, now: dt.datetime, session=None, expect=LIVE, **values) -> int:
        """A live lease is over (``reason``, ``by``): its key is freed. Returns the rows changed (0: not live)."""
        with self.db.joining(session) as s:
            return s.execute(
                update(Lease)
                .where(Lease.id == lease_id, Lease.state.in_(expect))
                .values(
                    state=LEASE_ENDED, active_key=None, ended_at=now, end_reason=reason, ended_by=by, updated_at=now
                )
                .values(**values)
            ).rowcount

    def end_live(self, email: str, group_id: str | None, *, reason: str, by: str, now, session) -> list[Lease]:
        """End the live leases of ``email`` (in ``group_id``, or in every group when ``None``) because the
        membership itself is being removed (leave, remove, offboard). Returns the leases ended."""
        where = [func.lower(Lease.email) == email.lower(), Lease.state.in_(LIVE)]
        if group_id is not None:
            where.append(Lease.group_id == group_id)
        leases = list(session.scalars(select(Lease).where(*where)))
        ended = [  # each end's announcement (the grant's card) is owed with it, like an expiry's
            lease
            for lease in leases
            if self.end(lease.id, reason=reason, by=by, now=now, session=session, next_attempt_at=now)
        ]
        for lease in ended:
            session.expunge(lease)
        return ended

    def mark_warned(self, lease_id: str, now: dt.datetime, *, warn_at: dt.datetime) -> int:
        """The warning for the end at hand is being sent (compare-and-set on ``warn_at``: once per end)."""
        with self.db.session() as s:
            return s.execute(
                update(Lease)
                .where(
                    Lease.id == lease_id,
                    Lease.state == LEASE_ACTIVE,
                    Lease.warned_at.is_(None),
                    Lease.warn_at == warn_at,
                )
                .values(warned_at=now, updated_at=now)
            ).rowcount

    def due_announcements(self, before: dt.datetime, limit: int, *, session=None) -> list[str]:
        """Ended leases whose announcement (cards, DM) was owed before ``before`` and never settled: a crash
        came between the end and the telling (index ``ix_leases_state_next``)."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(Lease.id)
                    .where(
                        Lease.state == LEASE_ENDED, Lease.next_attempt_at.is_not(None), Lease.next_attempt_at <= before
                    )
                    .limit(limit)
                )
            )

    def owed_announcements_of(self, email: str, session=None) -> list[str]:
        """The ended leases of ``email`` whose announcement is still owed (read in ``session`` when given)."""
        with self.db.joining(session) as s:
            return list(
                s.scalars(
                    select(Lease.id).where(
                        func.lower(Lease.email) == email.lower(),
                        Lease.state == LEASE_ENDED,
                        Lease.next_attempt_at.is_not(None),
                    )
                )
            )

    def announced(self, lease_id: str) -> None:
        """The end of an ended lease has been told (its cards and DM are owed in the delivery ledger)."""
        with self.db.session() as s:
            s.execute(
                update(Lease).where(Lease.id == lease_id, Lease.state == LEASE_ENDED).values(next_attempt_at=None)
            )

    def take(self, lease_id: str, *, attempts: int, now: dt.datetime, hold: dt.timedelta) -> int:
        """Take a live lease's removal (compare-and-set on ``attempts``: one caller wins): ``attempts`` goes up
        and, for ``hold``, the worker's due query leaves it alone (the process that took it is removing it)."""
        with self.db.session() as s:
            return s.execute(
                update(Lease)
                .where(Lease.id == lease_id, Lease.state.in_(LIVE), Lease.attempts == attempts)
                .values(attempts=attempts + 1, next_attempt_at=now + hold if hold else None, updated_at=now)
            ).rowcount

    def removal_failed(self, lease_id: str, *, next_attempt_at: dt.datetime, error: str, now: dt.datetime) -> None:
        """A removal Polaris did not take: tried again at ``next_attempt_at``."""
        with self.db.session() as s:
            s.execute(
                update(Lease)
                .where(Lease.id == lease_id, Lease.state == LEASE_ACTIVE)
                .values(next_attempt_at=next_attempt_at, last_error=error[:200], updated_at=now)
            )
