"""Secret redaction for logs.

:class:`RedactingFilter` replaces every registered secret (API key, Slack tokens, signing secret) and any
token-shaped string (``xox?-…``, ``xapp-…``, ``pok_…``, ``Basic …``/``Bearer …`` credentials) with
``[REDACTED]`` in a log record's message and arguments. :func:`install` puts it on the root logger's
handlers, so library loggers (slack_sdk, urllib3, gunicorn) are covered too.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

MASK = "[REDACTED]"
_PATTERNS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|pok_[A-Za-z0-9_\-]+|"
    r"(?i:(?:basic|bearer)\s+)[A-Za-z0-9+/=_\-.]{8,})"
)
_lock = threading.Lock()
_secrets: set[str] = set()


def register(secrets: Iterable[str]) -> None:
    """Remember secret values (strings of 4+ characters) to mask wherever they appear."""
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= 4)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and token-shaped strings replaced by ``[REDACTED]``."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _PATTERNS.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders the record, redacts it and freezes the result (args cleared)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(level: int = logging.INFO) -> None:
    """Configure root logging once (stderr, UTC-ish timestamps) with the redaction filter on every handler."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
