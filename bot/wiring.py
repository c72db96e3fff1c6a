"""Wiring: the one composition root. Builds the core (database, audit log, Polaris client, group catalogue,
Slack gateway, policy and the access service, with the clock and clients injected; nothing is a patched
singleton) and the Bolt app around it, plus the start-up checks and the WSGI app ``serve`` runs.

Used by ``app.py`` (the CLI), by the demo console (``standins.console``), the tests and the benchmarks; it
imports neither of the first two, so the CLI and the console never import each other.

- :func:`build_core` -> :class:`Core`; :func:`build_bolt_app` registers every listener of ``handlers``.
- :func:`verify_slack_token`, :func:`check_polaris`, :func:`check_schema`: the start-up checks; a refused
  token, key or an unmigrated database is a :class:`bot.config.ConfigError` with one line.
- :func:`build_serving_app` (in each gunicorn worker): the core, its background :class:`bot.worker.Worker`
  and :func:`make_wsgi` (:class:`bot.server.SlackEdge` in front of Bolt).
- :func:`database_for_log`, :func:`origin`, :func:`reason_of`: what a log line may show of a URL or an error.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot import metrics, redact
from bot.config import ConfigError, Settings
from bot.db import Database
from bot.policy import PolicyError, load_policy
from bot.polaris import GroupCatalog, PolarisAuthError, PolarisClient, PolarisError
from bot.dm_channels import DmChannels
from bot.slack import SlackGateway
from bot.worker import Worker
from bot.access import AccessService

log = logging.getLogger("polaris_access_bot")


@dataclass
class Core:
    """Everything one process needs, wired together."""

    settings: Settings
    db: Database
    audit: metrics.MeteredAuditLog
    polaris: PolarisClient
    slack: SlackGateway
    service: AccessService


def build_core(settings: Settings, *, db: Database | None = None) -> Core:
    """Wire database, audit log, Polaris client, Slack gateway and the access service for ``settings``."""
    redact.register(settings.secrets())
    db = db or Database(settings.database_url)
    audit = metrics.MeteredAuditLog(db, key=settings.audit_key)  # counting decisions for /metrics; the chain's key
    polaris = PolarisClient(
        settings.polaris_api_url,
        settings.polaris_api_key,
        timeout=(min(3.05, settings.polaris_timeout), settings.polaris_timeout),
        retry_seconds=settings.polaris_retry_seconds,
        on_call=metrics.polaris_hook(audit.polaris_hook),
    )
    slack = SlackGateway(
        settings.slack_bot_token, base_url=settings.slack_api_url, audit=audit, channels=DmChannels(db)
    )
    catalog = GroupCatalog(polaris, ttl=settings.group_cache_ttl)
    try:
        policy = load_policy(settings.policy_file, ttl=settings.request_ttl, manager_field=settings.manager_field)
    except PolicyError as e:
        raise ConfigError(f"POLICY_FILE: {e}") from None
    service = AccessService(
        settings, db, polaris, slack, audit, catalog=catalog, policy=policy, background_threads=settings.work_threads
    )
    return Core(settings, db, audit, polaris, slack, service)


def build_bolt_app(
    core: Core, *, listener_threads: int = 16, verify_token: bool = False, report_unreachable: bool = True
):
    """The Bolt ``App`` with every listener registered.

    ``verify_token``: call ``auth.test`` now (serve and socket do), so a wrong ``SLACK_BOT_TOKEN`` stops the
    process at start with :class:`ConfigError`, and the first request does not pay for the call. When Slack
    cannot be reached now, Bolt calls it on the first request instead (one warning line unless
    ``report_unreachable`` is false: gunicorn workers leave that to the ``serve`` process that started them)."""
    from slack_bolt import App

    import handlers

    verified = verify_slack_token(core, report_unreachable=report_unreachable) if verify_token else False

    executor = ThreadPoolExecutor(max_workers=listener_threads, thread_name_prefix="listener")
    # process_before_response: the listener runs in the request's own thread and Bolt answers when it
    # returns. Listeners only ack() and hand their work to the service's work pool, so this is the ack, without
    # a thread hop and Bolt's polling for it.
    # Bolt takes either a token or a client. It reads SLACK_BOT_TOKEN from the environment when no token is
    # given, and then warns that it is unused next to our client: the client is all it gets.
    hidden = os.environ.pop("SLACK_BOT_TOKEN", None)
    try:
        app = App(
            signing_secret=core.settings.slack_signing_secret,
            client=core.slack.client,
            token_verification_enabled=verified,
            process_before_response=True,
            listener_executor=executor,
        )
    finally:
        if hidden is not None:
            os.environ["SLACK_BOT_TOKEN"] = hidden
    app.listener_pool = executor  # so a caller (tests, shutdown) can wait for listeners still running
    handlers.register_all(app, core.service)
    return app


def _quiet_logger() -> logging.Logger:
    """A logger that drops everything: for slack_sdk's own lines on start-up checks we report ourselves."""
    quiet = logging.getLogger("polaris_access_bot.quiet")
    quiet.propagate, quiet.disabled = False, True
    return quiet


