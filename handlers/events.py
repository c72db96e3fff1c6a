"""Events API listeners: ``app_home_opened`` publishes the Home tab; ``user_change`` with ``deleted: true``
(a Slack account deactivated) opens an offboarding card for the admins; ``app_mention`` and messages in the bot's
Messages tab (``message.im``) get a short answer pointing to ``/polaris help``; every other ``message`` event
(channels, edits, the bot's own posts) is acknowledged and left alone. Slack retries an event up to 3 times
(``X-Slack-Retry-Num``); each ``event_id`` is handled once (``slack_events`` table)."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot.lanes import LOCAL, POLARIS

from .payload import dig, text, user_id as slack_user_id


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def register(app: App, service) -> None:
    @app.event("app_home_opened")
    def home_opened(ack: Ack, event: dict, body: dict) -> None:
        ack()
        if event.get("tab", "home") != "home":
            return
        user_id = event.get("user") if isinstance(event.get("user"), str) else ""
        event_id = body.get("event_id") if isinstance(body.get("event_id"), str) else ""
        if not user_id:
            return

        def work() -> None:
            if service.first_delivery(event_id):
                service.publish_home(user_id)

        service.background(work, lane=LOCAL)  # the database and Slack only: never behind a slow Polaris

    @app.event("user_change")
    def user_changed(ack: Ack, event: dict, body: dict) -> None:
        ack()
        if dig(event, "user", "deleted") is not True:  # every other profile change: nothing to do
            return
        who = slack_user_id(event, "user", "id")
        email = text(event, "user", "profile", "email", limit=320)
        event_id = text(body, "event_id", limit=64)
        if who is None:
            return

        def work() -> None:
            if service.first_delivery(event_id):
                service.slack_user_deactivated(who, email)

        service.background(work, lane=POLARIS)  # looks the person up in Polaris

    register_conversation(app, service)


def register_conversation(app: App, service) -> None:
    """A mention of the bot, and a message in its Messages tab: a short answer pointing to ``/polaris help``."""

    @app.event("app_mention")
    def mentioned(ack: Ack, event: dict, body: dict) -> None:
        ack()
        if event.get("bot_id") or event.get("subtype"):
            return
        user_id, channel_id = _text(event.get("user")), _text(event.get("channel"))
        thread_ts = _text(event.get("thread_ts")) or None
        event_id = _text(body.get("event_id"))
        service.background(
            lambda: service.answer_mention(event_id, user_id, channel_id, direct=False, thread_ts=thread_ts),
            lane=LOCAL,
        )

    @app.event("message")
    def message(ack: Ack, event: dict, body: dict) -> None:
        ack()
        # Only what a person wrote to the bot in its Messages tab: no edits, joins or bot posts (its own answer
        # comes back as a message event too), never a channel message.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        user_id, channel_id, event_id = (
            _text(event.get("user")),
            _text(event.get("channel")),
            _text(body.get("event_id")),
        )
        service.background(lambda: service.answer_mention(event_id, user_id, channel_id, direct=True), lane=LOCAL)
