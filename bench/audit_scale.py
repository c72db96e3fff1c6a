"""The database at scale: 1,000,000 audit_log rows and 100,000 access requests, on PostgreSQL and on SQLite,
and the time of the queries behind ``/polaris status``, ``/polaris pending`` and an audit listing.

    .venv/bin/python bench/audit_scale.py                   # both databases, ~3 minutes on 2 cores
    .venv/bin/python bench/audit_scale.py --db sqlite       # one of them

Data (deterministic, seed ``--seed``), over the last 365 days: ~2,000 Slack users plus ``bot`` as actors with
a skewed (Zipf-like) activity; ``--requests`` access requests (joins, invites, password resets over 204 groups)
in mixed states - applied, denied, expired, failed, and in the last day pending and approved (backing off) -
each with its approval and its audit rows (command, request.created, card, decision, Polaris calls, apply,
DM), and commands without a request (groups, whois with its Polaris calls, help, status) up to ``--rows``
audit rows. Loaded fast (PostgreSQL ``COPY``, SQLite ``executemany`` in one transaction) into a fresh schema
/ file migrated by ``python app.py migrate``; the indexes are the migrations' own. PostgreSQL then gets an
``ANALYZE`` (autovacuum would do the same shortly); SQLite is left as the product leaves it (no ANALYZE).

Timed, through the product's own code (median of ``--runs`` runs after 2 warm-ups): ``AccessService.cmd_status``
(the heaviest requester), ``AccessService.cmd_pending`` (an approver), ``AuditLog.for_actor`` (the heaviest
human actor, and ``bot``); for information also the per-command rate-limit check, ``AuditLog.for_request`` and
an idle worker pass (``run_due``). The SQL each one runs is captured from the engine and shown with its plan
(PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN QUERY PLAN``). Target: < 50 ms each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402

DEAD_URL = "http://127.0.0.1:9"  # nothing listens: no Polaris or Slack call is expected in these queries
APPROVERS = [c.APPROVER, c.APPROVER2]


# =========================================================================================== data
def generate(n_rows: int, n_requests: int, n_actors: int, seed: int, now: dt.datetime):  # noqa: C901
    """Returns (requests, approvals, audit) as lists of dicts keyed by column name (naive UTC datetimes)."""
    from bot.models import AccessRequest

    rng = random.Random(seed)
    actors = [f"U{i:08d}" for i in range(n_actors)]
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(n_actors)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    groups = [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"Group {i:03d}") for i in range(204)]
    email = {a: f"user{a[1:]}@example.com" for a in actors}
    day = 86400.0
    requests, approvals, audit = [], [], []
    open_keys: set[str] = set()

    def pick_actor() -> str:
        return actors[_bisect(cum, rng.random() * total)]

    def ev(
        at,
        actor,
        action,
        request_id=None,
        target=None,
        outcome="ok",
        detail=None,
        method=None,
        path=None,
        status=None,
        ms=None,
    ):
        audit.append(
            {
                "at": at,
                "actor": actor,
                "action": action,
                "request_id": request_id,
                "target": target,
                "outcome": outcome,
                "detail": detail,
                "polaris_method": method,
                "polaris_path": path,
                "polaris_status": status,
                "duration_ms": ms,
            }
        )

    recent = int(n_requests * 0.03)  # the last day: a backlog of open requests
    for i in range(n_requests):
        # the last 20 hours (nothing expires while the bench runs), or the 364 days before the last day
        ago = rng.random() * 0.83 * day if i < recent else day + rng.random() * 364 * day
        created = now - dt.timedelta(seconds=ago)
        requester = pick_actor()
        kind = rng.choices(["join", "invite", "reset_password"], [0.75, 0.15, 0.10])[0]
        target = email[requester] if kind != "invite" else f"guest{rng.randrange(50000):05d}@example.com"
        gid, gname = (None, None) if kind == "reset_password" else groups[rng.randrange(len(groups))]
        if i < recent:
            state = rng.choices(["pending", "approved", "applied", "denied"], [0.6, 0.1, 0.25, 0.05])[0]
        else:
            state = rng.choices(["applied", "denied", "expired", "failed"], [0.78, 0.10, 0.08, 0.04])[0]
        key = AccessRequest.make_open_key(target, gid)
        if state in ("pending", "approved"):
            if key in open_keys:
                state = "denied"
            else:
                open_keys.add(key)
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        decided = created + dt.timedelta(seconds=rng.uniform(60, 4 * 3600)) if state != "pending" else None
        if decided and decided > now:
            decided = now - dt.timedelta(seconds=1)
        approver = APPROVERS[i % 2] if rng.random() < 0.5 else pick_actor()
        updated = decided or created
        if state == "expired":
            decided, updated = None, created + dt.timedelta(days=1)
        ts = f"{1.7e9 + i:.6f}"
        req = {
            "id": rid,
            "kind": kind,
            "state": state,
            "requester_id": requester,
            "requester_email": email[requester],
            "target_email": target,
            "target_slack_id": requester if kind != "invite" else None,
            "target_first_name": "Pat",
            "target_last_name": f"Doe{i % 977}",
            "group_id": gid,
            "group_name": gname,
            "reason": "needs access for the quarterly dashboards" if i % 3 else "",
            "approvals_required": 1,
            "created_at": created,
            "updated_at": updated,
            "expires_at": created + dt.timedelta(days=1),
            "decided_by": approver if state in ("approved", "applied", "denied", "failed") else None,
            "decided_at": decided if state in ("approved", "applied", "denied", "failed") else None,
            "approval_channel": c.CHANNEL,
            "approval_ts": ts,
            "post_attempts": 1,
            "card_stale": False,
            "attempts": 1 if state in ("applied", "failed") else (2 if state == "approved" else 0),
            "next_attempt_at": now + dt.timedelta(minutes=10) if state == "approved" else None,
            "outcome": {"applied": "Added to the group.", "failed": "Polaris rejected the request"}.get(state),
            "applied_at": decided if state == "applied" else None,
            "polaris_user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)) if state == "applied" else None,
            "open_key": key if state in ("pending", "approved") else None,
            "notified_state": state,
        }
        requests.append(req)
        ev(created - dt.timedelta(milliseconds=300), requester, "command", detail=f"request {gname or 'reset'}")
        ev(
            created - dt.timedelta(milliseconds=200),
            requester,
            "polaris.call",
            method="GET",
            path="/v1/users",
            status=200,
            ms=rng.uniform(40, 200),
        )
        ev(created, requester, "request.created", rid, target, detail=f"{kind} {gname or ''}".strip())
        ev(created + dt.timedelta(milliseconds=300), "bot", "notify.card", rid, c.CHANNEL)
        if state in ("approved", "applied", "failed", "denied"):
            verb = "decision.deny" if state == "denied" else "decision.approve"
            ev(decided, approver, verb, rid, target)
            ev(decided + dt.timedelta(milliseconds=200), "bot", "notify.update", rid, c.CHANNEL)
            if verb == "decision.approve":
                approvals.append({"request_id": rid, "approver_id": approver, "created_at": decided})
        if state in ("applied", "failed"):
            t = decided + dt.timedelta(seconds=1)
            ev(t, "bot", "apply.start", rid, target, detail="attempt 1")
            ev(
                t + dt.timedelta(milliseconds=100),
                "bot",
                "polaris.call",
                rid,
                method="GET",
                path="/v1/users",
                status=200,
                ms=rng.uniform(40, 200),
            )
            ok = state == "applied"
            ev(
                t + dt.timedelta(milliseconds=300),
                "bot",
                "polaris.call",
                rid,
                method="POST",
                path="/v1/users" if kind != "join" else f"/v1/groups/{gid}/members",
                status=201 if ok else 400,
                outcome="ok" if ok else "error",
                ms=rng.uniform(60, 400),
            )
            ev(
                t + dt.timedelta(milliseconds=500),
                "bot",
                "apply.done" if ok else "apply.failed",
                rid,
                target,
                outcome="ok" if ok else "error",
            )
        if state != "pending":
            ev(updated + dt.timedelta(seconds=2), "bot", "notify.dm", rid, requester)
    # Commands without a request, to n_rows.
    while len(audit) < n_rows:
        at = now - dt.timedelta(seconds=rng.random() * 365 * day)
        who = pick_actor()
        cmd = rng.choices(["groups", "whois", "help", "status", "pending", "members Viewer"], [3, 3, 1, 2, 1, 1])[0]
        ev(at, who, "command", detail=cmd)
        if cmd == "whois" and len(audit) < n_rows:
            ev(
                at + dt.timedelta(milliseconds=80),
                who,
                "polaris.call",
                method="GET",
                path="/v1/users",
                status=200,
                ms=rng.uniform(40, 200),
            )
            if len(audit) < n_rows:
                ev(
                    at + dt.timedelta(milliseconds=180),
                    who,
                    "polaris.call",
                    method="GET",
                    path="/v1/users/{id}/effectivepermissions",
                    status=200,
                    ms=rng.uniform(40, 200),
                )
    del audit[n_rows:]
    audit.sort(key=lambda r: r["at"])
    return requests, approvals, audit


def _bisect(cum, x):
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def naive(value: dt.datetime | None):
    return None if value is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def load(db, table, rows: list[dict]) -> float:  # noqa: C901
    """Bulk insert ``rows`` into ``table`` (a SQLAlchemy Table); returns seconds."""
    cols = [
        col.name
        for col in table.columns
        if not (col.primary_key and col.autoincrement is True and col.name == "id" and table.name != "access_requests")
    ]
    cols = [c_ for c_ in cols if any(c_ in r for r in rows[:1])] or cols
    present = [col for col in cols if col in rows[0]]
    missing_required = [
        col.name for col in table.columns if col.name not in present and not col.nullable and not col.primary_key
    ]
    if missing_required:
        raise RuntimeError(f"the bench does not fill {table.name}.{missing_required}: update bench/audit_scale.py")
    t0 = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.is_sqlite:

            def conv(v):
                if isinstance(v, dt.datetime):
                    return naive(v).strftime("%Y-%m-%d %H:%M:%S.%f")
                if isinstance(v, bool):
                    return int(v)
                return v

            sql = f"INSERT INTO {table.name} ({', '.join(present)}) VALUES ({', '.join('?' for _ in present)})"
            batch = 50_000
            for i in range(0, len(rows), batch):
                cur.executemany(sql, [tuple(conv(r[k]) for k in present) for r in rows[i : i + batch]])
        else:

            def conv(v):
                if v is None:
                    return "\\N"
                if isinstance(v, dt.datetime):
                    return naive(v).strftime("%Y-%m-%d %H:%M:%S.%f")
                if isinstance(v, bool):
                    return "t" if v else "f"
                return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

            batch = 100_000
            for i in range(0, len(rows), batch):
                buf = io.StringIO()
                for r in rows[i : i + batch]:
                    buf.write("\t".join(conv(r[k]) for k in present))
                    buf.write("\n")
                buf.seek(0)
                cur.copy_expert(f"COPY {table.name} ({', '.join(present)}) FROM STDIN", buf)
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


# =========================================================================================== timing
class Capture:
    """Records the SQL statements (and parameters) an engine runs while active."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.statements, self.active = engine, [], False
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        if self.active:
            self.statements.append((statement, parameters))


