"""Events API listeners: ``app_home_opened`` publishes the Home tab; ``user_change`` with ``deleted: true``
(a Slack account deactivated) opens an offboarding card for the admins. Slack retries an event up to 3 times
(``X-Slack-Retry-Num``); each ``event_id`` is handled once (``slack_events`` table)."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot.lanes import LOCAL, POLARIS

from .payload import dig, text, user_id as slack_user_id


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
