"""The ``/polaris`` slash command (Slack: "Slash commands" — ack within 3 seconds, answer on response_url)."""
from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot import views
from bot.commands import clean

from .payload import text, user_id

BUSY = ":hourglass: I am very busy right now; please try again in a minute. Nothing was changed."


def register(app: App, service) -> None:
    @app.command("/polaris")
    def polaris_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        who = user_id(command, "user_id")
        words = text(command, "text")
        trigger_id = text(command, "trigger_id", limit=200)
        if who is None:
            return
        if clean(words).lower() == "request" and trigger_id:
            why = service.form_refusal(who)
            if why:
                service.background(lambda: respond(text=f":no_entry: {views.esc(why)}", response_type="ephemeral"))
                return
            open_request_form(service, trigger_id)  # trigger_id lives 3 seconds: open now, fill in later
            return

        def work() -> None:
            reply = service.handle_command(who, words, channel_id=text(command, "channel_id", limit=32))
            respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

        service.background(work, on_busy=lambda: respond(text=BUSY, response_type="ephemeral"),
                           lane=service.command_lane(words))


def open_request_form(service, trigger_id: str) -> None:
    """Open a loading modal at once, then fill in the groups on the work pool."""
    view_id = service.slack.open_view(trigger_id, views.request_modal(None))
    if not view_id:
        return

    def fill() -> None:
        try:
            groups = service.catalog.all()
            service.slack.update_view(view_id, views.request_modal(groups))
        except Exception as e:  # Polaris down: say so in the form
            plain = getattr(e, "plain", None)
            message = (plain() if plain else "Polaris is unavailable") + ". Please try again later."
            service.slack.update_view(view_id, views.request_modal([], error=views.esc(message)))

    service.background(fill)
