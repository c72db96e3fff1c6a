"""One global error handler: log (redacted by the root filter), never show a traceback in Slack."""
from __future__ import annotations

import logging

from slack_bolt import App

log = logging.getLogger(__name__)


def register(app: App, service) -> None:
    @app.error
    def on_error(error: Exception, body: dict) -> None:
        kind = (body or {}).get("type") or ("slash_command" if (body or {}).get("command") else "unknown")
        log.error("unhandled error in a %s listener: %s", kind, type(error).__name__, exc_info=error)
