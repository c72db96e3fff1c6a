"""Shared plumbing for the benchmarks in ``bench/`` (not product code).

- :class:`Services`: the Polaris sandbox and the Slack stand-in, served on 127.0.0.1 from a *separate
  process*, so their CPU and GIL use does not sit in the load generator's process; controlled over a pipe
  (faults, call counts, response_url arrivals).
- :func:`database`: a fresh PostgreSQL schema (the search_path trick of ``tests/conftest.py``) or, when
  PostgreSQL does not answer, a fresh SQLite file; migrated with ``python app.py migrate``.
- :class:`ServerProcess`: ``python app.py serve`` (the product) or ``bench/floor_app.py`` (bare Bolt) as a
  subprocess with the same gunicorn settings; worker PIDs, RSS, log scanning.
- Signed Slack bodies (slash commands and button clicks), a closed-loop load generator (a thread pool of
  ``requests.Session``), percentiles, and the writer of one section of ``bench/RESULTS.md``.

Only 127.0.0.1 is ever contacted. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
OUT = os.path.join(BENCH, "out")  # logs, profiles (git-ignored)
RESULTS = os.path.join(BENCH, "RESULTS.md")
PYTHON = sys.executable

SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-bench-token-0000000000"
CHANNEL = "C0APPROVALS"
APPROVER, APPROVER2, ADMIN, OTHER = "U0BOB", "U0ERIN", "U0CAROL", "U0OSCAR"
PG_DEFAULT = "postgresql://root@127.0.0.1:5432/test"


def _terminate(signum, _frame):  # so `timeout`/SIGTERM still runs the cleanup (servers, schema, files)
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _terminate)


def load_user(i: int) -> tuple[str, str]:
    """Slack ID and email of synthetic load user ``i`` (in the stand-in, not in Polaris)."""
    return f"U0LOAD{i:05d}", f"load{i:05d}@example.com"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# =========================================================================================== services
def _services_main(conn, load_users: int, bulk: tuple[int, int] | None) -> None:  # noqa: C901
    """Child process: sandbox + stand-in on 127.0.0.1, then answer commands from ``conn`` until ``stop``."""
    from standins.polaris_sandbox import Fault, PolarisSandbox
    from standins.slack_api import SlackStandIn

    sandbox = PolarisSandbox(seed=False)
    if bulk:
        sandbox.seed_bulk(*bulk)
    org_admin = sandbox.group_by_name("Organization Admin")["id"]
    for email in ("bob@example.com", "erin@example.com", "carol@example.com"):
        sandbox.create_user(email, email.split("@")[0].capitalize(), "Bench", groups=[org_admin], actions=[])
    polaris = sandbox.serve()
    slack = SlackStandIn(bot_token=BOT_TOKEN)
    slack.serve()
    for uid, name in ((APPROVER, "bob"), (APPROVER2, "erin"), (ADMIN, "carol"), (OTHER, "oscar")):
        slack.add_user(uid, name, f"{name}@example.com", first_name=name.capitalize(), last_name="Bench")
    for i in range(load_users):
        uid, email = load_user(i)
        slack.add_user(uid, f"load{i}", email, first_name="Load", last_name=f"User{i}")
    arrivals: list[float] = []  # time.monotonic() (system-wide clock) of each response_url post
    original = slack.handle_response_url

    keyed: list[tuple[str, float, bool]] = []  # (response_url key, time.monotonic(), a "busy, try again" answer)
    from handlers.commands import BUSY

    def timed(key, payload):
        reply = original(key, payload)
        now = time.monotonic()
        arrivals.append(now)
        keyed.append((key, now, isinstance(payload, dict) and payload.get("text") == BUSY))
        return reply

    slack.handle_response_url = timed  # type: ignore[method-assign]
    conn.send({"polaris_url": polaris.url, "slack_api_url": slack.api_url, "slack_base_url": slack.base_url})
    try:
        while True:
            if not conn.poll(3600):
                break
            cmd, arg = conn.recv()
            if cmd == "stop":
                conn.send(True)
                break
            if cmd == "fault":
                sandbox.add_fault(Fault(**arg))
                conn.send(True)
            elif cmd == "clear_faults":
                sandbox.clear_faults()
                conn.send(True)
            elif cmd == "latency":
                slack.latency = float(arg)
                conn.send(True)
            elif cmd == "stats":
                with sandbox.lock, slack.lock:
                    conn.send(
                        {
                            "polaris_calls": len(sandbox.calls),
                            "responses": len(slack.responses),
                            "slack_calls": len(slack.calls),
                            "messages": len(slack.messages),
                            "arrivals": len(arrivals),
                            "last_arrival": arrivals[-1] if arrivals else None,
                            "polaris_writes": len(sandbox.writes()),
                        }
                    )
            elif cmd == "keyed_since":
                conn.send(list(keyed[arg:]))
            elif cmd == "arrivals_since":
                conn.send(list(arrivals[arg:]))
            elif cmd == "polaris_calls":
                with sandbox.lock:
                    conn.send([(c.method, c.path, dict(c.query), c.status, c.at) for c in sandbox.calls[arg:]])
            else:
                conn.send(ValueError(f"unknown command {cmd}"))
    finally:
        polaris.shutdown()
        slack.shutdown()


class Services:
    """The sandbox and stand-in in a child process. ``polaris_url``, ``slack_api_url``, ``slack_base_url``."""

    def __init__(self, load_users: int = 300, bulk: tuple[int, int] | None = None):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._lock = threading.Lock()
        self.proc = ctx.Process(
            target=_services_main, args=(child, load_users, bulk), daemon=True, name="bench-services"
        )
        self.proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("services process did not start")
        info = self._conn.recv()
        self.polaris_url, self.slack_api_url, self.slack_base_url = (
            info["polaris_url"],
            info["slack_api_url"],
            info["slack_base_url"],
        )

    def _ask(self, cmd: str, arg=None, timeout: float = 60):
        with self._lock:
            self._conn.send((cmd, arg))
            if not self._conn.poll(timeout):
                raise RuntimeError(f"services did not answer {cmd}")
            answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def add_fault(self, **kw) -> None:
        self._ask("fault", kw)

    def clear_faults(self) -> None:
        self._ask("clear_faults")

    def stats(self) -> dict:
        return self._ask("stats")

    def arrivals_since(self, n: int) -> list[float]:
        return self._ask("arrivals_since", n)

    def keyed_since(self, n: int) -> list[tuple[str, float, bool]]:
        """response_url posts from the ``n``-th on: (key, ``time.monotonic()``, whether it was the busy answer)."""
        return self._ask("keyed_since", n)

    def polaris_calls(self, since: int = 0) -> list[tuple]:
        return self._ask("polaris_calls", since)

    def response_url(self) -> str:
        return f"{self.slack_base_url}/response/{uuid.uuid4().hex}"

    def wait_responses(self, target: int, timeout: float, quiet: float = 2.0) -> dict:
        """Wait until the stand-in has ``target`` response_url posts, or none arrived for ``quiet`` seconds
        after a first pause, or ``timeout`` passed. Returns the last stats."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        stats = self.stats()
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats["arrivals"] >= target:
                break
            if stats["arrivals"] != last:
                last, last_change = stats["arrivals"], time.monotonic()
            elif time.monotonic() - last_change > quiet:
                break
            time.sleep(0.1)
        return stats

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ask("stop", timeout=10)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# =========================================================================================== database
def pg_base_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", PG_DEFAULT)