def measure(db, capture: Capture, fn, runs: int) -> dict:
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > 5:
            raise TimeoutError(f"one call took {time.perf_counter() - t0:.1f} s")
    capture.statements, capture.active = [], True
    fn()
    capture.active = False
    stmts = [
        (s, p)
        for s, p in capture.statements
        if s.lstrip().upper().startswith(("SELECT", "WITH")) and s.strip().upper() != "SELECT 1"
    ]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    plans = []
    for statement, params in stmts:
        plans.append((statement, params, explain(db, statement, params), sql_time(db, statement, params, runs)))
    return {"median": statistics.median(times), "max": max(times), "plans": plans}


def explain(db, statement: str, params) -> str:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.is_sqlite:
            cur.execute("EXPLAIN QUERY PLAN " + statement, params or ())
            return "\n".join(f"{row[3]}" for row in cur.fetchall())
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params or None)
        return "\n".join(row[0] for row in cur.fetchall())
    finally:
        raw.rollback()
        raw.close()


def sql_time(db, statement: str, params, runs: int) -> float:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            cur.execute(statement, params or (() if db.is_sqlite else None))
            cur.fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
    finally:
        raw.rollback()
        raw.close()


def indexes_used(plan: str, is_sqlite: bool) -> str:
    import re

    if is_sqlite:
        names = re.findall(r"USING (?:COVERING )?INDEX (\w+)", plan)
        out = sorted(set(names))
        full = [s for s in re.findall(r"^SCAN (\w+)$", plan, re.M)]
        return ", ".join(out + [f"full scan of {s}" for s in full]) or "–"
    names = re.findall(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)", plan)
    seq = re.findall(r"Seq Scan on (\w+)", plan)
    return ", ".join(sorted(set(names)) + [f"Seq Scan on {s}" for s in sorted(set(seq))]) or "–"