def verify_slack_token(core: Core, *, report_unreachable: bool = True) -> bool:
    """``auth.test`` with the bot token, once (no retries, 5 s timeout, none of slack_sdk's log lines): True
    when Slack accepted it, False when Slack could not be reached (one warning line when
    ``report_unreachable``). Raises :class:`ConfigError` when Slack refused the token."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(
        token=core.slack.client.token,
        base_url=core.slack.client.base_url,
        timeout=5,
        retry_handlers=[],
        logger=_quiet_logger(),
    )
    try:
        client.auth_test()
        return True
    except SlackApiError as e:
        error = e.response.get("error") if e.response is not None else None
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({error})") from None
        reason = str(error)
    except Exception as e:  # Slack unreachable right now
        reason = reason_of(e)
    if report_unreachable:
        log.warning(
            "Slack's auth.test failed at %s (%s); Bolt will check the token on the first request",
            origin(client.base_url),
            reason,
        )
    return False


def reason_of(error: BaseException) -> str:
    """A short, one-line reason for a failed call: the exception type and its first line (no URL query)."""
    inner = getattr(error, "reason", None) or error
    text = str(inner).strip().splitlines()[0][:200] if str(inner).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def origin(url: str | None) -> str:
    """``scheme://host[:port]`` of ``url``: no credentials, path or query."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}" if host else (url or "")


def check_polaris(settings: Settings) -> str:
    """Probe Polaris once at start (``GET /v1/permissions``, one attempt, short timeout, as
    :func:`bot.server.probe_polaris`): ``"ok"``, or ``"unreachable"`` (one warning line; the process still starts
    and ``/healthz`` says so). Raises :class:`ConfigError` when Polaris refuses ``POLARIS_API_KEY`` (401/403),
    like a refused Slack token."""
    from bot.server import probe_client

    try:
        probe_client(settings).list_permissions()
        return "ok"
    except PolarisAuthError as e:
        raise ConfigError(
            f"POLARIS_API_KEY was refused by Polaris ({e.status}): check the key and its AdministerUsers permission"
        ) from None
    except PolarisError as e:
        log.warning(
            "Polaris at %s is unreachable at start (%s %s); starting anyway, its calls are retried (serve's "
            "/healthz says so until it answers)",
            origin(settings.polaris_api_url),
            e.status or "no response",
            e.code,
        )
        return "unreachable"


