"""The request form's ``view_submission``."""
from __future__ import annotations

from slack_bolt import Ack, App

from bot import views
from bot.commands import REASON_MAX


def register(app: App, service) -> None:
    @app.view(views.REQUEST_MODAL)
    def submit_request(ack: Ack, body: dict, view: dict) -> None:
        values = (view.get("state") or {}).get("values") or {}
        option = ((values.get("group") or {}).get("value") or {}).get("selected_option") or {}
        group_id = str(option.get("value") or "")
        reason = str(((values.get("reason") or {}).get("value") or {}).get("value") or "")
        if not group_id or len(group_id) > 64:
            ack(response_action="errors", errors={"group": "Choose a group."})
            return
        if len(reason) > REASON_MAX:
            ack(response_action="errors", errors={"reason": f"Keep the reason under {REASON_MAX} characters."})
            return
        ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        reply = service.submit_form(user_id, group_id, reason)
        service.slack.dm(user_id, reply.text, reply.blocks)