# =========================================================================================== main
def run_db(kind: str, args, data, now) -> dict:
    from sqlalchemy import text

    from bot import wiring
    from bot.db import Database
    from bot.models import AccessRequest, Approval, AuditEvent

    requests, approvals, audit = data
    out = {"kind": kind, "rows": []}
    with c.database(kind) as (_, url):
        db = Database(url)
        c.log(f"{kind}: loading {len(requests):,} requests, {len(approvals):,} approvals, {len(audit):,} audit rows")
        t_req = load(db, AccessRequest.__table__, requests)
        t_app = load(db, Approval.__table__, approvals)
        t_aud = load(db, AuditEvent.__table__, audit)
        if not db.is_sqlite:
            t0 = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            out["analyze_s"] = time.perf_counter() - t0
        out["load_s"] = {"access_requests": t_req, "approvals": t_app, "audit_log": t_aud}
        with db.engine.connect() as conn:
            out["counts"] = {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("access_requests", "approvals", "audit_log")
            }
            out["states"] = dict(conn.execute(text("SELECT state, count(*) FROM access_requests GROUP BY state")).all())
            out["actors"] = conn.execute(text("SELECT count(DISTINCT actor) FROM audit_log")).scalar()
            top_req = conn.execute(
                text(
                    "SELECT requester_id, count(*) n FROM access_requests GROUP BY requester_id ORDER BY n DESC LIMIT 1"
                )
            ).first()
            top_actor = conn.execute(
                text(
                    "SELECT actor, count(*) n FROM audit_log WHERE actor <> 'bot' "
                    "GROUP BY actor ORDER BY n DESC LIMIT 1"
                )
            ).first()
            bot_rows = conn.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'bot'")).scalar()
            per_actor = conn.execute(
                text("SELECT actor, count(*) n FROM audit_log WHERE actor <> 'bot' GROUP BY actor ORDER BY n, actor")
            ).all()
            median_actor = per_actor[len(per_actor) // 2]
            rare_actor = per_actor[0]
            busy_req = conn.execute(
                text(
                    "SELECT request_id FROM audit_log WHERE request_id IS NOT NULL "
                    "GROUP BY request_id ORDER BY count(*) DESC LIMIT 1"
                )
            ).scalar()
            size = None
            if not db.is_sqlite:
                size = conn.execute(text("SELECT pg_size_pretty(pg_total_relation_size('audit_log'))")).scalar()
        out["audit_size"] = size or (
            f"{os.path.getsize(url.split('///', 1)[1]) / 2**20:.0f} MB (whole file)" if db.is_sqlite else "?"
        )

        class Nowhere:
            polaris_url, slack_api_url = DEAD_URL, DEAD_URL + "/api/"

        settings = c.make_settings(Nowhere, url, polaris_retry_seconds=0.0, max_commands_per_minute=30)
        core = wiring.build_core(settings, db=db)
        service = core.service
        capture = Capture(db.engine)
        cases = [
            (
                "status",
                f"`AccessService.cmd_status` - heaviest requester ({top_req[1]} requests)",
                lambda: service.cmd_status(top_req[0]),
                True,
            ),
            (
                "pending",
                f"`AccessService.cmd_pending` - approver ({out['states'].get('pending', 0)} pending)",
                lambda: service.cmd_pending(c.APPROVER),
                True,
            ),
            (
                "audit listing",
                f"`AuditLog.for_actor` - heaviest human actor ({top_actor[1]:,} rows)",
                lambda: core.audit.for_actor(top_actor[0]),
                True,
            ),
            (
                "audit listing (median)",
                f"`AuditLog.for_actor` - median actor ({median_actor[1]:,} rows)",
                lambda: core.audit.for_actor(median_actor[0]),
                True,
            ),
            (
                "audit listing (rare)",
                f"`AuditLog.for_actor` - least active actor ({rare_actor[1]:,} rows)",
                lambda: core.audit.for_actor(rare_actor[0]),
                True,
            ),
            (
                "audit listing (bot)",
                f"`AuditLog.for_actor('bot')` ({bot_rows:,} rows)",
                lambda: core.audit.for_actor("bot"),
                True,
            ),
            (
                "rate limit",
                "`Admission.over_command_limit` (every command)",
                lambda: service.admission.over_command_limit(top_actor[0]),
                False,
            ),
            (
                "request history",
                "`AuditLog.for_request` (busiest request)",
                lambda: core.audit.for_request(busy_req),
                False,
            ),
            ("worker pass", "`AccessService.run_due` (idle pass, nothing due)", lambda: service.run_due(), False),
        ]
        for key, label, fn, is_target in cases:
            try:
                m = measure(db, capture, fn, args.runs)
            except (AttributeError, TimeoutError) as e:  # renamed in the product, or unexpectedly slow
                c.log(f"{kind}: {key} skipped ({e})")
                continue
            m.update(key=key, label=label, target=is_target)
            out["rows"].append(m)
            c.log(
                f"{kind}: {key}: median {m['median']:.2f} ms (max {m['max']:.2f}); "
                + "; ".join(indexes_used(p[2], db.is_sqlite) for p in m["plans"])
            )
        db.dispose()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="audit_log rows")
    ap.add_argument("--requests", type=int, default=100_000, help="access_requests rows")
    ap.add_argument("--actors", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=15, help="timed runs per query (median reported)")
    ap.add_argument("--db", choices=("both", "postgresql", "sqlite"), default="both")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    started = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    data = generate(args.rows, args.requests, args.actors, args.seed, now)
    gen_s = time.perf_counter() - t0
    c.log(f"generated {len(data[2]):,} audit rows, {len(data[0]):,} requests in {gen_s:.1f} s")
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    results = []
    for kind in kinds:
        if kind == "postgresql" and not c.pg_available():
            c.log("PostgreSQL does not answer: skipped")
            results.append({"kind": kind, "skipped": True})
            continue
        results.append(run_db(kind, args, data, now))
    report(args, results, gen_s, time.monotonic() - started)
    return 0


