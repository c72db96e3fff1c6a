"""The Deny and Approve forms on Slack's side: **Deny** opens a form for the reason, **Approve with options…**
one for a comment and, for a time-bound request, a shorter time.

The listener calls :meth:`DecisionForms.open` in the request thread (the click's ``trigger_id`` lives 3 seconds;
only the database is read first), then :meth:`DecisionForms.check` on a work lane: the clicker's authority is
checked at once (Slack, Polaris) and a refusal replaces the form. The submission (``view_submission``, the
request ID in ``private_metadata``) is the decision itself, :meth:`DecisionForms.submit`, which checks the
authority again (:meth:`bot.access.decisions.Decisions.decide`); its answer, when there is one, goes to the
clicker by DM (a form has no ``response_url``). A form whose reason the policy requires
(``deny_reason_required``) is refused by the listener with ``response_action: errors``, and by the decision.
"""

from __future__ import annotations

import logging
import uuid

from .. import views
from ..models import PENDING
from ..polaris import PolarisError
from ..slack import SlackError
from .approvers import Approvers
from .context import Context
from .decisions import Decisions
from .notifications import Notifications
from .store import RequestStore

log = logging.getLogger(__name__)

FORM_NOT_OPENED = (
    ":warning: I could not open the form (Slack did not take it in time). Nothing was decided; press the button again."
)


class DecisionForms:
    """The Deny and Approve forms: open, check at the click, submit (see the module's docstring)."""

    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        approvers: Approvers,
        decisions: Decisions,
        notifications: Notifications,
    ):
        self.ctx, self.store, self.approvers = ctx, store, approvers
        self.decisions, self.notifications = decisions, notifications

    def open(self, trigger_id: str, request_id: str, actor_id: str, *, approve: bool) -> tuple[str | None, str | None]:
        """Open the Deny form (``approve`` False) or the Approve form for ``request_id``: (the view ID, or
        ``None``; a sentence for the clicker instead, or ``None``). Reads the database only."""
        req = self.store.get(request_id)
        verb = "approve" if approve else "deny"
        if req is None or req.state != PENDING:
            why = self.decisions.already(req)
            return None, self.decisions.refuse(actor_id, request_id if req else None, why, f"{verb} form: {why}")
        if approve:
            view = views.approvals.approve_modal(req, maximum=self.approvers.rule_of(req).max_duration)
        else:
            view = views.approvals.deny_modal(req, required=self.approvers.rule_of(req).deny_reason_required)
        view_id = self.ctx.slack.open_view(trigger_id, view)
        if not view_id:
            self.ctx.audit.record(
                actor_id, "decision.refused", request_id=req.id, outcome="error", detail=f"{verb} form not opened"
            )
            return None, FORM_NOT_OPENED
        return view_id, None

    def check(self, view_id: str, request_id: str, actor_id: str, *, approve: bool) -> None:
        """The click-time authority check of an open form: a refusal (audited) replaces the form. When Slack or
        Polaris cannot answer now the form stays; the submission checks again."""
        req = self.store.get(request_id)
        if req is None:
            return
        try:
            why = self.approvers.authority(actor_id, req, approving=approve)
        except (PolarisError, SlackError) as e:
            log.info("form authority check for %s not made now: %s", actor_id, e)
            return
        if why:
            self.decisions.refuse(actor_id, req.id, why, f"{'approve' if approve else 'deny'} form: {why}")
            callback = views.APPROVE_MODAL if approve else views.DENY_MODAL
            self.ctx.slack.update_view(view_id, views.approvals.refusal_modal(callback, req.id, views.esc(why)))

    def reason_required(self, request_id: str) -> bool:
        """The policy's ``deny_reason_required`` for this request's group (False for an unknown request)."""
        req = self.store.get(request_id)
        return bool(req is not None and self.approvers.rule_of(req).deny_reason_required)

    def submit(
        self, request_id: str, actor_id: str, *, approve: bool, note: str, duration: int | None = None
    ) -> str | None:
        """The form's decision (:meth:`Decisions.decide`); its answer, if any, is DMed to the clicker through the
        delivery ledger. Returns that answer."""
        message = self.decisions.decide(request_id, actor_id, approve, note=note, duration=duration)
        if message and self.store.get(request_id) is not None:
            self.notifications.dm(request_id, actor_id, f"answer:{uuid.uuid4().hex[:12]}", message)
        return message
