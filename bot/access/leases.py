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
import random

from sqlalchemy.exc import IntegrityError

from .. import durations, views
from ..audit import audit_context
from ..models import APPROVED, BOT_REQUESTER, GRANTS, LEASE_ACTIVE, LEASE_PENDING, AccessRequest, Lease
from ..polaris import PolarisError, PolarisNotFound
from .context import Context
from .lease_store import LIVE, LeaseStore
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
                self.leases.end(lease.id, reason="made_permanent", by="bot", now=applied_at, session=session)
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
            self.leases.end(
                lease.id, reason="made_permanent", by=req.decided_by or "bot", now=applied_at, session=session
            )
            self.ctx.audit.record(
                "bot",
                "lease.ended",
                request_id=lease.request_id,
                target=lease.email,
                session=session,
                detail=f"{group}: made permanent by request {req.id[:8]}; membership kept",
            )
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

    # ------------------------------------------------------------------------------- ending
    def revoke(self, lease_id: str, *, reason: str = "expired", by: str = "bot") -> bool:
        """End a live lease (``reason``: ``expired`` when its time is up, ``done`` from I'm done,
        ``not_applied`` for a pending lease whose grant failed) and remove its membership if it is still in
        Polaris. True when this call ended it. Never raises for a Polaris fault (retried later)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return False
        with self.ctx.claims.hold(f"user:{lease.email.lower()}") as got:
            if not got:
                return False
            lease = self.leases.get(lease_id)
            now = self.ctx.clock()
            if lease is None or not self._still_due(lease, reason, now):
                return False
            hold = (
                dt.timedelta(seconds=self.ctx.polaris.read_timeout + REMOVAL_HOLD_MARGIN)
                if self.ctx.db.is_sqlite
                else None
            )
            if not self.leases.take(lease.id, attempts=lease.attempts, now=now, hold=hold):
                return False  # another process took it
            if lease.end_reason and reason == "expired":  # asked for earlier (I'm done): that reason and person
                reason, by = lease.end_reason, lease.ended_by or by
            try:
                with audit_context(by, lease.request_id):
                    was_member, reason = self._remove_in_polaris(lease, reason)
            except PolarisError as e:
                self._removal_failed(lease, e, now)
                return False
            ended = self._record_end(lease, reason, by, was_member)
        if ended:
            # A grant never applied, or a user deleted in Polaris meanwhile: the card says so, nobody is DMed.
            self._tell(lease.id, was_member, quiet=reason in ("not_applied", "user_gone"))
        return ended

    def _still_due(self, lease: Lease, reason: str, now: dt.datetime) -> bool:
        if lease.state not in LIVE:
            return False
        if reason == "not_applied":  # a pending lease whose grant is no longer being applied
            req = self.store.get(lease.request_id)
            return lease.state == LEASE_PENDING and (req is None or req.state != APPROVED)
        if lease.state != LEASE_ACTIVE:
            return False
        if reason == "expired":
            due = lease.ends_at is not None and lease.ends_at <= now
            return due and (lease.next_attempt_at is None or lease.next_attempt_at <= now)
        return True

    def _remove_in_polaris(self, lease: Lease, reason: str) -> tuple[bool, str]:
        """Remove the lease's membership if the user still has it: (was a member, the end reason)."""
        polaris = self.ctx.polaris
        try:
            user = polaris.get_user(lease.polaris_user_id) if lease.polaris_user_id else None
        except PolarisNotFound:
            user = None
        if user is None:
            user = polaris.find_user_by_email(lease.email)
        if user is None:
            return False, "user_gone" if reason != "not_applied" else reason
        if lease.group_id not in user.group_ids:
            return False, reason
        try:
            polaris.remove_members(lease.group_id, [user.id])
        except PolarisNotFound:
            return False, "group_gone"
        return True, reason

    def _record_end(self, lease: Lease, reason: str, by: str, was_member: bool) -> bool:
        now = self.ctx.clock()
        with self.ctx.db.session() as s:
            if not self.leases.end(lease.id, reason=reason, by=by, now=now, session=s):
                return False
            group = lease.group_name or lease.group_id
            self.ctx.audit.record(
                by,
                "lease.ended",
                request_id=lease.request_id,
                target=lease.email,
                session=s,
                detail=f"{group}: {reason}; "
                + ("membership removed, other groups unchanged" if was_member else "was no longer a member"),
            )
        return True

    def _removal_failed(self, lease: Lease, error: PolarisError, now: dt.datetime) -> None:
        attempts = lease.attempts + 1
        delay = min(REMOVAL_BACKOFF_MAX, REMOVAL_BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
        delay = max(delay, min(error.retry_after or 0.0, 3600.0))
        if not error.transient:
            log.error("removing lease %s failed: Polaris said %s %s", lease.id, error.status, error.code)
        self.leases.removal_failed(
            lease.id, next_attempt_at=now + dt.timedelta(seconds=delay), error=error.plain(), now=now
        )
        self.ctx.audit.record(
            "bot",
            "lease.retry_later",
            request_id=lease.request_id,
            target=lease.email,
            outcome="error",
            detail=f"{error.code} {error.status}; removal attempt {attempts}, next in {delay:.0f}s",
        )

    def _tell(self, lease_id: str, was_member: bool, *, quiet: bool) -> None:
        """After an end: the cards of the grants that made and extended it, and a DM to the person."""
        lease = self.leases.get(lease_id)
        for rid in {lease.request_id, lease.extended_by} - {None}:
            self.notifications.refresh_card(rid)
        if quiet:
            return
        who = self.holder(lease)
        if who:
            self.notifications.dm(
                lease.request_id, who, f"lease_end:{lease.id}", views.leases.ended(lease, was_member=was_member)
            )

    def holder(self, lease: Lease) -> str | None:
        """Whom a lease's DMs go to: the person it is for, else the requester of the grant."""
        if lease.slack_id:
            return lease.slack_id
        req = self.store.get(lease.request_id)
        return req.requester_id if req is not None and req.requester_id != BOT_REQUESTER else None

    # ------------------------------------------------------------------------------- warning
    def warn(self, lease_id: str) -> bool:
        """The DM before the end (Extend / I'm done), once per end (an extension makes a new one due)."""
        lease = self.leases.get(lease_id)
        now = self.ctx.clock()
        if lease is None or lease.state != LEASE_ACTIVE or lease.warn_at is None or lease.warn_at > now:
            return False
        if not self.leases.mark_warned(lease.id, now, warn_at=lease.warn_at):
            return False
        who = self.holder(lease)
        if not who:
            return False
        text, blocks = views.leases.warning(lease, now)
        self.ctx.audit.record("bot", "lease.warned", request_id=lease.request_id, target=lease.email)
        return self.notifications.dm(
            lease.request_id, who, f"lease_warn:{lease.id}:{lease.ends_at:%Y%m%d%H%M%S}", text, blocks=blocks
        )

    # ------------------------------------------------------------------------------- worker
    def run_due(self, now: dt.datetime, limit: int, stop=None) -> int:
        """The worker's lease work: removals that are due, warnings that are due, pending leases whose grant
        failed. Returns how many leases ended."""
        ended = 0
        for lid in self.leases.due_ends(now, limit):
            if stop is not None and stop.is_set():
                break
            ended += bool(self._safely(self.revoke, lid))
        for lid in self.leases.due_warnings(now, limit):
            self._safely(self.warn, lid)
        for lid in self.leases.stale_pending(now, limit):
            ended += bool(self._safely(lambda x: self.revoke(x, reason="not_applied"), lid))
        return ended

    @staticmethod
    def _safely(fn, *args):
        try:
            return fn(*args)
        except Exception:
            log.exception("lease step failed for %s", args)
            return None
