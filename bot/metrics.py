"""Prometheus metrics (``GET /metrics``, the Prometheus text format), with ``prometheus_client``.

Two kinds, all named ``polaris_access_bot_*``:

- Counted in each process as things happen (counters, histograms): ``commands_total{command, outcome}``,
  ``decisions_total{decision, outcome}`` (from the ``decision.*`` audit rows), ``polaris_calls_total{method,
  path, status}`` with ``polaris_call_duration_seconds{method, path}``, ``slack_calls_total{method, error}``, and
  ``serve_workers`` (the live gunicorn workers).
  Under gunicorn each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode), and a scrape answered by any worker sums every worker's files:
  :func:`prepare_multiprocess` sets that folder up in ``serve`` before any worker starts. That variable must be
  set before ``prometheus_client`` is imported, so this module imports it only when a metric is first used.
- Read from the shared database at each scrape (gauges; the same answer from every process and worker):
  ``requests{kind, state}``, ``leases_active`` and ``leases_overdue`` (0 while there is no ``leases`` table),
  ``work_queue_depth{queue}`` and ``work_queue_oldest_due_seconds{queue}`` for the worker's three queues
  (``apply``: approved requests due to be applied; ``delivery``: Slack deliveries due; ``expiry``: pending
  requests past their TTL), and ``database_up``.

Every label value comes from a fixed set (command names, states, Slack method names, error codes) or is a
path template (``/v1/users/{id}``): never an ID, an email, a name or a secret.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from types import SimpleNamespace
from typing import Callable

from .audit import AuditLog

log = logging.getLogger(__name__)

PREFIX = "polaris_access_bot_"
COMMANDS = frozenset(
    ("help", "whois", "groups", "members", "permissions", "request", "invite", "reset-password")
    + ("status", "pending", "policy", "request-form")
)
"""The ``command`` label values; anything else is counted as ``other``."""
_POLARIS_WORDS = frozenset(
    ("v1", "users", "groups", "members", "permissions", "effectivepermissions", "projects", "audit", "events")
)
#: Polaris call latency buckets, seconds (a call is 50 ms to the 10 s read timeout).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_lock = threading.Lock()
_metrics: SimpleNamespace | None = None


def _m() -> SimpleNamespace:
    """The process's metric objects, made (and ``prometheus_client`` imported) on first use."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                from prometheus_client import Counter, Gauge, Histogram

                _metrics = SimpleNamespace(
                    commands=Counter(
                        PREFIX + "commands_total", "Slash commands and form submissions", ["command", "outcome"]
                    ),
                    decisions=Counter(
                        PREFIX + "decisions_total", "Decisions and refused clicks", ["decision", "outcome"]
                    ),
                    polaris=Counter(
                        PREFIX + "polaris_calls_total", "Polaris HTTP attempts", ["method", "path", "status"]
                    ),
                    polaris_seconds=Histogram(
                        PREFIX + "polaris_call_duration_seconds",
                        "Polaris HTTP attempt latency",
                        ["method", "path"],
                        buckets=LATENCY_BUCKETS,
                    ),
                    slack=Counter(PREFIX + "slack_calls_total", "Slack Web API calls", ["method", "error"]),
                    workers=Gauge(
                        PREFIX + "serve_workers",
                        "gunicorn workers serving (summed over live workers)",
                        multiprocess_mode="livesum",
                    ),
                )
    return _metrics


# ------------------------------------------------------------------------------------- label values
def command_name(shown: str | None) -> str:
    """The ``command`` label of a command's text (its first word, aliases resolved, or ``other``)."""
    from .commands import ALIASES

    word = (shown or "").strip().split(" ", 1)[0].lower()
    word = ALIASES.get(word, word) or "help"
    return word if word in COMMANDS else "other"


def path_template(path: str) -> str:
    """A Polaris path with every ID replaced by ``{id}``: ``/v1/users/3f…/effectivepermissions`` ->
    ``/v1/users/{id}/effectivepermissions``. The query string is dropped."""
    parts = path.split("?", 1)[0].split("/")
    return "/".join(p if not p or p in _POLARIS_WORDS else "{id}" for p in parts)


