"""Secret redaction for logs.

:class:`RedactingFilter` replaces every registered secret (API key, Slack tokens, signing secret) and any
token-shaped string (``xox?-…``, ``xapp-…``, ``pok_…``, ``Basic …``/``Bearer …`` credentials) with
``[REDACTED]`` in a log record's message and arguments, and makes every record one line: control characters
(CR, LF, the other C0 and C1 characters except TAB, DEL, U+2028/U+2029) in the message are escaped
(``\\n``, ``\\x1b``, ``\\u2028``), and every line of a traceback after its first is indented, so nothing a request
carries can start a line that looks like a log record of its own. :func:`install` puts it on the root logger's
handlers, so library loggers (slack_sdk, urllib3, Bolt) are covered too; :func:`protect` covers a logger with
handlers of its own (gunicorn's ``gunicorn.error``).
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
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r"}
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


def one_line(text: str) -> str:
    """``text`` with every control character escaped (TAB kept): ``\\n``, ``\\r``, ``\\xNN``, ``\\u2028``."""
    return _CONTROL.sub(
        lambda m: (
            _ESCAPES.get(m.group())
            or (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}")
        ),
        text,
    )


def indented(text: str) -> str:
    """A multi-line text (a traceback) with control characters escaped within each line and every line after
    the first indented by two spaces, so none can pass for a log record."""
    first, *rest = text.split("\n")
    return "\n".join([one_line(first)] + ["  " + one_line(line) for line in rest])


class RedactingFilter(logging.Filter):
    """A logging filter that renders the record, redacts it, makes it one line (tracebacks: indented) and
    freezes the result (args cleared)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_one_line", False):  # already done by the filter of another handler
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the line
            message = str(record.msg)
        record.msg = one_line(redact(message))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = indented(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = indented(redact(record.stack_info))
        record._one_line = True
        return True


def install(level: int = logging.INFO) -> None:
    """Configure root logging once (stderr, UTC-ish timestamps) with the redaction filter on every handler."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    protect(root)


def protect(logger: logging.Logger | str) -> None:
    """Put the redaction filter on every handler of ``logger`` (a logger or its name), once."""
    logger = logging.getLogger(logger) if isinstance(logger, str) else logger
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
