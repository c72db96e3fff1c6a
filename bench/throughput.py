"""Requests per second with zero errors: ``python app.py serve`` against the bare Bolt floor, in one run.

    .venv/bin/python bench/throughput.py          # ~2 minutes on 2 cores

The same signed mix as bench/ack_latency.py (``/polaris groups``/``help`` commands and Approve clicks on
real pending requests, by approvers and a non-approver), closed loop, at increasing concurrency
(``--levels``, default 1,4,16,32), ``--requests`` per level. For each level and server it records the acked
requests per second (HTTP 200s / wall time), the ack latency, and the errors: any non-200 answer or client
exception, any error line in the server's log, and - for the product - any response_url answer that never
arrived (the listener's work after the ack must finish too; "completed/s" counts until the last one).

The throughput of a server is the highest acked requests/s over the levels that had zero errors.
Target: product >= 0.7x the floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402
from ack_latency import build_jobs  # noqa: E402


def level(
    name: str,
    server: c.ServerProcess,
    services: c.Services,
    jobs,
    expected: int,
    concurrency: int,
    product: bool,
    meter: c.CpuMeter,
) -> dict:
    before = services.stats()
    log_at = server.log_size()
    meter.start()
    res = c.run_load(server.url + "/slack/events", jobs, concurrency)
    cores = meter.stop()
    completed_rps = None
    missing = 0
    if product:
        stats = services.wait_responses(before["arrivals"] + expected, timeout=120)
        got = stats["arrivals"] - before["arrivals"]
        missing = max(0, expected - got)
        arrivals = services.arrivals_since(before["arrivals"])
        if arrivals:
            completed_rps = len(jobs) / max(1e-9, max(arrivals) - res.started_mono)
    log_errors = server.errors_since(log_at)
    s = c.summary_ms(res.all_latencies)
    errors = res.errors + len(log_errors) + missing
    c.log(
        f"{name} @ {concurrency}: {res.rps:.0f} req/s, p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, "
        f"statuses {res.statuses}, log errors {len(log_errors)}, missing responses {missing}, "
        f"cores {cores.get('server', 0):.2f}"
    )
    return {
        "name": name,
        "concurrency": concurrency,
        "rps": res.rps if res.errors == 0 else (res.sent - res.errors) / res.wall,
        "completed_rps": completed_rps,
        "p50": s["p50"],
        "p99": s["p99"],
        "statuses": res.statuses,
        "log_errors": log_errors,
        "missing": missing,
        "errors": errors,
        "cores": cores,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per level (half commands, half clicks)")
    ap.add_argument("--levels", default="1,4,16,32", help="comma-separated concurrency levels")
    ap.add_argument("--pending", type=int, default=100, help="pending requests clicked per level")
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    load_users = 400
    started = time.monotonic()
    services = c.Services(load_users=load_users)
    servers: list[c.ServerProcess] = []
    rows = []
    try:
        with c.database(args.db) as (db_kind, db_url):
            workers, threads = c.gunicorn_workers(db_kind)
            groups = ["Viewer", "Data Analyst", "Data Manager"]
            pending = []
            for n in range(len(levels)):  # one fresh set of pending requests per level
                users = range((n // len(groups)) * args.pending, (n // len(groups) + 1) * args.pending)
                pending.append(c.create_pending(services, db_url, users, groups[n % len(groups)]))
            floor = c.start_floor(services, workers)
            product = c.start_product(services, db_url, workers)
            servers += [floor, product]
            pg = (lambda: c.pids_named("postgres")) if db_kind == "postgresql" else (lambda: [])
            warm, warm_expected = build_jobs(services, 64, 0, [], load_users, 99)
            for server in (floor, product):
                base = services.stats()["arrivals"]
                c.run_load(server.url + "/slack/events", warm, 16)
                services.wait_responses(base + (warm_expected if server is product else 0), timeout=60)
            for n, conc in enumerate(levels):
                for name, server in (("floor", floor), ("product", product)):
                    meter = c.CpuMeter(
                        {
                            "server": server.worker_pids,
                            "postgres": pg,
                            "services": lambda: [services.proc.pid],
                            "client": lambda: [os.getpid()],
                        }
                    )
                    jobs, expected = build_jobs(
                        services,
                        args.requests // 2,
                        args.requests - args.requests // 2,
                        pending[n],
                        load_users,
                        1000 + n,
                    )
                    rows.append(
                        level(
                            name,
                            server,
                            services,
                            jobs,
                            expected if name == "product" else 0,
                            conc,
                            name == "product",
                            meter,
                        )
                    )
    finally:
        for server in servers:
            server.stop()
        services.stop()
    report(args, db_kind, workers, threads, rows, time.monotonic() - started)
    return 0


def report(args, db_kind, workers, threads, rows, elapsed) -> None:
    def done_rps(r):  # sustainable rate: acked, and (product) its work finished (the last response_url answer)
        return min(r["rps"], r["completed_rps"]) if r["completed_rps"] is not None else r["rps"]

    def best(name):
        ok = [r for r in rows if r["name"] == name and r["errors"] == 0]
        return max(ok, key=done_rps) if ok else None

    b_floor, b_product = best("floor"), best("product")
    ratio = (done_rps(b_product) / done_rps(b_floor)) if b_floor and b_product else float("nan")
    acked_ratio = (
        max(r["rps"] for r in rows if r["name"] == "product" and r["errors"] == 0) / b_floor["rps"]
        if b_floor and b_product
        else float("nan")
    )
    ok = bool(b_floor and b_product) and ratio >= 0.7
    table = c.md_table(
        [
            "server",
            "concurrency",
            "acked req/s",
            "completed req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "server CPU (cores)",
            "postgres",
            "sandbox+stand-in",
            "load client",
        ],
        [
            [
                r["name"],
                r["concurrency"],
                f"{r['rps']:.0f}",
                "–" if r["completed_rps"] is None else f"{r['completed_rps']:.0f}",
                r["p50"],
                r["p99"],
                (
                    f"{r['errors']}"
                    + (
                        f" ({', '.join(f'{k}: {v}' for k, v in r['statuses'].items() if k != '200')}"
                        f"{'; log ' + str(len(r['log_errors'])) if r['log_errors'] else ''}"
                        f"{'; missing responses ' + str(r['missing']) if r['missing'] else ''})"
                        if r["errors"]
                        else ""
                    )
                ),
                f"{r['cores']['server']:.2f}",
                f"{r['cores']['postgres']:.2f}",
                f"{r['cores']['services']:.2f}",
                f"{r['cores']['client']:.2f}",
            ]
            for r in rows
        ],
    )
    cpu_per_req = {}
    for name in ("floor", "product"):
        rs = [r for r in rows if r["name"] == name]
        if rs:
            top = max(rs, key=lambda r: r["concurrency"])
            cpu_per_req[name] = top["cores"]["server"] / top["rps"] * 1000 if top["rps"] else float("nan")
    errs = [r for r in rows if r["log_errors"]]
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/throughput.py`. Parameters: {args.requests} requests per level (half signed
`/polaris groups`/`help` commands, half signed Approve clicks on {args.pending} real pending requests, by approvers
and a non-approver), closed loop, concurrency levels {args.levels}; product `python app.py serve` and floor
`bench/floor_app.py`, both gunicorn gthread {workers} worker(s) x {threads} threads; database {db_kind}; Polaris
sandbox answering at once. "acked req/s" = HTTP 200 answers per second; "completed req/s" = requests per second
until the last response_url post of the listeners' work arrived; CPU columns = cores used on average during the
level (2 available, shared by everything; "postgres" counts every PostgreSQL process of the machine). Errors = non-200 answers + client exceptions + error lines in the
server's log + response_url answers that never arrived. Whole run {elapsed:.0f} s.

{table}

Throughput with zero errors (best level; a request counts when acked and, for the product, when its work
finished: min(acked, completed)): floor {done_rps(b_floor) if b_floor else float("nan"):.0f} req/s (concurrency
{b_floor["concurrency"] if b_floor else "–"}), product {done_rps(b_product) if b_product else float("nan"):.0f} req/s (concurrency
{b_product["concurrency"] if b_product else "–"}): ratio {ratio:.2f}. Counting acks only (the product's work then
falls behind): ratio {acked_ratio:.2f}.
Server CPU per request at the highest level: floor {cpu_per_req.get("floor", float("nan")):.2f} ms, product
{cpu_per_req.get("product", float("nan")):.2f} ms.
{("Error lines, e.g. `" + errs[0]["log_errors"][0][:160] + "`.") if errs else ""}

Target product >= 0.7x floor: {c.met(ok)} ({ratio:.2f}x).
"""
    c.write_section("throughput", body)
    print(table)
    print(f"ratio {ratio:.2f}; target {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