_SLACK_METHOD = re.compile(r"^[a-z]+(\.[a-zA-Z]+)+$")


def _slack_label(method: str) -> str:
    return method if _SLACK_METHOD.match(method or "") else "other"


def _error_label(error: str | None) -> str:
    if not error:
        return "ok"
    return error if re.fullmatch(r"[A-Za-z0-9_]{1,40}", error) else "other"


# ------------------------------------------------------------------------------------- counting
def count_command(shown: str | None, outcome: str) -> None:
    """One command answered: ``outcome`` is ``ok``, ``refused``, ``invalid``, ``polaris_error``,
    ``slack_error`` or ``error``."""
    _safely(lambda: _m().commands.labels(command_name(shown), outcome).inc())


def count_slack_call(method: str, error: str | None) -> None:
    """One Slack Web API call (after slack_sdk's retries): ``error`` is Slack's error code, ``None`` when ok."""
    _safely(lambda: _m().slack.labels(_slack_label(method), _error_label(error)).inc())


def polaris_hook(then: Callable | None = None) -> Callable:
    """A :class:`bot.polaris.PolarisClient` ``on_call`` hook that counts and times each attempt, then calls
    ``then`` (the audit log's hook) with the same arguments. ``status`` label: the HTTP status, or the
    transport's error (``Timeout``, ``ConnectionError``) when no answer came."""

    def hook(method: str, path: str, status: int | None, duration_ms: float, error_code: str | None) -> None:
        def count() -> None:
            m, template = _m(), path_template(path)
            label = str(status) if status is not None else _error_label(error_code)
            m.polaris.labels(method, template, label).inc()
            m.polaris_seconds.labels(method, template).observe(max(duration_ms, 0.0) / 1000.0)

        _safely(count)
        if then is not None:
            then(method, path, status, duration_ms, error_code)

    return hook


def _safely(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:  # a metric must never break the work it counts
        log.exception("metrics update failed")


class MeteredAuditLog(AuditLog):
    """The audit log, also counting each ``decision.*`` row in ``decisions_total`` (``decision`` is the part
    after the dot: ``approve``, ``deny``, ``retry``, ``auto_approve``, ``refused``)."""

    def record(self, actor: str, action: str, **kwargs) -> None:
        super().record(actor, action, **kwargs)
        if action.startswith("decision."):
            decision = action.split(".", 1)[1][:20]
            outcome = _error_label(kwargs.get("outcome") or "ok")
            _safely(lambda: _m().decisions.labels(decision, outcome).inc())


# ------------------------------------------------------------------------------------- multiprocess
def prepare_multiprocess(default_parent: str | None = None) -> str:
    """Before gunicorn starts its workers: make sure ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder (a new
    temporary one when unset; the ``*.db`` files of an earlier run removed when set) and return it."""
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="polaris-bot-metrics-", dir=default_parent)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    return folder


def worker_started() -> None:
    """In each gunicorn worker at start: ``serve_workers`` counts it (a live-sum gauge in multiprocess mode)."""
    _safely(lambda: _m().workers.set(1))


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: tell prometheus_client that worker ``pid`` is gone (its counters stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        _safely(lambda: multiprocess.mark_process_dead(pid))


# ------------------------------------------------------------------------------------- scrape
class Exposition:
    """``GET /metrics``: :meth:`__call__` returns (status, body, content type). The counters of every process
    (multiprocess mode) or of this one, then the gauges read from ``db`` (:class:`bot.db.Database`) at
    ``clock()`` (aware UTC)."""

    def __init__(self, db, clock: Callable[[], dt.datetime]):
        self.db, self.clock = db, clock

    def __call__(self) -> tuple[int, bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

        _m()  # the families exist (at zero) from the first scrape on
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            counted = CollectorRegistry()
            multiprocess.MultiProcessCollector(counted)
        else:
            counted = REGISTRY
        gauges = CollectorRegistry()
        from .metrics_db import DatabaseCollector

        gauges.register(DatabaseCollector(self.db, self.clock))
        return 200, generate_latest(counted) + generate_latest(gauges), CONTENT_TYPE_LATEST