def report(args, results, gen_s, elapsed) -> None:
    rows, details, all_ok, checked = [], [], True, 0
    for r in results:
        if r.get("skipped"):
            rows.append([r["kind"], "skipped: PostgreSQL did not answer", "", "", "", "", ""])
            all_ok = False
            continue
        for m in r["rows"]:
            slowest = max((p[3] for p in m["plans"]), default=float("nan"))
            idx = "; ".join(indexes_used(p[2], r["kind"] == "sqlite") for p in m["plans"]) or "–"
            ok = m["median"] < 50
            if m["target"]:
                checked += 1
                all_ok &= ok
            rows.append(
                [
                    r["kind"],
                    m["label"],
                    m["median"],
                    m["max"],
                    slowest,
                    idx,
                    (c.met(ok) if m["target"] else ("ok" if ok else "slow")) + ("" if m["target"] else " (info)"),
                ]
            )
            plan_text = "\n\n".join(f"-- {p[0].strip()}\n-- params: {p[1]!r}\n{p[2]}" for p in m["plans"])
            details.append(
                f"<details><summary>{r['kind']}: {m['key']} - plans</summary>\n\n```\n{plan_text}\n```\n</details>"
            )
    table = c.md_table(
        [
            "database",
            "query (product code)",
            "median ms",
            "max ms",
            "slowest SQL alone, median ms",
            "indexes / scans in the plan",
            "target < 50 ms",
        ],
        rows,
    )
    facts = []
    for r in results:
        if r.get("skipped"):
            continue
        load_s = r["load_s"]
        facts.append(
            f"- {r['kind']}: {r['counts']['audit_log']:,} audit rows by {r['actors']:,} actors, "
            f"{r['counts']['access_requests']:,} requests ({', '.join(f'{k} {v:,}' for k, v in sorted(r['states'].items()))}), "
            f"{r['counts']['approvals']:,} approvals; loaded in {sum(load_s.values()):.1f} s "
            f"(audit_log {load_s['audit_log']:.1f} s){'; ANALYZE %.1f s' % r['analyze_s'] if 'analyze_s' in r else ''}; "
            f"audit_log size {r['audit_size']}."
        )
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/audit_scale.py`. Parameters: {args.rows:,} audit rows, {args.requests:,} access
requests, ~{args.actors:,} actors (Zipf-like activity) over 365 days, seed {args.seed}; data generated in {gen_s:.1f} s;
fresh schema / file migrated by `python app.py migrate` (the migrations' indexes); PostgreSQL `COPY` then `ANALYZE`,
SQLite `executemany` (no ANALYZE, as the product runs it). Each query is the product's own method, median of
{args.runs} runs after 2 warm-ups; "slowest SQL alone" = the slowest statement it ran, timed on a raw connection.
Whole run {elapsed:.0f} s.

{chr(10).join(facts)}

{table}

Target < 50 ms for status, pending and the audit listing on both databases: {c.met(all_ok and checked > 0)}.

{chr(10).join(details)}
"""
    c.write_section("audit_scale", body)
    print(table)
    print(f"target {'met' if all_ok and checked else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
