"""Diagnosis for the ack-latency miss: the product against candidate fixes, each measured under the load of
bench/ack_latency.py (Polaris answering at once), in one run.

    .venv/bin/python bench/ack_variants.py        # ~3 minutes on 2 cores

Each variant is the unchanged product (``python app.py serve`` through ``bench/prototype_ack_first.py``) with
settings forced from outside, never a code change:

- ``ack in request thread``: Bolt ``process_before_response=True`` (the listeners already hand their work to
  ``AccessService.background``, so the request thread acks and returns at once, without Bolt's 10 ms polling);
- ``db pool 40, no pre-ping``: SQLAlchemy ``pool_size=40`` (>= the threads of a worker) and ``pool_pre_ping=False``
  instead of ``pool_size=10, max_overflow=20, pool_pre_ping=True`` in ``bot/db.py``;
- ``4 work threads``: ``AccessService(background_threads=4)`` instead of 16, so the work after the ack takes
  fewer of the process's GIL turns;
- ``all three``.

Reported per variant: acked req/s and ack p50/p95/p99 and their ratio to the floor; "completed/s" and how long
after the last ack the last response_url answer came (the work must still finish); PostgreSQL transactions and
new backend processes (connections opened) per request; CPU of the server and of PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402
from ack_latency import build_jobs  # noqa: E402

VARIANTS = [
    ("floor (bare Bolt)", None),
    ("product as is", {}),
    ("ack in request thread", {"BENCH_PROCESS_BEFORE_RESPONSE": "1"}),
    ("db pool 40, no pre-ping", {"BENCH_PROCESS_BEFORE_RESPONSE": "0", "BENCH_POOL_SIZE": "40", "BENCH_PRE_PING": "0"}),
    ("4 work threads", {"BENCH_PROCESS_BEFORE_RESPONSE": "0", "BENCH_WORK_THREADS": "4"}),
    (
        "all three",
        {
            "BENCH_PROCESS_BEFORE_RESPONSE": "1",
            "BENCH_POOL_SIZE": "40",
            "BENCH_PRE_PING": "0",
            "BENCH_WORK_THREADS": "4",
        },
    ),
]


def pg_counters(url_base: str):
    import psycopg2

    from bot.db import normalize_url

    conn = psycopg2.connect(normalize_url(url_base).replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True

    def read() -> tuple[int, int]:
        with conn.cursor() as cur:
            cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
            xacts = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM pg_stat_activity")
            return xacts, cur.fetchone()[0]

    return conn, read


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--clicks", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--only", default="", help="comma-separated variant numbers (0 = floor), default all")
    args = ap.parse_args(argv)
    chosen = [VARIANTS[int(i)] for i in args.only.split(",")] if args.only else VARIANTS
    if not c.pg_available():
        print("needs PostgreSQL (the pool and transaction counts are about it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    services = c.Services(load_users=400)
    rows = []
    conn = None
    try:
        with c.database("postgresql") as (db_kind, db_url):
            workers, threads = c.gunicorn_workers(db_kind)
            conn, pg_read = pg_counters(c.pg_base_url())
            for n, (name, env) in enumerate(chosen):
                ids = (
                    c.create_pending(services, db_url, range(n * 60, n * 60 + 60), "Viewer") if env is not None else []
                )
                if env is None:
                    server = c.start_floor(services, workers)
                else:
                    server = c.ServerProcess(
                        "variant",
                        [c.PYTHON, os.path.join(c.BENCH, "prototype_ack_first.py")],
                        c.product_env(services, db_url, **{"BENCH_PROCESS_BEFORE_RESPONSE": "0", **env}),
                        workers,
                    )
                try:
                    warm, warm_expected = build_jobs(services, 64, 0, [], 400, 3)
                    base = services.stats()["arrivals"]
                    c.run_load(server.url + "/slack/events", warm, args.concurrency)
                    services.wait_responses(base + (warm_expected if env is not None else 0), 60)
                    jobs, expected = build_jobs(services, args.commands, args.clicks, ids, 400, 50 + n)
                    time.sleep(0.7)  # let pg_stat_database catch up
                    x0, _ = pg_read()
                    pids0 = set(c.pids_named("postgres"))
                    seen = set(pids0)
                    meter = c.CpuMeter({"server": server.worker_pids, "postgres": lambda: c.pids_named("postgres")})
                    base = services.stats()["arrivals"]
                    log_at = server.log_size()
                    meter.start()
                    res = c.run_load(server.url + "/slack/events", jobs, args.concurrency)
                    last_ack = time.monotonic()
                    drain = completed = float("nan")
                    if env is not None:
                        deadline = time.monotonic() + 120
                        while time.monotonic() < deadline:
                            seen.update(c.pids_named("postgres"))
                            if services.stats()["arrivals"] >= base + expected:
                                break
                            time.sleep(0.05)
                        arrivals = services.arrivals_since(base)
                        if arrivals:
                            drain = max(0.0, max(arrivals) - last_ack)
                            completed = len(jobs) / (max(arrivals) - res.started_mono)
                    cores = meter.stop()
                    time.sleep(0.7)
                    x1, _ = pg_read()
                    s = c.summary_ms(res.all_latencies)
                    rows.append(
                        {
                            "name": name,
                            "env": env,
                            "rps": res.rps,
                            **s,
                            "completed": completed,
                            "drain": drain,
                            "xacts": (x1 - x0) / len(jobs) if env is not None else float("nan"),
                            "backends": len(seen - pids0) / len(jobs) * 1000 if env is not None else float("nan"),
                            "server": cores["server"],
                            "pg": cores["postgres"],
                            "errors": res.errors,
                            "log_errors": len(server.errors_since(log_at)),
                        }
                    )
                    c.log(
                        f"{name}: {res.rps:.0f} req/s, p50 {s['p50']:.1f} p99 {s['p99']:.1f} ms, "
                        f"completed/s {completed:.0f}, drain {drain:.1f} s, xacts/req {rows[-1]['xacts']:.1f}, "
                        f"new backends/1000 req {rows[-1]['backends']:.0f}"
                    )
                finally:
                    server.stop()
    finally:
        if conn is not None:
            conn.close()
        services.stop()
    report(args, workers, threads, rows, time.monotonic() - started)
    return 0


def report(args, workers, threads, rows, elapsed) -> None:
    floor = next((r for r in rows if r["env"] is None), None)
    f99 = floor["p99"] if floor else float("nan")
    table = c.md_table(
        [
            "variant",
            "acked req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99 / floor",
            "completed req/s",
            "last answer after last ack (s)",
            "PG transactions / request",
            "PG connections opened / 1000 req",
            "server CPU (cores)",
            "PostgreSQL CPU (cores)",
            "errors",
        ],
        [
            [
                r["name"],
                f"{r['rps']:.0f}",
                r["p50"],
                r["p95"],
                r["p99"],
                r["p99"] / f99,
                "–" if r["completed"] != r["completed"] else f"{r['completed']:.0f}",
                r["drain"],
                r["xacts"],
                r["backends"],
                f"{r['server']:.2f}",
                f"{r['pg']:.2f}",
                r["errors"] + r["log_errors"],
            ]
            for r in rows
        ],
    )
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/ack_variants.py` (diagnosis, no target). Load: {args.commands} signed `groups`/`help`
commands + {args.clicks} signed Approve clicks per variant, concurrency {args.concurrency}, Polaris sandbox answering at
once, PostgreSQL, gunicorn gthread {workers} workers x {threads} threads. Every variant is the unchanged product
with settings forced from outside by `bench/prototype_ack_first.py` (see the docstring of `bench/ack_variants.py`).
Whole run {elapsed:.0f} s.

{table}
"""
    c.write_section("ack_variants", body)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
