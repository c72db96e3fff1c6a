"""Ack latency of ``python app.py serve`` against a bare Bolt floor, with Polaris fast and slow.

    .venv/bin/python bench/ack_latency.py            # ~2-3 minutes on 2 cores
    .venv/bin/python bench/ack_latency.py --commands 500 --clicks 500   # quick look

What it does (one run, one RESULTS.md section):

1. Starts the Polaris sandbox and the Slack stand-in in a child process, a fresh PostgreSQL schema
   (``$BENCH_DATABASE_URL``, default postgresql://root@127.0.0.1:5432/test; SQLite with 1 worker when
   PostgreSQL does not answer), migrated with ``python app.py migrate``.
2. Creates ``--pending`` real pending access requests per Polaris phase through the product's own service.
3. Starts the product (``python app.py serve``) and the floor (``bench/floor_app.py``: a Bolt app whose
   listeners only ``ack()``) with the same gunicorn settings (gthread, WEB_CONCURRENCY default 2,
   GUNICORN_THREADS default 8).
4. For each phase - floor; product with Polaris answering at once; product with every Polaris call delayed
   2 s (``Fault(delay=2.0, times=None)``) - sends ``--commands`` signed ``/polaris groups``/``help`` and
   ``--clicks`` signed Approve clicks (approvers and a non-approver, on real pending request IDs),
   interleaved, from ``--concurrency`` threads each with its own ``requests.Session``, and measures the
   HTTP response time (the ack) client side. A short warm-up precedes the floor and the fast phase.
5. Waits for the listeners' work (response_url posts) to finish between phases.

Targets: p99 <= 1.5x the floor's p99, and unchanged by a slow Polaris (slow p99 <= 1.5x floor and
<= 1.25x the fast p99 + 5 ms).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402


def build_jobs(
    services: c.Services, n_commands: int, n_clicks: int, request_ids: list[str], load_users: int, seed: int
) -> tuple[list[c.Job], int]:
    """Interleaved commands and clicks; returns the jobs and the number of response_url posts to expect."""
    rng = random.Random(seed)
    commands = []
    for i in range(n_commands):
        uid, _ = c.load_user(rng.randrange(load_users))
        commands.append(
            c.Job("command", c.slash_body(uid, "groups" if i % 2 == 0 else "help", services.response_url()))
        )
    clickers = [c.APPROVER, c.OTHER, c.APPROVER2]
    clicks, approved = [], set()
    for i in range(n_clicks):
        rid = request_ids[i % len(request_ids)] if request_ids else "00000000-0000-4000-8000-000000000000"
        who = clickers[i % len(clickers)]
        if who != c.OTHER:
            approved.add(rid)
        clicks.append(c.Job("click", c.click_body(who, "approve_request", rid, services.response_url())))
    jobs = c.interleave(commands, clicks)
    # Every command answers on its response_url; every click too except the one that approves a request.
    return jobs, n_commands + n_clicks - len(approved)


def phase(
    name: str,
    server: c.ServerProcess,
    services: c.Services,
    jobs: list[c.Job],
    expected: int,
    concurrency: int,
    product: bool,
) -> dict:
    before = services.stats()
    log_at = server.log_size()
    c.log(f"{name}: {len(jobs)} requests at concurrency {concurrency}")
    res = c.run_load(server.url + "/slack/events", jobs, concurrency)
    done = services.wait_responses(before["arrivals"] + expected, timeout=120) if product else before
    after = services.stats()
    calls = services.polaris_calls(before["polaris_calls"])
    out = {
        "name": name,
        "result": res,
        "all": c.summary_ms(res.all_latencies),
        "command": c.summary_ms(res.latencies.get("command", [])),
        "click": c.summary_ms(res.latencies.get("click", [])),
        "responses": done["arrivals"] - before["arrivals"] if product else None,
        "expected": expected,
        "polaris_calls": after["polaris_calls"] - before["polaris_calls"],
        "group_fetches": sum(1 for m, p, *_ in calls if m == "GET" and p == "/v1/groups"),
        "log_errors": server.errors_since(log_at),
    }
    s = out["all"]
    c.log(
        f"{name}: p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, p99 {s['p99']:.1f} ms, max {s['max']:.1f} ms, "
        f"{res.rps:.0f} req/s, statuses {res.statuses}, responses {out['responses']}/{expected}"
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--clicks", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pending", type=int, default=200, help="pending requests clicked per phase")
    ap.add_argument("--slow-delay", type=float, default=2.0)
    ap.add_argument("--warmup", type=int, default=64)
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument(
        "--slow-cache",
        choices=("expired", "warm"),
        default="expired",
        help="start the slow phase with the group cache expired (default) or as the fast phase left it",
    )
    ap.add_argument(
        "--prototype",
        action="store_true",
        help="also measure the product with process_before_response=True (bench/prototype_ack_first.py); "
        "bench/ack_variants.py compares more candidate fixes",
    )
    ap.add_argument("--group-cache-ttl", type=float, default=60.0, help="the product's GROUP_CACHE_TTL (default 60)")
    args = ap.parse_args(argv)
    load_users = 400
    started = time.monotonic()
    services = c.Services(load_users=load_users)
    servers: list[c.ServerProcess] = []
    results: list[dict] = []
    try:
        with c.database(args.db) as (db_kind, db_url):
            workers, threads = c.gunicorn_workers(db_kind)
            c.log(f"database {db_kind}; gunicorn {workers} worker(s) x {threads} threads; creating pending requests")
            P = args.pending
            ids = {
                ("product", "fast"): c.create_pending(services, db_url, range(P), "Viewer"),
                ("product", "slow"): c.create_pending(services, db_url, range(P), "Data Analyst"),
            }
            if args.prototype:
                ids[("prototype", "fast")] = c.create_pending(services, db_url, range(P, 2 * P), "Viewer")
                ids[("prototype", "slow")] = c.create_pending(services, db_url, range(P, 2 * P), "Data Analyst")
            ttl = {"GROUP_CACHE_TTL": f"{args.group_cache_ttl:g}"}
            floor = c.start_floor(services, workers)
            servers.append(floor)
            targets = {"product": c.start_product(services, db_url, workers, **ttl)}
            servers.append(targets["product"])
            if args.prototype:
                targets["prototype"] = c.start_prototype(services, db_url, workers, **ttl)
                servers.append(targets["prototype"])
            warm, warm_expected = build_jobs(services, args.warmup, 0, [], load_users, args.seed + 3)

            c.run_load(floor.url + "/slack/events", warm, args.concurrency)
            floor_jobs, _ = build_jobs(
                services, args.commands, args.clicks, ids[("product", "fast")], load_users, args.seed + 2
            )
            results.append(
                phase("floor (bare Bolt, ack only)", floor, services, floor_jobs, 0, args.concurrency, product=False)
            )
            last_fetch = {}
            for n, (name, server) in enumerate(targets.items()):
                mark = services.stats()["polaris_calls"]
                base = services.stats()["arrivals"]
                c.run_load(server.url + "/slack/events", warm, args.concurrency)
                services.wait_responses(base + warm_expected, timeout=60)
                jobs, expected = build_jobs(
                    services, args.commands, args.clicks, ids[(name, "fast")], load_users, args.seed + 10 + n
                )
                label = "product" if name == "product" else PROTO
                r = phase(f"{label}, Polaris at once", server, services, jobs, expected, args.concurrency, product=True)
                results.append(r)
                fetches = [
                    call[4] for call in services.polaris_calls(mark) if call[0] == "GET" and call[1] == "/v1/groups"
                ]
                last_fetch[name] = fetches[-1] if fetches else time.monotonic()
            for n, (name, server) in enumerate(targets.items()):
                # Start the slow phase with the group cache expired, as it is once every GROUP_CACHE_TTL in
                # production: wait until this server's last group-list fetch is older than the TTL.
                if args.slow_cache == "expired":
                    wait = last_fetch[name] + args.group_cache_ttl + 1 - time.monotonic()
                    if wait > 0:
                        c.log(f"waiting {wait:.0f} s for the group cache of the {name} to expire")
                        time.sleep(wait)
                jobs, expected = build_jobs(
                    services, args.commands, args.clicks, ids[(name, "slow")], load_users, args.seed + 20 + n
                )
                services.add_fault(delay=args.slow_delay, times=None)
                label = "product" if name == "product" else PROTO
                r = phase(
                    f"{label}, Polaris +{args.slow_delay:g} s",
                    server,
                    services,
                    jobs,
                    expected,
                    args.concurrency,
                    product=True,
                )
                r["cache_age"] = r["result"].started_mono - last_fetch[name]
                results.append(r)
                services.clear_faults()
                if name == "product" and args.prototype:
                    # its background worker still applies the slow phase's approvals: stop it first
                    server.stop()
            c.run_load(floor.url + "/slack/events", warm, args.concurrency)
            floor_jobs, _ = build_jobs(
                services, args.commands, args.clicks, ids[("product", "fast")], load_users, args.seed + 5
            )
            results.append(
                phase("floor, again at the end", floor, services, floor_jobs, 0, args.concurrency, product=False)
            )
            decided = count_decided(db_url, ids[("product", "fast")] + ids[("product", "slow")])
    finally:
        services.clear_faults()
        for server in servers:
            server.stop()
        services.stop()
    elapsed = time.monotonic() - started
    report(args, db_kind, workers, threads, results, decided, elapsed)
    return 0


def count_decided(db_url: str, ids: list[str]) -> dict:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import AccessRequest

    db = Database(db_url)
    with db.session() as s:
        rows = dict(
            s.execute(
                select(AccessRequest.state, func.count()).where(AccessRequest.id.in_(ids)).group_by(AccessRequest.state)
            ).all()
        )
    db.dispose()
    return rows


PROTO = "proposed fix: product + process_before_response=True"


def slow_share(r: dict, limit_s: float) -> int:
    return sum(1 for _, lat, kind in r["result"].samples if kind != "error" and lat > limit_s)


def window_p99(r: dict, t_from: float, t_to: float) -> tuple[int, float]:
    xs = [lat for t, lat, kind in r["result"].samples if kind != "error" and t_from <= t < t_to]
    return len(xs), c.percentile(xs, 99) * 1000


def report(args, db_kind, workers, threads, results, decided, elapsed) -> None:
    by = {r["name"]: r for r in results}
    floors = [r for r in results if r["name"].startswith("floor")]
    combined = c.LoadResult()
    for r in floors:
        for k, v in r["result"].latencies.items():
            combined.latencies.setdefault(k, []).extend(v)
        for k, n in r["result"].statuses.items():
            combined.statuses[k] = combined.statuses.get(k, 0) + n
        combined.samples.extend(r["result"].samples)
        combined.sent += r["result"].sent
        combined.wall += r["result"].wall
    r_floor = {
        "name": "floor, both runs (the baseline)",
        "result": combined,
        "all": c.summary_ms(combined.all_latencies),
        "command": c.summary_ms(combined.latencies.get("command", [])),
        "click": c.summary_ms(combined.latencies.get("click", [])),
        "responses": None,
    }
    r_fast = by["product, Polaris at once"]
    r_slow = by[f"product, Polaris +{args.slow_delay:g} s"]
    f99 = r_floor["all"]["p99"]
    fast99, slow99 = r_fast["all"]["p99"], r_slow["all"]["p99"]
    ok_fast = fast99 <= 1.5 * f99
    ok_slow_floor = slow99 <= 1.5 * f99
    ok_unchanged = slow99 <= 1.25 * fast99 + 5 and slow_share(r_slow, 1.0) == 0
    order = [r_floor] + floors + [r_fast, r_slow] + [r for r in results if r["name"].startswith(PROTO)]
    rows = []
    for r in order:
        s, res = r["all"], r["result"]
        rows.append(
            [
                r["name"],
                s["n"],
                s["p50"],
                s["p95"],
                s["p99"],
                s["max"],
                s["p99"] / f99 if f99 else float("nan"),
                r["command"]["p99"],
                r["click"]["p99"],
                slow_share(r, 1.0),
                slow_share(r, 3.0),
                f"{res.rps:.0f}",
                ", ".join(f"{k}: {v}" for k, v in sorted(res.statuses.items())),
                "–" if r["responses"] is None else f"{r['responses']}/{r['expected']}",
            ]
        )
    table = c.md_table(
        [
            "phase",
            "acks",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "p99 / floor",
            "commands p99",
            "clicks p99",
            "acks > 1 s",
            "acks > 3 s",
            "req/s",
            "HTTP statuses",
            "response_url posts",
        ],
        rows,
    )
    notes = []
    for r in order[1 + len(floors) :]:
        if "cache_age" in r:
            n_first, p99_first = window_p99(r, 0, 5)
            n_rest, p99_rest = window_p99(r, 5, 1e9)
            notes.append(
                f"- {r['name']}: started {r['cache_age']:.0f} s after its last group-list fetch; p99 of acks "
                f"sent in the first 5 s {p99_first:.1f} ms ({n_first} acks), afterwards {p99_rest:.1f} ms "
                f"({n_rest} acks). Polaris calls {r['polaris_calls']} (group-list fetches {r['group_fetches']})."
            )
        else:
            notes.append(
                f"- {r['name']}: Polaris calls {r['polaris_calls']} (group-list fetches {r['group_fetches']})."
            )
        if r["log_errors"]:
            notes.append(f"  Error lines in its log: {len(r['log_errors'])}, e.g. `{r['log_errors'][0][:160]}`.")
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/ack_latency.py`{" --prototype" if args.prototype else ""}. Parameters:
{args.commands} signed `/polaris groups`/`help` commands + {args.clicks} signed Approve clicks per phase (approvers
and a non-approver in turn, on {args.pending} real pending requests per phase), interleaved, concurrency
{args.concurrency} (a thread pool of `requests.Session`s), latency = the HTTP response (the ack) measured client side.
Database: {db_kind} ({"a fresh schema" if db_kind == "postgresql" else "a fresh file"}, migrated with `python app.py migrate`).
Product `python app.py serve` and floor `bench/floor_app.py` (Bolt, listeners only `ack()`), both gunicorn gthread,
{workers} worker(s) x {threads} threads. Slow Polaris: every sandbox call delayed {args.slow_delay:g} s
(`Fault(delay={args.slow_delay:g}, times=None)`), starting with the group cache expired ({args.slow_cache}), as
happens once every GROUP_CACHE_TTL ({args.group_cache_ttl:g} s) in production. Warm-up of {args.warmup} requests before
each fast phase and the floor. Whole run {elapsed:.0f} s.

{table}

{chr(10).join(notes)}
- Product requests clicked, final states: {", ".join(f"{k} {v}" for k, v in sorted(decided.items()))}.

Targets:
- p99 <= 1.5x the floor, Polaris answering at once: {met(ok_fast)} ({fast99:.1f} ms vs floor {f99:.1f} ms, {fast99 / f99:.2f}x).
- p99 <= 1.5x the floor, Polaris answering after {args.slow_delay:g} s: {met(ok_slow_floor)} ({slow99:.1f} ms, {slow99 / f99:.2f}x).
- Unchanged by a slow Polaris (slow p99 <= 1.25x the fast p99 + 5 ms, and no ack over 1 s): {met(ok_unchanged)}
  ({slow99:.1f} ms vs {fast99:.1f} ms; {slow_share(r_slow, 1.0)} acks over 1 s).
"""
    c.write_section("ack_latency", body)
    print(table)
    print("\n".join(notes))
    print(
        f"p99 <= 1.5x floor: fast {'met' if ok_fast else 'NOT met'}, slow {'met' if ok_slow_floor else 'NOT met'}; "
        f"unchanged by a slow Polaris: {'met' if ok_unchanged else 'NOT met'}"
    )


met = c.met

if __name__ == "__main__":
    sys.exit(main())
