"""Withdrawing a request: ``/polaris cancel <request id>`` and the Cancel button of ``status`` and the App Home.

The requester withdraws a pending request (compare-and-set to ``cancelled``); the card says "Cancelled by ...",
its buttons go, and a later click on an old copy is refused (:meth:`bot.access.decisions.Decisions.already`).
"""

from __future__ import annotations

from .. import views
from ..commands import UsageError
from ..models import APPROVED, CANCELLED, PENDING
from .context import Context
from .decisions import Decisions
from .notifications import Notifications
from .reply import Reply
from .store import RequestStore


class Cancels:
    def __init__(self, ctx: Context, store: RequestStore, notifications: Notifications):
        self.ctx, self.store, self.notifications = ctx, store, notifications

    def cancel(self, user_id: str, ref: str) -> Reply:
        """``cancel <request id>``: the full ID or its first 8 characters."""
        found = self.store.by_prefix(ref)
        if not found:
            raise UsageError(f"There is no request `{ref}`; `/polaris status` lists yours.")
        if len(found) > 1:
            raise UsageError(f"More than one request starts with `{ref}`; give the full ID.")
        return Reply(self.withdraw(found[0].id, user_id))

    def withdraw(self, request_id: str, user_id: str) -> str:
        """The requester ``user_id`` withdraws a pending request (compare-and-set to ``cancelled``, audited
        ``request.cancelled``; the card updated, its buttons gone). Returns the answer; a refusal is audited
        ``request.cancel_refused``. Never raises for a bad click."""
        ctx = self.ctx
        req = self.store.get(request_id)
        ref = f"`{request_id[:8]}`"
        why = None
        if req is None:
            why = "That request no longer exists."
        elif req.requester_id != user_id:
            why = f"Request {ref} is not yours; only its requester can cancel it."
        elif req.state == APPROVED:
            why = f"Request {ref} is approved and being applied in Polaris, so it can no longer be cancelled."
        elif req.state != PENDING:
            why = (
                Decisions.already(req)
                if req.state == CANCELLED
                else (
                    f"Request {ref} is already {views.STATE_LABEL.get(req.state, req.state).lower()}; nothing to cancel."
                )
            )
        if why is None:
            now = ctx.clock()
            with ctx.db.session() as s:
                won = self.store.update(
                    req.id,
                    session=s,
                    expect=PENDING,
                    state=CANCELLED,
                    decided_by=user_id,
                    decided_at=now,
                    updated_at=now,
                    open_key=None,
                )
                if won:
                    ctx.audit.record(
                        user_id, "request.cancelled", request_id=req.id, target=req.target_email, session=s
                    )
            if not won:
                why = Decisions.already(self.store.get(req.id))
        if why:
            ctx.audit.record(
                user_id, "request.cancel_refused", request_id=req.id if req else None, outcome="refused", detail=why
            )
            return why
        self.notifications.refresh_card(req.id)
        self.notifications.mark_told(self.store.get(req.id))  # answered here; reminders stop, the thread says so
        return (
            f":heavy_multiplication_x: Cancelled request {ref} ({views.kind_phrase(req)}); the approvers' card says so."
        )
