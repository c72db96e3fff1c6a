"""polaris-access-bot entry point.

    python app.py serve     # HTTP mode: POST /slack/events, GET /healthz, under gunicorn (Bolt's WSGI adapter)
    python app.py socket    # Socket Mode (SLACK_APP_TOKEN), for a workspace without a public URL
    python app.py demo      # the whole job locally: SQLite, the Polaris sandbox and a Slack console
    python app.py migrate   # alembic upgrade head

Configuration is read from the environment and ``.env`` (see README and ``.env.example``). Exit status: 0, 2 for a
configuration error (a missing or refused setting, token or key), 3 when the database does not answer, 4 when
``socket`` cannot reach Slack; each with one line on stderr.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from bot import redact
from bot.audit import AuditLog
from bot.config import ConfigError, Settings, database_url, load_settings
from bot.db import Database
from bot.policy import PolicyError, load_policy
from bot.polaris import GroupCatalog, PolarisAuthError, PolarisClient, PolarisError
from bot.slack import SlackGateway
from bot.worker import Worker
from bot.workflow import AccessService

log = logging.getLogger("polaris_access_bot")


@dataclass
class Core:
    """Everything one process needs, wired together."""

    settings: Settings
    db: Database
    audit: AuditLog
    polaris: PolarisClient
    slack: SlackGateway
    service: AccessService


def build_core(settings: Settings, *, db: Database | None = None) -> Core:
    """Wire database, audit log, Polaris client, Slack gateway and the access service for ``settings``."""
    redact.register(settings.secrets())
    db = db or Database(settings.database_url)
    audit = AuditLog(db)
    polaris = PolarisClient(settings.polaris_api_url, settings.polaris_api_key,
                            timeout=(min(3.05, settings.polaris_timeout), settings.polaris_timeout),
                            retry_seconds=settings.polaris_retry_seconds, on_call=audit.polaris_hook)
    slack = SlackGateway(settings.slack_bot_token, base_url=settings.slack_api_url, audit=audit)
    catalog = GroupCatalog(polaris, ttl=settings.group_cache_ttl)
    try:
        policy = load_policy(settings.policy_file, ttl=settings.request_ttl, manager_field=settings.manager_field)
    except PolicyError as e:
        raise ConfigError(f"POLICY_FILE: {e}") from None
    service = AccessService(settings, db, polaris, slack, audit, catalog=catalog, policy=policy,
                            background_threads=settings.work_threads)
    return Core(settings, db, audit, polaris, slack, service)


def build_bolt_app(core: Core, *, listener_threads: int = 16, verify_token: bool = False,
                   report_unreachable: bool = True):
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
        app = App(signing_secret=core.settings.slack_signing_secret, client=core.slack.client,
                  token_verification_enabled=verified, process_before_response=True, listener_executor=executor)
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

    client = WebClient(token=core.slack.client.token, base_url=core.slack.client.base_url, timeout=5,
                       retry_handlers=[], logger=_quiet_logger())
    try:
        client.auth_test()
        return True
    except SlackApiError as e:
        error = e.response.get("error") if e.response is not None else None
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({error})") from None
        reason = str(error)
    except Exception as e:  # Slack unreachable right now
        reason = _reason(e)
    if report_unreachable:
        log.warning("Slack's auth.test failed at %s (%s); Bolt will check the token on the first request",
                    _origin(client.base_url), reason)
    return False


def _reason(error: BaseException) -> str:
    """A short, one-line reason for a failed call: the exception type and its first line (no URL query)."""
    inner = getattr(error, "reason", None) or error
    text = str(inner).strip().splitlines()[0][:200] if str(inner).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _origin(url: str | None) -> str:
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
        raise ConfigError(f"POLARIS_API_KEY was refused by Polaris ({e.status}): check the key and its "
                          "AdministerUsers permission") from None
    except PolarisError as e:
        log.warning("Polaris at %s is unreachable at start (%s %s); serving anyway, /healthz says so until it "
                    "answers", _origin(settings.polaris_api_url), e.status or "no response", e.code)
        return "unreachable"


def database_for_log(url: str) -> str:
    """``url`` fit for a log line: the password and any query value named like a secret (``*pass*``,
    ``*secret*``, ``*key*``, ``*token*``) shown as ``***``."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "(unparseable DATABASE_URL)"
    query = {k: ("***" if any(w in k.lower() for w in ("pass", "secret", "key", "token")) else v)
             for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _start_line(settings: Settings, mode: str) -> None:
    log.info("%s: database %s, Polaris %s, approval channel %s", mode, database_for_log(settings.database_url),
             _origin(settings.polaris_api_url), settings.approval_channel)


def make_wsgi(core: Core, bolt_app, *, polaris_state: str | None = None):
    """WSGI app (:class:`bot.server.SlackEdge`): ``POST /slack/events`` into Bolt after the body limit, the
    signature check and our own parse; ``GET``/``HEAD /healthz`` answered by :class:`bot.server.Health`, which
    starts from ``polaris_state`` (the probe ``serve`` made at start) or probes Polaris once now."""
    from bot.server import Health, SlackEdge

    return SlackEdge(bolt_app, core.settings.slack_signing_secret, Health(core, initial=polaris_state))


def _check_schema(db: Database) -> None:
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
        raise ConfigError(f"the database is at migration {current or 'none'}, not {head}: run `python app.py migrate` "
                          "first (the Procfile's release step does)")


# ------------------------------------------------------------------------------------------ commands
def cmd_migrate(_args) -> int:
    url = database_url()  # checked like serve's: a URL that cannot work is one line, not a traceback
    Database(url).migrate()
    print("database migrated to head")
    return 0


def cmd_serve(args) -> int:
    settings = load_settings()
    # Checked (by load_settings) before gunicorn is imported: gunicorn reads WEB_CONCURRENCY itself and fails
    # with a traceback.
    workers, threads = settings.web_concurrency, settings.gunicorn_threads
    from gunicorn.app.base import BaseApplication

    if settings.database_url.startswith("sqlite") and workers > 1:
        log.warning("SQLite serves one process: running 1 gunicorn worker (use PostgreSQL to run more)")
        workers = 1

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{settings.port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 25)
            self.cfg.set("accesslog", None)
            self.cfg.set("worker_exit", lambda _arbiter, _worker: _WORKERS and _WORKERS[0].stop())

            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: one shared path per user
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return build_serving_app(settings, polaris_state=polaris_state)

    core = build_core(settings)
    _check_schema(core.db)
    # A refused token or key stops here, with one line, before any worker starts.
    verify_slack_token(core)
    polaris_state = check_polaris(settings)
    core.db.dispose()
    _start_line(settings, f"serving on {args.host}:{settings.port} ({workers} worker{'s' * (workers > 1)})")
    Server().run()
    return 0


_WORKERS: list[Worker] = []


def build_serving_app(settings: Settings, *, polaris_state: str | None = None):
    """Called in each gunicorn worker process: wire the core, start its background worker, return WSGI.
    ``polaris_state``: what the ``serve`` process's probe found, the first ``/healthz`` answer."""
    redact.install()
    redact.protect("gunicorn.error")
    core = build_core(settings)
    worker = Worker(core.service, interval=settings.worker_interval).start()
    _WORKERS.append(worker)
    return make_wsgi(core, build_bolt_app(core, verify_token=True, report_unreachable=False),
                     polaris_state=polaris_state)


def cmd_socket(_args) -> int:
    settings = load_settings(require_slack_app_token=True)
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    core = build_core(settings)
    _check_schema(core.db)
    if not verify_slack_token(core, report_unreachable=False):  # Socket Mode is a connection to Slack
        print(f"cannot reach Slack at {_origin(core.slack.client.base_url)} (auth.test did not answer): Socket "
              "Mode needs it; check the network or SLACK_API_URL", file=sys.stderr)
        return 4
    check_polaris(settings)
    bolt = build_bolt_app(core, verify_token=True, report_unreachable=False)
    handler = SocketModeHandler(bolt, settings.slack_app_token)
    try:
        handler.connect()
    except SlackApiError as e:
        error = e.response.get("error") if e.response is not None else None
        raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({error})") from None
    except Exception as e:
        print(f"cannot reach Slack's Socket Mode ({_reason(e)})", file=sys.stderr)
        return 4
    worker = Worker(core.service, interval=settings.worker_interval).start()
    signal.signal(signal.SIGTERM, lambda *_: (worker.stop(), sys.exit(0)))
    _start_line(settings, "Socket Mode connected")
    threading.Event().wait()  # as SocketModeHandler.start does: the connection lives in its own threads
    return 0


def cmd_demo(args) -> int:
    from standins.console import run_demo

    return run_demo(database_url=args.database_url, script=not sys.stdin.isatty())


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    parser = argparse.ArgumentParser(prog="app.py", description="Polaris access bot")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="HTTP mode under gunicorn on $PORT")
    serve.add_argument("--host", default="0.0.0.0")
    sub.add_parser("socket", help="Socket Mode")
    demo = sub.add_parser("demo", help="local demo: SQLite, Polaris sandbox, Slack console")
    demo.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    sub.add_parser("migrate", help="alembic upgrade head")
    args = parser.parse_args(argv)
    if args.command != "demo":
        load_dotenv()
    redact.install()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines (plugins, each revision) are noise
    handlers = {"serve": cmd_serve, "socket": cmd_socket, "demo": cmd_demo, "migrate": cmd_migrate}
    try:
        return handlers[args.command](args)
    except ConfigError as e:  # every problem found, a line each
        for problem in e.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    except OperationalError as e:  # the database did not answer: one line, not two tracebacks
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0][:300]
        print(f"database error: cannot use DATABASE_URL ({redact.redact(reason)})", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
