"""The request form (``/polaris request`` with no arguments) on Slack's side: open the loading modal, then
admit the person and fill in the groups, or show the refusal or the failure in the modal.

The listener calls :meth:`RequestForm.open` in the request thread (the ``trigger_id`` lives 3 seconds) and
:meth:`RequestForm.fill` on a work lane. Its submission is :meth:`bot.access.requests.Submission.request_join`.
"""

from __future__ import annotations

from .. import views
from .admission import Admission
from .context import Context
from .errors import form_problem


class RequestForm:
    def __init__(self, ctx: Context, admission: Admission):
        self.ctx, self.admission = ctx, admission

    def open(self, trigger_id: str) -> str | None:
        """Open the loading modal (``views.open``); its view ID, or ``None`` when Slack did not open it."""
        return self.ctx.slack.open_view(trigger_id, views.request_modal(None))

    def not_opened(self, user_id: str) -> None:
        """Audit a form Slack did not open (``expired_trigger_id`` or any failure)."""
        self.ctx.audit.record(user_id, "command", outcome="error", detail="request form: views.open failed")

    def fill(self, user_id: str, view_id: str) -> None:
        """Admit ``user_id`` (identity, rate limit, audit row) and show the groups in the modal, or the refusal
        (a guest, a deactivated account, no email, over the rate limit) or the failure (Polaris down)."""
        try:
            why = self.admission.form_refusal(user_id)
            if why:
                self.show_error(view_id, views.esc(why))
                return
            groups = self.ctx.catalog.refresh()  # a group made in Polaris a moment ago is listed (5 s at most)
        except Exception as e:  # Polaris down: say so in the form
            self.show_error(view_id, form_problem(e))
            return
        self.ctx.slack.update_view(view_id, views.request_modal(groups))

    def show_error(self, view_id: str, escaped: str) -> None:
        """Show ``escaped`` (mrkdwn, already escaped) in the modal instead of the groups."""
        self.ctx.slack.update_view(view_id, views.request_modal([], error=escaped))
