"""A local stand-in for the Slack Web API and for interaction ``response_url`` endpoints.

``slack_sdk`` talks to Slack with ``urllib``, so HTTP mocking libraries such as ``responses`` cannot see
its calls. Tests, the demo console and the benchmarks instead start a :class:`SlackStandIn`, which serves
real HTTP on 127.0.0.1, and point ``WebClient(token=..., base_url=standin.api_url)`` at it::

    standin = SlackStandIn()
    standin.serve()
    standin.add_user("U123", "ada", "ada@example.com")
    client = WebClient(token=standin.bot_token, base_url=standin.api_url)
    client.chat_postMessage(channel="C1", text="hi")
    assert standin.messages_in("C1")[0]["text"] == "hi"
    standin.shutdown()

Wire format (as the real Web API, https://api.slack.com/web):

- Any method is ``POST`` (or ``GET``) to ``/api/<method>``; arguments come from the query string and from a
  form-encoded, multipart or JSON (``application/json;charset=utf-8``) body. ``blocks``, ``attachments``,
  ``view`` and ``metadata`` sent as JSON strings in form bodies are decoded.
- The token is ``Authorization: Bearer <token>`` (or a ``token`` argument). Missing: ``not_authed``; wrong:
  ``invalid_auth``.
- Answers are HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a rate limit is
  HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}`` (injected with
  :meth:`SlackStandIn.fail_next`); a standing refusal for one user or channel (``user_disabled``,
  ``not_in_channel`` …) is set with :meth:`SlackStandIn.fail_for`; a slow answer of one method is injected
  with :meth:`SlackStandIn.delay_next`.
- Block Kit payloads are checked against the documented limits (50 blocks a message, 100 a view, header
  150 characters, section text 3000, 10 fields, 25 actions elements, button ``value`` 2000, ``action_id`` /
  ``block_id`` 255 and unique, modal title 24, ``private_metadata`` 3000, ``submit`` required with input
  blocks); a violation answers ``invalid_blocks`` (messages) or ``invalid_arguments`` (views) with
  ``response_metadata.messages`` like Slack.

``response_url`` endpoints live at ``/response/<key>`` on the same server: JSON posts are recorded in
:attr:`SlackStandIn.responses`, at most five per URL (the sixth gets HTTP 404 ``expired_url``); a ``GET`` of it
answers ``{"ok": true, "answers": [...]}``, each post rendered as text (``python -m standins.sandbox post``).

Everything is guarded by one re-entrant lock (:attr:`SlackStandIn.lock`); hold it when reading the
recorded lists while a server thread may still be writing.
"""

from __future__ import annotations

import contextvars
import copy
import email.parser
import email.policy
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from standins.polaris_sandbox import nodelay

TEAM_ID = "T0STANDIN"
TEAM_NAME = "Stand-in Workspace"
TEAM_URL = "https://standin.slack.com/"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
BOT_NAME = "polaris-access-bot"
APP_ID = "A0STANDIN"

#: Most posts Slack accepts on one ``response_url``.
RESPONSE_URL_MAX_POSTS = 5
#: Arguments that slack_sdk (or a hand-built form body) may send as JSON strings.
_JSON_ARGS = frozenset({"blocks", "attachments", "view", "metadata"})
_MESSAGE_MAX_BLOCKS = 50
_VIEW_MAX_BLOCKS = 100
_TEXT_MAX = 40000


class _Failure:
    __slots__ = ("status", "retry_after", "error")

    def __init__(self, status: int, retry_after: int, error: str) -> None:
        self.status = status
        self.retry_after = retry_after
        self.error = error


