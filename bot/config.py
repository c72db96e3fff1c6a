"""Configuration: environment variables (also read from ``.env`` by the entry point), validated at start-up.

Every setting is documented in README.md and ``.env.example``. A missing or malformed variable raises
:class:`ConfigError` whose message names the variable, so the process stops with a clear line instead of a
traceback. Values that are secrets (``POLARIS_API_KEY``, ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``,
``SLACK_SIGNING_SECRET``) are kept out of ``repr`` and are registered with :mod:`bot.redact` so that no
log line can carry them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_DATABASE_URL = "sqlite:///polaris_access_bot.sqlite3"
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; ``str(err)`` names the variable and what is expected."""


@dataclass(frozen=True)
class Settings:
    """Validated settings of one bot process.

    Durations are seconds. ``approvers`` and ``admins`` are frozensets of Slack user IDs (``U…``/``W…``).
    """

    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    polaris_api_url: str
    polaris_api_key: str = field(repr=False)
    approval_channel: str
    approvers: frozenset[str]
    admins: frozenset[str]
    database_url: str = DEFAULT_DATABASE_URL
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    port: int = 3000
    request_ttl: float = 24 * 3600.0
    polaris_timeout: float = 10.0
    polaris_retry_seconds: float = 30.0
    polaris_max_attempts: int = 5
    worker_interval: float = 5.0
    group_cache_ttl: float = 60.0
    max_open_requests: int = 5
    max_commands_per_minute: int = 30
    policy_file: str | None = None
    manager_field: str | None = None
    work_threads: int = 2

    @property
    def deciders(self) -> frozenset[str]:
        """Everyone who may decide access requests by default: approvers and admins."""
        return self.approvers | self.admins

    def secrets(self) -> list[str]:
        """The secret values of this configuration (for the log redaction filter); empty ones left out."""
        import base64

        basic = base64.b64encode(f"{self.polaris_api_key}:".encode()).decode() if self.polaris_api_key else ""
        return [s for s in (self.slack_bot_token, self.slack_signing_secret, self.polaris_api_key,
                            self.slack_app_token, basic) if s]


def _required(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set (see README, Configuration)")
    return value


def _user_ids(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = (env.get(name) or "").strip()
    ids = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [i for i in ids if not SLACK_ID.match(i)]
    if bad:
        raise ConfigError(f"{name} must be comma-separated Slack user IDs like U012ABCDEF; bad entries: "
                          + ", ".join(repr(b[:20]) for b in bad[:5]))
    return frozenset(ids)


def _number(env: Mapping[str, str], name: str, default: float, *, kind=float, minimum: float = 0) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, got {raw[:20]!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw[:20]!r}")
    return value


def _url(env: Mapping[str, str], name: str, required: bool) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        if required:
            raise ConfigError(f"{name} is not set (e.g. https://myorg.api.imply.io)")
        return None
    if not re.fullmatch(r"https?://[^\s/#?]+(/[^\s#?]*)?", raw):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw[:60]!r}")
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None, *, require_slack_app_token: bool = False,
                  require_polaris: bool = True) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``).

    ``require_slack_app_token`` is set by Socket Mode. ``require_polaris=False`` lets the demo fill
    the Polaris URL and key itself (with its sandbox); ``serve`` never does, so it refuses to start
    without ``POLARIS_API_URL``.

    Raises :class:`ConfigError` naming the first missing or malformed variable.
    """
    env = os.environ if env is None else env
    bot_token = _required(env, "SLACK_BOT_TOKEN")
    if not bot_token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    signing_secret = _required(env, "SLACK_SIGNING_SECRET")
    app_token = (env.get("SLACK_APP_TOKEN") or "").strip() or None
    if require_slack_app_token and not app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set (Socket Mode needs an app-level token, xapp-…)")
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    polaris_url = _url(env, "POLARIS_API_URL", required=require_polaris) or ""
    polaris_key = (env.get("POLARIS_API_KEY") or "").strip()
    if require_polaris and not polaris_key:
        raise ConfigError("POLARIS_API_KEY is not set (an API key with the AdministerUsers permission)")
    channel = _required(env, "APPROVAL_CHANNEL")
    if not CHANNEL_ID.match(channel):
        raise ConfigError(f"APPROVAL_CHANNEL must be a channel ID like C012ABCDEF, got {channel[:30]!r}")
    approvers = _user_ids(env, "APPROVERS")
    admins = _user_ids(env, "ADMINS")
    if not approvers and not admins and not (env.get("POLICY_FILE") or "").strip():
        raise ConfigError("APPROVERS is empty: name at least one Slack user ID in APPROVERS or ADMINS "
                          "(or approvers in a POLICY_FILE)")
    settings = Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=_url(env, "SLACK_API_URL", required=False),
        polaris_api_url=polaris_url,
        polaris_api_key=polaris_key,
        database_url=(env.get("DATABASE_URL") or "").strip() or DEFAULT_DATABASE_URL,
        approval_channel=channel,
        approvers=approvers,
        admins=admins,
        port=int(_number(env, "PORT", 3000, kind=int, minimum=1)),
        request_ttl=_number(env, "REQUEST_TTL", 24 * 3600.0, minimum=60),
        polaris_timeout=_number(env, "POLARIS_TIMEOUT", 10.0, minimum=0.1),
        polaris_retry_seconds=_number(env, "POLARIS_RETRY_SECONDS", 30.0, minimum=0),
        polaris_max_attempts=int(_number(env, "POLARIS_MAX_ATTEMPTS", 5, kind=int, minimum=1)),
        worker_interval=_number(env, "WORKER_INTERVAL", 5.0, minimum=0.05),
        group_cache_ttl=_number(env, "GROUP_CACHE_TTL", 60.0, minimum=0),
        max_open_requests=int(_number(env, "MAX_OPEN_REQUESTS", 5, kind=int, minimum=1)),
        max_commands_per_minute=int(_number(env, "MAX_COMMANDS_PER_MINUTE", 30, kind=int, minimum=1)),
        work_threads=int(_number(env, "WORK_THREADS", 2, kind=int, minimum=1)),
        policy_file=(env.get("POLICY_FILE") or "").strip() or None,
        manager_field=(env.get("MANAGER_PROFILE_FIELD") or "").strip() or None,
    )
    if settings.port > 65535:
        raise ConfigError("PORT must be between 1 and 65535")
    return settings