def database_for_log(url: str) -> str:
    """``url`` fit for a log line: the password and any query value named like a secret (``*pass*``,
    ``*secret*``, ``*key*``, ``*token*``) shown as ``***``."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "(unparseable DATABASE_URL)"
    query = {
        k: ("***" if any(w in k.lower() for w in ("pass", "secret", "key", "token")) else v)
        for k, v in parsed.query.items()
    }
    return parsed.set(query=query).render_as_string(hide_password=True)


def make_wsgi(core: Core, bolt_app, *, polaris_state: str | None = None):
    """WSGI app (:class:`bot.server.SlackEdge`): ``POST /slack/events`` into Bolt after the body limit, the
    signature check and our own parse; ``GET``/``HEAD /healthz`` answered by :class:`bot.server.Health`, which
    starts from ``polaris_state`` (the probe ``serve`` made at start) or probes Polaris once now; ``GET
    /metrics`` by :class:`bot.metrics.Exposition`."""
    from bot.server import Health, SlackEdge

    return SlackEdge(
        bolt_app,
        core.settings.slack_signing_secret,
        Health(core, initial=polaris_state),
        metrics=metrics.Exposition(core.db, lambda: core.service.clock()),
    )


def start_checks(core: Core, *, report_unreachable: bool = True, more=()) -> tuple[bool, str]:
    """Every check ``serve`` and ``socket`` make at start, all of them, so that one run names every problem:
    the schema (:func:`check_schema`), the Slack token (:func:`verify_slack_token`), the Polaris key
    (:func:`check_polaris`), then each callable in ``more``. Returns (Slack reachable, Polaris state). Raises
    :class:`ConfigError` with every problem found, a line each."""
    problems: list[str] = []

    def attempt(check, refused):
        try:
            return check()
        except ConfigError as e:
            problems.extend(e.problems)
            return refused

    attempt(lambda: check_schema(core.db), None)
    slack_ok = attempt(lambda: verify_slack_token(core, report_unreachable=report_unreachable), False)
    polaris_state = attempt(lambda: check_polaris(core.settings), "unreachable")
    for check in more:
        attempt(check, None)
    if problems:
        raise ConfigError(problems)
    return slack_ok, polaris_state


def check_schema(db: Database) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from bot.db import alembic_config

    database = db.engine.url.database
    if db.is_sqlite and database and database != ":memory:" and not os.path.exists(database):
        raise ConfigError(f"the SQLite database {database} does not exist: run `python app.py migrate` first")
    head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise ConfigError(
            f"the database is at migration {current or 'none'}, not {head}: run `python app.py migrate` "
            "first (the Procfile's release step does)"
        )


def build_reconciler(core: Core):
    """The :class:`bot.reconcile.Reconciler` of ``core`` (its database, Polaris client, audit log, claims, clock)."""
    from bot.reconcile import Reconciler

    return Reconciler(core.db, core.polaris, core.audit, core.service.claims, lambda: core.service.clock())


def build_audit_jobs(core: Core):
    """The periodic jobs (:class:`bot.audit_jobs.AuditJobs`: the daily witness post, ``reconcile`` every
    ``RECONCILE_INTERVAL``) the worker of ``core`` runs; idle without ``AUDIT_CHANNEL``."""
    from bot.audit_jobs import AuditJobs

    return AuditJobs(
        core.db,
        core.audit,
        core.slack,
        build_reconciler(core),
        channel=core.settings.audit_channel,
        reconcile_interval=core.settings.reconcile_interval,
        clock=lambda: core.service.clock(),
    )


def build_worker(core: Core) -> Worker:
    """The background worker of ``core`` (not started): its passes and the periodic audit jobs."""
    return Worker(core.service, interval=core.settings.worker_interval, periodic=[build_audit_jobs(core).run_due])


WORKERS: list[Worker] = []  # the background worker of this (gunicorn worker) process, once built


def build_serving_app(settings: Settings, *, polaris_state: str | None = None):
    """Called in each gunicorn worker process: wire the core, start its background worker (unless
    ``SERVE_WORKER`` is false: ``python app.py worker`` runs it then), return WSGI. ``polaris_state``: what the
    ``serve`` process's probe found, the first ``/healthz`` answer."""
    redact.install()
    redact.protect("gunicorn.error")
    core = build_core(settings)
    if settings.serve_worker:
        WORKERS.append(build_worker(core).start())
    metrics.worker_started()
    return make_wsgi(
        core, build_bolt_app(core, verify_token=True, report_unreachable=False), polaris_state=polaris_state
    )


def stop_workers() -> None:
    """gunicorn's ``worker_exit``: stop this process's background worker (the apply in flight finishes)."""
    if WORKERS:
        WORKERS[0].stop()
