"""Decisions on a request: approve, deny, Retry, expiry and the policy's auto-approval.

Each is a compare-and-set on the request's state (:meth:`bot.access.store.RequestStore.update`), so a double
click or two approvers at once decide once and the loser is told who decided. Authority is checked at click time
(:meth:`bot.access.approvers.Approvers.authority`); for a request needing several approvals the earlier ones
count only while their approvers still have the authority. A refused click is audited (``decision.refused``)
and answered with a sentence; nothing here raises for a bad click.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from .. import privilege, views
from ..models import APPLIED, APPROVED, CANCELLED, DENIED, EXPIRED, FAILED, PENDING, AccessRequest
from ..polaris import Group, PolarisError, PolarisNotFound
from ..slack import SlackError
from .approvers import Approvers
from .authority import ORG_ADMIN
from .context import Context
from .errors import AUTHORITY_UNCHECKABLE, EARLIER_APPROVALS_UNCHECKABLE, GROUP_GONE
from .notifications import Notifications
from .state_messages import Owed
from .store import RequestStore
from . import verdicts

log = logging.getLogger(__name__)

EXPIRED_TEXT = "This request has expired; the requester can ask again."


class _Refused(Exception):
    """Internal: the click is refused with ``why`` (for the clicker) and ``detail`` (for the audit row)."""

    def __init__(self, why: str, detail: str):
        super().__init__(why)
        self.why, self.detail = why, detail


class Decisions:
    def __init__(self, ctx: Context, store: RequestStore, approvers: Approvers, notifications: Notifications):
        self.ctx, self.store, self.approvers, self.notifications = ctx, store, approvers, notifications

    def refuse(self, actor: str, request_id: str | None, why: str, detail: str, *, session=None) -> str:
        """Audit a refused click (``decision.refused``; in ``session``'s transaction when given, the one that
        refused) and return ``why``, the sentence for the clicker."""
        self.ctx.audit.record(
            actor, "decision.refused", request_id=request_id, outcome="refused", detail=detail, session=session
        )
        return why

    def _stale_click(self, request_id: str, actor_id: str, verb: str) -> tuple[AccessRequest | None, str | None]:
        """Read the request once: (it, ``None``), or (it or ``None``, the refusal) for an unknown request or one
        decided already, its ``decision.refused`` row written in the transaction that read it."""
        with self.ctx.db.session() as s:
            req = self.store.get(request_id, session=s)
            if req is None:
                why = "That request no longer exists."
                return None, self.refuse(actor_id, None, why, f"unknown request {request_id[:40]}", session=s)
            if req.state != PENDING:
                detail = f"{verb} on {req.state} request"
                return req, self.refuse(actor_id, req.id, self.already(req), detail, session=s)
        return req, None

    def decide(
        self, request_id: str, actor_id: str, approve: bool, *, note: str = "", duration: int | None = None
    ) -> str | None:
        """Record ``actor_id``'s decision on a pending request. ``note``: the deny reason or approval comment
        (at most 500 characters, refused when longer; a Deny without one is refused where the policy says
        ``deny_reason_required``); ``duration``: seconds granted, shorter than asked, for a time-bound request
        (:func:`bot.access.verdicts.check_grant`). Returns a message for the clicker (shown ephemerally) or
        ``None`` when the card update says it all. Never raises for bad clicks."""
        verb = "approve" if approve else "deny"
        req, why = self._stale_click(request_id, actor_id, verb)
        if why is not None:
            return why
        now = self.ctx.clock()
        if req.expires_at <= now:
            self.expire(req.id)
            return self.refuse(actor_id, req.id, EXPIRED_TEXT, f"{verb} on expired request")
        try:
            note, duration = self._check_note(req, approve, note, duration)
            group, required, stale = self._check(req, actor_id, approve)
            message, partial, lost, decided, owed = self._record(
                req, actor_id, approve, now, group, required, stale, note, duration
            )
        except _Refused as r:
            return self.refuse(actor_id, req.id, r.why, r.detail)
        if lost or decided is None:
            return message
        self.notifications.refresh_card(req.id, current=decided, carry=not (owed and owed.sends) and not partial)
        req = decided  # as this transaction left it (a later change, e.g. the apply, tells the requester itself)
        if req.state != PENDING:
            self.notifications.send_told(owed)  # owed in the decision's transaction
        elif partial:
            self.notifications.dm(req.id, req.requester_id, f"approval:{actor_id}", partial)
            count = len(self.store.approver_ids(req.id))
            text = views.approvals.thread_partial(req, actor_id, count, req.approvals_required, note)
            self.notifications.threads.reply(req.id, f"approval:{actor_id}", text)
        if req.state == APPROVED:
            self.ctx.wake()
        return message

    def _check_note(self, req: AccessRequest, approve: bool, note: str, duration: int | None) -> tuple[str, int | None]:
        """The decision's own words and time, checked before anything is read (:mod:`bot.access.verdicts`):
        (the note, cleaned; the shorter duration to grant, or ``None``). Raises :class:`_Refused`."""
        rule = self.approvers.rule_of(req)
        note, why = verdicts.check_note(note, approve=approve, required=rule.deny_reason_required)
        if why is None and approve and duration is not None:
            why = verdicts.check_grant(req, duration, rule.max_duration)
        if why:
            raise _Refused(why, f"{'approve' if approve else 'deny'}: {why}")
        return note, duration if approve and duration != req.duration_seconds else None

    def _check(self, req: AccessRequest, actor_id: str, approve: bool) -> tuple[Group | None, int, list[str]]:
        """The click-time checks: (the group as Polaris has it now, approvals required now, earlier approvers
        who lost their authority). Raises :class:`_Refused`."""
        verb = "approve" if approve else "deny"
        try:
            try:
                group = self.approvers.request_group(req)  # from Polaris, not the cache: it decides who may approve
            except PolarisNotFound:
                if approve:
                    raise _Refused(
                        "The group of this request no longer exists in Polaris; it can only be denied "
                        "or left to expire.",
                        "approve: group deleted",
                    ) from None
                group = Group(id=req.group_id or "", name=req.group_name or "")
            required = self.approvers.approvals_required(req, group)
            why = self.approvers.authority(actor_id, req, approving=approve, group=group)
        except (PolarisError, SlackError) as e:
            log.warning("authority check for %s failed: %s", actor_id, e)
            why = AUTHORITY_UNCHECKABLE
        if why:
            raise _Refused(why, f"{verb}: {why}")
        stale: list[str] = []
        if approve and required > 1:
            # Earlier approvals count only if their approvers still have the authority now.
            prior = self.store.approver_ids(req.id)
            try:
                stale = [
                    a for a in prior if a != actor_id and self.approvers.authority(a, req, group=group) is not None
                ]
            except (PolarisError, SlackError):
                raise _Refused(
                    EARLIER_APPROVALS_UNCHECKABLE,
                    "approve: earlier approvals not re-checkable",
                ) from None
        return group, required, stale

    def _record(
        self,
        req: AccessRequest,
        actor_id: str,
        approve: bool,
        now,
        group: Group | None,
        required: int,
        stale: list[str],
        note: str = "",
        duration: int | None = None,
    ) -> tuple[str | None, str | None, bool, AccessRequest | None, Owed | None]:
        """Write the decision in one transaction: (message for the clicker, DM for the requester of a partial
        approval, whether another decision won: then the message says who and the refusal is audited in this
        transaction; the request as decided, read in that transaction; what a decided request owes its requester,
        owed in it: :meth:`bot.access.notifications.Notifications.owe_told`). Raises :class:`_Refused` when the
        actor approved already."""
        verb = "approve" if approve else "deny"
        store, audit = self.store, self.ctx.audit
        message: str | None = None
        partial: str | None = None
        with self.ctx.db.session() as s:
            # Take the row (a write lock on both databases) and check it is still pending and not expired.
            if not store.update(req.id, session=s, expect=PENDING, live_at=now, updated_at=now):
                why = self.already(store.get(req.id, session=s))  # nothing changed: refused in this transaction
                return self.refuse(actor_id, req.id, why, f"{verb} lost the race", session=s), None, True, None, None
            if not approve:
                store.update(
                    req.id,
                    session=s,
                    state=DENIED,
                    decided_by=actor_id,
                    decided_at=now,
                    updated_at=now,
                    open_key=None,
                    decision_note=note or None,
                )
                audit.record(
                    actor_id,
                    "decision.deny",
                    request_id=req.id,
                    target=req.target_email,
                    session=s,
                    detail=note or None,
                )
                return None, None, False, *self._decided(req.id, s)
            if store.has_approved(req.id, actor_id, session=s):
                s.rollback()
                raise _Refused(
                    "You already approved this request; it needs another approver.",
                    "second approval by the same person",
                )
            for gone in stale:
                store.revoke_approval(req.id, gone, session=s)
                audit.record(
                    gone,
                    "approval.revoked",
                    request_id=req.id,
                    session=s,
                    outcome="refused",
                    detail="approver no longer has the authority",
                )
            if required != req.approvals_required:
                store.update(req.id, session=s, approvals_required=required)
                audit.record(
                    "bot",
                    "request.approvals_raised",
                    request_id=req.id,
                    session=s,
                    detail=f"{req.approvals_required} -> {required}: the group now grants "
                    f"{', '.join(privilege.privileged_grants(group)) or ORG_ADMIN}",
                )
            detail = verdicts.grant_detail(req, note, duration)
            if duration is not None or note:
                store.update(req.id, session=s, **verdicts.grant_values(req, note, duration))
            count = store.add_approval(req.id, actor_id, now, session=s)
            if count >= required:
                store.update(
                    req.id,
                    session=s,
                    state=APPROVED,
                    decided_by=actor_id,
                    decided_at=now,
                    updated_at=now,
                    next_attempt_at=None,
                )
                audit.record(
                    actor_id, "decision.approve", request_id=req.id, target=req.target_email, session=s, detail=detail
                )
            else:
                audit.record(
                    actor_id,
                    "decision.approve",
                    request_id=req.id,
                    target=req.target_email,
                    session=s,
                    outcome="partial",
                    detail=f"approval {count} of {required}" + (f"; {detail}" if detail else ""),
                )
                message = f"Your approval is recorded ({count} of {required}); another approver must approve too."
                partial = (
                    f"{views.mention(actor_id)} approved your request for {views.kind_phrase(req)} "
                    f"({count} of {required} approvals; request `{req.id[:8]}`)."
                )
            return message, partial, False, *self._decided(req.id, s)

    def _decided(self, request_id: str, s) -> tuple[AccessRequest, Owed | None]:
        """In ``s``: the request as the decision left it, and, once it is decided, its requester's messages owed."""
        decided = self.store.get(request_id, session=s)
        return decided, self.notifications.owe_told(decided, session=s)

    @staticmethod
    def already(req: AccessRequest | None) -> str:
        if req is None:
            return "That request no longer exists."
        if req.state == EXPIRED:
            return EXPIRED_TEXT
        who = views.mention(req.decided_by)
        if req.state == DENIED:
            return f"Already denied by {who}."
        if req.state == CANCELLED:
            return f"Cancelled by {who}."
        if req.state in (APPROVED, APPLIED, FAILED):
            return f"Already approved by {who} ({views.STATE_LABEL[req.state].lower()})."
        return "This request is still pending."

    def retry(self, request_id: str, actor_id: str) -> str | None:
        """Put a failed request back to approved so the worker applies it again (approvers and admins)."""
        req = self.store.get(request_id)
        if req is None:
            return self.refuse(actor_id, None, "That request no longer exists.", "retry unknown request")
        if actor_id in (req.requester_id, req.target_slack_id):  # the authority rule, in words that fit a Retry
            return self.refuse(
                actor_id, req.id, self._who_can_retry(req), "retry by the requester or the person it is for"
            )
        try:
            why = self.approvers.authority(actor_id, req)
        except PolarisNotFound:  # the group was deleted in Polaris: no Retry can apply it
            why = GROUP_GONE
        except (PolarisError, SlackError):
            why = AUTHORITY_UNCHECKABLE
        if why:
            return self.refuse(actor_id, req.id, why, f"retry: {why}")
        try:
            with self.ctx.db.session() as s:
                changed = self.store.update(
                    req.id,
                    session=s,
                    expect=FAILED,
                    state=APPROVED,
                    attempts=0,
                    next_attempt_at=None,
                    updated_at=self.ctx.clock(),
                    retries=AccessRequest.retries + 1,
                    outcome="Retry requested by an approver",
                    open_key=AccessRequest.make_open_key(req.target_email, req.group_id, req.kind),
                )
                if not changed:
                    s.rollback()
                    return self.refuse(
                        actor_id,
                        req.id,
                        f"Only a failed request can be retried; this one is "
                        f"{views.STATE_LABEL.get(req.state, req.state).lower()}.",
                        "retry on non-failed",
                    )
                self.ctx.audit.record(actor_id, "decision.retry", request_id=req.id, target=req.target_email, session=s)
        except IntegrityError:
            return self.refuse(
                actor_id,
                req.id,
                "A newer request for the same access is already open; decide that one.",
                "retry: newer open request",
            )
        self.notifications.refresh_card(req.id)
        self.ctx.wake()
        return "Retrying it now."

    def _who_can_retry(self, req: AccessRequest) -> str:
        """The answer for a requester (or the person a request is for) pressing Retry: who can."""
        try:
            who = sorted(self.approvers.approver_ids(req) - {req.target_slack_id})
        except SlackError:
            who = []
        if len(who) > 5:
            named = f" ({', '.join(views.mention(u) for u in who[:5])} and {len(who) - 5} more)"
        else:
            named = f" ({views.names(who)})" if who else ""
        return (
            f"Only an approver can retry this request{named}; the card in <#{self.ctx.settings.approval_channel}> "
            "has the Retry button for them."
        )

    def expire(self, request_id: str) -> bool:
        """Move a pending request past its TTL to expired (compare-and-set), update the card, tell the requester."""
        now = self.ctx.clock()
        with self.ctx.db.session() as s:
            changed = self.store.update(
                request_id, session=s, expect=PENDING, expired_at=now, state=EXPIRED, updated_at=now, open_key=None
            )
            if changed:
                self.ctx.audit.record("bot", "request.expired", request_id=request_id, session=s)
        if changed:
            self.notifications.refresh_card(request_id)
            self.notifications.notify_requester(self.store.get(request_id))
        return bool(changed)

    def auto_approve(self, request_id: str) -> None:
        """Approve a request its policy rule auto-approves: recorded, announced on the card, applied."""
        now = self.ctx.clock()
        with self.ctx.db.session() as s:
            changed = self.store.update(
                request_id,
                session=s,
                expect=PENDING,
                state=APPROVED,
                decided_by=views.POLICY_ACTOR,
                decided_at=now,
                updated_at=now,
            )
            if changed:
                self.ctx.audit.record(views.POLICY_ACTOR, "decision.auto_approve", request_id=request_id, session=s)
        if changed:
            self.notifications.refresh_card(request_id)
            self.ctx.wake()
