"""The request form's ``view_submission``."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot import views
from bot.commands import REASON_MAX, UsageError
from bot.durations import parse_duration
from bot.lanes import POLARIS

from .commands import BUSY
from .payload import dig, text, user_id


def register(app: App, service) -> None:
    @app.view(views.REQUEST_MODAL)
    def submit_request(ack: Ack, body: dict, view: dict) -> None:
        values = dig(view, "state", "values")
        group_id = text(values, "group", "value", "selected_option", "value", limit=65)
        reason = dig(values, "reason", "value", "value")
        reason = reason if isinstance(reason, str) else ""
        if not group_id or len(group_id) > 64:
            ack(response_action="errors", errors={"group": "Choose a group."})
            return
        typed = text(values, "duration", "value", "value", limit=200).strip()
        duration = None
        if typed:
            try:  # pure parsing; the group's maximum is checked by the core, which answers by DM
                duration = parse_duration(typed[4:] if typed.lower().startswith("for ") else typed)
            except UsageError as e:
                ack(response_action="errors", errors={"duration": str(e).replace("`", "")})
                return
        if len(reason) > REASON_MAX:
            from bot.commands import reason_too_long  # its real length and the limit, as commands say it

            ack(response_action="errors", errors={"reason": reason_too_long(len(reason))})
            return
        who = user_id(body, "user", "id")
        if who is None:
            ack()
            return

        def work() -> None:
            service.submit_form_and_tell(who, group_id, reason, duration)

        # Handed off before the ack (which Bolt sends when this returns), so a full work lane keeps the form
        # open with the busy answer instead of dropping the submission.
        if service.background(work, lane=POLARIS):
            ack()
        else:
            ack(response_action="errors", errors={"group": BUSY.removeprefix(":hourglass: ")})
