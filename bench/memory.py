"""Memory of one ``python app.py serve`` worker over 10,000 requests.

    .venv/bin/python bench/memory.py          # ~2 minutes on 2 cores

One gunicorn worker (WEB_CONCURRENCY=1, so every request reaches the worker measured; PostgreSQL in a fresh
schema, or SQLite when PostgreSQL does not answer), the Polaris sandbox and the Slack stand-in on 127.0.0.1.
``--requests`` signed requests in batches of ``--every``: a mix of commands (help, groups, status, pending,
whois, permissions, members) from 400 people and Approve/Deny clicks (approvers and a non-approver) on real
pending requests, at concurrency ``--concurrency``. After each batch the listeners' work is allowed to finish
(every response_url answer arrived), then the worker's RSS (VmRSS), threads and open file descriptors are read
from /proc. The slope is a least-squares fit over the samples after the first batch (warm-up).

Targets: RSS <= 150 MB after the run, and no steady growth (slope over the samples after the first batch
< 1 MB per 1,000 requests, i.e. < 10 MB over the whole run).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402

COMMANDS = ["help", "groups", "status", "pending", "whois", "permissions", "members Viewer", "groups", "help"]


def proc_facts(pid: int) -> dict:
    facts = {"rss_mb": c.rss_kb(pid) / 1024}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                facts["threads"] = int(line.split()[1])
    facts["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return facts


def slope(xs, ys) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pending", type=int, default=300)
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    load_users = 400
    started = time.monotonic()
    services = c.Services(load_users=load_users)
    server = None
    samples = []
    errors = {}
    missing = 0
    try:
        with c.database(args.db) as (db_kind, db_url):
            ids = c.create_pending(services, db_url, range(args.pending), "Viewer")
            server = c.start_product(services, db_url, workers=1)
            pid = server.worker_pids()[0]
            samples.append({"requests": 0, **proc_facts(pid)})
            c.log(f"worker {pid}: {samples[0]['rss_mb']:.1f} MB before any request")
            rng = random.Random(args.seed)
            clickers = [c.APPROVER, c.OTHER, c.APPROVER2, c.OTHER]
            approved: set[str] = set()
            sent = 0
            log_at = server.log_size()
            while sent < args.requests:
                n = min(args.every, args.requests - sent)
                jobs, expected = [], 0
                for i in range(n):
                    k = sent + i
                    if k % 10 < 7:
                        uid, _ = c.load_user(rng.randrange(load_users))
                        jobs.append(
                            c.Job("command", c.slash_body(uid, COMMANDS[k % len(COMMANDS)], services.response_url()))
                        )
                        expected += 1
                    else:
                        rid = ids[rng.randrange(len(ids))]
                        who = clickers[k % len(clickers)]
                        action = "deny_request" if k % 13 == 0 else "approve_request"
                        jobs.append(c.Job("click", c.click_body(who, action, rid, services.response_url())))
                        if who == c.OTHER or rid in approved:
                            expected += 1
                        else:
                            approved.add(rid)  # the first decision by an approver answers with the card only
                before = services.stats()["arrivals"]
                res = c.run_load(server.url + "/slack/events", jobs, args.concurrency)
                for k, v in res.statuses.items():
                    if k != "200":
                        errors[k] = errors.get(k, 0) + v
                got = services.wait_responses(before + expected, timeout=120)["arrivals"] - before
                missing += max(0, expected - got)
                sent += n
                samples.append({"requests": sent, **proc_facts(pid), "rps": res.rps})
                s = samples[-1]
                c.log(
                    f"{sent:>6} requests: RSS {s['rss_mb']:.1f} MB, threads {s['threads']}, fds {s['fds']}, "
                    f"{res.rps:.0f} req/s, statuses {res.statuses}"
                )
            log_errors = server.errors_since(log_at)
    finally:
        if server is not None:
            server.stop()
        services.stop()
    report(args, db_kind, samples, errors, missing, log_errors, time.monotonic() - started)
    return 0


def report(args, db_kind, samples, errors, missing, log_errors, elapsed) -> None:
    after = [s for s in samples if s["requests"] >= 2 * args.every] or samples[1:]
    xs = [s["requests"] / 1000 for s in after]
    ys = [s["rss_mb"] for s in after]
    sl = slope(xs, ys)
    half = [s for s in samples if s["requests"] >= args.requests / 2]
    sl_half = slope([s["requests"] / 1000 for s in half], [s["rss_mb"] for s in half])
    final = samples[-1]["rss_mb"]
    ok_size = final <= 150
    ok_growth = sl == sl and sl < 1.0
    table = c.md_table(
        ["requests", "RSS MB", "threads", "open fds", "req/s in the batch"],
        [
            [s["requests"], s["rss_mb"], s["threads"], s["fds"], f"{s['rps']:.0f}" if "rps" in s else "–"]
            for s in samples
        ],
    )
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/memory.py`. Parameters: one `python app.py serve` worker (WEB_CONCURRENCY=1,
GUNICORN_THREADS default), database {db_kind}; {args.requests:,} signed requests in batches of {args.every:,} at concurrency
{args.concurrency}: 70% commands ({", ".join(sorted(set(COMMANDS)))}) from 400 people, 30% Approve/Deny clicks
(approvers and a non-approver) on {args.pending} real pending requests. After each batch the listeners' work
finished (response_url answers) before the worker's VmRSS, threads and fds were read. Whole run {elapsed:.0f} s.

{table}

- RSS before any request {samples[0]["rss_mb"]:.1f} MB, after {args.requests:,} requests {final:.1f} MB
  (+{final - samples[0]["rss_mb"]:.1f} MB; after the first batch {samples[1]["rss_mb"]:.1f} MB).
- Slope from {2 * args.every:,} requests on: {sl:.2f} MB per 1,000 requests; over the second half: {sl_half:.2f} MB per 1,000.
- Errors: non-200 {sum(errors.values())}{(" " + str(errors)) if errors else ""}, response_url answers missing {missing},
  error lines in the log {len(log_errors)}{(" (e.g. `" + log_errors[0][:160] + "`)") if log_errors else ""}.

Targets: RSS <= 150 MB: {c.met(ok_size)} ({final:.1f} MB). No steady growth (slope < 1 MB per 1,000 requests):
{c.met(ok_growth)} ({sl:.2f} MB per 1,000).
"""
    c.write_section("memory", body)
    print(table)
    print(
        f"slope {sl:.2f} MB/1000 (second half {sl_half:.2f}); size {'met' if ok_size else 'NOT met'}, "
        f"growth {'met' if ok_growth else 'NOT met'}"
    )


if __name__ == "__main__":
    sys.exit(main())
