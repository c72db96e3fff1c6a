"""The end of a lease (time-bound access): :meth:`LeaseEnds.revoke` removes its membership, once, and then the
cards and the person are told.

Under the ``user:<email>`` claim (the one applies take) and a compare-and-set on the lease, the user is read in
Polaris (by the Polaris user ID the grant gave: a user deleted and made again with the same email is another
person's account, and is left alone) and only that membership is removed (``DELETE /v1/groups/{id}/members``):
the user's other groups, names and ``enabled`` are never touched. A user or group deleted in Polaris ends it
quietly. A Polaris fault is retried with backoff; one Polaris refuses for good (a 403: the key lost its
permission) is retried at the backoff's cap and reported to ``ADMINS`` once. Audited (``lease.ended``,
``lease.retry_later``).

The announcement (the cards of every grant the lease carried, the person's DM) is owed in the same transaction
as the end (``next_attempt_at`` set on the ended lease) and settled once made, so a crash in between is made good
by the next worker pass (:meth:`bot.access.leases.Leases.run_due`, after :data:`ANNOUNCE_GRACE`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from .. import views
from ..audit import audit_context
from ..models import APPROVED, BOT_REQUESTER, LEASE_ACTIVE, LEASE_PENDING, Lease
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
#: An end's announcement owed for longer than this was interrupted (a crash): the worker sends it.
ANNOUNCE_GRACE = dt.timedelta(seconds=30)
#: Ends whose person is not DMed: a grant never applied, a user or group deleted in Polaris meanwhile; and those
#: told otherwise (they left the group themselves; an offboarding).
QUIET = ("not_applied", "user_gone", "group_gone", "made_permanent", "left", "offboarded")
#: ``last_error`` of a removal whose DELETE was sent and failed: a later attempt that finds the membership gone
#: knows it was this removal's doing (the DELETE landed, its answer was lost).
SENT = "remove: "
#: ``last_error`` of an ended lease whose membership was already gone (removed outside the bot).
ABSENT = "not a member at the end"

ENDED, BUSY, FAILED, NOT_DUE = "ended", "busy", "failed", "not_due"


class LeaseEnds:
    """``ctx``: the shared clients and clock; ``store``: requests; ``notifications``: cards and DMs."""

    def __init__(self, ctx: Context, store: RequestStore, notifications: Notifications):
        self.ctx, self.store, self.notifications = ctx, store, notifications
        self.leases = LeaseStore(ctx.db)

    def revoke(self, lease_id: str, *, reason: str = "expired", by: str = "bot", wait: float = 0.0) -> str:
        """End a live lease (``reason``: ``expired`` when its time is up, or what an I'm done recorded on it;
        ``not_applied`` for a pending lease whose grant failed) and remove its membership if it is still in
        Polaris. Returns :data:`ENDED`, :data:`BUSY` (another change of that user, or another process, holds
        it: the worker ends it), :data:`FAILED` (Polaris did not take it: retried with backoff) or
        :data:`NOT_DUE`. Never raises for a Polaris fault. ``wait``: seconds to wait for the user claim."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return NOT_DUE
        with self.ctx.claims.hold(f"user:{lease.email.lower()}", wait=wait) as got:
            if not got:
                return BUSY
            lease = self.leases.get(lease_id)
            now = self.ctx.clock()
            if lease is None or not self._still_due(lease, reason, now):
                return NOT_DUE
            hold = (
                dt.timedelta(seconds=self.ctx.polaris.read_timeout + REMOVAL_HOLD_MARGIN)
                if self.ctx.db.is_sqlite
                else None
            )
            if not self.leases.take(lease.id, attempts=lease.attempts, now=now, hold=hold):
                return BUSY  # another process took it
            if lease.end_reason and reason == "expired":  # asked for earlier (I'm done): that reason and person
                reason, by = lease.end_reason, lease.ended_by or by
            stage = ["read"]
            try:
                with audit_context(by, lease.request_id):
                    was_member, reason = self._remove_in_polaris(lease, reason, stage)
            except PolarisError as e:
                self._removal_failed(lease, e, now, sent=stage[0] == "remove")
                return FAILED
            ended = self._record_end(lease, reason, by, was_member)
        if ended:
            self.announce(lease.id)
        return ENDED if ended else NOT_DUE

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

    def _remove_in_polaris(self, lease: Lease, reason: str, stage: list[str]) -> tuple[bool, str]:
        """Remove the lease's membership if its user still has it: (this removal took it away, the end reason).
        ``stage[0]`` becomes ``remove`` just before the DELETE is sent."""
        polaris = self.ctx.polaris
        if lease.polaris_user_id:
            try:
                user = polaris.get_user(lease.polaris_user_id)
            except PolarisNotFound:  # deleted; an account made since with that email is not the one granted
                user = None
        else:
            user = polaris.find_user_by_email(lease.email)
        if user is None:
            return False, "user_gone" if reason != "not_applied" else reason
        if lease.group_id not in user.group_ids:
            if (lease.last_error or "").startswith(SENT):
                return True, reason  # an earlier DELETE landed; its answer was lost
            try:
                polaris.get_group(lease.group_id)
            except PolarisNotFound:
                return False, "group_gone"
            return False, reason
        stage[0] = "remove"
        try:
            polaris.remove_members(lease.group_id, [user.id])
        except PolarisNotFound:
            return False, "group_gone"
        return True, reason

    def _record_end(self, lease: Lease, reason: str, by: str, was_member: bool) -> bool:
        now = self.ctx.clock()
        with self.ctx.db.session() as s:
            # The announcement is owed with the end (next_attempt_at), settled once made.
            if not self.leases.end(
                lease.id,
                reason=reason,
                by=by,
                now=now,
                session=s,
                next_attempt_at=now,
                last_error=None if was_member else ABSENT,
            ):
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

    def _removal_failed(self, lease: Lease, error: PolarisError, now: dt.datetime, *, sent: bool) -> None:
        attempts = lease.attempts + 1
        delay = min(REMOVAL_BACKOFF_MAX, REMOVAL_BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
        if not error.transient:  # refused for good: tried again at the cap, and ADMINS are told once
            delay = REMOVAL_BACKOFF_MAX
        delay = max(delay, min(error.retry_after or 0.0, 3600.0))
        known = (lease.last_error or "").startswith(SENT)
        self.leases.removal_failed(
            lease.id,
            next_attempt_at=now + dt.timedelta(seconds=delay),
            error=(SENT if sent or known else "") + error.plain(),
            now=now,
        )
        self.ctx.audit.record(
            "bot",
            "lease.retry_later",
            request_id=lease.request_id,
            target=lease.email,
            outcome="error",
            detail=f"{error.label}; removal attempt {attempts}, next in {delay:.0f}s",
        )
        if not error.transient:
            if attempts == 1:
                log.error("removing lease %s failed: Polaris said %s %s", lease.id, error.status, error.code)
            self._tell_admins_refused(lease, error)

    def _tell_admins_refused(self, lease: Lease, error: PolarisError) -> None:
        req = self.store.get(lease.request_id)
        if req is None:
            return
        group = views.esc(lease.group_name or lease.group_id)
        self.notifications.tell_admins(
            req,
            f"lease_refused:{lease.id}",
            text=(
                f":warning: Time-bound access of `{views.esc(lease.email)}` to *{group}* has ended, but Polaris "
                f"refuses to remove the membership ({error.status} {views.esc(error.code)}). I keep trying every "
                f"15 minutes; check the bot's API key (it needs AdministerUsers), or remove it in Polaris."
            ),
            why=f"lease removal refused by Polaris ({error.status})",
        )

    # ------------------------------------------------------------------------------- telling
    def announce(self, lease_id: str) -> None:
        """After an end: the cards of every grant the lease carried, and a DM to the person (not for a quiet
        end); then the announcement is settled (:meth:`LeaseStore.announced`)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        for rid in self.leases.grants_of(lease):
            self.notifications.refresh_card(rid)
        who = self.holder(lease)
        if who and lease.end_reason not in QUIET:
            about = None if who == lease.slack_id else lease.email  # the inviter, told about the invitee
            text = views.leases.ended(lease, was_member=lease.last_error != ABSENT, about=about)
            self.notifications.dm(lease.request_id, who, f"lease_end:{lease.id}", text)
        self.leases.announced(lease.id)

    def holder(self, lease: Lease) -> str | None:
        """Whom a lease's DMs go to: the person it is for, else the requester of the grant."""
        if lease.slack_id:
            return lease.slack_id
        req = self.store.get(lease.request_id)
        return req.requester_id if req is not None and req.requester_id != BOT_REQUESTER else None
