"""The audit chain at scale (issue 12): ``python app.py audit verify`` and ``audit export`` over 1,000,000 sealed
rows (rate and peak RSS of the process: bounded memory), and the ack latency of ``python app.py serve`` with the
chain on against the same server with it off (``bench/prototype_no_chain.py``), plus the cost of one append.

    .venv/bin/python bench/audit_chain.py                  # both databases, ~4 minutes on 2 cores
    .venv/bin/python bench/audit_chain.py --db sqlite --rows 200000

Rows are sealed in Python as the product seals them (``bot.audit_chain.Sealer``, keyed: AUDIT_KEY set) and
bulk-loaded (PostgreSQL ``COPY``, SQLite ``executemany``) into a schema migrated by ``python app.py migrate``;
the head is set to the last row. verify and export run as their own processes (``os.wait4`` gives each one's
peak RSS). The ack load: ``--jobs`` signed ``/polaris groups``/``help`` commands and Approve clicks on pending
requests at concurrency 16 (each command and click writes its audit rows on a work lane), on each server in
turn, twice, alternating. Target: verify and export stream (peak RSS does not grow with the table, < 150 MB),
ack p99 with the chain <= 1.1x without it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402

KEY = "bench-audit-key-0123456789abcdef"


def load(db_url: str, n: int, seed: int = 7) -> float:
    """Seal and insert ``n`` rows; returns the seconds taken."""
    from bot.audit_chain import GENESIS, Sealer
    from bot.db import Database

    rng = random.Random(seed)
    sealer = Sealer(KEY)
    db = Database(db_url)
    start = dt.datetime(2026, 1, 1)
    prev, t0 = GENESIS, time.perf_counter()
    actions = ["command", "polaris.call", "notify.dm", "decision.approve", "request.created"]
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        batch: list[tuple] = []

        def flush():
            if not batch:
                return
            if db.is_sqlite:
                cur.executemany(
                    "INSERT INTO audit_log (id, at, actor, action, request_id, target, outcome, detail, polaris_method,"
                    " polaris_path, polaris_status, duration_ms, prev_hash, row_hash) VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(*r[:1], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:]) for r in batch],
                )
            else:
                buf = io.StringIO()
                for r in batch:
                    cells = ["\\N" if v is None else str(v).replace("\\", "\\\\").replace("\t", " ") for v in r]
                    buf.write("\t".join(cells) + "\n")
                buf.seek(0)
                cur.copy_expert(
                    "COPY audit_log (id, at, actor, action, request_id, target, outcome, detail, polaris_method,"
                    " polaris_path, polaris_status, duration_ms, prev_hash, row_hash) FROM STDIN",
                    buf,
                )
            batch.clear()

        for i in range(1, n + 1):
            at = start + dt.timedelta(seconds=i * 3, microseconds=rng.randrange(1_000_000))
            action = actions[i % len(actions)]
            call = action == "polaris.call"
            values = (
                at,
                f"U{rng.randrange(2000):08d}",
                action,
                None,
                f"user{i % 5000}@example.com",
                "ok",
                None if call else "request Viewer for the dashboards",
                "GET" if call else None,
                "/v1/groups" if call else None,
                200 if call else None,
                round(rng.random() * 100, 2) if call else None,
            )
            seal = sealer.seal(prev, (at.replace(tzinfo=dt.timezone.utc), *values[1:]))
            batch.append((i, *values, prev, seal))
            prev = seal
            if len(batch) >= 20000:
                flush()
        flush()
        cur.execute("DELETE FROM audit_chain")
        cur.execute(
            "INSERT INTO audit_chain (id, last_id, last_hash) VALUES (1, %d, '%s')" % (n, prev)
            if not db.is_sqlite
            else "INSERT INTO audit_chain (id, last_id, last_hash) VALUES (1, ?, ?)",
            () if not db.is_sqlite else (n, prev),
        )
        if not db.is_sqlite:
            cur.execute("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), %d)" % n)
            cur.execute("ANALYZE audit_log")
        raw.commit()
    finally:
        raw.close()
        db.dispose()
    return time.perf_counter() - t0


def run_cli(db_url: str, argv: list[str]) -> tuple[int, float, int, str]:
    """Run ``app.py <argv>`` with output to /dev/null (export) or a pipe; (exit, seconds, peak RSS KiB, text)."""
    env = c.clean_env(DATABASE_URL=db_url, AUDIT_KEY=KEY)
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        out = devnull if argv[0] == "export" else subprocess.PIPE
        p = subprocess.Popen([c.PYTHON, "app.py", "audit", *argv], cwd=c.ROOT, env=env, stdout=out, text=True)
        text = p.stdout.read() if out is subprocess.PIPE else ""
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.perf_counter() - t0, usage.ru_maxrss, text.strip()


def scale(kind: str, rows: int) -> list[list]:
    out = []
    with c.database(kind) as (db_kind, url):
        c.log(f"{db_kind}: sealing and loading {rows:,} rows")
        seconds = load(url, rows)
        c.log(f"{db_kind}: loaded in {seconds:.1f} s ({rows / seconds:,.0f} rows/s sealed and inserted)")
        for argv in (["verify"], ["export", "--format", "csv"], ["export", "--format", "jsonl"]):
            code, secs, rss, text = run_cli(url, argv)
            c.log(f"{db_kind}: {' '.join(argv)}: exit {code}, {secs:.1f} s, peak RSS {rss / 1024:.0f} MB {text[:120]}")
            out.append(
                [db_kind, " ".join(argv), f"{rows:,}", code, f"{secs:.1f}", f"{rows / secs:,.0f}", f"{rss / 1024:.0f}"]
            )
        small = max(rows // 10, 1000)
        with c.database(kind) as (_, url2):
            load(url2, small)
            code, secs, rss, _ = run_cli(url2, ["verify"])
            out.append(
                [
                    db_kind,
                    "verify (a tenth of the rows)",
                    f"{small:,}",
                    code,
                    f"{secs:.1f}",
                    f"{small / secs:,.0f}",
                    f"{rss / 1024:.0f}",
                ]
            )
    return out


def append_cost(kind: str, n: int = 2000) -> list:
    """Median seconds of one AuditLog.record (its own transaction), chain on and off, in-process."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import bot.audit as audit_mod
    import bot.audit_chain as chain
    from bot.db import Database

    with c.database(kind) as (db_kind, url):
        db = Database(url)
        log = audit_mod.AuditLog(db, key=KEY)
        result = {}
        for mode in ("on", "off", "on", "off"):
            if mode == "off":
                event.remove(Session, "before_commit", chain._seal_on_commit)
                audit_mod.attach = lambda session, sealer, row: session.add(row)
            times = []
            for i in range(n // 2):
                t0 = time.perf_counter()
                log.record("U0BENCH", "command", detail=f"bench {i}")
                times.append(time.perf_counter() - t0)
            result.setdefault(mode, []).extend(times)
            if mode == "off":
                event.listen(Session, "before_commit", chain._seal_on_commit)
                audit_mod.attach = chain.attach
        db.dispose()
    on, off = statistics.median(result["on"]) * 1e6, statistics.median(result["off"]) * 1e6
    return [db_kind, f"{on:.0f}", f"{off:.0f}", f"{on / off:.2f}"]


def ack(kind: str, jobs_n: int, concurrency: int) -> tuple[list[list], bool]:
    import ack_latency as al

    services = c.Services(load_users=400)
    servers: list[c.ServerProcess] = []
    rows, p99 = [], {}
    try:
        with c.database(kind) as (db_kind, url), c.database(kind) as (_, url_off):
            workers, _ = c.gunicorn_workers(db_kind)
            pending = {
                "on": c.create_pending(services, url, range(150), "Viewer"),
                "off": c.create_pending(services, url_off, range(150), "Viewer"),
            }
            on = c.start_product(services, url, workers, AUDIT_KEY=KEY)
            off = c.ServerProcess(
                "no-chain",
                [c.PYTHON, os.path.join(c.BENCH, "prototype_no_chain.py")],
                c.product_env(services, url_off, AUDIT_KEY=KEY),
                workers,
            )
            servers += [on, off]
            warm, _ = al.build_jobs(services, 200, 0, [], 400, 1)
            for server in (on, off):
                c.run_load(server.url + "/slack/events", warm, concurrency)
            lat: dict[str, list[float]] = {"on": [], "off": []}
            for rnd in range(2):
                for mode, server in (("on", on), ("off", off)) if rnd == 0 else (("off", off), ("on", on)):
                    jobs, _ = al.build_jobs(services, jobs_n // 2, jobs_n // 2, pending[mode], 400, 10 + rnd)
                    res = c.run_load(server.url + "/slack/events", jobs, concurrency)
                    lat[mode] += res.all_latencies
                    p = c.summary_ms(res.all_latencies)["p99"]
                    c.log(f"{db_kind} chain {mode}: round {rnd + 1}: p99 {p:.1f} ms, statuses {res.statuses}")
            for mode in ("on", "off"):
                s = c.summary_ms(lat[mode])
                p99[mode] = s["p99"]
                rows.append([db_kind, f"chain {mode}", s["n"], f"{s['p50']:.1f}", f"{s['p95']:.1f}", f"{s['p99']:.1f}"])
            time.sleep(3)  # the work lanes finish writing their audit rows
            from bot.audit_chain import Sealer, verify
            from bot.db import Database

            db = Database(url)
            verdict = verify(db, Sealer(KEY))
            db.dispose()
            state = "holds" if verdict.ok else f"is broken: {verdict.problem}"
            c.log(f"{db_kind}: after the load (with {workers} worker processes appending) the chain {state}")
            rows.append(
                [db_kind, f"chain after the load: {'holds' if verdict.ok else 'BROKEN'}", verdict.rows, "", "", ""]
            )
    finally:
        for s in servers:
            s.stop()
        services.stop()
    return rows, p99["on"] <= 1.1 * p99["off"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=1000, help="ack load per server and round")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-ack", action="store_true")
    args = ap.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not c.pg_available():
        c.log("PostgreSQL is not available: SQLite only")
        kinds = ["sqlite"]
    started = time.monotonic()
    scale_rows, cost_rows, ack_rows, ack_ok = [], [], [], True
    for kind in kinds:
        scale_rows += scale(kind, args.rows)
        cost_rows.append(append_cost(kind))
    if not args.no_ack:
        kind = "postgresql" if "postgresql" in kinds else "sqlite"
        ack_rows, ack_ok = ack(kind, args.jobs, args.concurrency)
    rss_ok = all(int(r[6]) < 150 for r in scale_rows)
    body = "\n\n".join(
        [
            f"{c.machine_facts()}; {time.monotonic() - started:.0f} s.",
            "Verify and export as their own processes (`python app.py audit …`, AUDIT_KEY set: HMAC-SHA256); "
            "peak RSS of each process (`os.wait4`). The same command over a tenth of the rows shows whether "
            f"memory grows with the table. Peak RSS < 150 MB: {c.met(rss_ok)}.",
            c.md_table(["database", "command", "rows", "exit", "seconds", "rows/s", "peak RSS MB"], scale_rows),
            "One `AuditLog.record` in its own transaction, median of 2,000, chain on (lock the head, seal, insert, "
            "move the head) and off (insert only):",
            c.md_table(["database", "on µs", "off µs", "ratio"], cost_rows),
            *(
                [
                    f"Ack latency, {args.jobs} requests per server and round (half `/polaris groups`/`help`, half "
                    f"Approve clicks on pending requests) at concurrency {args.concurrency}, two rounds alternating, "
                    f"`app.py serve` with the chain vs `bench/prototype_no_chain.py`. p99 with the chain <= 1.1x "
                    f"without: {c.met(ack_ok)}.",
                    c.md_table(["database", "server", "n", "p50 ms", "p95 ms", "p99 ms"], ack_rows),
                ]
                if ack_rows
                else []
            ),
        ]
    )
    c.write_section("audit_chain", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
