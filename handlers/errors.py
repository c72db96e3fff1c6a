"""One global error handler: one log line (redacted and made one line by the root filter), never a traceback in
the log or in Slack, never an HTTP 500 to Slack."""

from __future__ import annotations

import logging
import os
import traceback

from slack_bolt import App, BoltResponse

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SORRY = "Sorry, that failed on our side and nothing was changed. Please try again in a minute."


def where(error: BaseException) -> str:
    """``path:line in function`` of the innermost frame of ``error``'s traceback in this project (else the
    innermost frame at all), paths relative to the project; ``"?"`` without a traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    ours = [f for f in frames if f.filename.startswith(ROOT + os.sep) and os.sep + ".venv" + os.sep not in f.filename]
    frame = (ours or frames)[-1]
    name = os.path.relpath(frame.filename, ROOT) if ours else os.path.basename(frame.filename)
    return f"{name}:{frame.lineno} in {frame.name}"


def register(app: App, service) -> None:
    @app.error
    def on_error(error: Exception, body: dict) -> BoltResponse:
        body = body if isinstance(body, dict) else {}
        kind = body.get("type") or ("slash_command" if body.get("command") else "unknown")
        log.error("unhandled error in a %s listener: %s at %s", kind, type(error).__name__, where(error))
        # Slack shows a slash command's ack text to the person (ephemeral); other acks carry no text.
        return BoltResponse(status=200, body=SORRY if kind == "slash_command" else "")
