"""Profile ``python app.py serve`` under the ack benchmark's load with py-spy (sampling every thread of every
gunicorn worker), and summarise where the CPU goes.

    .venv/bin/pip install -r bench/requirements.txt      # py-spy (profiling only, not a runtime dependency)
    .venv/bin/python bench/profile_serve.py               # ~1 minute; writes bench/out/profile-*.txt

Output: collapsed stacks per worker (``bench/out/profile-<pid>.txt``, for flamegraph.pl or speedscope) and a
summary (``bench/out/profile-summary-<mode>.txt``): the share of busy samples spent under notable product,
library and stdlib frames (inclusive), and the top self-time functions.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402
from ack_latency import build_jobs  # noqa: E402

MARKERS = [
    # (label, substring of a frame "function (file:line)")
    ("Bolt request thread (dispatch, verify, parse, ack wait)", "slack_bolt/app/app.py"),
    ("listener: /polaris command", "handlers/commands.py"),
    ("listener: button click", "handlers/actions.py"),
    ("respond() to response_url", "respond (slack_bolt/context/respond/respond.py"),
    ("AccessService.handle_command", "handle_command (bot/access/service.py"),
    ("Admission.over_command_limit (rate limit query)", "over_command_limit (bot/access/admission.py"),
    ("Decisions.decide", "decide (bot/access/decisions.py"),
    ("Notifications.refresh_card", "refresh_card (bot/access/notifications.py"),
    ("Notifications.notify_requester", "notify_requester (bot/access/notifications.py"),
    ("AuditLog.record", "record (bot/audit.py"),
    ("SlackGateway (Web API calls)", "bot/slack.py"),
    ("SlackGateway.identity (users.info)", "identity (bot/slack.py"),
    ("views (Block Kit builders)", "bot/views.py"),
    ("redact", "bot/redact.py"),
    ("Worker.run_due", "run_due (bot/access/schedule.py"),
    ("SQLAlchemy (all)", "sqlalchemy/"),
    ("SQLAlchemy ORM flush/commit", "commit (sqlalchemy/orm/session.py"),
    ("pool pre-ping", "_do_ping_w_event"),
    ("psycopg2 / sqlite3 execute", "do_execute (sqlalchemy/engine/default.py"),
    ("slack_sdk HTTP (urllib)", "slack_sdk/web/base_client.py"),
    ("urllib.request.urlopen", "urlopen (urllib/request.py"),
    ("http.client", "http/client.py"),
    ("socket connect", "create_connection (socket.py"),
    ("json", "json/"),
    ("logging", "logging/__init__.py"),
    ("gunicorn gthread", "gunicorn/workers/gthread.py"),
]


def summarise(paths: list[str], out_path: str) -> str:
    busy = 0
    inclusive = collections.Counter()
    self_time = collections.Counter()
    by_thread = collections.Counter()
    for path in paths:
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                if not n.isdigit():
                    continue
                n = int(n)
                frames = stack.split(";")
                busy += n
                by_thread[frames[0].split(" ")[0] if frames else "?"] += n
                joined = ";".join(frames)
                for label, needle in MARKERS:
                    if needle in joined:
                        inclusive[label] += n
                if frames:
                    self_time[frames[-1]] += n
    lines = [f"samples: {busy} (all workers, all threads; idle excluded)", "", "inclusive share of busy samples:"]
    for label, _ in MARKERS:
        if inclusive[label]:
            lines.append(f"  {inclusive[label] / busy * 100:5.1f}%  {label}")
    lines += ["", "top self-time frames:"]
    for frame, n in self_time.most_common(25):
        lines.append(f"  {n / busy * 100:5.1f}%  {frame[:160]}")
    lines += ["", "by thread:"]
    for t, n in by_thread.most_common(10):
        lines.append(f"  {n / busy * 100:5.1f}%  {t}")
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=1500)
    ap.add_argument("--clicks", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--slow-delay", type=float, default=0.0, help="delay every Polaris call (seconds)")
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    ap.add_argument(
        "--mode",
        choices=("gil", "wall", "idle"),
        default="gil",
        help="gil: only samples holding the GIL (CPU in Python); wall: every non-idle thread; "
        "idle: every thread, idle ones too (shows how busy the listener pool is)",
    )
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        print("py-spy not found: .venv/bin/pip install -r bench/requirements.txt", file=sys.stderr)
        return 2
    services = c.Services(load_users=400)
    product = None
    spies = []
    try:
        with c.database(args.db) as (db_kind, db_url):
            workers, _ = c.gunicorn_workers(db_kind)
            ids = c.create_pending(services, db_url, range(150), "Viewer")
            product = c.start_product(services, db_url, workers)
            warm, _ = build_jobs(services, 64, 0, [], 400, 9)
            c.run_load(product.url + "/slack/events", warm, args.concurrency)
            jobs, expected = build_jobs(services, args.commands, args.clicks, ids, 400, 10)
            if args.slow_delay:
                services.add_fault(delay=args.slow_delay, times=None)
            paths = []
            for pid in product.worker_pids():
                path = os.path.join(c.OUT, f"profile-{pid}.txt")
                paths.append(path)
                spies.append(
                    subprocess.Popen(
                        [
                            spy,
                            "record",
                            "--pid",
                            str(pid),
                            "--format",
                            "raw",
                            "--rate",
                            "200",
                            "--duration",
                            "120",
                            "--nonblocking",
                            "--threads",
                            "-o",
                            path,
                        ]
                        + {"gil": ["--gil"], "wall": [], "idle": ["--idle"]}[args.mode],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1.0)
            before = services.stats()["arrivals"]
            meter = c.CpuMeter(
                {
                    "product workers": product.worker_pids,
                    "postgres": lambda: c.pids_named("postgres"),
                    "sandbox + stand-in": lambda: [services.proc.pid],
                    "load client": lambda: [os.getpid()],
                }
            )
            meter.start()
            res = c.run_load(product.url + "/slack/events", jobs, args.concurrency)
            cores = meter.stop()
            services.wait_responses(before + expected, timeout=120)
            c.log("cores used during the load: " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()))
            s = c.summary_ms(res.all_latencies)
            c.log(f"load: {res.rps:.0f} req/s, p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, {res.statuses}")
            for p in spies:
                p.send_signal(2)  # SIGINT: py-spy writes its output and exits
            for p in spies:
                p.wait(30)
    finally:
        for p in spies:
            if p.poll() is None:
                p.kill()
        if product is not None:
            product.stop()
        services.stop()
    text = summarise([p for p in paths if os.path.exists(p)], os.path.join(c.OUT, f"profile-summary-{args.mode}.txt"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
