"""The ``/polaris`` slash command (Slack: "Slash commands" — ack within 3 seconds, answer on response_url)."""
from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot import views
from bot.commands import clean


def register(app: App, service) -> None:
    @app.command("/polaris")
    def polaris_command(ack: Ack, command: dict, respond: Respond) -> None:
        user_id = str(command.get("user_id", ""))
        text = command.get("text") or ""
        trigger_id = command.get("trigger_id")
        if clean(text).lower() == "request" and trigger_id:
            ack()
            open_request_form(service, trigger_id)
            return
        ack()
        reply = service.handle_command(user_id, text, channel_id=command.get("channel_id"))
        respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")


def open_request_form(service, trigger_id: str) -> None:
    """Open a loading modal at once (``trigger_id`` lives 3 seconds), then fill in the groups."""
    view_id = service.slack.open_view(trigger_id, views.request_modal(None))
    if not view_id:
        return
    try:
        groups = service.catalog.all()
        service.slack.update_view(view_id, views.request_modal(groups))
    except Exception as e:  # Polaris down: say so in the form
        plain = getattr(e, "plain", None)
        service.slack.update_view(view_id, views.request_modal([], error=(plain() if plain else "Polaris is unavailable")
                                                               + ". Please try again later."))
