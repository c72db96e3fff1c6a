"""The buttons of the DM a person gets before their time-bound access ends: **Extend** (a new request for the
same group and duration, decided by the policy like any other) and **I'm done** (the access ends now).

Only the person who holds the access (or, when they have no Slack account, the requester of the grant) may
press them; every click is audited; the answer is a sentence for the clicker.
"""

from __future__ import annotations

from sqlalchemy import update

from .. import durations, views
from ..commands import Target, UsageError
from ..models import LEASE_ACTIVE, Lease
from .context import Context
from .lease_ends import BUSY, ENDED
from .leases import Leases
from .reply import Reply
from .requests import Submission


class LeaseClicks:
    def __init__(self, ctx: Context, leases: Leases, requests: Submission):
        self.ctx, self.leases, self.requests = ctx, leases, requests

    def _lease_for(self, lease_id: str, actor_id: str, verb: str) -> Lease:
        """The active lease ``actor_id`` may act on; :class:`UsageError` (audited) otherwise."""
        lease = self.leases.leases.get(lease_id)
        why = None
        if lease is None:
            why = "That access no longer exists."
        elif actor_id != self.leases.holder(lease):
            why = "Only the person who holds this access can do that."
        elif lease.end_reason == "made_permanent":
            group = lease.group_name or lease.group_id
            why = (
                f"Your membership in *{group}* is now for good (a later grant made it permanent), so it has no end "
                f"to extend or bring forward. `/polaris leave {group}` removes you from it."
            )
        elif lease.state != LEASE_ACTIVE:
            why = (
                f"Your access to *{lease.group_name or lease.group_id}* has already ended. "
                f"`/polaris request {lease.group_name or ''} for <duration>` asks for it again."
            )
        if why:
            self.ctx.audit.record(
                actor_id,
                "lease.refused",
                request_id=lease.request_id if lease else None,
                outcome="refused",
                detail=f"{verb}: {why}",
            )
            raise UsageError(why)
        return lease

    def extend(self, lease_id: str, actor_id: str) -> Reply:
        """**Extend**: a new request for the lease's group and duration (approved, it extends the lease)."""
        lease = self._lease_for(lease_id, actor_id, "extend")
        self.ctx.audit.record(actor_id, "lease.extend_asked", request_id=lease.request_id, target=lease.email)
        reason = f"Extension of request {lease.request_id[:8]} (until {lease.ends_at:%Y-%m-%d %H:%M} UTC)"
        if lease.slack_id == actor_id:
            return self.requests.request_join(
                actor_id, "", reason, group_id=lease.group_id, duration=lease.duration_seconds
            )
        return self.requests.request_invite(
            actor_id,
            Target(email=lease.email),
            lease.group_name or "",
            reason,
            duration=lease.duration_seconds,
            group_id=lease.group_id,  # the lease's own group, even if renamed since
        )

    def done(self, lease_id: str, actor_id: str) -> Reply:
        """**I'm done**: the lease ends now (removed by this click, or by the worker if Polaris fails now)."""
        lease = self._lease_for(lease_id, actor_id, "done")
        now = self.ctx.clock()
        with self.ctx.db.session() as s:  # due now, ended as "done" by the clicker, whoever removes it
            s.execute(
                update(Lease)
                .where(Lease.id == lease.id, Lease.state == LEASE_ACTIVE)
                .values(ends_at=now, end_reason="done", ended_by=actor_id, next_attempt_at=None, updated_at=now)
            )
        self.ctx.audit.record(actor_id, "lease.done_asked", request_id=lease.request_id, target=lease.email)
        withdrawn = self._withdraw_extensions(lease, actor_id, now)
        group = views.esc(lease.group_name or lease.group_id)
        outcome = self.leases.ends.revoke(lease.id, wait=5.0)
        also = (
            f" Your open request{'s' if len(withdrawn) != 1 else ''} to extend it {'were' if len(withdrawn) != 1 else 'was'} withdrawn."
            if withdrawn
            else ""
        )
        if outcome == ENDED:
            return Reply(f":lock: Done: your access to *{group}* has ended. Your other groups are unchanged.{also}")
        current = self.leases.leases.get(lease.id)
        if current is not None and current.state != LEASE_ACTIVE:
            return Reply(f"Your access to *{group}* has ended.{also}")
        if outcome == BUSY:  # another change of this user holds it; the end is recorded, the worker does it
            return Reply(
                f"Your access to *{group}* will end within a minute (another change to your account is "
                f"being made first).{also}"
            )
        return Reply(
            f"I could not reach Polaris to end your access to *{group}* right now; I will keep trying "
            f"(it was due to end {durations.until(lease.ends_at, now)} anyway).{also}"
        )

    def _withdraw_extensions(self, lease: Lease, actor_id: str, now) -> list[str]:
        """I'm done wins over the person's earlier open requests for the same group (an Extend not applied
        yet): they are cancelled (compare-and-set), audited, their cards updated."""
        store = self.requests.store
        withdrawn = []
        for req in store.open_grants_of(lease.email, lease.group_id):
            with self.ctx.db.session() as s:
                changed = store.close(
                    req,
                    by=actor_id,
                    now=now,
                    outcome="Withdrawn: the person ended this access with I'm done.",
                    session=s,
                )
                if changed:
                    self.ctx.audit.record(
                        actor_id,
                        "request.cancelled",
                        request_id=req.id,
                        target=req.target_email,
                        session=s,
                        detail="withdrawn by I'm done on the access it would extend",
                    )
            if changed:
                withdrawn.append(req.id)
                self.requests.notifications.refresh_card(req.id)
        return withdrawn
