"""Issue 13's targets, side by side in one run against the corrected floor (``bench/floor_app.py`` with
``process_before_response=True``, the stand-ins with ``TCP_NODELAY``), load from several processes.

    .venv/bin/python bench/targets.py            # ~3 minutes on 2 cores

1. Ack and throughput, ``--rounds`` short rounds alternating floor/product (order swapped each round), at
   concurrency 1 and 16: signed ``/polaris groups``/``help`` commands and Approve clicks on real pending
   requests, closed loop, from ``--procs`` load processes (each its own threads and ``requests.Session``s,
   results merged). Per level: ack p50/p99, acked req/s, completed req/s (delivered response_url answers until
   the last one), "busy, try again" answers counted apart (never as completed), errors (non-200, client
   exceptions, server log errors, missing answers), server CPU per completed request (product) and per ack
   (floor), client CPU. Median and min-max of each ratio over the rounds.
2. Time to answer (ack to the response_url post), Polaris delayed by ``--polaris-ms`` on every call, at
   concurrency 2: ``help``/``status`` (no Polaris call) and ``permissions`` (one call).
3. One approval, click to applied and requester told, counted exactly in-process through the core: database
   transactions (SQLAlchemy ``begin``), statements (``before_cursor_execute``), audit inserts, Slack calls
   (the stand-in's call log) and Polaris calls (``sandbox.calls``).

Rewrites the ``targets`` section of bench/RESULTS.md. Only 127.0.0.1; every loop bounded.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402


# ------------------------------------------------------------------------------------------ load processes
def _load_child(conn, url: str, jobs: list, threads: int, pause: float = 0.0) -> None:
    """Child: wait for "go", send ``jobs`` (kind, body, key) from ``threads`` threads, send back the records
    (key, kind, status, ack time.monotonic(), latency s) and the child's CPU seconds."""
    import requests

    conn.recv()
    t_cpu = os.times()
    lock, records, it = threading.Lock(), [], iter(jobs)

    def run() -> None:
        session, mine = requests.Session(), []
        while True:
            with lock:
                job = next(it, None)
            if job is None:
                break
            kind, body, key = job
            t0 = time.perf_counter()
            try:
                r = session.post(url, data=body.encode(), headers=c.sign(body), timeout=10)
                _ = r.content
                status = str(r.status_code)
            except requests.RequestException as e:
                status = f"exc:{type(e).__name__}"
            mine.append((key, kind, status, time.monotonic(), time.perf_counter() - t0))
            if pause:
                time.sleep(pause)
        session.close()
        with lock:
            records.extend(mine)

    start = time.monotonic()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    t_end = os.times()
    conn.send((records, start, time.monotonic(), (t_end.user - t_cpu.user) + (t_end.system - t_cpu.system)))


def load(url: str, jobs: list, concurrency: int, procs: int, pause: float = 0.0) -> dict:
    """Closed loop from ``min(procs, concurrency)`` processes sharing ``concurrency`` threads in all; each thread
    waits ``pause`` seconds after each answer (0: none)."""
    ctx = mp.get_context("spawn")
    n = max(1, min(procs, concurrency))
    kids = []
    for i in range(n):
        parent, child = ctx.Pipe()
        threads = concurrency // n + (1 if i < concurrency % n else 0)
        p = ctx.Process(target=_load_child, args=(child, url, jobs[i::n], threads, pause), daemon=True)
        p.start()
        kids.append((p, parent))
    time.sleep(1.5)  # every child has imported requests
    for _, parent in kids:
        parent.send("go")
    records, starts, ends, cpu = [], [], [], 0.0
    for p, parent in kids:
        if parent.poll(330):
            r, s, e, u = parent.recv()
            records += r
            starts.append(s)
            ends.append(e)
            cpu += u
        p.join(10)
    wall = max(ends) - min(starts)
    return {"records": records, "start": min(starts), "wall": wall, "client_cpu": cpu / wall if wall else 0.0}