def pg_available(base: str | None = None) -> bool:
    from sqlalchemy import create_engine, text

    from bot.db import normalize_url

    try:
        engine = create_engine(normalize_url(base or pg_base_url()), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def database(kind: str = "auto", migrate: bool = True):
    """Yield ``(kind, url)`` of a fresh, migrated database: ``postgresql`` (a new schema on
    ``$BENCH_DATABASE_URL`` or postgresql://root@127.0.0.1:5432/test, dropped afterwards) or ``sqlite``
    (a new file under bench/out). ``kind="auto"`` prefers PostgreSQL."""
    from sqlalchemy import create_engine, text

    from bot.db import normalize_url

    if kind == "auto":
        kind = "postgresql" if pg_available() else "sqlite"
    if kind == "sqlite":
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, f"bench-{uuid.uuid4().hex[:8]}.sqlite3")
        url = f"sqlite:///{path}"
        if migrate:
            run_migrate(url)
        try:
            yield kind, url
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
        return
    base = normalize_url(pg_base_url())
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    try:
        if migrate:
            run_migrate(url)
        yield kind, url
    finally:
        with contextlib.suppress(Exception):
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run_migrate(url: str) -> None:
    """``python app.py migrate`` (the Procfile's release step) on ``url``."""
    env = clean_env(DATABASE_URL=url)
    out = subprocess.run([PYTHON, "app.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"migrate failed: {out.stderr[-2000:]}")


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# =========================================================================================== servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_workers(db_kind: str) -> tuple[int, int]:
    """The (workers, threads) ``app.py serve`` runs with: WEB_CONCURRENCY (default 2, 1 on SQLite) and
    GUNICORN_THREADS (default 8)."""
    workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
    if db_kind == "sqlite":
        workers = 1
    return workers, int(os.environ.get("GUNICORN_THREADS", "8"))


def product_env(services: Services, db_url: str, **extra) -> dict:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": services.slack_api_url,
        "POLARIS_API_URL": services.polaris_url,
        "POLARIS_API_KEY": "pok_sandbox_demo_key",
        "DATABASE_URL": db_url,
        "APPROVAL_CHANNEL": CHANNEL,
        "APPROVERS": f"{APPROVER},{APPROVER2}",
        "ADMINS": ADMIN,
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


class ServerProcess:
    """One gunicorn-served app as a subprocess (own session, so its whole group can be stopped)."""

    def __init__(self, name: str, argv: list[str], env: dict, workers: int, health_path: str = "/healthz"):
        os.makedirs(OUT, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = clean_env(**env, PORT=self.port, WEB_CONCURRENCY=workers, PYTHONUNBUFFERED=1)
        self.log_path = os.path.join(OUT, f"{name}-{self.port}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=full, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.workers = workers
        self._wait_healthy(health_path)

    def _wait_healthy(self, path: str, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()[-3000:]}")
            try:
                if (
                    requests.get(self.url + path, timeout=1).status_code == 200
                    and len(self.worker_pids()) >= self.workers
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy in {timeout}s:\n{self.output()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """PIDs of the gunicorn workers (children of the arbiter, which is the process we started)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_size(self) -> int:
        return os.path.getsize(self.log_path)

    def errors_since(self, offset: int) -> list[str]:
        """Log lines after byte ``offset`` that report an error (tracebacks, ERROR/CRITICAL, timeouts)."""
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            text = f.read()
        pat = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|WORKER TIMEOUT|unhandled error|Exception", re.I)
        return [line for line in text.splitlines() if pat.search(line)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def start_product(services: Services, db_url: str, workers: int, **extra) -> ServerProcess:
    return ServerProcess(
        "product", [PYTHON, "app.py", "serve", "--host", "127.0.0.1"], product_env(services, db_url, **extra), workers
    )


def start_prototype(services: Services, db_url: str, workers: int, **extra) -> ServerProcess:
    return ServerProcess(
        "prototype",
        [PYTHON, os.path.join(BENCH, "prototype_ack_first.py")],
        product_env(services, db_url, **extra),
        workers,
    )


def start_floor(services: Services, workers: int) -> ServerProcess:
    env = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": services.slack_api_url,
    }
    return ServerProcess("floor", [PYTHON, os.path.join(BENCH, "floor_app.py")], env, workers)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# =========================================================================================== requests
def sign(body: str, secret: str = SIGNING_SECRET) -> dict:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def slash_body(user_id: str, text: str, response_url: str) -> str:
    return urllib.parse.urlencode(
        {
            "token": "x",
            "team_id": "T0STANDIN",
            "team_domain": "standin",
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": user_id,
            "user_name": "u",
            "command": "/polaris",
            "text": text,
            "api_app_id": "A0BENCH",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{time.time():.6f}.{random.randint(1, 10**9)}.trigger",
        }
    )


def click_body(user_id: str, action_id: str, request_id: str, response_url: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": user_id, "username": "u", "team_id": "T0STANDIN"},
        "api_app_id": "A0BENCH",
        "token": "x",
        "trigger_id": "1.2.trigger",
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.1"},
        "response_url": response_url,
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "b", "value": request_id, "action_ts": "1.3"}
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


@dataclass
class Job:
    kind: str  # a label: "command" or "click"
    body: str


@dataclass
class LoadResult:
    latencies: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds (200 answers)
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "401", "exc:Timeout" ...
    wall: float = 0.0
    sent: int = 0
    started_mono: float = 0.0
    samples: list[tuple[float, float, str]] = field(default_factory=list)  # (send time from start, s, kind)

    @property
    def all_latencies(self) -> list[float]:
        return [x for v in self.latencies.values() for x in v]

    @property
    def errors(self) -> int:
        return sum(n for k, n in self.statuses.items() if k != "200")

    @property
    def rps(self) -> float:
        return self.sent / self.wall if self.wall else 0.0


def run_load(
    url: str, jobs: Sequence[Job], concurrency: int, *, timeout: float = 10.0, max_seconds: float = 240.0
) -> LoadResult:
    """Send every job (POST ``url``, signed at send time) from ``concurrency`` threads, each with its own
    ``requests.Session`` (keep-alive), closed loop. Latency = time to the complete HTTP response (the ack),
    measured client side. Stops early after ``max_seconds``."""
    import requests

    result = LoadResult()
    counter = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    origin = time.perf_counter()

    def worker() -> None:
        session = requests.Session()
        lat: dict[str, list[float]] = {}
        statuses: dict[str, int] = {}
        samples: list[tuple[float, float, str]] = []
        sent = 0
        try:
            while time.monotonic() < deadline:
                i = next(counter)
                if i >= len(jobs):
                    break
                job = jobs[i]
                data = job.body.encode()
                headers = sign(job.body)
                t0 = time.perf_counter()
                try:
                    r = session.post(url, data=data, headers=headers, timeout=timeout)
                    _ = r.content
                    key = str(r.status_code)
                except requests.RequestException as e:
                    key = f"exc:{type(e).__name__}"
                elapsed = time.perf_counter() - t0
                sent += 1
                statuses[key] = statuses.get(key, 0) + 1
                if key == "200":
                    lat.setdefault(job.kind, []).append(elapsed)
                samples.append((t0 - origin, elapsed, job.kind if key == "200" else "error"))
        finally:
            session.close()
            with lock:
                result.sent += sent
                result.samples.extend(samples)
                for k, v in lat.items():
                    result.latencies.setdefault(k, []).extend(v)
                for k, n in statuses.items():
                    result.statuses[k] = result.statuses.get(k, 0) + n

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    result.started_mono = time.monotonic()
    t0 = origin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + timeout + 5)
    result.wall = time.perf_counter() - t0
    return result


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary_ms(values: Sequence[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": (max(values) * 1000 if values else float("nan")),
    }


def interleave(*lists: Sequence) -> list:
    out = []
    for group in itertools.zip_longest(*lists):
        out.extend(x for x in group if x is not None)
    return out


# =========================================================================================== in-process core
def make_settings(services: Services, db_url: str, **overrides):
    from bot.config import Settings

    values = dict(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=services.slack_api_url,
        polaris_api_url=services.polaris_url,
        polaris_api_key="pok_sandbox_demo_key",
        database_url=db_url,
        approval_channel=CHANNEL,
        approvers=frozenset({APPROVER, APPROVER2}),
        admins=frozenset({ADMIN}),
    )
    values.update(overrides)
    return Settings(**values)


def create_pending(services: Services, db_url: str, users: Iterable[int], group: str, threads: int = 8) -> list[str]:
    """Create one pending access request (card posted) per load user through the product's own service
    (``/polaris request <group>``), in-process. Returns the request IDs."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    from bot import wiring
    from bot.db import Database
    from bot.models import PENDING, AccessRequest

    db = Database(db_url)
    core = wiring.build_core(make_settings(services, db_url, max_commands_per_minute=10_000), db=db)
    user_ids = [load_user(i)[0] for i in users]
    with ThreadPoolExecutor(threads) as pool:
        replies = list(pool.map(lambda u: core.service.handle_command(u, f"request {group} bench"), user_ids))
    bad = [r.text for r in replies if "went to the approvers" not in r.text]
    if bad:
        raise RuntimeError(f"{len(bad)} requests not created, e.g. {bad[0]!r}")
    with db.session() as s:
        ids = list(
            s.scalars(
                select(AccessRequest.id).where(
                    AccessRequest.state == PENDING,
                    AccessRequest.group_name == group,
                    AccessRequest.requester_id.in_(user_ids),
                    AccessRequest.approval_ts.is_not(None),
                )
            )
        )
    db.dispose()
    return ids


# =========================================================================================== results
ORDER = [
    ("findings", "Findings and proposed fixes (written by hand from the runs below)"),
    ("sandbox_latency", "Stand-in latency, before and after TCP_NODELAY (bench/sandbox_latency.py)"),
    ("ack_latency", "Ack latency (bench/ack_latency.py)"),
    ("throughput", "Throughput (bench/throughput.py)"),
    ("targets", "Issue 13 targets, side by side in one run (bench/targets.py)"),
    ("call_economy", "Polaris call economy (bench/call_economy.py)"),
    ("audit_scale", "Audit log at scale (bench/audit_scale.py)"),
    ("memory", "Memory (bench/memory.py)"),
    ("ack_variants", "Diagnosis: ack latency of candidate fixes (bench/ack_variants.py)"),
    ("audit_chain", "Audit chain: verify, export, ack with the chain (bench/audit_chain.py)"),
    ("work_floor", "What the work behind a request costs, part by part (bench/work_floor.py)"),
]
HEADER = (
    "# Benchmark results\n\nWritten by the scripts in `bench/` (see `bench/README.md`); each script "
    "replaces only its own section, between its markers. Latest run of each.\n"
)


def machine_facts() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    mem = ""
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    versions = []
    from importlib.metadata import version

    for pkg in ("slack_bolt", "gunicorn", "SQLAlchemy", "requests"):
        with contextlib.suppress(Exception):
            versions.append(f"{pkg} {version(pkg)}")
    return (
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; nproc {nproc} ({cpu}), {mem} RAM; "
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}; "
        f"{', '.join(versions)}; commit {commit or '?'}"
    )


def write_section(name: str, body: str) -> None:
    """Replace section ``name`` of bench/RESULTS.md (file-locked; other sections are kept as they are)."""
    titles = dict(ORDER)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, ".results.lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        existing = open(RESULTS).read() if os.path.exists(RESULTS) else ""
        sections = {}
        for key, _ in ORDER:
            m = re.search(rf"<!-- BEGIN {key} -->\n(.*?)<!-- END {key} -->", existing, re.S)
            sections[key] = m.group(1) if m else f"## {titles[key]}\n\n_Not run yet._\n\n"
        sections[name] = f"## {titles[name]}\n\n{body.strip()}\n\n"
        text = HEADER + "\n" + "".join(f"<!-- BEGIN {k} -->\n{sections[k]}<!-- END {k} -->\n\n" for k, _ in ORDER)
        tmp = RESULTS + ".tmp"
        with open(tmp, "w") as f:
            f.write(text.rstrip() + "\n")
        os.replace(tmp, RESULTS)


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(v):
        if isinstance(v, float):
            if math.isnan(v):
                return "–"
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


# =========================================================================================== CPU accounting
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) plus those of its children that exited
    (so PostgreSQL backends that came and went are counted through the postmaster); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(entry))
            except OSError:
                pass
    return out


class CpuMeter:
    """CPU seconds used by groups of processes between :meth:`start` and :meth:`stop` (``groups``: label ->
    callable returning PIDs, evaluated at both ends, so short-lived PostgreSQL backends are approximated)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]):
        self.groups = groups

    def _snap(self) -> dict[str, dict[int, float]]:
        return {label: {pid: cpu_seconds(pid) for pid in fn()} for label, fn in self.groups.items()}

    def start(self) -> None:
        self._t0, self._a = time.monotonic(), self._snap()

    def stop(self) -> dict[str, float]:
        """Cores used on average per group over the interval (1.0 = one core busy)."""
        wall = time.monotonic() - self._t0
        b = self._snap()
        out = {}
        for label in self.groups:
            used = sum(b[label].get(pid, 0.0) - self._a[label].get(pid, 0.0) for pid in b[label])
            out[label] = used / wall if wall else 0.0
        out["_wall"] = wall
        return out
