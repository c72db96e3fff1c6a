"""Time-bound access: the lease a grant makes (or extends), its end, and the warning before it.

- While a time-bound grant is applied (:mod:`bot.access.execution`), :meth:`Leases.before_add` writes a pending
  lease just before the membership is added in Polaris (so a resumed apply knows the membership it finds is its
  own), and :meth:`Leases.settle` (in the transaction that marks the grant applied) activates it, counting the
  time from that moment; or extends the live lease of the same person and group (the later end wins); or, for
  a grant for good, ends that lease without removing anything. A membership held without a lease (permanent, or
  made outside the bot) never gets one, so no lease ending can remove it.
- :meth:`Leases.revoke` ends a lease: under the ``user:<email>`` claim (the one applies take) and a
  compare-and-set on the lease, it reads the user in Polaris and removes only that membership
  (``DELETE /v1/groups/{id}/members``): the user's other groups, names and ``enabled`` are never touched. A user
  or group deleted in Polaris ends it quietly; a Polaris fault is retried with backoff. Audited
  (``lease.ended``, ``lease.retry_later``); the grant's card is updated and the person told by DM.
- :meth:`Leases.warn`: once per end, a tenth of the duration before it (at most an hour), a DM with **Extend**
  and **I'm done**.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import IntegrityError

from .. import durations, views
from ..models import GRANTS, LEASE_ACTIVE, LEASE_PENDING, AccessRequest, Lease
from .context import Context
from .lease_ends import ANNOUNCE_GRACE, ENDED, LeaseEnds
from .lease_store import LeaseStore
from .notifications import Notifications
from .store import RequestStore

log = logging.getLogger(__name__)

REMOVAL_BACKOFF_BASE = 5.0  # seconds before the 2nd removal attempt; doubles each time
REMOVAL_BACKOFF_MAX = 900.0
#: Beyond the Polaris read timeout: how long a process that took a lease's removal keeps the other processes'
#: workers off it on SQLite (where claims are per process). On PostgreSQL the ``user:<email>`` advisory lock does
#: that, and is released at once when its process dies.
REMOVAL_HOLD_MARGIN = 10.0


class Leases:
    """``ctx``: the shared clients and clock; ``store``: requests; ``notifications``: cards and DMs."""

    def __init__(self, ctx: Context, store: RequestStore, notifications: Notifications):
        self.ctx, self.store, self.notifications = ctx, store, notifications
        self.leases = LeaseStore(ctx.db)
        self.ends = LeaseEnds(ctx, store, notifications)

    # ------------------------------------------------------------------------------- granting
    def before_add(self, req: AccessRequest) -> None:
        """Just before a grant's membership is added (or its user created with it): a time-bound grant with no
        live lease of that person and group gets a pending one, committed first. Nothing for a grant for good,
        or when a lease is already live (the grant extends it at :meth:`settle`)."""
        if req.kind not in GRANTS or not req.duration_seconds or not req.group_id:
            return
        if self.leases.live_for(req.target_email, req.group_id) is not None:
            return
        try:
            self.leases.prepare(req, self.ctx.clock())
        except IntegrityError:  # made a moment ago by an attempt of this same grant in another process
            pass

    def settle(self, req: AccessRequest, *, applied_at: dt.datetime, polaris_user_id: str | None, session) -> str:
        """The lease side of a grant that is now applied, in the caller's transaction ``session``; returns a
        sentence for the outcome ("" when the grant has no lease side)."""
        if req.kind not in GRANTS or not req.group_id:
            return ""
        lease = self.leases.live_for(req.target_email, req.group_id, session=session)
        group = req.group_name or req.group_id
        if lease is None:
            if req.duration_seconds:
                return (
                    f"They were already a member of {group} without an end date (for good, or given outside the "
                    "bot): nothing changed, and no end was set."
                )
            return ""
        if lease.state == LEASE_PENDING and lease.request_id != req.id:
            # Left pending by an earlier grant that failed (its membership may have landed), found by this one
            # under the same user claim: this grant takes it over rather than leave it to be swept away with the
            # membership this grant gave.
            if not req.duration_seconds:
                self._make_permanent(lease, req, applied_at, session)
                return ""
            self.leases.adopt(lease.id, request_id=req.id, duration_seconds=req.duration_seconds, session=session)
            lease = self.leases.live_for(req.target_email, req.group_id, session=session)
        if lease.state == LEASE_PENDING and lease.request_id == req.id:
            self.leases.activate(lease.id, started_at=applied_at, polaris_user_id=polaris_user_id, session=session)
            ends = applied_at + dt.timedelta(seconds=lease.duration_seconds)
            self.ctx.audit.record(
                "bot",
                "lease.started",
                request_id=req.id,
                target=req.target_email,
                session=session,
                detail=f"{group} for {durations.describe(lease.duration_seconds)}, until {ends:%Y-%m-%d %H:%M} UTC",
            )
            return f"Access until {durations.until(ends, applied_at)}."
        if lease.state != LEASE_ACTIVE:
            return ""
        if not req.duration_seconds:  # a grant for good: the membership stays when the lease would have ended
            self._make_permanent(lease, req, applied_at, session)
            return "The membership is now for good: its earlier end was cancelled."
        ends = max(lease.ends_at, applied_at + dt.timedelta(seconds=req.duration_seconds))
        self.leases.extend(
            lease.id, ends_at=ends, duration_seconds=req.duration_seconds, by=req.id, now=applied_at, session=session
        )
        self.ctx.audit.record(
            "bot",
            "lease.extended",
            request_id=req.id,
            target=req.target_email,
            session=session,
            detail=f"{group}: lease {lease.id[:8]} now ends {ends:%Y-%m-%d %H:%M} UTC (was {lease.ends_at:%H:%M})",
        )
        return f"Access extended until {durations.until(ends, applied_at)}."

    def _make_permanent(self, lease: Lease, req: AccessRequest, applied_at: dt.datetime, session) -> None:
        """The grant for good ``req`` ends ``lease`` without removing its membership; audited, and the earlier
        grants' cards are owed the news (announcement owed)."""
        self.leases.end(
            lease.id,
            reason="made_permanent",
            by=req.decided_by or "bot",
            now=applied_at,
            session=session,
            next_attempt_at=applied_at,
        )
        self.ctx.audit.record(
            "bot",
            "lease.ended",
            request_id=lease.request_id,
            target=lease.email,
            session=session,
            detail=f"{lease.group_name or lease.group_id}: made permanent by request {req.id[:8]}; membership kept",
        )

    # ------------------------------------------------------------------------------- ending
    def revoke(self, lease_id: str, *, reason: str = "expired", by: str = "bot") -> bool:
        """End a lease whose time is up (:meth:`bot.access.lease_ends.LeaseEnds.revoke`); True when ended."""
        return self.ends.revoke(lease_id, reason=reason, by=by) == ENDED

    def holder(self, lease: Lease) -> str | None:
        return self.ends.holder(lease)

    # ------------------------------------------------------------------------------- warning
    def warn(self, lease_id: str) -> bool:
        """The DM before the end (Extend / I'm done), once per end (an extension makes a new one due)."""
        lease = self.leases.get(lease_id)
        now = self.ctx.clock()
        if lease is None or lease.state != LEASE_ACTIVE or lease.warn_at is None or lease.warn_at > now:
            return False
        who = self.holder(lease)
        sent = False
        if who:
            # Owed (and tried) before warned_at is committed: a crash in between sends it on the next pass, and
            # the key (per end) makes it once however many processes get here.
            about = None if who == lease.slack_id else lease.email
            text, blocks = views.leases.warning(lease, now, about=about)
            sent = self.notifications.dm(
                lease.request_id, who, f"lease_warn:{lease.id}:{lease.ends_at:%Y%m%d%H%M%S}", text, blocks=blocks
            )
        if self.leases.mark_warned(lease.id, now, warn_at=lease.warn_at):
            self.ctx.audit.record("bot", "lease.warned", request_id=lease.request_id, target=lease.email)
        return sent

    # ------------------------------------------------------------------------------- worker
    def run_due(self, now: dt.datetime, limit: int, stop=None) -> int:
        """The worker's lease work: removals that are due, warnings that are due, pending leases whose grant
        failed. Returns how many leases ended."""
        ended, leases = 0, self.leases
        with leases.db.session() as s:  # what is due, read in one transaction (each query indexed and LIMITed)
            ends, warnings = leases.due_ends(now, limit, session=s), leases.due_warnings(now, limit, session=s)
            stale = leases.stale_pending(now, limit, session=s)
            owed = leases.due_announcements(now - ANNOUNCE_GRACE, limit, session=s)
        for lid in ends:
            if stop is not None and stop.is_set():
                break
            ended += bool(self._safely(self.revoke, lid))
        for lid in warnings:
            self._safely(self.warn, lid)
        for lid in stale:
            ended += bool(self._safely(lambda x: self.revoke(x, reason="not_applied"), lid))
        for lid in owed:  # announcements owed for ends a crash interrupted
            self._safely(self.ends.announce, lid)
        return ended

    @staticmethod
    def _safely(fn, *args):
        try:
            return fn(*args)
        except Exception:
            log.exception("lease step failed for %s", args)
            return None
