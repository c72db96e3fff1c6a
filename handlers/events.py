"""Events API listeners: ``app_home_opened`` publishes the Home tab. Slack retries an event up to 3 times
(``X-Slack-Retry-Num``); each ``event_id`` is handled once (``slack_events`` table)."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot.lanes import LOCAL


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