class _Reply:
    """One HTTP answer: status, headers and a JSON-able (or text) body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class SlackApiArgumentError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": ...}`` (HTTP 200)."""

    def __init__(self, error: str, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []


class SlackStandIn:
    """In-process fake of the Slack Web API plus ``response_url`` endpoints, served over real HTTP.

    State (all guarded by :attr:`lock`; the lists are appended in call order):

    - ``users``: user id -> the ``user`` object ``users.info`` returns (see :meth:`add_user`).
    - ``usergroups``: user group id (``S...``) -> member user ids, for ``usergroups.users.list``.
    - ``profile_fields``: user id -> ``{field_id: {"value": ..., "alt": ""}}``, returned as
      ``profile.fields`` by ``users.profile.get``.
    - ``messages``: channel messages from ``chat.postMessage``: ``{"channel", "ts", "text", "blocks",
      "user" (the bot user), "thread_ts", "updates", ...}``. ``chat.update`` edits the dict in place and
      increments ``"updates"``.
    - ``ephemerals``: ``chat.postEphemeral`` posts: ``{"channel", "user", "text", "blocks", ...}``.
    - ``responses``: posts to a ``response_url``: ``{"key", "text", "blocks", "response_type",
      "replace_original", "delete_original"}``.
    - ``views``: ``views.open`` / ``views.update`` / ``views.publish`` / ``views.push`` calls that
      succeeded: ``{"method", "view" (the resulting view object), "trigger_id", "view_id", "user_id"}``.
    - ``calls``: every Web API request received, failed or not: ``(method, args)`` with the token removed.

    Knobs beyond the required interface:

    - ``latency``: seconds to sleep (outside the lock) before answering each Web API call, to imitate
      network round trips in benchmarks. Default 0.
    - ``strict_trigger_ids``: when true, a ``trigger_id`` used twice is refused with
      ``exchanged_trigger_id`` as Slack does. Default false, so tests may reuse made-up trigger ids.
    """

    def __init__(self, bot_token: str = "xoxb-standin-token") -> None:
        self.bot_token = bot_token
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.profile_fields: dict[str, dict] = {}
        self.messages: list[dict] = []
        self.ephemerals: list[dict] = []
        self.responses: list[dict] = []
        self.views: list[dict] = []
        self.calls: list[tuple[str, dict]] = []
        self.latency: float = 0.0
        self.strict_trigger_ids: bool = False
        self.api_url: str = ""
        self.base_url: str = ""

        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, deque[float]] = {}
        self._rules: list[list] = []  # [method, match args, error, times left or None]
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._view_store: dict[str, dict] = {}
        self._external_ids: dict[str, str] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._response_posts: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict], dict]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.profile.get": self._users_profile_get,
            "usergroups.users.list": self._usergroups_users_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    # ------------------------------------------------------------------ fixtures

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None,
        *,
        real_name: str | None = None,
        first_name: str = "",
        last_name: str = "",
        is_bot: bool = False,
        deleted: bool = False,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        tz: str = "UTC",
    ) -> dict:
        """Register a workspace member and return its ``users.info`` ``user`` object (stored, live).

        The shape follows https://api.slack.com/types/user: ``id``, ``team_id``, ``name``, ``real_name``,
        ``deleted``, ``is_bot``, ``is_restricted`` / ``is_ultra_restricted`` (guests), ``is_admin``,
        ``tz`` and a ``profile`` with ``email`` (left out when ``email`` is None, as when the app lacks
        ``users:read.email`` or the member is a bot), ``real_name``, ``display_name``, ``first_name``,
        ``last_name``. ``real_name`` defaults to "first last" or else ``name``.
        """
        if real_name is None:
            real_name = " ".join(p for p in (first_name, last_name) if p) or name
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": name,
            "display_name_normalized": name,
            "first_name": first_name,
            "last_name": last_name,
            "title": "",
            "phone": "",
            "status_text": "",
            "status_emoji": "",
            "team": TEAM_ID,
        }
        if email is not None:
            profile["email"] = email
        if is_bot:
            profile["bot_id"] = "B" + user_id.lstrip("UW")
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": deleted,
            "color": "9f69e7",
            "tz": tz,
            "tz_label": tz,
            "tz_offset": _tz_offset(tz),
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": is_restricted,
            "is_ultra_restricted": is_ultra_restricted,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1700000000,
            "profile": profile,
        }
        with self.lock:
            self.users[user_id] = user
        return user

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int = 1, error: str = "ratelimited", times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (queued after failures already pending).

        - ``status=429``: HTTP 429, ``Retry-After: <retry_after>``, body ``{"ok": false, "error": error}`` —
          Slack's rate-limit answer (https://api.slack.com/apis/rate-limits).
        - ``status=200``: HTTP 200 ``{"ok": false, "error": error}`` (e.g. ``expired_trigger_id``).
        - ``status`` 5xx: that HTTP status with ``{"ok": false, "error": ...}`` (``internal_error`` when
          ``error`` was left at ``"ratelimited"``).
        """
        if times < 1:
            return
        if status >= 500 and error == "ratelimited":
            error = "internal_error"
        with self.lock:
            queue = self._failures.setdefault(method, deque())
            for _ in range(times):
                queue.append(_Failure(status, retry_after, error))

    def delay_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer ``seconds`` late (the call is recorded at once;
        the sleep is outside :attr:`lock`, so other calls proceed). Applies before any :meth:`fail_next`."""
        if times < 1 or seconds <= 0:
            return
        with self.lock:
            self._delays.setdefault(method, deque()).extend([float(seconds)] * times)

    def fail_for(self, method: str, error: str, *, times: int | None = None, **match: str) -> None:
        """Make ``method`` answer HTTP 200 ``{"ok": false, "error": error}`` whenever every ``match`` argument
        equals the call's argument of that name, e.g. ``fail_for("conversations.open", "user_disabled",
        users="U1")`` or ``fail_for("chat.update", "not_in_channel", channel="C1")``; ``times`` = None: for
        good (until :meth:`clear_failures`). Checked after the :meth:`fail_next` queue."""
        with self.lock:
            self._rules.append([method, dict(match), error, times])

    def clear_failures(self) -> None:
        """Drop every pending :meth:`fail_next` failure and :meth:`fail_for` rule."""
        with self.lock:
            self._failures.clear()
            self._rules.clear()

    def _rule_error(self, method: str, args: dict) -> str | None:
        for rule in self._rules:
            name, match, error, left = rule
            if name == method and all(str(args.get(k)) == str(v) for k, v in match.items()):
                if left is not None:
                    rule[3] = left - 1
                    if rule[3] <= 0:
                        self._rules.remove(rule)
                return error
        return None

    # ------------------------------------------------------------------ queries

    def dm_channel(self, user_id: str) -> str:
        """The IM channel id ``conversations.open`` returns for ``user_id``: ``"D" + user_id``."""
        return "D" + user_id

    def messages_in(self, channel: str, *, replies: bool = False) -> list[dict]:
        """Channel messages posted to ``channel``, oldest first (the stored dicts, so edits show up). Like
        ``conversations.history``, thread replies are left out unless ``replies`` is true."""
        with self.lock:
            return [m for m in self.messages if m["channel"] == channel and (replies or not m.get("thread_ts"))]

    def thread_replies(self, channel: str, thread_ts: str) -> list[dict]:
        """The replies in the thread of the message ``thread_ts`` in ``channel``, oldest first (like
        ``conversations.replies`` without the parent)."""
        with self.lock:
            return [m for m in self.messages if m["channel"] == channel and m.get("thread_ts") == thread_ts]

    def find_message(self, channel: str, ts: str) -> dict | None:
        """The stored message at ``(channel, ts)``, or None."""
        with self.lock:
            for m in self.messages:
                if m["channel"] == channel and m["ts"] == ts:
                    return m
        return None

    def response_url(self, key: str | None = None) -> str:
        """A fresh ``response_url`` on this server: ``{base_url}/response/{key or uuid4 hex}``.

        JSON posts to it are recorded in :attr:`responses` with that key; like Slack, one URL accepts at most
        five posts (the sixth and later get HTTP 404 with body ``expired_url``). Requires :meth:`serve`.
        Posts to ``/response/<anything>`` are accepted too, so hand-built payloads work.
        """
        if not self.base_url:
            raise RuntimeError("SlackStandIn.serve() must be called before response_url()")
        key = key or uuid.uuid4().hex
        with self.lock:
            self._response_posts.setdefault(key, 0)
        return f"{self.base_url}/response/{key}"

    # ------------------------------------------------------------------ server

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start a ``ThreadingHTTPServer`` on ``host:port`` (0 = any free port) in a daemon thread.

        Sets :attr:`base_url` (``http://127.0.0.1:PORT``) and :attr:`api_url` (``{base_url}/api/``, with the
        trailing slash ``WebClient(base_url=...)`` expects).
        """
        if self._server is not None:
            raise RuntimeError("SlackStandIn is already serving")
        handler = _make_handler(self)
        server = _Server((host, port), handler)
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self.api_url = f"{self.base_url}/api/"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-standin", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the server and close its socket. Safe to call twice or before :meth:`serve`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "SlackStandIn":
        if self._server is None:
            self.serve()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ rendering

    def render(self, message: dict) -> str:
        """Plain-text rendering of a message (or view) for a terminal.

        Handles ``header`` (``=== Title ===``), ``section`` (text, ``fields`` as ``  • field`` lines,
        accessory), ``context`` (elements joined with `` | ``), ``divider`` (a rule), ``actions``,
        ``image``, ``input`` and ``rich_text``; buttons show as ``[Label] (action_id)``, selects as
        ``<Placeholder ▾> (action_id)``. A view also shows its title, and its submit/close buttons.
        mrkdwn is shown as Slack shows it (:func:`_mrkdwn`): mentions as ``@name`` (the users known here),
        ``<!channel>`` as ``@channel``, links as ``label (url)``, and the escapes ``&amp; &lt; &gt;`` decoded, so
        an escaped ``&lt;!channel&gt;`` is the visible, harmless text ``<!channel>``. Without blocks the
        message's ``text`` is shown.
        """
        with self.lock:
            names = {uid: str(u.get("name") or uid) for uid, u in self.users.items()}
        reset = _NAMES.set(names)
        try:
            return self._render(message)
        finally:
            _NAMES.reset(reset)

    def _render(self, message: dict) -> str:
        lines: list[str] = []
        if message.get("type") in ("modal", "home"):
            title = _text_of(message.get("title"))
            lines.append(f"[{message['type']}] {title}".rstrip())
        blocks = message.get("blocks") or []
        if not blocks:
            if message.get("type") not in ("modal", "home") or message.get("text"):
                lines.append(_mrkdwn(str(message.get("text") or "")))
        for block in blocks:
            if isinstance(block, dict):
                lines.extend(_render_block(block))
        if message.get("type") == "modal":
            buttons = [f"[{_text_of(message[k])}]" for k in ("close", "submit") if message.get(k)]
            if buttons:
                lines.append("  ".join(buttons))
        return "\n".join(lines)

    # ------------------------------------------------------------------ dispatch

    def handle_api(self, method: str, args: dict, authorization: str | None) -> _Reply:  # noqa: C901
        """Answer one Web API call (used by the HTTP handler; callable directly)."""
        token = args.pop("token", None)
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        with self.lock:
            self.calls.append((method, copy.deepcopy(args)))
            queue = self._failures.get(method)
            failure = queue.popleft() if queue else None
            if failure is None:
                refused = self._rule_error(method, args)
                if refused is not None:
                    failure = _Failure(200, 0, refused)
            delays = self._delays.get(method)
            delay = delays.popleft() if delays else 0.0
        if delay:
            time.sleep(delay)
        if failure is not None:
            body = {"ok": False, "error": failure.error}
            if failure.status == 429:
                return _Reply(429, body, {"Retry-After": str(failure.retry_after)})
            return _Reply(failure.status, body)
        handler = self._methods.get(method)
        if handler is None:
            return _Reply(200, {"ok": False, "error": "unknown_method", "req_method": method})
        if method != "api.test":
            if not token:
                return _Reply(200, {"ok": False, "error": "not_authed"})
            if token != self.bot_token:
                return _Reply(200, {"ok": False, "error": "invalid_auth"})
        try:
            with self.lock:
                result = handler(args)
        except SlackApiArgumentError as e:
            body = {"ok": False, "error": e.error}
            if e.messages:
                body["errors"] = list(e.messages)
                body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in e.messages]}
            return _Reply(200, body)
        return _Reply(200, {"ok": True, **result})

    def handle_response_url(self, key: str, payload: Any) -> _Reply:
        """Answer one post to ``/response/<key>`` (Slack's response_url): record it or refuse it."""
        if not isinstance(payload, dict):
            return _Reply(400, "invalid_payload")
        with self.lock:
            used = self._response_posts.get(key, 0)
            if used >= RESPONSE_URL_MAX_POSTS:
                return _Reply(404, "expired_url")
            if not (
                payload.get("text")
                or payload.get("blocks")
                or payload.get("attachments")
                or payload.get("delete_original")
            ):
                return _Reply(400, "no_text")
            self._response_posts[key] = used + 1
            self.responses.append(
                {
                    "key": key,
                    "text": payload.get("text"),
                    "blocks": payload.get("blocks"),
                    "response_type": payload.get("response_type"),
                    "replace_original": _truthy(payload.get("replace_original")),
                    "delete_original": _truthy(payload.get("delete_original")),
                }
            )
        return _Reply(200, {"ok": True})

    # ------------------------------------------------------------------ helpers for methods

    def _next_ts(self) -> str:
        micros = 1700000000_000000 + next(self._ts_counter) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._id_counter):08d}"

    def _resolve_channel(self, channel: Any) -> str:
        if not channel or not isinstance(channel, str):
            raise SlackApiArgumentError("channel_not_found")
        if channel[0] in "UW":  # posting to a user id lands in the app's DM with them
            return self.dm_channel(channel)
        return channel

    def _message_content(self, args: dict, *, require: bool = True) -> None:
        text, blocks, attachments = args.get("text"), args.get("blocks"), args.get("attachments")
        if require and not (text or blocks or attachments):
            raise SlackApiArgumentError("no_text")
        if text is not None and len(str(text)) > _TEXT_MAX:
            raise SlackApiArgumentError("msg_too_long")
        if blocks is not None:
            errors = _validate_blocks(blocks, _MESSAGE_MAX_BLOCKS)
            if errors:
                raise SlackApiArgumentError("invalid_blocks", errors)

    @staticmethod
    def _public_message(m: dict) -> dict:
        out = {
            "type": "message",
            "user": m["user"],
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": m["text"],
            "ts": m["ts"],
        }
        if m.get("blocks") is not None:
            out["blocks"] = copy.deepcopy(m["blocks"])
        if m.get("attachments") is not None:
            out["attachments"] = copy.deepcopy(m["attachments"])
        if m.get("thread_ts"):
            out["thread_ts"] = m["thread_ts"]
        if m.get("updates"):
            out["edited"] = {"user": m["user"], "ts": m["ts"]}
        return out

    # ------------------------------------------------------------------ methods

    def _api_test(self, args: dict) -> dict:
        return {"args": args} if args else {}

    def _auth_test(self, args: dict) -> dict:
        return {
            "url": TEAM_URL,
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        self._message_content(args)
        message = {
            "channel": channel,
            "ts": self._next_ts(),
            "text": args.get("text") or "",
            "blocks": copy.deepcopy(args.get("blocks")),
            "attachments": copy.deepcopy(args.get("attachments")),
            "user": BOT_USER_ID,
            "thread_ts": args.get("thread_ts") or None,
            "metadata": copy.deepcopy(args.get("metadata")),
            "updates": 0,
        }
        self.messages.append(message)
        return {"channel": channel, "ts": message["ts"], "message": self._public_message(message)}

    def _chat_update(self, args: dict) -> dict:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            raise SlackApiArgumentError("channel_not_found")
        message = self.find_message(self._resolve_channel(channel), str(ts)) if ts else None
        if message is None:
            raise SlackApiArgumentError("message_not_found")
        self._message_content(args)
        if "text" in args:
            message["text"] = args.get("text") or ""
        if "blocks" in args:
            message["blocks"] = copy.deepcopy(args["blocks"])
        if "attachments" in args:
            message["attachments"] = copy.deepcopy(args["attachments"])
        if "metadata" in args:
            message["metadata"] = copy.deepcopy(args["metadata"])
        message["updates"] += 1
        return {
            "channel": message["channel"],
            "ts": message["ts"],
            "text": message["text"],
            "message": self._public_message(message),
        }

    def _chat_post_ephemeral(self, args: dict) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        user = args.get("user")
        if not user:
            raise SlackApiArgumentError("user_not_in_channel")
        known = self.users.get(user)
        if known is not None and known.get("deleted"):
            raise SlackApiArgumentError("user_not_in_channel")
        self._message_content(args)
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": args.get("text") or "",
                "blocks": copy.deepcopy(args.get("blocks")),
                "attachments": copy.deepcopy(args.get("attachments")),
                "thread_ts": args.get("thread_ts") or None,
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    def _conversations_open(self, args: dict) -> dict:
        if args.get("channel"):
            return {"no_op": True, "already_open": True, "channel": {"id": args["channel"]}}
        raw = args.get("users")
        users = raw if isinstance(raw, list) else [u.strip() for u in str(raw or "").split(",") if u.strip()]
        if not users:
            raise SlackApiArgumentError("users_list_not_supplied")
        for u in users:
            known = self.users.get(u)
            if known is not None and known.get("deleted"):
                raise SlackApiArgumentError("user_disabled")
        if len(users) == 1:
            channel = {"id": self.dm_channel(users[0]), "is_im": True, "user": users[0]}
        else:
            channel = {"id": "G" + "".join(sorted(users)), "is_mpim": True}
        return {"no_op": False, "already_open": False, "channel": channel}

    def _user_or_error(self, user_id: Any) -> dict:
        user = self.users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise SlackApiArgumentError("user_not_found")
        return user

    def _users_info(self, args: dict) -> dict:
        return {"user": copy.deepcopy(self._user_or_error(args.get("user")))}

    def _users_lookup_by_email(self, args: dict) -> dict:
        email = str(args.get("email") or "").strip().lower()
        for user in self.users.values():
            if email and str(user["profile"].get("email", "")).lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackApiArgumentError("users_not_found")

    def _users_profile_get(self, args: dict) -> dict:
        user_id = args.get("user") or BOT_USER_ID
        if user_id == BOT_USER_ID and BOT_USER_ID not in self.users:
            profile: dict[str, Any] = {"real_name": BOT_NAME, "display_name": BOT_NAME, "bot_id": BOT_ID}
        else:
            profile = copy.deepcopy(self._user_or_error(user_id)["profile"])
        profile["fields"] = copy.deepcopy(self.profile_fields.get(user_id, {}))
        return {"profile": profile}

    def _usergroups_users_list(self, args: dict) -> dict:
        group = args.get("usergroup")
        if not isinstance(group, str) or group not in self.usergroups:
            raise SlackApiArgumentError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _take_trigger(self, args: dict) -> str:
        trigger_id = args.get("trigger_id")
        if not trigger_id:
            raise SlackApiArgumentError("invalid_arguments", ["missing required field: trigger_id"])
        if self.strict_trigger_ids:
            if trigger_id in self._used_triggers:
                raise SlackApiArgumentError("exchanged_trigger_id")
            self._used_triggers.add(trigger_id)
        return str(trigger_id)

    def _check_view(self, args: dict, allowed_types: tuple[str, ...]) -> dict:
        view = args.get("view")
        if not isinstance(view, dict):
            raise SlackApiArgumentError("invalid_arguments", ["missing required field: view"])
        errors = _validate_view(view)
        if not errors and view.get("type") not in allowed_types:
            errors = [f"view type must be one of {', '.join(allowed_types)} [json-pointer:/view/type]"]
        if errors:
            raise SlackApiArgumentError("invalid_arguments", errors)
        return view

    def _store_view(
        self, view: dict, *, view_id: str | None = None, root_id: str | None = None, previous_id: str | None = None
    ) -> dict:
        view_id = view_id or self._next_id("V")
        full = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type"),
            "blocks": copy.deepcopy(view.get("blocks") or []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{uuid.uuid4().hex[:8]}",
            "title": copy.deepcopy(view.get("title")),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": copy.deepcopy(view.get("close")),
            "submit": copy.deepcopy(view.get("submit")),
            "previous_view_id": previous_id,
            "root_view_id": root_id or view_id,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        old = self._view_store.get(view_id)
        if old and old.get("external_id") and old["external_id"] != full["external_id"]:
            self._external_ids.pop(old["external_id"], None)
        self._view_store[view_id] = full
        if full["external_id"]:
            self._external_ids[full["external_id"]] = view_id
        return full

    def _record_view(self, method: str, full: dict, trigger_id: str | None, user_id: str | None) -> dict:
        self.views.append(
            {
                "method": method,
                "view": copy.deepcopy(full),
                "trigger_id": trigger_id,
                "view_id": full["id"],
                "user_id": user_id,
            }
        )
        return {"view": copy.deepcopy(full)}

    def _views_open(self, args: dict) -> dict:
        trigger_id = self._take_trigger(args)
        view = self._check_view(args, ("modal",))
        ext = view.get("external_id")
        if ext and ext in self._external_ids:
            raise SlackApiArgumentError("duplicate_external_id")
        return self._record_view("views.open", self._store_view(view), trigger_id, None)

    def _views_push(self, args: dict) -> dict:
        trigger_id = self._take_trigger(args)
        view = self._check_view(args, ("modal",))
        return self._record_view("views.push", self._store_view(view), trigger_id, None)

    def _views_update(self, args: dict) -> dict:
        view_id = args.get("view_id")
        external_id = args.get("external_id")
        if not view_id and external_id:
            view_id = self._external_ids.get(external_id)
        elif not view_id:
            raise SlackApiArgumentError("invalid_arguments", ["view_id or external_id is required"])
        current = self._view_store.get(view_id) if view_id else None
        if current is None:
            raise SlackApiArgumentError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackApiArgumentError("hash_conflict")
        view = self._check_view(args, (current["type"],))
        full = self._store_view(
            view, view_id=view_id, root_id=current["root_view_id"], previous_id=current.get("previous_view_id")
        )
        return self._record_view("views.update", full, None, None)

    def _views_publish(self, args: dict) -> dict:
        user_id = args.get("user_id")
        if not user_id:
            raise SlackApiArgumentError("invalid_arguments", ["missing required field: user_id"])
        view = self._check_view(args, ("home",))
        current_id = self._home_views.get(user_id)
        if current_id and args.get("hash") and args["hash"] != self._view_store[current_id]["hash"]:
            raise SlackApiArgumentError("hash_conflict")
        full = self._store_view(view, view_id=current_id)
        self._home_views[user_id] = full["id"]
        return self._record_view("views.publish", full, None, user_id)


# ---------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[Any] = set()
        self.connections_lock = threading.Lock()

    def close_open_connections(self) -> None:
        """Cut keep-alive connections so no handler thread outlives :meth:`SlackStandIn.shutdown`."""
        with self.connections_lock:
            conns, self.open_connections = list(self.open_connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _make_handler(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:  # noqa: C901
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "SlackStandIn/1.0"
        timeout = 30  # idle keep-alive connections are dropped after this many seconds

        def setup(self) -> None:
            super().setup()
            nodelay(self.connection)
            with self.server.connections_lock:  # type: ignore[attr-defined]
                self.server.open_connections.add(self.connection)  # type: ignore[attr-defined]

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with self.server.connections_lock:  # type: ignore[attr-defined]
                    self.server.open_connections.discard(self.connection)  # type: ignore[attr-defined]

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            body = self._read_body()
            content_type = self.headers.get("Content-Type") or ""
            try:
                if parts.path.startswith("/api/"):
                    method = parts.path[len("/api/") :].strip("/")
                    try:
                        args = _parse_args(parts.query, body, content_type)
                    except ValueError:
                        reply = _Reply(200, {"ok": False, "error": "invalid_json"})
                    else:
                        if standin.latency > 0:
                            time.sleep(standin.latency)
                        reply = standin.handle_api(method, args, self.headers.get("Authorization"))
                elif parts.path.startswith("/response/") and self.command == "POST":
                    key = parts.path[len("/response/") :]
                    reply = standin.handle_response_url(key, _parse_response_payload(body, content_type))
                elif parts.path.startswith("/response/"):  # GET: what was posted there, rendered (the sandbox CLI)
                    key = parts.path[len("/response/") :]
                    with standin.lock:
                        answers = [standin.render(r) for r in standin.responses if r["key"] == key]
                    reply = _Reply(200, {"ok": True, "answers": answers})
                else:
                    reply = _Reply(404, "not_found")
            except Exception as e:  # pragma: no cover - a bug here should be visible, not a hang
                reply = _Reply(500, {"ok": False, "error": "fatal_error", "detail": repr(e)})
            self._send(reply)

        def _send(self, reply: _Reply) -> None:
            if isinstance(reply.body, (dict, list)):
                data = json.dumps(reply.body).encode("utf-8")
                ctype = "application/json; charset=utf-8"
            else:
                data = str(reply.body).encode("utf-8")
                ctype = "text/plain; charset=utf-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _parse_args(query: str, body: bytes, content_type: str) -> dict:
    """Merge query-string and body arguments the way Slack does; raise ValueError on a bad JSON body."""
    args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    ctype = content_type.split(";")[0].strip().lower()
    if body:
        if ctype == "application/json":
            parsed = json.loads(body.decode("utf-8"))
            if not isinstance(parsed, dict):
                raise ValueError("JSON body must be an object")
            args.update(parsed)
        elif ctype == "multipart/form-data":
            args.update(_parse_multipart(body, content_type))
        else:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            args.update({k: v[-1] for k, v in form.items()})
    for key in _JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                args[key] = json.loads(value)
            except ValueError:
                pass
    return args


def _parse_multipart(body: bytes, content_type: str) -> dict:
    raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            out[name] = payload
        else:
            out[name] = payload.decode(part.get_content_charset() or "utf-8")
    return out


def _parse_response_payload(body: bytes, content_type: str) -> Any:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        pass
    form = parse_qs(text, keep_blank_values=True)
    if "payload" in form:
        try:
            return json.loads(form["payload"][-1])
        except ValueError:
            return None
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _tz_offset(tz: str) -> int:
    try:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        offset = datetime(2024, 1, 15, tzinfo=ZoneInfo(tz)).utcoffset()
        return int(offset.total_seconds()) if offset else 0
    except Exception:
        return 0


# ---------------------------------------------------------------------------- Block Kit checks


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else len(str(obj or ""))


def _validate_element(el: Any, where: str, errors: list[str]) -> None:
    if not isinstance(el, dict) or "type" not in el:
        errors.append(f"element must be an object with a type [json-pointer:{where}]")
        return
    action_id = el.get("action_id")
    if action_id is not None and len(str(action_id)) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{where}/action_id]")
    if el["type"] == "button":
        if _text_len(el.get("text")) > 75:
            errors.append(f"must be less than 76 characters [json-pointer:{where}/text/text]")
        if el.get("value") is not None and len(str(el["value"])) > 2000:
            errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")


def _validate_blocks(blocks: Any, max_blocks: int, prefix: str = "/blocks") -> list[str]:  # noqa: C901
    """Check ``blocks`` against Block Kit limits; return Slack-style error strings (empty when valid)."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{prefix}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{prefix}]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"{prefix}/{i}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"block must be an object with a type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > 255:
                errors.append(f"must be less than 256 characters [json-pointer:{where}/block_id]")
            if block_id in block_ids:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "header":
            if _text_len(block.get("text")) > 150:
                errors.append(f"must be less than 151 characters [json-pointer:{where}/text/text]")
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if not text and not fields:
                errors.append(f"must provide either text or fields [json-pointer:{where}]")
            if text and _text_len(text) > 3000:
                errors.append(f"must be less than 3001 characters [json-pointer:{where}/text/text]")
            if fields:
                if len(fields) > 10:
                    errors.append(f"no more than 10 items allowed [json-pointer:{where}/fields]")
                for j, field in enumerate(fields):
                    if _text_len(field) > 2000:
                        errors.append(f"must be less than 2001 characters [json-pointer:{where}/fields/{j}/text]")
            if block.get("accessory") is not None:
                _validate_element(block["accessory"], f"{where}/accessory", errors)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements:
                errors.append(f"must provide at least one element [json-pointer:{where}/elements]")
            if len(elements) > 25:
                errors.append(f"no more than 25 items allowed [json-pointer:{where}/elements]")
            seen: set[str] = set()
            for j, el in enumerate(elements):
                _validate_element(el, f"{where}/elements/{j}", errors)
                aid = el.get("action_id") if isinstance(el, dict) else None
                if aid is not None:
                    if aid in seen:
                        errors.append(f"duplicate action_id {aid!r} [json-pointer:{where}/elements/{j}/action_id]")
                    seen.add(aid)
        elif kind == "context":
            if len(block.get("elements") or []) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{where}/elements]")
        elif kind == "input":
            if block.get("element") is not None:
                _validate_element(block["element"], f"{where}/element", errors)
    return errors


def _validate_view(view: dict) -> list[str]:
    errors: list[str] = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        errors.append("view type must be modal or home [json-pointer:/view/type]")
    errors.extend(_validate_blocks(view.get("blocks", []), _VIEW_MAX_BLOCKS, "/view/blocks"))
    if len(str(view.get("private_metadata") or "")) > 3000:
        errors.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id") or "")) > 255:
        errors.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    if kind == "modal":
        title = view.get("title")
        if not title:
            errors.append("missing required field: title [json-pointer:/view/title]")
        elif _text_len(title) > 24:
            errors.append("must be less than 25 characters [json-pointer:/view/title/text]")
        for key in ("submit", "close"):
            if view.get(key) and _text_len(view[key]) > 24:
                errors.append(f"must be less than 25 characters [json-pointer:/view/{key}/text]")
        blocks = view.get("blocks") if isinstance(view.get("blocks"), list) else []
        if not view.get("submit") and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks):
            errors.append(
                "submit is required when an input block is within the blocks array [json-pointer:/view/submit]"
            )
    return errors


# ---------------------------------------------------------------------------- rendering helpers


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


#: user ID -> the name Slack shows, for :func:`_mrkdwn` during one :meth:`SlackStandIn.render`.
_NAMES: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("standin_names", default=None)
_TOKEN = re.compile(r"<([^<>]*)>")
_SPECIAL = {"channel": "@channel", "here": "@here", "everyone": "@everyone"}


def _mrkdwn(text: str) -> str:
    """mrkdwn as Slack shows it: ``<@U123>`` as ``@name``, ``<#C1|general>`` as ``#general``, ``<!channel>`` (a
    real ping) as ``@channel``, ``<url|label>`` as ``label (url)``; then the three escapes decoded, so an escaped
    ``&lt;!channel&gt;`` shows as the harmless text ``<!channel>``."""

    def token(m: re.Match) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + ((_NAMES.get() or {}).get(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            word = target[1:].split("^", 1)
            if word[0] == "subteam" and len(word) > 1:
                return "@" + (label.lstrip("@") or word[1])
            return _SPECIAL.get(word[0], "@" + (label or word[0]))
        return f"{_unescape(label)} ({_unescape(target)})" if label else _unescape(target)

    return _unescape(_TOKEN.sub(token, text))


def _text_of(obj: Any) -> str:
    """Display text of a text object; mrkdwn has Slack's three escapes decoded, plain_text is literal."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return _mrkdwn(obj)
    if not isinstance(obj, dict):
        return str(obj)
    text = str(obj.get("text", ""))
    return _mrkdwn(text) if obj.get("type", "mrkdwn") == "mrkdwn" else text


def _render_element(el: Any) -> str:
    if not isinstance(el, dict):
        return str(el)
    kind = el.get("type", "")
    action = f" ({el['action_id']})" if el.get("action_id") else ""
    if kind == "button":
        url = f" -> {el['url']}" if el.get("url") else ""
        return f"[{_text_of(el.get('text'))}]{action}{url}"
    if kind in ("mrkdwn", "plain_text"):
        return _text_of(el)
    if kind == "image":
        return f"[image: {el.get('alt_text', '')}]"
    if kind == "overflow":
        return f"[…]{action}"
    if kind.endswith("select") or kind.endswith("_select") or kind == "multi_static_select":
        placeholder = _text_of(el.get("placeholder")) or kind
        return f"<{placeholder} ▾>{action}"
    if kind == "plain_text_input":
        return f"<text input>{action}"
    if kind in (
        "datepicker",
        "timepicker",
        "datetimepicker",
        "checkboxes",
        "radio_buttons",
        "email_text_input",
        "url_text_input",
        "number_input",
    ):
        return f"<{kind}>{action}"
    return f"<{kind}>{action}"


def _rich_text_plain(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        if node.get("type") == "link":
            return str(node.get("text") or node.get("url", ""))
        if node.get("type") == "user":
            return f"<@{node.get('user_id', '')}>"
        if node.get("type") == "emoji":
            return f":{node.get('name', '')}:"
        return "".join(_rich_text_plain(c) for c in node.get("elements", []))
    if isinstance(node, list):
        return "".join(_rich_text_plain(c) for c in node)
    return ""


def _render_block(block: dict) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [f"=== {_text_of(block.get('text'))} ==="]
    if kind == "divider":
        return ["-" * 40]
    if kind == "section":
        lines: list[str] = []
        if block.get("text"):
            lines.append(_text_of(block["text"]))
        for field in block.get("fields") or []:
            lines.append(f"  • {_text_of(field)}")
        if block.get("accessory"):
            lines.append(f"  {_render_element(block['accessory'])}")
        return lines
    if kind == "context":
        return ["  " + " | ".join(_render_element(e) for e in block.get("elements") or [])]
    if kind == "actions":
        return ["  ".join(_render_element(e) for e in block.get("elements") or [])]
    if kind == "image":
        title = _text_of(block.get("title"))
        return [f"[image: {block.get('alt_text', '')}]" + (f" {title}" if title else "")]
    if kind == "input":
        optional = " (optional)" if block.get("optional") else ""
        return [f"{_text_of(block.get('label'))}{optional}: {_render_element(block.get('element'))}"]
    if kind == "rich_text":
        return [_rich_text_plain(block.get("elements", []))]
    return [f"<{kind} block>"]
