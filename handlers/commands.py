"""The ``/polaris`` slash command (Slack: "Slash commands" — ack within 3 seconds, answer on response_url)."""

from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot import views
from bot.commands import clean
from bot.lanes import LOCAL

from bot.server import MAX_BODY

from .payload import text, user_id

BUSY = ":hourglass: I am very busy right now; please try again in a minute. Nothing was changed."


def register(app: App, service) -> None:
    @app.command("/polaris")
    def polaris_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        who = user_id(command, "user_id")
        # Read whole (the body is at most 1 MiB): the core refuses an over-long command saying its real length.
        words = text(command, "text", limit=MAX_BODY)
        trigger_id = text(command, "trigger_id", limit=200)
        if who is None:
            return
        if clean(words).lower() == "request" and trigger_id:
            open_request_form(service, who, trigger_id, respond)  # trigger_id lives 3 seconds: open now
            return
        head, _, name = clean(words).partition(" ")
        if trigger_id and (clean(words).lower() == "create-group" or (head.lower() == "edit-group" and name)):
            open_group_form(service, who, trigger_id, name.strip(), respond)
            return
        if trigger_id and head.lower() == "update-user" and name:
            open_user_form(service, who, words, trigger_id, respond)
            return

        def work() -> None:
            reply = service.handle_command(who, words, channel_id=text(command, "channel_id", limit=32))
            respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

        service.background(
            work, on_busy=lambda: respond(text=BUSY, response_type="ephemeral"), lane=service.command_lane(words)
        )


FORM_NOT_OPENED = (
    ":warning: I could not open the request form (Slack did not take it in time). Nothing was "
    "changed. Try `/polaris request` again, or type `/polaris request <group> [reason]`."
)


def open_request_form(service, who: str, trigger_id: str, respond: Respond) -> None:
    """``/polaris request`` with no arguments: open a loading modal at once (``views.open``, in the request
    thread, before the ack is sent: the ``trigger_id`` lives 3 seconds), then on the work pool admit the
    person (identity, rate limit, audit row) and fill in the groups, or show the refusal in the modal. When
    Slack does not open the modal (``expired_trigger_id`` or any failure) the person is told ephemerally."""
    view_id = service.open_request_form(trigger_id)
    if not view_id:

        def tell() -> None:
            service.request_form_not_opened(who)
            respond(text=views.esc(FORM_NOT_OPENED), response_type="ephemeral")

        service.background(tell, on_busy=lambda: respond(text=BUSY, response_type="ephemeral"), lane=LOCAL)
        return
    service.background(
        lambda: service.fill_request_form(who, view_id),
        on_busy=lambda: service.show_form_error(view_id, views.esc(BUSY)),
    )


GROUP_FORM_NOT_OPENED = (
    ":warning: I could not open the group form (Slack did not take it in time). Nothing was changed. Try "
    'again, or type `/polaris create-group "<name>" <permission> [<permission> ...] [in <project> ...]`.'
)


def open_group_form(service, who: str, trigger_id: str, name: str, respond: Respond) -> None:
    """``/polaris create-group`` alone, or ``/polaris edit-group <name>``: open the loading modal at once (the
    ``trigger_id`` lives 3 seconds), then fill it in on a work lane (admitted, admins only, the group read
    from Polaris), or show the refusal there. When Slack does not open it, the person is told ephemerally."""
    view_id = service.open_group_form(trigger_id)
    if not view_id:
        respond(text=views.esc(GROUP_FORM_NOT_OPENED), response_type="ephemeral")
        return
    service.background(
        lambda: service.fill_group_form(who, view_id, name),
        on_busy=lambda: respond(text=BUSY, response_type="ephemeral"),
    )


def open_user_form(service, who: str, words: str, trigger_id: str, respond: Respond) -> None:
    """``/polaris update-user <email | @user>``: on a work lane, admit the person (admins only), read the user
    from Polaris and open the form filled in (``views.open`` with the ``trigger_id``, which lives 3 seconds);
    an unknown user, a refusal or a form Slack did not open is a sentence, ephemeral, and no form."""

    def work() -> None:
        reply = service.open_user_form(who, words, trigger_id)
        if reply.text:
            respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    service.background(work, on_busy=lambda: respond(text=BUSY, response_type="ephemeral"))
