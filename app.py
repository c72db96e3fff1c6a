"""polaris-access-bot entry point.

    python app.py serve     # HTTP mode: POST /slack/events, GET /healthz, under gunicorn (Bolt's WSGI adapter)
    python app.py worker    # the worker loop alone (apply, revoke, retries, reminders, reconcile), no HTTP
    python app.py socket    # Socket Mode (SLACK_APP_TOKEN), for a workspace without a public URL
    python app.py demo      # the whole job locally: SQLite, the Polaris sandbox and a Slack console
    python app.py migrate   # alembic upgrade head
    python app.py sandbox   # the Polaris sandbox and the Slack stand-in on 127.0.0.1, for trying serve
    python app.py audit verify [--witness] [--expect ID:SEAL]   # check the audit chain (exit 1 when broken)
    python app.py audit export [--since T] [--until T] [--format csv|jsonl]
    python app.py reconcile [--baseline] [--format text|json]   # drift between Polaris and the bot's records

Configuration is read from the environment and ``.env`` (see README and ``.env.example``). Exit status: 0, 1 when
``audit verify`` finds the chain broken or ``reconcile`` finds drift, 2 for a configuration error (a missing or
refused setting, token or key), 3 when the database does not answer, 4 when ``socket`` cannot reach Slack (or the
witness post failed), 5 when ``reconcile`` cannot read Polaris; each with one line on stderr. ``LOG_FORMAT=json``
makes every line a process prints one JSON object (:mod:`bot.logs`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from sqlalchemy.exc import OperationalError

from bot import logs, metrics, redact, wiring
from bot.config import ConfigError, Settings, database_url, load_settings
from bot.db import Database

log = logging.getLogger("polaris_access_bot")


def _start_line(settings: Settings, mode: str) -> None:
    log.info(
        "%s: database %s, Polaris %s, approval channel %s",
        mode,
        wiring.database_for_log(settings.database_url),
        wiring.origin(settings.polaris_api_url),
        settings.approval_channel,
    )


# ------------------------------------------------------------------------------------------ commands
def cmd_migrate(_args) -> int:
    url = database_url()  # checked like serve's: a URL that cannot work is one line, not a traceback
    Database(url).migrate()
    logs.say("database migrated to head")
    return 0


def cmd_serve(args) -> int:
    settings = load_settings()
    # Checked (by load_settings) before gunicorn is imported: gunicorn reads WEB_CONCURRENCY itself and fails
    # with a traceback.
    workers, threads = settings.web_concurrency, settings.gunicorn_threads
    from gunicorn.app.base import BaseApplication

    one_process = settings.database_url.startswith("sqlite") and workers > 1
    if one_process:
        workers = 1  # said after the checks below, so that a refusal is the only thing printed

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{settings.port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 25)
            self.cfg.set("accesslog", None)
            self.cfg.set("worker_exit", lambda _arbiter, _worker: wiring.stop_workers())
            self.cfg.set("child_exit", lambda _arbiter, worker: metrics.worker_exited(worker.pid))
            self.cfg.set("logger_class", logs.gunicorn_logger_class())

            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: one shared path per user
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return wiring.build_serving_app(settings, polaris_state=polaris_state)

    core = wiring.build_core(settings)
    # A refused token or key, an unmigrated database or a taken port stops here, a line each, before any worker.
    _, polaris_state = wiring.start_checks(core, more=[lambda: _check_port(args.host, settings.port)])
    core.db.dispose()
    metrics.prepare_multiprocess()  # before any worker: every worker's counters in one folder (GET /metrics)
    if one_process:
        log.warning("SQLite serves one web process: running 1 gunicorn worker (use PostgreSQL to run more)")
    _start_line(settings, f"serving on {args.host}:{settings.port} ({workers} worker{'s' * (workers > 1)})")
    if not settings.serve_worker:
        log.warning(
            "SERVE_WORKER=false: this process applies nothing; approved requests wait (time-bound access is not "
            "ended, messages held or retried are not sent) until a `python app.py worker` process runs"
        )
    Server().run()
    return 0


def cmd_worker(_args) -> int:
    """The background worker (:class:`bot.worker.Worker`: applies approved requests, ends leases, retries,
    reminders, the audit jobs) as a process of its own, for a deployment that runs ``serve`` with
    ``SERVE_WORKER=false``. Same settings and start-up checks as ``serve``; SIGTERM or SIGINT lets the step in
    flight finish, then exits 0."""
    settings = load_settings()
    core = wiring.build_core(settings)
    wiring.start_checks(core)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    worker = wiring.build_worker(core).start()
    _start_line(settings, f"worker running (a pass every {settings.worker_interval:g} s)")
    if core.db.is_sqlite:
        log.warning("SQLite: this worker and `serve` must share the one file on this machine (PostgreSQL for more)")
    while not stopping.wait(1.0):
        pass
    worker.stop()
    core.db.dispose()
    log.info("worker stopped")
    return 0


def _check_port(host: str, port: int) -> None:
    """Raise :class:`ConfigError` when ``host:port`` cannot be listened on (in use, or not an address of this
    machine), before gunicorn tries for 5 s and prints a line each try."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as e:
            why = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be used ({e.strerror})"
            raise ConfigError(f"PORT {port} on {host} {why}: set PORT (or --host) to a free one") from None


