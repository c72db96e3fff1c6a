"""The HTTP edge of ``python app.py serve``: one WSGI app in front of Bolt, ``/healthz`` and ``/metrics``.

``POST /slack/events`` passes these steps in order, and each refusal is one log line, never a traceback:

1. the body is read with a cap: a ``Content-Length`` over :data:`MAX_BODY` (1 MiB; Slack's requests are a few
   KiB) is refused with 413 before a byte is read, and a body without one (chunked) is read only up to the cap;
2. Slack's signature is checked over the raw bytes (``v0=HMAC-SHA256(secret, "v0:{ts}:{body}")``, timestamp
   within 5 minutes, https://api.slack.com/authentication/verifying-requests-from-slack): 401 when it is
   missing, wrong or stale. An unsigned body is never logged;
3. the body is decoded (UTF-8) and parsed by :func:`parse_body`, which also checks the shapes Bolt relies on:
   400 when malformed;
4. Bolt's ``App.dispatch`` gets a :class:`ParsedBoltRequest` carrying that parse (Bolt verifies the signature
   again; its own body parser, which takes any body containing the word ``payload`` for an interactive
   payload, is never used).

Socket Mode does not come through here: its payloads arrive as JSON objects that Bolt does not re-parse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from slack_bolt.context import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context

from bot.polaris import PolarisAuthError, PolarisClient, PolarisError

log = logging.getLogger("polaris_access_bot.http")

MAX_BODY = 1024 * 1024
"""Bytes: the largest request body read (Slack's are far below: a Block Kit payload is a few KiB)."""
SIGNATURE_MAX_AGE = 5 * 60
"""Seconds a signed request stays valid (Slack's rule)."""
_READ_CHUNK = 64 * 1024

EVENT_TYPES = ("url_verification", "event_callback", "app_rate_limited")
"""The ``type`` of the JSON bodies Slack's Events API sends; commands and interactivity are form-encoded."""
_ACTION_TYPES = ("block_actions", "interactive_message")
_VIEW_TYPES = ("view_submission", "view_closed")
_OBJECT_OR_ID = ("team", "enterprise", "user", "channel", "container", "view", "message", "event")


class MalformedBody(ValueError):
    """A signed body that is not a Slack request Bolt can handle; the message says why (no body content)."""


class BodyTooLarge(Exception):
    """The body is over :data:`MAX_BODY`."""


def _whole_number(value: str, digits: int) -> bool:
    """``value`` is ASCII digits only, at most ``digits`` of them (``str.isdigit`` alone admits ``²`` and
    numbers too long for ``int()``)."""
    return 0 < len(value) <= digits and value.isascii() and value.isdigit()


def read_body(environ: dict, limit: int = MAX_BODY) -> bytes:
    """The request body, at most ``limit`` bytes.

    Raises :class:`BodyTooLarge` when ``CONTENT_LENGTH`` is over ``limit`` (nothing is read), or when a body
    without a length (chunked, ``wsgi.input_terminated``) goes past ``limit`` (at most ``limit`` + 64 KiB is
    read); :class:`MalformedBody` when ``CONTENT_LENGTH`` is not a whole number."""
    stream = environ.get("wsgi.input")
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if stream is None:
        return b""
    if length:
        if not _whole_number(length, 12):
            raise MalformedBody("Content-Length is not a number")
        if int(length) > limit:
            raise BodyTooLarge()
        return stream.read(int(length))
    if not environ.get("wsgi.input_terminated"):
        return b""  # PEP 3333: without a length, only a server that terminates the input may be read to its end
    chunks, total = [], 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge()
        chunks.append(chunk)


def signature_problem(secret: str, raw: bytes, timestamp: str | None, signature: str | None, now: float) -> str | None:
    """Why the Slack signature of ``raw`` is not valid (``"missing"``, ``"timestamp not a number"``,
    ``"stale"``, ``"wrong"``), or ``None``.
    ``timestamp`` is ``X-Slack-Request-Timestamp`` (Unix seconds), ``signature`` is ``X-Slack-Signature``."""
    if not timestamp or not signature:
        return "missing"
    if not _whole_number(timestamp, 12):
        return "timestamp not a number"
    if abs(now - int(timestamp)) > SIGNATURE_MAX_AGE:
        return "stale"
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")) else "wrong"


def parse_body(body: str, content_type: str | None) -> dict[str, Any]:
    """The dict Bolt routes on, from a decoded request body (Bolt's ``parse_body`` rule, corrected).

    JSON (``application/json``, or a body starting with ``{``) must be an object of an Events API ``type``
    (:data:`EVENT_TYPES`). A form is an interactive payload only when it has a real ``payload`` field (whose
    JSON object is returned); any other form must be a slash command (``command``) or Slack's ``ssl_check``
    and is returned as its fields. Raises :class:`MalformedBody` otherwise, or when a value Bolt reads has
    the wrong shape (see :func:`check_shape`)."""
    if (content_type or "").lower() == "application/json" or body.startswith("{"):
        data = _json_object(body, "the JSON body")
        if data.get("type") not in EVENT_TYPES:
            raise MalformedBody("a JSON body must be an Events API event (commands and interactivity are forms)")
    else:
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" in fields:
            data = _json_object(fields["payload"], "the payload field")
            if not isinstance(data.get("type"), str):
                raise MalformedBody("an interactive payload without a type")
        elif isinstance(fields.get("command"), str) and fields["command"].startswith("/") or "ssl_check" in fields:
            data = fields
        else:
            raise MalformedBody("a form without a command or a payload field")
    check_shape(data)
    return data


def _json_object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedBody(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedBody(f"{what} is not a JSON object")
    return data


def check_shape(data: dict) -> None:
    """Raise :class:`MalformedBody` where a value Bolt reads without checking has the wrong type: ``type``
    (a string), ``actions`` of a button click (a non-empty list of objects), ``view`` of a form submission,
    ``event`` of an event callback (an object with a string ``type``), the team/user/channel references (an
    object or an ID) and ``authorizations`` (a list of objects)."""
    kind = data.get("type")
    if kind is not None and not isinstance(kind, str):
        raise MalformedBody("type is not a string")
    for key in _OBJECT_OR_ID:
        if data.get(key) is not None and not isinstance(data[key], (dict, str)):
            raise MalformedBody(f"{key} is neither an object nor an ID")
    authorizations = data.get("authorizations")
    if authorizations is not None and not (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        raise MalformedBody("authorizations is not a list of objects")
    if kind in _ACTION_TYPES:
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            raise MalformedBody("actions is not a non-empty list of objects")
    if kind in _VIEW_TYPES and not isinstance(data.get("view"), dict):
        raise MalformedBody("view is not an object")
    if kind == "event_callback":
        event = data.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedBody("event is not an object with a type")


class ParsedBoltRequest(BoltRequest):
    """A ``BoltRequest`` in HTTP mode whose ``body`` is the dict :func:`parse_body` made, not Bolt's parse of
    ``raw_body`` (which stays the signed text Bolt's verification reads)."""

    def __init__(
        self, *, raw_body: str, body: dict, query: Any = None, headers: dict | None = None, context: dict | None = None
    ):
        super().__init__(body="", query=query, headers=headers, context=context, mode="http")
        self.raw_body, self.body = raw_body, body
        self.context = build_context(BoltContext(context if context else {}), body)

    def to_copyable(self) -> "ParsedBoltRequest":
        """A copy for Bolt's lazy listeners, with the same parse."""
        return ParsedBoltRequest(
            raw_body=self.raw_body,
            body=self.body,
            query=self.query,
            headers=self.headers,
            context=self.context.to_copyable(),
        )


# ----------------------------------------------------------------------------------------- health
def probe_polaris(client: PolarisClient) -> str:
    """One short call (``GET /v1/permissions``): ``"ok"``, ``"unauthorized"`` (401/403: the API key was
    refused) or ``"unreachable"`` (timeout, refused connection, 5xx, 429)."""
    try:
        client.list_permissions()
        return "ok"
    except PolarisAuthError:
        return "unauthorized"
    except PolarisError:
        return "unreachable"


def probe_client(settings) -> PolarisClient | None:
    """A Polaris client for health probes: one attempt, 2 s connect and 3 s read timeout; ``None`` without
    ``POLARIS_API_URL``."""
    if not settings.polaris_api_url:
        return None
    return PolarisClient(settings.polaris_api_url, settings.polaris_api_key, timeout=(2.0, 3.0), max_attempts=1)


class Health:
    """``GET /healthz``: 200 when the database answers (503 when not), with Polaris's state in the body:
    ``{"database": "ok" | "unreachable", "polaris": "ok" | "unauthorized" | "unreachable"}``.

    Polaris's state is known from the start: ``initial`` (the probe ``serve`` made before the workers started)
    or else one synchronous probe now. After ``ttl`` seconds it is probed again in the background with one
    short call, so the answer is immediate even when Polaris hangs. The body never carries a secret."""

    def __init__(self, core, ttl: float = 30.0, initial: str | None = None):
        self.core, self.ttl = core, ttl
        self._lock = threading.Lock()
        self._probing = False
        self._probe_client = probe_client(core.settings)
        if initial is None:
            initial = probe_polaris(self._probe_client) if self._probe_client else "unreachable"
        self._state, self._at = initial, time.monotonic()

    def _probe(self) -> None:
        state = probe_polaris(self._probe_client)
        if state == "unauthorized" and self._state != "unauthorized":
            log.error("Polaris refused the API key (check POLARIS_API_KEY and its AdministerUsers permission)")
        with self._lock:
            self._state, self._at, self._probing = state, time.monotonic(), False

    def polaris_state(self) -> str:
        """The last known state; starts a background probe when it is older than ``ttl``."""
        with self._lock:
            due = time.monotonic() - self._at >= self.ttl and not self._probing and self._probe_client is not None
            if due:
                self._probing = True
            state = self._state
        if due:
            threading.Thread(target=self._probe, name="health-probe", daemon=True).start()
        return state

    def __call__(self) -> tuple[int, dict]:
        db_ok = self.core.db.ping()
        body = {"database": "ok" if db_ok else "unreachable", "polaris": self.polaris_state()}
        return (200 if db_ok else 503), body


# ------------------------------------------------------------------------------------------ WSGI
_PHRASES = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    503: "Service Unavailable",
}


class SlackEdge:
    """The WSGI app: ``POST /slack/events`` through the steps of this module's docstring into ``bolt_app``,
    ``GET``/``HEAD /healthz`` answered by ``health``, ``GET /metrics`` by ``metrics`` (``() -> (status, body,
    content type)``, :class:`bot.metrics.Exposition`; 404 without it), 404 for anything else. ``clock`` gives
    Unix seconds."""

    def __init__(
        self,
        bolt_app,
        signing_secret: str,
        health: Callable[[], tuple[int, dict]],
        *,
        path: str = "/slack/events",
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
        metrics: Callable[[], tuple[int, bytes, str]] | None = None,
    ):
        self.bolt_app, self.secret, self.health, self.metrics = bolt_app, signing_secret, health, metrics
        self.path, self.max_body, self.clock = path, max_body, clock

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        head = method == "HEAD"  # every answer to HEAD: headers only
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return self._answer(start_response, 405, b"Method Not Allowed", extra=[("Allow", "GET, HEAD")])
            status, body = self.health()
            return self._answer(start_response, status, json.dumps(body).encode(), "application/json", head=head)
        if path == "/metrics" and self.metrics is not None:
            if method not in ("GET", "HEAD"):
                return self._answer(start_response, 405, b"Method Not Allowed", extra=[("Allow", "GET, HEAD")])
            status, body, content_type = self.metrics()
            return self._answer(start_response, status, body, content_type, head=head)
        if path != self.path:
            return self._answer(start_response, 404, b"Not Found", head=head)
        if method != "POST":
            return self._answer(start_response, 405, b"Method Not Allowed", extra=[("Allow", "POST")], head=head)
        status, headers, body = self.handle(environ)
        return self._answer(start_response, status, body, extra=headers)

    def handle(self, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        """One ``POST`` to the events path: (status, headers, body)."""
        peer = environ.get("REMOTE_ADDR", "?")
        try:
            raw = read_body(environ, self.max_body)
        except BodyTooLarge:
            log.warning("refused a request from %s: body over %d bytes", peer, self.max_body)
            return 413, [("Connection", "close")], b"Content Too Large"
        except MalformedBody as e:
            log.warning("refused a request from %s: %s", peer, e)
            return 400, [("Connection", "close")], b"Bad Request"
        headers = _headers(environ)
        problem = signature_problem(
            self.secret,
            raw,
            _first(headers, "x-slack-request-timestamp"),
            _first(headers, "x-slack-signature"),
            self.clock(),
        )
        if problem:
            log.warning("refused a request from %s: signature %s", peer, problem)
            return 401, [], b'{"error": "invalid request"}'
        try:
            text = raw.decode("utf-8")
            body = parse_body(text, (_first(headers, "content-type") or "").split(";")[0].strip() or None)
            request = ParsedBoltRequest(
                raw_body=text, body=body, query=environ.get("QUERY_STRING", ""), headers=headers
            )
        except UnicodeDecodeError:
            log.warning("refused a signed request from %s: the body is not UTF-8", peer)
            return 400, [], b"Bad Request"
        except MalformedBody as e:
            log.warning("refused a signed request from %s: %s", peer, e)
            return 400, [], b"Bad Request"
        except Exception as e:  # Bolt could not read the context out of an oddly shaped body
            log.warning("refused a signed request from %s: Bolt cannot read it (%s)", peer, type(e).__name__)
            return 400, [], b"Bad Request"
        try:
            response = self.bolt_app.dispatch(request)
        except Exception as e:  # Bolt's routing fell over an oddly shaped value: the body, not us
            log.warning("refused a signed request from %s: Bolt cannot route it (%s)", peer, type(e).__name__)
            return 400, [], b"Bad Request"
        out = [
            (name, value)
            for name, values in response.headers.items()
            if name.lower() != "content-length"
            for value in values
        ]
        return response.status, out, (response.body or "").encode("utf-8")

    @staticmethod
    def _answer(
        start_response,
        status: int,
        body: bytes,
        content_type: str | None = "text/plain;charset=utf-8",
        *,
        head: bool = False,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        headers = list(extra or [])
        if content_type and not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_PHRASES.get(status, 'Unknown')}", headers)
        return [] if head else [body]


def _headers(environ: dict) -> dict[str, list[str]]:
    """Request headers as Bolt wants them: lower-case names, each a list of values."""
    headers = {}
    for key, value in environ.items():
        if key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            headers[key.lower().replace("_", "-")] = [value]
        elif key.startswith("HTTP_"):
            headers[key[5:].lower().replace("_", "-")] = [value]
    return headers


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None
