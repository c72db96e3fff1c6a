"""Log set-up of every process (``serve`` and its gunicorn workers, ``socket``, ``migrate``, ``sandbox``, and any
command built on :func:`setup`): plain text lines (the default) or, with ``LOG_FORMAT=json``, one JSON object a
line (python-json-logger): ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id`` when the
line is about an access request, and ``exc_info`` (the traceback, redacted, as one string) for an error.

Every record is redacted and made one line first (:mod:`bot.redact`). In JSON mode the lines that do not come
from ``logging`` go through it too: gunicorn's own (:func:`gunicorn_logger_class`), Python warnings, uncaught
exceptions of the main and other threads, and the messages the CLI prints (:func:`say`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from . import redact

FORMATS = ("text", "json")
_format = "text"


class LogFormatError(ValueError):
    """``LOG_FORMAT`` is neither ``text`` nor ``json``."""


def log_format() -> str:
    """``LOG_FORMAT`` from the environment (``text`` when unset). Raises :class:`LogFormatError`."""
    value = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
    if value not in FORMATS:
        raise LogFormatError(f"LOG_FORMAT must be text or json, not {value[:20]!r}")
    return value


def _request_id() -> str | None:
    from .audit import current_request_id

    return current_request_id()


def json_formatter() -> logging.Formatter:
    """The JSON formatter (a new one each call): ``time``, ``level``, ``logger``, ``message`` and, where there is
    one, ``request_id``; the traceback as the redacted ``exc_info`` text :class:`bot.redact.RedactingFilter` made."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    class Formatter(JsonFormatter):
        def add_fields(self, log_data, record, message_dict):
            super().add_fields(log_data, record, message_dict)
            request_id = getattr(record, "request_id", None) or _request_id()
            if request_id:
                log_data["request_id"] = request_id

        def format(self, record):
            saved = record.exc_info
            if record.exc_text:  # redacted by the filter: never format the raw exception again
                record.exc_info = None
            try:
                return super().format(record)
            finally:
                record.exc_info = saved

        def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
            import datetime as dt

            return dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds")

    return Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, "_one_line", "request_id"],
        json_ensure_ascii=False,
    )


def text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def formatter() -> logging.Formatter:
    """The formatter of the format chosen by :func:`setup`."""
    return json_formatter() if _format == "json" else text_formatter()


def setup(fmt: str | None = None, level: int = logging.INFO) -> str:
    """Configure root logging once per process: a stderr handler with the redaction filter and the chosen
    format (``fmt``, else ``LOG_FORMAT``). In JSON mode also Python warnings, uncaught exceptions (main thread
    and others) go through logging. Returns the format. Raises :class:`LogFormatError`."""
    global _format
    _format = fmt or log_format()
    root = logging.getLogger()
    redact.install(level)  # adds the stderr handler when there is none, and the filter
    for handler in root.handlers:
        handler.setFormatter(formatter())
    if _format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _uncaught
        threading.excepthook = lambda args: _uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    return _format


def _uncaught(exc_type, exc_value, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        return
    logging.getLogger("polaris_access_bot").critical("uncaught exception", exc_info=(exc_type, exc_value, tb))


def say(message: str, *, level: int = logging.INFO, stream=None) -> None:
    """A line the CLI shows the operator: printed as it is in text mode (on ``stream``, stdout by default), a
    JSON log record of logger ``polaris_access_bot`` in JSON mode."""
    if _format == "json":
        logging.getLogger("polaris_access_bot").log(level, message)
    else:
        print(message, file=stream or sys.stdout, flush=True)


def gunicorn_logger_class():
    """A ``gunicorn.glogging.Logger`` subclass whose error and access logs use :func:`formatter` and the
    redaction filter (gunicorn's loggers have handlers of their own and do not propagate)."""
    from gunicorn import glogging

    class Logger(glogging.Logger):
        def setup(self, cfg):
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(formatter())
                redact.protect(logger)

    return Logger
