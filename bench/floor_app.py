"""The floor for the ack benchmarks: a bare Bolt app whose listeners only ``ack()``, served exactly like
``python app.py serve`` (gunicorn gthread on $PORT, WEB_CONCURRENCY workers (default 2), GUNICORN_THREADS
threads (default 8), timeout 30, graceful 25, no access log, Bolt's WSGI adapter on /slack/events, a
/healthz), and a Bolt ``App`` built with the same options as ``bot.wiring.build_bolt_app`` (no token
verification, ``process_before_response=True``, a 16-thread listener executor). With ``False`` Bolt's request
thread polls for the ack in 10 ms sleeps, which made the floor ~10x slower than the product's own setting.

    SLACK_SIGNING_SECRET=... PORT=3001 python bench/floor_app.py
"""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor


def build_wsgi():
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    # Bolt's SingleTeamAuthorization calls auth.test once per process (as in the product): point the client
    # at the same Slack stand-in the product uses.
    client = WebClient(
        token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-floor"),
        base_url=os.environ.get("SLACK_API_URL", "http://127.0.0.1:9/api/"),
    )
    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=client,
        token_verification_enabled=False,
        process_before_response=True,  # as bot.wiring.build_bolt_app
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="listener"),
    )

    @app.command("/polaris")
    def command(ack):
        ack()

    @app.action(re.compile(".*"))
    def action(ack):
        ack()

    handler = SlackRequestHandler(app, path="/slack/events")

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
            return [b"{}"]
        return handler(environ, start_response)

    return application


def main() -> int:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"127.0.0.1:{int(os.environ.get('PORT', '3000'))}")
            self.cfg.set("workers", int(os.environ.get("WEB_CONCURRENCY", "2")))
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", int(os.environ.get("GUNICORN_THREADS", "8")))
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 25)
            self.cfg.set("accesslog", None)

        def load(self):
            return build_wsgi()

    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
