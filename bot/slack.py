"""The one Slack Web API client of the core (:class:`SlackGateway`), and Slack identities.

Wraps ``slack_sdk.WebClient`` (``base_url`` settable, so tests and the demo point it at the local stand-in
``standins.slack_api``) with slack_sdk's retry handlers for connection errors and 5xx. A rate limit (429) is
not waited out: the call fails at once with ``SlackError("ratelimited", retry_after=...)``, because the calls
run on shared work threads that must not sleep for Slack's ``Retry-After`` (up to minutes); the worker
retries unposted cards and untold DMs later. Every notification it sends is audited.
Follows Slack's docs for ``users.info``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
``conversations.open``, ``usergroups.users.list`` and ``response_url``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from . import metrics
from .audit import AuditLog

log = logging.getLogger(__name__)


class SlackError(Exception):
    """A Slack Web API call failed after its retries; ``error`` is Slack's error code (e.g. ``ratelimited``,
    ``user_disabled``). ``retry_after``: for a rate limit (HTTP 429), the seconds Slack's ``Retry-After``
    asks to wait, else ``None``."""

    def __init__(self, method: str, error: str, retry_after: float | None = None):
        self.method, self.error, self.retry_after = method, error, retry_after
        super().__init__(f"Slack {method} failed: {error}")


#: Slack errors of a post to a cached IM channel that mean the channel must be opened again.
_CHANNEL_GONE = ("channel_not_found", "is_archived")
#: Seconds a Slack call made before the ack may take (Slack wants the ack within 3 s).
ACK_CALL_TIMEOUT = 2


@dataclass(frozen=True)
class SlackIdentity:
    """What the bot knows of a Slack user from ``users.info``: ``id``, ``email`` (``profile.email``, needs
    ``users:read.email``; may be ``None``), names, and the flags that bar someone from acting."""

    id: str
    email: str | None
    first_name: str = ""
    last_name: str = ""
    real_name: str = ""
    is_bot: bool = False
    deleted: bool = False
    is_guest: bool = False
    exists: bool = True

    @classmethod
    def from_user(cls, user: dict) -> "SlackIdentity":
        profile = user.get("profile") or {}
        real = profile.get("real_name") or user.get("real_name") or ""
        first = profile.get("first_name") or ""
        last = profile.get("last_name") or ""
        if not first and not last and real:
            first, _, last = real.partition(" ")
        email = (profile.get("email") or "").strip() or None
        return cls(
            id=user.get("id", ""),
            email=email,
            first_name=first.strip(),
            last_name=last.strip(),
            real_name=real,
            is_bot=bool(user.get("is_bot")) or user.get("id") == "USLACKBOT",
            deleted=bool(user.get("deleted")),
            is_guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
        )

    @property
    def barred(self) -> bool:
        """Unknown, deactivated, a bot or a guest: may neither use the bot nor decide."""
        return not self.exists or self.deleted or self.is_bot or self.is_guest

    def refusal(self) -> str | None:
        """Why this person cannot use the bot for themselves, or ``None`` when they can."""
        if not self.exists:
            return "I could not find your Slack profile."
        if self.deleted:
            return "This Slack account is deactivated."
        if self.is_bot:
            return "Bots cannot use the Polaris access bot."
        if self.is_guest:
            return "Guest accounts cannot use the Polaris access bot; ask a full member of the workspace."
        if not self.email:
            return (
                "Your Slack profile has no email address I can read, and your Polaris account is matched by "
                "email. Add one to your profile, or ask an admin."
            )
        return None


def _retry_after(response) -> float | None:
    """Seconds from the ``Retry-After`` header of a 429 answer (slack_sdk's ``SlackResponse``), else ``None``."""
    if getattr(response, "status_code", None) != 429:
        return None
    for name, value in (getattr(response, "headers", None) or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


class SlackGateway:
    """Slack Web API calls the core makes. Thread-safe (``WebClient`` is).

    ``token``: bot token; ``base_url``: Web API base (``https://slack.com/api/`` or a stand-in);
    ``audit``: where notifications are recorded; ``retries``: attempts per retry handler (connection errors,
    5xx; short backoff). No rate-limit handler: a 429 raises :class:`SlackError` with ``retry_after`` at once.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        audit: AuditLog | None = None,
        retries: int = 2,
        timeout: int = 10,
        client: WebClient | None = None,
        channels=None,
    ):
        kwargs = {"token": token, "timeout": timeout}
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = client or WebClient(**kwargs)
        # No RateLimitErrorRetryHandler: it sleeps out Retry-After on the calling thread (a shared work thread).
        self.client.retry_handlers[:] = [
            h for h in self.client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)
        ]
        for handler in (
            ConnectionErrorRetryHandler(max_retry_count=retries),
            ServerErrorRetryHandler(max_retry_count=retries),
        ):
            self.client.retry_handlers.append(handler)
        # For calls made before the ack (views.open: its trigger_id lives 3 s): one try, 2 s at most.
        self.ack_client = WebClient(
            token=self.client.token, base_url=self.client.base_url, timeout=ACK_CALL_TIMEOUT, retry_handlers=[]
        )
        self.audit = audit
        self.channels = channels  # a bot.dm_channels.DmChannels, or None: conversations.open before each DM
        self.timeout = timeout
        self._identities: dict[str, tuple[float, SlackIdentity]] = {}
        self._identity_lock = threading.Lock()

    def _call(self, method: str, *, _client: WebClient | None = None, **kwargs) -> dict:
        try:
            data = (_client or self.client).api_call(method, json=kwargs).data
        except SlackApiError as e:
            error = str(e.response.get("error") or e.response.status_code)
            metrics.count_slack_call(method, error)
            raise SlackError(method, error, retry_after=_retry_after(e.response)) from None
        except Exception as e:  # urllib errors after retries
            metrics.count_slack_call(method, type(e).__name__)
            raise SlackError(method, type(e).__name__) from None
        metrics.count_slack_call(method, None)
        return data  # type: ignore[return-value]

    def _note(self, action: str, target: str, outcome: str, request_id: str | None, detail: str | None = None):
        if self.audit is not None:
            self.audit.record("bot", action, request_id=request_id, target=target, outcome=outcome, detail=detail)

    # ------------------------------------------------------------------------------ people
    def identity(self, user_id: str, *, max_age: float = 0.0) -> SlackIdentity:
        """``users.info`` -> :class:`SlackIdentity`; an unknown user gives ``exists=False``.

        ``max_age`` (seconds): an answer that recent may be reused (commands use 60 s); decisions pass 0, so
        an approver's authority is always read at click time. Raises :class:`SlackError` when Slack cannot be
        reached."""
        now = time.monotonic()
        if max_age > 0:
            with self._identity_lock:
                hit = self._identities.get(user_id)
            if hit is not None and now - hit[0] <= max_age:
                return hit[1]
        try:
            data = self._call("users.info", user=user_id)
        except SlackError as e:
            if e.error in ("user_not_found", "user_not_visible"):
                return SlackIdentity(id=user_id, email=None, exists=False)
            raise
        identity = SlackIdentity.from_user(data.get("user") or {})
        with self._identity_lock:
            if len(self._identities) > 5000:
                self._identities.clear()
            self._identities[user_id] = (now, identity)
        return identity

    def user_id_for_email(self, email: str) -> str | None:
        """``users.lookupByEmail`` -> the Slack user ID, or ``None`` when nobody has that email."""
        try:
            return (self._call("users.lookupByEmail", email=email).get("user") or {}).get("id")
        except SlackError as e:
            if e.error in ("users_not_found", "user_not_found"):
                return None
            raise

    def usergroup_members(self, usergroup_id: str) -> list[str]:
        """``usergroups.users.list`` -> member user IDs (needs ``usergroups:read``)."""
        return list(self._call("usergroups.users.list", usergroup=usergroup_id).get("users") or [])

    def profile_field(self, user_id: str, field_id: str) -> str | None:
        """A custom profile field's value from ``users.profile.get`` (needs ``users.profile:read``)."""
        fields = (self._call("users.profile.get", user=user_id).get("profile") or {}).get("fields") or {}
        value = (fields.get(field_id) or {}).get("value")
        return value or None

    # ------------------------------------------------------------------------------ messages
    def post(
        self,
        channel: str,
        text: str,
        blocks: list | None = None,
        *,
        request_id: str | None = None,
        action: str = "notify.post",
        thread_ts: str | None = None,
    ) -> str:
        """``chat.postMessage``; returns the message ``ts``. ``thread_ts``: a reply in that message's thread.
        Audited. Raises :class:`SlackError`."""
        try:
            data = self._call(
                "chat.postMessage",
                channel=channel,
                text=text,
                blocks=blocks or None,
                unfurl_links=False,
                unfurl_media=False,
                **({"thread_ts": thread_ts} if thread_ts else {}),
            )
        except SlackError as e:
            self._note(action, channel, "error", request_id, e.error)
            raise
        self._note(action, channel, "ok", request_id)
        return str(data.get("ts"))

    def update(
        self, channel: str, ts: str, text: str, blocks: list | None = None, *, request_id: str | None = None
    ) -> None:
        """``chat.update`` of a message the bot posted. Audited. Raises :class:`SlackError`."""
        try:
            self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks or [])
        except SlackError as e:
            self._note("notify.update", channel, "error", request_id, e.error)
            raise
        self._note("notify.update", channel, "ok", request_id)

    def dm(self, user_id: str, text: str, blocks: list | None = None, *, request_id: str | None = None) -> bool:
        """Direct message (``conversations.open`` + ``chat.postMessage``). Audited; returns False on failure
        instead of raising (a lost DM must not undo a decision). DMs the worker must retry go through the
        delivery ledger (:mod:`bot.deliveries`) with :meth:`send_dm` instead."""
        try:
            self.send_dm(user_id, text, blocks, request_id=request_id)
        except SlackError:
            return False
        return True

    def send_dm(self, user_id: str, text: str, blocks: list | None = None, *, request_id: str | None = None) -> str:
        """Direct message (``conversations.open`` + ``chat.postMessage``); returns the IM channel ID. Audited
        (``notify.dm``). Raises :class:`SlackError` with Slack's error (e.g. ``user_disabled``)."""
        try:
            channel = self._post_dm(user_id, text, blocks)
        except SlackError as e:
            log.warning("DM to %s failed: %s", user_id, e.error)
            self._note("notify.dm", user_id, "error", request_id, e.error)
            raise
        self._note("notify.dm", user_id, "ok", request_id)
        return str(channel)

    def dm_channel(self, user_id: str, *, fresh: bool = False) -> str:
        """The IM channel with ``user_id``: from the cache (:class:`bot.dm_channels.DmChannels`) unless ``fresh``,
        else ``conversations.open`` (then kept). Raises :class:`SlackError`."""
        known = None if fresh or self.channels is None else self.channels.get(user_id)
        if known:
            return known
        channel = (self._call("conversations.open", users=user_id).get("channel") or {}).get("id")
        if channel and self.channels is not None:
            self.channels.put(user_id, str(channel))
        return str(channel)

    def _post_dm(self, user_id: str, text: str, blocks: list | None) -> str:
        """``chat.postMessage`` to ``user_id``'s IM channel; a cached channel Slack no longer knows is opened
        again once. Returns the channel ID. Raises :class:`SlackError`."""
        fresh = False
        while True:
            channel = self.dm_channel(user_id, fresh=fresh)
            try:
                self._call(
                    "chat.postMessage",
                    channel=channel,
                    text=text,
                    blocks=blocks or None,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                return channel
            except SlackError as e:
                if fresh or self.channels is None or e.error not in _CHANNEL_GONE:
                    raise
                self.channels.forget(user_id)
                fresh = True

    def dm_card(
        self, user_id: str, text: str, blocks: list | None = None, *, request_id: str | None = None
    ) -> tuple[str, str]:
        """Send a message with buttons by DM; returns its (channel, ts) for later ``chat.update``.
        Audited. Raises :class:`SlackError`."""
        try:
            channel = self.dm_channel(user_id)
        except SlackError as e:
            self._note("notify.card_dm", user_id, "error", request_id, e.error)
            raise
        try:
            return channel, self.post(channel, text, blocks, request_id=request_id, action="notify.card_dm")
        except SlackError as e:
            if self.channels is None or e.error not in _CHANNEL_GONE:
                raise
        self.channels.forget(user_id)  # a cached channel Slack no longer knows: opened again, once
        channel = self.dm_channel(user_id, fresh=True)
        return channel, self.post(channel, text, blocks, request_id=request_id, action="notify.card_dm")

    def ephemeral(
        self, channel: str, user_id: str, text: str, blocks: list | None = None, *, thread_ts: str | None = None
    ) -> bool:
        """``chat.postEphemeral`` (in the thread ``thread_ts`` when given); returns False on failure."""
        try:
            extra = {"thread_ts": thread_ts} if thread_ts else {}
            self._call("chat.postEphemeral", channel=channel, user=user_id, text=text, blocks=blocks or None, **extra)
            return True
        except SlackError as e:
            log.warning("ephemeral to %s failed: %s", user_id, e.error)
            return False

    def respond(
        self, response_url: str, text: str, blocks: list | None = None, *, replace_original: bool = False
    ) -> bool:
        """Post to a ``response_url`` (ephemeral by default; at most 5 posts in 30 minutes)."""
        try:
            result = WebhookClient(response_url, timeout=self.timeout).send(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=replace_original
            )
        except Exception as e:
            log.warning("response_url post failed: %s", type(e).__name__)
            metrics.count_slack_call("response_url", type(e).__name__)
            return False
        ok = 200 <= result.status_code < 300
        metrics.count_slack_call("response_url", None if ok else f"http_{result.status_code}")
        return ok

    def open_view(self, trigger_id: str, view: dict) -> str | None:
        """``views.open``; returns the view ID or ``None`` on failure (e.g. an expired ``trigger_id``). Called
        before the ack, so one try of at most :data:`ACK_CALL_TIMEOUT` seconds (the ``trigger_id`` lives 3 s)."""
        try:
            return (
                self._call("views.open", _client=self.ack_client, trigger_id=trigger_id, view=view).get("view") or {}
            ).get("id")
        except SlackError as e:
            log.warning("views.open failed: %s", e.error)
            return None

    def publish_home(self, user_id: str, view: dict) -> bool:
        """``views.publish`` of the App Home tab; returns False on failure."""
        try:
            self._call("views.publish", user_id=user_id, view=view)
            return True
        except SlackError as e:
            log.warning("views.publish failed: %s", e.error)
            return False

    def update_view(self, view_id: str, view: dict) -> bool:
        """``views.update``; returns False on failure."""
        try:
            self._call("views.update", view_id=view_id, view=view)
            return True
        except SlackError as e:
            log.warning("views.update failed: %s", e.error)
            return False