def cmd_socket(_args) -> int:
    settings = load_settings(require_slack_app_token=True)
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    core = wiring.build_core(settings)
    slack_ok, _ = wiring.start_checks(core, report_unreachable=False)
    if not slack_ok:  # Socket Mode is a connection to Slack
        logs.say(
            f"cannot reach Slack at {wiring.origin(core.slack.client.base_url)} (auth.test did not answer): Socket "
            "Mode needs it; check the network or SLACK_API_URL",
            level=logging.ERROR,
            stream=sys.stderr,
        )
        return 4
    bolt = wiring.build_bolt_app(core, verify_token=True, report_unreachable=False)
    handler = SocketModeHandler(bolt, settings.slack_app_token)
    try:
        handler.connect()
    except SlackApiError as e:
        error = e.response.get("error") if e.response is not None else None
        raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({error})") from None
    except Exception as e:
        logs.say(f"cannot reach Slack's Socket Mode ({wiring.reason_of(e)})", level=logging.ERROR, stream=sys.stderr)
        return 4
    worker = wiring.build_worker(core).start()
    signal.signal(signal.SIGTERM, lambda *_: (worker.stop(), sys.exit(0)))
    _start_line(settings, "Socket Mode connected")
    threading.Event().wait()  # as SocketModeHandler.start does: the connection lives in its own threads
    return 0


def cmd_demo(args) -> int:
    from standins.console import run_demo

    return run_demo(database_url=args.database_url, script=not sys.stdin.isatty())


def cmd_sandbox(args) -> int:
    from standins.sandbox import run_sandbox

    return run_sandbox(polaris_port=args.polaris_port, slack_port=args.slack_port, serve_port=args.port)


def cmd_audit(args) -> int:
    from bot import audit_jobs

    if args.audit_command == "export":
        return audit_jobs.cli_export(args.since, args.until, args.format, sys.stdout)
    return audit_jobs.cli_verify(args.expect or [], witness=args.witness, out=sys.stdout)


def cmd_reconcile(args) -> int:
    from bot import audit_jobs

    return audit_jobs.cli_reconcile(baseline=args.baseline, fmt=args.format, out=sys.stdout)


def _audit_parsers(sub) -> None:
    audit = sub.add_parser("audit", help="the audit trail: verify its chain, export it")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the chain; exit 1 and the first broken row when it does not hold"
    )
    verify.add_argument("--witness", action="store_true", help="also post the chain head to AUDIT_CHANNEL")
    verify.add_argument("--expect", action="append", metavar="ID:SEAL", help="a head from a witness post (repeatable)")
    export = audit_sub.add_parser("export", help="the rows to standard output, oldest first")
    export.add_argument("--since", help="from this UTC time (ISO 8601, inclusive)")
    export.add_argument("--until", help="up to this UTC time (ISO 8601, exclusive)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    reconcile = sub.add_parser("reconcile", help="report drift between Polaris and the bot's records")
    reconcile.add_argument("--baseline", action="store_true", help="accept Polaris's state now (a new install)")
    reconcile.add_argument("--format", choices=("text", "json"), default="text")


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    parser = argparse.ArgumentParser(prog="app.py", description="Polaris access bot")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="HTTP mode under gunicorn on $PORT")
    serve.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on (default 0.0.0.0, every interface; 127.0.0.1 for this machine only)",
    )
    sub.add_parser("worker", help="the worker loop as its own process (run serve with SERVE_WORKER=false)")
    sub.add_parser("socket", help="Socket Mode")
    demo = sub.add_parser("demo", help="local demo: SQLite, Polaris sandbox, Slack console")
    demo.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    sub.add_parser("migrate", help="alembic upgrade head")
    sandbox = sub.add_parser("sandbox", help="the Polaris sandbox and the Slack stand-in, to point serve at")
    sandbox.add_argument("--polaris-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--slack-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--port", type=int, default=3000, help="the PORT serve will listen on (default 3000)")
    _audit_parsers(sub)
    args = parser.parse_args(argv)
    if args.command not in ("demo", "sandbox"):
        load_dotenv()
    try:
        logs.setup()
    except logs.LogFormatError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines (plugins, each revision) are noise
    handlers = {
        "serve": cmd_serve,
        "worker": cmd_worker,
        "socket": cmd_socket,
        "demo": cmd_demo,
        "migrate": cmd_migrate,
        "sandbox": cmd_sandbox,
        "audit": cmd_audit,
        "reconcile": cmd_reconcile,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as e:  # every problem found, a line each
        for problem in e.problems:
            logs.say(f"configuration error: {problem}", level=logging.ERROR, stream=sys.stderr)
        return 2
    except OperationalError as e:  # the database did not answer: one line, not two tracebacks
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0][:300]
        logs.say(
            f"database error: cannot use DATABASE_URL ({redact.redact(reason)})", level=logging.ERROR, stream=sys.stderr
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