# ------------------------------------------------------------------------------------------ jobs
def jobs_for(services: c.Services, n: int, request_ids: list[str], load_users: int, texts=("groups", "help")):
    """Interleaved commands (``texts`` in turn) and Approve clicks (approvers and a non-approver); returns the
    jobs and the keys whose response_url answer is expected (the approving click's card update is not one)."""
    out, expect = [], set()
    clickers = [c.APPROVER, c.OTHER, c.APPROVER2]
    approved: set[str] = set()
    for i in range(n):
        url = services.response_url()
        key = url.rsplit("/", 1)[1]
        if request_ids and i % 2 == 1:
            rid, who = request_ids[(i // 2) % len(request_ids)], clickers[(i // 2) % 3]
            out.append(("click", c.click_body(who, "approve_request", rid, url), key))
            if who == c.OTHER or rid in approved:
                expect.add(key)
            else:
                approved.add(rid)
        else:
            uid, _ = c.load_user(i % load_users)
            out.append(("command", c.slash_body(uid, texts[(i // 2) % len(texts)], url), key))
            expect.add(key)
    return out, expect


def level(server, services, jobs, expect, conc, procs, product: bool, pg, pause: float = 0.0) -> dict:
    before = services.stats()["arrivals"]
    log_at = server.log_size()
    meter = c.CpuMeter({"server": server.worker_pids, "postgres": pg})
    meter.start()
    res = load(server.url + "/slack/events", jobs, conc, procs, pause)
    if product:
        services.wait_responses(before + len(expect), timeout=120, quiet=3.0)
    cores = meter.stop()
    keyed = services.keyed_since(before)
    ok = [r for r in res["records"] if r[2] == "200"]
    lat = [r[4] for r in ok]
    s = c.summary_ms(lat)
    # which click approves a request depends on the order the clicks run in: count answers by the set of keys
    mine = {j[2] for j in jobs}
    busy = sum(1 for k, _, b in keyed if b and k in mine)
    delivered = [(k, t) for k, t, b in keyed if not b and k in mine]
    missing = len(expect) - busy - len(delivered) if product else 0
    log_errors = server.errors_since(log_at)
    errors = (len(res["records"]) - len(ok)) + len(log_errors) + max(0, missing)
    acked_rps = len(ok) / res["wall"]
    completed = (
        len(delivered) / max(1e-9, max(t for _, t in delivered) - res["start"]) if product and delivered else None
    )
    cpu_s = cores["server"] * cores["_wall"]
    per = cpu_s / (len(delivered) if product else len(ok)) * 1000 if (delivered or not product) and ok else float("nan")
    ack_at = {r[0]: r[3] for r in ok}
    tta = [t - ack_at[k] for k, t in delivered if k in ack_at]
    return {
        "p50": s["p50"],
        "p99": s["p99"],
        "acked_rps": acked_rps,
        "completed_rps": completed,
        "busy": busy,
        "errors": errors,
        "missing": max(0, missing),
        "cpu_ms": per,
        "client_cpu": res["client_cpu"],
        "server_cores": cores["server"],
        "pg_cores": cores["postgres"],
        "tta": tta,
        "log_errors": log_errors[:2],
    }


# ------------------------------------------------------------------------------------------ approval counts
def approved_left(db_url: str) -> int:
    """How many requests the load left approved and not applied yet (the background worker's backlog)."""
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import APPROVED, AccessRequest

    db = Database(db_url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(AccessRequest).where(AccessRequest.state == APPROVED))
    finally:
        db.dispose()


def approval_counts(db_kind: str, db_url: str, n: int = 5) -> dict:
    """Average counts per approval (click -> applied and requester told), in-process through the core."""
    from sqlalchemy import event, select

    from bot import wiring
    from bot.db import Database
    from bot.models import APPLIED, AccessRequest
    from standins.polaris_sandbox import PolarisSandbox
    from standins.slack_api import SlackStandIn

    sandbox = PolarisSandbox(seed=False)
    org_admin = sandbox.group_by_name("Organization Admin")["id"]
    sandbox.create_user("bob@example.com", "Bob", "Bench", groups=[org_admin], actions=[])
    server = sandbox.serve()
    slack = SlackStandIn(bot_token=c.BOT_TOKEN)
    slack.serve()
    slack.add_user(c.APPROVER, "bob", "bob@example.com", first_name="Bob", last_name="Bench")
    users = [(f"U0APPR{i:04d}", f"appr{i}@example.com") for i in range(n)]
    for uid, email in users:
        slack.add_user(uid, uid.lower(), email, first_name="Appr", last_name=uid)

    class S:
        polaris_url, slack_api_url = server.url, slack.api_url

    db = Database(db_url)
    core = wiring.build_core(c.make_settings(S, db_url), db=db)
    counts = {"transactions": 0, "commits": 0, "statements": 0, "audit inserts": 0}

    def begin(conn):  # an autocommit connection (the claims' advisory locks) begins no database transaction
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            counts["transactions"] += 1

    event.listen(db.engine, "begin", begin)
    event.listen(db.engine, "commit", lambda conn: counts.__setitem__("commits", counts["commits"] + 1))

    def stmt(conn, cursor, statement, params, context, executemany):
        counts["statements"] += 1
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            counts["audit inserts"] += 1  # statements: a batch is one INSERT of several rows

    event.listen(db.engine, "before_cursor_execute", stmt)

    def audit_rows() -> int:  # rows, not statements (counted outside the counts: read before and after)
        from sqlalchemy import func

        from bot.models import AuditEvent

        with db.session() as s:
            found = s.scalar(select(func.count()).select_from(AuditEvent))
        return found

    totals = {
        "transactions": 0,
        "commits": 0,
        "statements": 0,
        "audit inserts": 0,
        "audit rows": 0,
        "Slack calls": 0,
        "Polaris calls": 0,
    }
    slack_methods: dict[str, int] = {}
    done = 0
    try:
        for uid, _ in users:
            core.service.handle_command(uid, "request Viewer bench")
            core.service.run_due()
            with db.session() as s:
                rid = s.scalars(select(AccessRequest.id).where(AccessRequest.requester_id == uid)).one()
            rows_before = audit_rows()  # before the counts start: the benchmark's own reads are not counted
            for k in counts:
                counts[k] = 0
            n_slack, n_polaris = len(slack.calls), len(sandbox.calls)
            core.service.decide(rid, c.APPROVER, approve=True)
            core.service.run_due()
            for k in counts:  # before the benchmark's own reads below
                totals[k] += counts[k]
            with db.session() as s:
                state = s.get(AccessRequest, rid).state
            totals["audit rows"] += audit_rows() - rows_before
            totals["Slack calls"] += len(slack.calls) - n_slack
            totals["Polaris calls"] += len(sandbox.calls) - n_polaris
            for m, _ in slack.calls[n_slack:]:
                slack_methods[m] = slack_methods.get(m, 0) + 1
            done += state == APPLIED
        for k in counts:  # one run_due with nothing due (the counts above include one pass per approval)
            counts[k] = 0
        core.service.run_due()
        idle = dict(counts)
    finally:
        db.dispose()
        server.shutdown()
        slack.shutdown()
    avg = {k: v / n for k, v in totals.items()}
    avg["applied"] = f"{done}/{n}"
    avg["idle"] = idle
    avg["slack_methods"] = ", ".join(f"{m} {v / n:g}" for m, v in sorted(slack_methods.items()))
    return avg


# ------------------------------------------------------------------------------------------ main
def ratio_cell(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "–"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


def main(argv=None) -> int:  # noqa: C901
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4, help="load-generating processes")
    ap.add_argument("--n1", type=int, default=300, help="requests per level at concurrency 1")
    ap.add_argument("--n16", type=int, default=800, help="requests per level at concurrency 16")
    ap.add_argument("--polaris-ms", type=float, default=20.0)
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    args = ap.parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    load_users = 400
    services = c.Services(load_users=load_users)
    servers = []
    rows: dict[tuple[str, int], list[dict]] = {}
    try:
        with c.database(args.db) as (db_kind, db_url):
            workers, threads = c.gunicorn_workers(db_kind)
            pg = (lambda: c.pids_named("postgres")) if db_kind == "postgresql" else (lambda: [])
            groups = ["Viewer", "Data Analyst", "Data Manager"]
            levels = [(1, args.n1), (16, args.n16)]
            pending = {}
            k = 0
            for r in range(args.rounds):
                for conc, n in levels:
                    users = range((k // 3) * 130, (k // 3) * 130 + min(130, n // 6 + 1))
                    pending[(r, conc)] = c.create_pending(services, db_url, users, groups[k % 3])
                    k += 1
            c.log(f"{sum(len(v) for v in pending.values())} pending requests created")
            floor, product = c.start_floor(services, workers), c.start_product(services, db_url, workers)
            servers += [floor, product]
            for srv in (floor, product):  # warm-up
                warm, expect = jobs_for(services, 64, [], load_users)
                base = services.stats()["arrivals"]
                load(srv.url + "/slack/events", warm, 4, 2)
                if srv is product:
                    services.wait_responses(base + len(expect), timeout=60)
            for r in range(args.rounds):
                order = (
                    (("floor", floor), ("product", product)) if r % 2 == 0 else (("product", product), ("floor", floor))
                )
                for conc, n in levels:
                    for name, srv in order:
                        jobs, expect = jobs_for(services, n, pending[(r, conc)], load_users)
                        row = level(srv, services, jobs, expect, conc, args.procs, name == "product", pg)
                        rows.setdefault((name, conc), []).append(row)
                        c.log(
                            f"round {r + 1} {name} @{conc}: p50 {row['p50']:.2f} p99 {row['p99']:.2f} ms, acked "
                            f"{row['acked_rps']:.0f}/s, completed {row['completed_rps'] or 0:.0f}/s, busy {row['busy']},"
                            f" errors {row['errors']}, cpu/req {row['cpu_ms']:.2f} ms, client {row['client_cpu']:.2f}"
                        )
            # time to answer, Polaris delayed
            quiet_until = time.monotonic() + 120  # let the background worker finish applying the approvals
            last, still = services.stats()["polaris_calls"], 0
            while time.monotonic() < quiet_until and (still < 3 or approved_left(db_url)):
                time.sleep(1)  # (a pass sending only Slack messages makes no Polaris call for seconds)
                now_calls = services.stats()["polaris_calls"]
                still, last = (still + 1 if now_calls == last else 0), now_calls
            c.log(f"before time to answer: waited {120 - (quiet_until - time.monotonic()):.0f} s for the worker")
            services.add_fault(delay=args.polaris_ms / 1000.0, times=None)
            tta = {}
            for label, texts in (
                ("no Polaris call (help, status)", ("help", "status")),
                ("one Polaris call (permissions)", ("permissions",)),
            ):
                jobs, expect = jobs_for(services, 100, [], load_users, texts=texts)
                before_calls = services.stats()["polaris_calls"]
                # below saturation: one at a time, 60 ms apart (~16 req/s, a fraction of what completes per s)
                row = level(product, services, jobs, expect, 1, 1, True, pg, pause=0.06)
                calls = services.stats()["polaris_calls"] - before_calls
                tta[label] = (row, calls / len(jobs))
            services.clear_faults()
    finally:
        for srv in servers:
            srv.stop()
        services.stop()
    with c.database(db_kind) as (_, fresh_url):
        approval = approval_counts(db_kind, fresh_url)
    report(args, db_kind, workers, threads, rows, tta, approval, load_before, time.monotonic() - started)
    return 0


def report(args, db_kind, workers, threads, rows, tta, approval, load_before, elapsed) -> None:  # noqa: C901
    table = []
    for (name, conc), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):

        def med(key, rs=rs):
            xs = [r[key] for r in rs if r[key] is not None]
            return statistics.median(xs) if xs else float("nan")

        table.append(
            [
                name,
                conc,
                med("p50"),
                med("p99"),
                f"{med('acked_rps'):.0f}",
                "–" if name == "floor" else f"{med('completed_rps'):.0f}",
                sum(r["busy"] for r in rs),
                sum(r["errors"] for r in rs),
                med("cpu_ms"),
                f"{med('server_cores'):.2f}",
                f"{med('pg_cores'):.2f}",
                f"{med('client_cpu'):.2f}",
            ]
        )

    def ratios(conc, f):
        p, fl = rows.get(("product", conc), []), rows.get(("floor", conc), [])
        return [f(a, b) for a, b in zip(p, fl, strict=False)]

    lines = []
    goals = []
    for conc in (1, 16):
        p99 = ratios(conc, lambda a, b: a["p99"] / b["p99"])
        p50 = ratios(conc, lambda a, b: a["p50"] / b["p50"])
        ack = ratios(conc, lambda a, b: a["acked_rps"] / b["acked_rps"])
        comp = ratios(conc, lambda a, b: (a["completed_rps"] or 0) / b["acked_rps"])
        cpu = ratios(conc, lambda a, b: a["cpu_ms"] / b["cpu_ms"])
        lines.append([conc, ratio_cell(p50), ratio_cell(p99), ratio_cell(ack), ratio_cell(comp), ratio_cell(cpu)])
        clean = all(r["busy"] == 0 and r["errors"] == 0 for r in rows.get(("product", conc), []))
        goals.append(
            f"- ack p99 within 2x the floor at concurrency {conc}: {c.met(statistics.median(p99) <= 2)} "
            f"(median {statistics.median(p99):.2f}x)."
        )
        goals.append(
            f"- completed >= 0.5x the floor's acked at concurrency {conc}, zero errors and zero busy: "
            f"{c.met(statistics.median(comp) >= 0.5 and clean)} (median {statistics.median(comp):.2f}x; "
            f"{'clean' if clean else 'busy/errors seen'})."
        )
        goals.append(
            f"- server CPU per completed request within 3x the floor's per ack at concurrency {conc}: "
            f"{c.met(statistics.median(cpu) <= 3)} (median {statistics.median(cpu):.2f}x)."
        )
    ratio_table = c.md_table(
        [
            "concurrency",
            "ack p50 product/floor",
            "ack p99 product/floor",
            "acked req/s product/floor",
            "completed (product) / acked (floor)",
            "server CPU per completed / floor per ack",
        ],
        lines,
    )
    tta_rows = []
    for label, (row, calls) in tta.items():
        limit = 50 + (args.polaris_ms if "one" in label else 0)
        p99 = c.percentile(row["tta"], 99) * 1000
        tta_rows.append(
            [
                label,
                f"{calls:.2f}",
                len(row["tta"]),
                c.percentile(row["tta"], 50) * 1000,
                p99,
                f"{limit:.0f}",
                c.met(p99 < limit),
                row["busy"],
                row["errors"],
            ]
        )
        goals.append(f"- time to answer p99, {label}: {c.met(p99 < limit)} ({p99:.1f} ms, limit {limit:.0f} ms).")
    tta_table = c.md_table(
        ["commands", "Polaris calls each", "answers", "p50 ms", "p99 ms", "limit ms", "target", "busy", "errors"],
        tta_rows,
    )
    a = approval
    beside = a["transactions"] - a["idle"]["transactions"]  # the pass's own reads of what is due: shared by its work
    goals.append(
        f"- an approval: at most 6 transactions and 5 Slack calls: "
        f"{c.met(a['transactions'] <= 6 and a['Slack calls'] <= 5)} ({a['transactions']:.1f} transactions, "
        f"{beside:.1f} beside the worker pass's own; {a['Slack calls']:.1f} Slack calls)."
    )
    appr_table = c.md_table(
        [
            "transactions (begin)",
            "commits",
            "statements",
            "audit INSERTs",
            "audit rows",
            "Slack calls",
            "Polaris calls",
            "applied",
        ],
        [
            [a["transactions"], a["commits"], a["statements"], a["audit inserts"], a["audit rows"], a["Slack calls"]]
            + [a["Polaris calls"], a["applied"]]
        ],
    )
    idle = a["idle"]
    load_after = os.getloadavg()
    body = f"""Run: {c.machine_facts()}. Load average before {load_before[0]:.2f} {load_before[1]:.2f}
{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} (a shared machine).

Command: `.venv/bin/python bench/targets.py`. {args.rounds} rounds, floor and product alternating (order
swapped each round); {args.n1} requests per level at concurrency 1, {args.n16} at 16 (half `/polaris
groups`/`help`, half Approve clicks on real pending requests by approvers and a non-approver), closed loop from up
to {args.procs} load processes; product `python app.py serve`, floor `bench/floor_app.py` (Bolt, listeners only
`ack()`, `process_before_response=True` as the product), both gunicorn gthread {workers} x {threads}; database
{db_kind}; stand-ins with `TCP_NODELAY`, Polaris answering at once. Completed = delivered response_url answers
(busy answers not counted) per second until the last one. CPU per request: server processes only ("postgres"
column for context). Whole run {elapsed:.0f} s.

Per level, median over the rounds (busy and errors summed):

{
        c.md_table(
            [
                "server",
                "concurrency",
                "ack p50 ms",
                "ack p99 ms",
                "acked req/s",
                "completed req/s",
                "busy answers",
                "errors",
                "server CPU ms per completed (product) / per ack (floor)",
                "server cores",
                "postgres cores",
                "client cores",
            ],
            table,
        )
    }

Ratios, median (min–max) over the rounds:

{ratio_table}

Time to answer (ack to the response_url post), every Polaris call delayed {args.polaris_ms:.0f} ms, one
command at a time, 60 ms apart (below saturation):

{tta_table}

One approval, click to applied and requester told (average of 5, in-process through the core on {db_kind}, a fresh
schema; the Slack
calls: {a["slack_methods"]}). Transactions = every SQLAlchemy `begin` on the engine (read-only ones too); the counts
include one `run_due` pass after the click, which with nothing due costs {idle["transactions"]} transactions and
{idle["statements"]} statements:

{appr_table}

Targets:
{chr(10).join(goals)}
"""
    c.write_section("targets", body)
    print(body)


if __name__ == "__main__":
    sys.exit(main())
