"""Polaris errors: a :class:`PolarisError` subclass per kind of failure, parsed from either error envelope
(bare ``{"code","message"}`` or wrapped ``{"error": {...}}``) or from an empty or non-JSON body
(:func:`error_for`), and :meth:`PolarisError.plain`, the sentence a person is told.

- 400 :class:`PolarisBadRequest`, 401/403 :class:`PolarisAuthError` (never retried), 404
  :class:`PolarisNotFound`, 409 :class:`PolarisConflict`; 408/429/5xx, timeouts and dropped connections
  :class:`PolarisUnavailable` (``transient``), and :class:`PolarisWriteUnknown` for a write that was sent
  and whose answer was lost (``outcome_unknown``).
- ``retry_after`` is read from ``Retry-After`` (seconds or an HTTP date).
"""

from __future__ import annotations

import time

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class PolarisError(Exception):
    """A Polaris call failed.

    Attributes: ``status`` (HTTP status, or ``None`` when no response came), ``code`` (Polaris error code
    such as ``BadArgument``, ``ObjectNotFound``, ``StateConflict``, ``InvalidAuthentication``, or ours:
    ``Timeout``, ``ConnectionError``, ``UnexpectedStatus``), ``message`` (Polaris's text), ``method`` and
    ``path`` of the call, ``retry_after`` (seconds, from a 429/503 ``Retry-After`` header).
    """

    transient = False

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ):
        self.status, self.code, self.message = status, code, message
        self.method, self.path, self.retry_after = method, path, retry_after
        super().__init__(f"{method} {path} -> {status if status is not None else 'no response'} {code}: {message}")

    @property
    def label(self) -> str:
        """``code`` and, when a response came, its status (``Conflict 409``; ``Timeout``): for audit details."""
        return f"{self.code} {self.status}" if self.status is not None else str(self.code)

    def plain(self) -> str:
        """A sentence for a person (Slack message, audit outcome); no secrets, no traceback."""
        return _PLAIN.get(type(self), "Polaris answered with an error") + (f": {self.message}" if self.message else "")


class PolarisBadRequest(PolarisError):
    """400: the request was invalid (e.g. a malformed email or an unknown group ID)."""


class PolarisAuthError(PolarisError):
    """401/403: the API key is wrong, expired or lacks ``AdministerUsers``. Never retried."""


class PolarisNotFound(PolarisError):
    """404: the user or group does not exist."""


class PolarisConflict(PolarisError):
    """409: the object already exists (e.g. a user with that username)."""


class PolarisUnavailable(PolarisError):
    """429, 5xx, a timeout or a dropped connection: worth retrying later."""

    transient = True
    #: True when a write was sent and it is not known whether it landed (see :class:`PolarisWriteUnknown`).
    outcome_unknown = False


class PolarisWriteUnknown(PolarisUnavailable):
    """A write that is not idempotent in effect was sent and its outcome is unknown (timeout, dropped
    connection or 5xx after sending). It may still land later (Polaris may be processing it): do not send
    it again before its time budget has passed and Polaris has been asked whether it landed."""

    outcome_unknown = True

    @classmethod
    def of(cls, error: PolarisError) -> "PolarisWriteUnknown":
        return cls(
            error.status, error.code, error.message, method=error.method, path=error.path, retry_after=error.retry_after
        )


_PLAIN = {
    PolarisBadRequest: "Polaris rejected the request",
    PolarisAuthError: "The bot's Polaris API key was refused (wrong key or missing AdministerUsers)",
    PolarisNotFound: "Polaris could not find it",
    PolarisConflict: "It already exists in Polaris",
    PolarisUnavailable: "Polaris is unavailable right now",
    PolarisWriteUnknown: "Polaris did not answer whether the change was made",
}


def error_for(status: int, method: str, path: str, body: bytes, headers: dict) -> PolarisError:
    code, message = "UnexpectedStatus", ""
    try:
        import json

        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error") if isinstance(data.get("error"), dict) else data
        code = str(inner.get("code") or code)
        message = str(inner.get("message") or "")
    elif body:
        message = body[:200].decode("utf-8", "replace").strip()
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    if status in (401, 403):
        cls = PolarisAuthError
    elif status in TRANSIENT_STATUSES:
        cls = PolarisUnavailable
    elif status == 404:
        cls = PolarisNotFound
    elif status == 409:
        cls = PolarisConflict
    elif status == 400:
        cls = PolarisBadRequest
    else:
        cls = PolarisError
    return cls(status, code, message, method=method, path=path, retry_after=retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
