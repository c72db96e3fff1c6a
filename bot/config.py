"""Configuration: environment variables (also read from ``.env`` by the entry point), validated at start-up.

Every setting is documented in README.md and ``.env.example``. Every missing or malformed variable is
found in one pass: :class:`ConfigError` carries one line per problem, each naming its variable first, so the
process stops with those lines (``app.py`` prints them and exits 2) instead of a traceback, and one run shows
everything to fix. Values that are secrets (``POLARIS_API_KEY``, ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``,
``SLACK_SIGNING_SECRET``, ``AUDIT_KEY``) are kept out of ``repr`` and are registered with :mod:`bot.redact` so that no
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
PROFILE_FIELD_ID = re.compile(r"^Xf[A-Z0-9]{2,}$")  # a Slack custom profile field ID, e.g. Xf01ABCDEF
DATABASE_BACKENDS = ("sqlite", "postgresql")  # what bot.db and bot.claims support
_DATABASE_HINT = (
    "DATABASE_URL must be a SQLAlchemy URL of a SQLite or PostgreSQL database, e.g. "
    "sqlite:///polaris_access_bot.sqlite3 or postgresql://user@host:5432/dbname"
)


class ConfigError(ValueError):
    """One or more settings are missing or malformed.

    ``problems``: one sentence per problem, each starting with the variable's name and saying what is
    expected (never a secret's value); ``str(err)`` is those sentences, a line each. Built from one message
    or a list of them."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


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
    web_concurrency: int = 2
    gunicorn_threads: int = 8
    audit_key: str | None = field(default=None, repr=False)
    audit_channel: str | None = None
    reconcile_interval: float = 3600.0
    serve_worker: bool = True

    @property
    def deciders(self) -> frozenset[str]:
        """Everyone who may decide access requests by default: approvers and admins."""
        return self.approvers | self.admins

    def secrets(self) -> list[str]:
        """The secret values of this configuration (for the log redaction filter); empty ones left out."""
        import base64

        basic = base64.b64encode(f"{self.polaris_api_key}:".encode()).decode() if self.polaris_api_key else ""
        return [
            s
            for s in (
                self.slack_bot_token,
                self.slack_signing_secret,
                self.polaris_api_key,
                self.slack_app_token,
                self.audit_key,
                basic,
            )
            if s
        ]


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
        raise ConfigError(
            f"{name} must be comma-separated Slack user IDs like U012ABCDEF; bad entries: "
            + ", ".join(repr(b[:20]) for b in bad[:5])
        )
    return frozenset(ids)


def _number(
    env: Mapping[str, str], name: str, default: float, *, kind=float, minimum: float = 0, maximum: float | None = None
) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, got {raw[:20]!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw[:20]!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {raw[:20]!r}")
    return value


def database_url(env: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL`` from ``env`` (default ``os.environ``), checked without connecting: a URL SQLAlchemy
    can parse, of a supported backend (:data:`DATABASE_BACKENDS`; ``postgres://`` and ``postgresql://`` mean
    psycopg2, as in :func:`bot.db.normalize_url`), whose driver is installed. Empty: the default SQLite file.
    Used by every command that opens the database (``serve``, ``socket``, ``migrate``). Raises
    :class:`ConfigError`; the message never repeats the URL (it may hold a password)."""
    from sqlalchemy.engine import make_url

    from .db import normalize_url

    env = os.environ if env is None else env
    raw = (env.get("DATABASE_URL") or "").strip()
    if not raw:
        return DEFAULT_DATABASE_URL
    try:
        url = make_url(normalize_url(raw))
    except Exception:  # ArgumentError (not a URL), ValueError (a port that is not a number)
        raise ConfigError(f"{_DATABASE_HINT}; the value set is not a URL of that form") from None
    backend = url.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        raise ConfigError(f"{_DATABASE_HINT}; got a {backend[:20]!r} URL") from None
    try:
        url.get_dialect().import_dbapi()
    except Exception:  # NoSuchModuleError (unknown driver), ImportError (driver not installed)
        raise ConfigError(
            f"{_DATABASE_HINT}; its driver {url.drivername[:40]!r} is not available "
            "(postgresql:// uses psycopg2, which is installed)"
        ) from None
    return raw


AUDIT_KEY_MIN = 16


def audit_key(env: Mapping[str, str] | None = None) -> str | None:
    """``AUDIT_KEY`` (the secret that keys the audit chain's HMAC, :mod:`bot.audit_chain`), or None when unset.
    Registered with :mod:`bot.redact` so no log line carries it. Raises :class:`ConfigError` when it is shorter
    than :data:`AUDIT_KEY_MIN` characters (the message never repeats it)."""
    from . import redact

    env = os.environ if env is None else env
    key = (env.get("AUDIT_KEY") or "").strip() or None
    if key is not None:
        redact.register([key])
        if len(key) < AUDIT_KEY_MIN:
            raise ConfigError(f"AUDIT_KEY must be at least {AUDIT_KEY_MIN} characters (a random secret)")
    return key


def _audit_channel(env: Mapping[str, str]) -> str | None:
    channel = (env.get("AUDIT_CHANNEL") or "").strip() or None
    if channel and not CHANNEL_ID.match(channel):
        raise ConfigError(f"AUDIT_CHANNEL must be a channel ID like C012ABCDEF, got {channel[:30]!r}")
    return channel


def load_audit_settings(env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """What ``app.py audit verify`` and ``audit export`` need: (``DATABASE_URL``, ``AUDIT_KEY``), both checked,
    every problem at once (:class:`ConfigError`); no Slack or Polaris setting is needed for them."""
    env = os.environ if env is None else env
    problems: list[str] = []
    found = []
    for fn in (database_url, audit_key):
        try:
            found.append(fn(env))
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return found[0], found[1]


def _url(env: Mapping[str, str], name: str, required: bool) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        if required:
            raise ConfigError(f"{name} is not set (e.g. https://myorg.api.imply.io)")
        return None
    if not re.fullmatch(r"https?://[^\s/#?]+(/[^\s#?]*)?", raw):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw[:60]!r}")
    return raw.rstrip("/")


def _policy_problems(policy_file: str | None) -> list[str]:
    """The policy file read here too, so a bad one is named in the same run as every other problem."""
    if not policy_file:
        return []
    from .policy import PolicyError, load_policy

    try:
        load_policy(policy_file)
    except PolicyError as e:
        return [f"POLICY_FILE: {e}"]
    return []


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw[:30]!r}")


def load_settings(
    env: Mapping[str, str] | None = None, *, require_slack_app_token: bool = False, require_polaris: bool = True
) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``).

    ``require_slack_app_token`` is set by Socket Mode. ``require_polaris=False`` lets the demo fill
    the Polaris URL and key itself (with its sandbox); ``serve`` never does, so it refuses to start
    without ``POLARIS_API_URL``.

    Raises :class:`ConfigError` listing every missing or malformed variable, a line each.
    """
    env = os.environ if env is None else env
    problems: list[str] = []

    def check(fn, *args, **kwargs):
        """Run one check; a ConfigError is noted (every problem is reported at once) and None returned."""
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            problems.extend(e.problems)
            return None

    def fail(message: str) -> None:
        raise ConfigError(message)

    bot_token = check(_required, env, "SLACK_BOT_TOKEN")
    if bot_token and not bot_token.startswith("xoxb-"):
        check(fail, "SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    signing_secret = check(_required, env, "SLACK_SIGNING_SECRET")
    app_token = (env.get("SLACK_APP_TOKEN") or "").strip() or None
    if require_slack_app_token and not app_token:
        check(fail, "SLACK_APP_TOKEN is not set (Socket Mode needs an app-level token, xapp-…)")
    if app_token and not app_token.startswith("xapp-"):
        check(fail, "SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    slack_api_url = check(_url, env, "SLACK_API_URL", required=False)
    polaris_url = check(_url, env, "POLARIS_API_URL", required=require_polaris) or ""
    polaris_key = (env.get("POLARIS_API_KEY") or "").strip()
    if require_polaris and not polaris_key:
        check(fail, "POLARIS_API_KEY is not set (an API key with the AdministerUsers permission)")
    channel = check(_required, env, "APPROVAL_CHANNEL")
    if channel and not CHANNEL_ID.match(channel):
        check(fail, f"APPROVAL_CHANNEL must be a channel ID like C012ABCDEF, got {channel[:30]!r}")
    approvers = check(_user_ids, env, "APPROVERS")
    admins = check(_user_ids, env, "ADMINS")
    if (
        approvers is not None
        and admins is not None
        and not approvers
        and not admins
        and not (env.get("POLICY_FILE") or "").strip()
    ):
        check(
            fail,
            "APPROVERS is empty: name at least one Slack user ID in APPROVERS or ADMINS "
            "(or approvers in a POLICY_FILE)",
        )
    db_url = check(database_url, env)
    numbers = {
        "port": check(_number, env, "PORT", 3000, kind=int, minimum=1, maximum=65535),
        "request_ttl": check(_number, env, "REQUEST_TTL", 24 * 3600.0, minimum=60, maximum=90 * 86400),
        "polaris_timeout": check(_number, env, "POLARIS_TIMEOUT", 10.0, minimum=0.1, maximum=300),
        "polaris_retry_seconds": check(_number, env, "POLARIS_RETRY_SECONDS", 30.0, minimum=0, maximum=3600),
        "polaris_max_attempts": check(_number, env, "POLARIS_MAX_ATTEMPTS", 5, kind=int, minimum=1, maximum=100),
        "worker_interval": check(_number, env, "WORKER_INTERVAL", 5.0, minimum=0.05, maximum=3600),
        "group_cache_ttl": check(_number, env, "GROUP_CACHE_TTL", 60.0, minimum=0, maximum=86400),
        "max_open_requests": check(_number, env, "MAX_OPEN_REQUESTS", 5, kind=int, minimum=1, maximum=10000),
        "max_commands_per_minute": check(
            _number, env, "MAX_COMMANDS_PER_MINUTE", 30, kind=int, minimum=1, maximum=100000
        ),
        "work_threads": check(_number, env, "WORK_THREADS", 2, kind=int, minimum=1, maximum=64),
        # read by gunicorn too, which fails on a bad one with a traceback: checked here, before it starts
        "web_concurrency": check(_number, env, "WEB_CONCURRENCY", 2, kind=int, minimum=1, maximum=256),
        "gunicorn_threads": check(_number, env, "GUNICORN_THREADS", 8, kind=int, minimum=1, maximum=256),
        "reconcile_interval": check(_number, env, "RECONCILE_INTERVAL", 3600.0, minimum=60, maximum=7 * 86400),
    }
    key = check(audit_key, env)
    serve_worker = check(_flag, env, "SERVE_WORKER", True)
    audit_channel = check(_audit_channel, env)
    manager_field = (env.get("MANAGER_PROFILE_FIELD") or "").strip() or None
    if manager_field and not PROFILE_FIELD_ID.match(manager_field):
        check(
            fail,
            f"MANAGER_PROFILE_FIELD must be a Slack custom profile field ID like Xf01ABCDEF (Xf and capital "
            f"letters or digits), got {manager_field[:30]!r}",
        )
    policy_file = (env.get("POLICY_FILE") or "").strip() or None
    problems.extend(_policy_problems(policy_file))
    if problems:
        raise ConfigError(problems)
    ints = (
        "port",
        "polaris_max_attempts",
        "max_open_requests",
        "max_commands_per_minute",
        "work_threads",
        "web_concurrency",
        "gunicorn_threads",
    )
    return Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=slack_api_url,
        polaris_api_url=polaris_url,
        polaris_api_key=polaris_key,
        database_url=db_url,
        approval_channel=channel,
        approvers=approvers,
        admins=admins,
        policy_file=policy_file,
        manager_field=manager_field,
        audit_key=key,
        audit_channel=audit_channel,
        serve_worker=serve_worker,
        **{k: int(v) if k in ints else v for k, v in numbers.items()},
    )
