"""Polaris call economy: how many Polaris calls each command makes against an organization of 10,000 users
and 200 groups.

    .venv/bin/python bench/call_economy.py        # ~10 seconds

The core is built in-process as tests/conftest.py does (``bot.wiring.build_core(settings, db=...)``, a migrated
SQLite file), against the Polaris sandbox (``seed_bulk(10000, 200)`` plus three approvers in Organization
Admin) and the Slack stand-in, both served on 127.0.0.1. Every Polaris call the sandbox receives is counted
(``sandbox.calls``) per step:

- ``whois`` (yourself, by email, by @mention, an unknown email);
- ``request`` through apply: the command, the approval click (``decide``), the worker (``run_due``), for a
  person with no Polaris account (create) and for an existing user (add a membership);
- ``reset-password`` through apply;
- ``groups`` twice in a row (group cache emptied before the first);
- for information: ``members``, ``permissions``, ``status``, ``pending``.

Targets: whois <= 3 calls; no step lists all users (no ``GET /v1/users`` without ``search``, and no paging
with ``skip`` > 0); the second ``groups`` makes 0 calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402

NEWBIE, BULK_USER, BULK_USER2 = "U0NEWBIE", "U0BULK00001", "U0BULK00002"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="sqlite")
    args = ap.parse_args(argv)
    started = time.monotonic()

    from bot import wiring
    from bot.db import Database
    from standins.polaris_sandbox import PolarisSandbox
    from standins.slack_api import SlackStandIn

    sandbox = PolarisSandbox(seed=False)
    t0 = time.monotonic()
    sandbox.seed_bulk(args.users, args.groups)
    seed_s = time.monotonic() - t0
    org_admin = sandbox.group_by_name("Organization Admin")["id"]
    for email in ("bob@example.com", "erin@example.com", "carol@example.com"):
        sandbox.create_user(email, email.split("@")[0].capitalize(), "Bench", groups=[org_admin], actions=[])
    server = sandbox.serve()
    slack = SlackStandIn(bot_token=c.BOT_TOKEN)
    slack.serve()
    for uid, name, email in (
        (c.APPROVER, "bob", "bob@example.com"),
        (c.APPROVER2, "erin", "erin@example.com"),
        (c.ADMIN, "carol", "carol@example.com"),
        (NEWBIE, "newbie", "newbie@example.com"),
        (BULK_USER, "bulk1", "bulk.user00001@example.com"),
        (BULK_USER2, "bulk2", "bulk.user00002@example.com"),
    ):
        slack.add_user(uid, name, email, first_name=name.capitalize(), last_name="Bench")
    bulk1 = sandbox.find_user("bulk.user00001@example.com")
    not_member = next(
        g
        for g in (sandbox.group_by_name(f"Bulk Group {i:04d}") for i in range(args.groups))
        if g and g["id"] not in {x["id"] for x in bulk1["groups"]}
    )["name"]
    steps: list[dict] = []

    class Services:  # what make_settings needs
        polaris_url, slack_api_url = server.url, slack.api_url

    try:
        with c.database(args.db) as (db_kind, db_url):
            db = Database(db_url)
            core = wiring.build_core(c.make_settings(Services, db_url), db=db)
            service = core.service

            def step(group: str, name: str, fn) -> object:
                n_polaris, n_slack = len(sandbox.calls), len(slack.calls)
                out = fn()
                calls = [(x.method, x.path, dict(x.query)) for x in sandbox.calls[n_polaris:]]
                steps.append(
                    {
                        "group": group,
                        "name": name,
                        "calls": calls,
                        "slack": [m for m, _ in slack.calls[n_slack:]],
                        "out": out,
                    }
                )
                return out

            def command(user: str, text: str):
                return lambda: service.handle_command(user, text).text

            def pending_id(user: str) -> str:
                from sqlalchemy import select

                from bot.models import PENDING, AccessRequest

                with db.session() as s:
                    return s.scalar(
                        select(AccessRequest.id)
                        .where(AccessRequest.requester_id == user, AccessRequest.state == PENDING)
                        .order_by(AccessRequest.created_at.desc())
                        .limit(1)
                    )

            def state_of(rid: str) -> str:
                req = service.get(rid)
                return f"{req.state}: {req.outcome or ''}"

            core.service.catalog.invalidate()
            step("groups", "groups (1st, cache empty)", command(BULK_USER, "groups"))
            step("groups", "groups (2nd, right after)", command(BULK_USER, "groups"))

            step("whois", "whois (yourself)", command(BULK_USER, "whois"))
            step("whois", "whois <email>", command(BULK_USER, "whois bulk.user00002@example.com"))
            step("whois", "whois <@user>", command(BULK_USER, f"whois <@{BULK_USER2}>"))
            step("whois", "whois <unknown email>", command(BULK_USER, "whois nobody.at.all@example.com"))

            step("request (new account)", "command: request Viewer", command(NEWBIE, "request Viewer dashboards"))
            rid = pending_id(NEWBIE)
            step("request (new account)", "click: approve", lambda: service.decide(rid, c.APPROVER, approve=True))
            step("request (new account)", "worker: run_due (apply)", lambda: (service.run_due(), state_of(rid))[1])

            step(
                "request (existing user)",
                f"command: request {not_member}",
                command(BULK_USER, f"request {not_member} reports"),
            )
            rid2 = pending_id(BULK_USER)
            step("request (existing user)", "click: approve", lambda: service.decide(rid2, c.APPROVER, approve=True))
            step("request (existing user)", "worker: run_due (apply)", lambda: (service.run_due(), state_of(rid2))[1])

            step("reset-password", "command: reset-password", command(BULK_USER2, "reset-password"))
            rid3 = pending_id(BULK_USER2)
            step("reset-password", "click: approve", lambda: service.decide(rid3, c.APPROVER, approve=True))
            step("reset-password", "worker: run_due (apply)", lambda: (service.run_due(), state_of(rid3))[1])

            step("other", "members Viewer", command(BULK_USER, "members Viewer"))
            step("other", "permissions", command(BULK_USER, "permissions"))
            step("other", "status", command(BULK_USER, "status"))
            step("other", "pending (approver)", command(c.APPROVER, "pending"))
            db.dispose()
    finally:
        server.shutdown()
        slack.shutdown()
    report(args, steps, seed_s, time.monotonic() - started)
    return 0


def scans(calls) -> list[str]:
    """Calls that list users without a filter or page through them."""
    bad = []
    for method, path, query in calls:
        if method == "GET" and path == "/v1/users":
            if not query.get("search"):
                bad.append("GET /v1/users without search")
            elif int(query.get("skip", "0") or 0) > 0:
                bad.append(f"GET /v1/users paging (skip={query.get('skip')})")
    return bad


def describe(calls) -> str:
    out = []
    for method, path, query in calls:
        p = path
        for part in path.split("/"):
            if len(part) == 36 and part.count("-") == 4:
                p = p.replace(part, "{id}")
        q = ("?" + "&".join(f"{k}={'…' if k == 'search' else v}" for k, v in sorted(query.items()))) if query else ""
        out.append(f"{method} {p}{q}")
    return "<br>".join(out) if out else "–"


def report(args, steps, seed_s, elapsed) -> None:
    rows, totals = [], {}
    for s in steps:
        totals[s["group"]] = totals.get(s["group"], 0) + len(s["calls"])
        rows.append(
            [
                s["group"],
                s["name"],
                len(s["calls"]),
                describe(s["calls"]),
                len(s["slack"]),
                ", ".join(scans(s["calls"])) or "no",
                str(s["out"])[:70].replace("|", "/").replace("\n", " "),
            ]
        )
    table = c.md_table(
        ["flow", "step", "Polaris calls", "which", "Slack calls", "lists/pages users?", "answer / state"], rows
    )
    whois = {s["name"]: len(s["calls"]) for s in steps if s["group"] == "whois"}
    groups = [len(s["calls"]) for s in steps if s["group"] == "groups"]
    any_scan = [(s["name"], scans(s["calls"])) for s in steps if scans(s["calls"])]
    ok_whois = max(whois.values()) <= 3
    ok_scan = not any_scan
    ok_cache = len(groups) == 2 and groups[1] == 0
    flows = c.md_table(["flow", "Polaris calls in total"], [[k, v] for k, v in totals.items()])
    body = f"""Run: {c.machine_facts()}.

Command: `.venv/bin/python bench/call_economy.py`. Parameters: Polaris sandbox with {args.users:,} users and
{args.groups} custom groups (`seed_bulk`, {seed_s:.2f} s) + the 4 predefined groups and 3 approvers; core built
in-process (`bot.wiring.build_core`) on a migrated SQLite file; Slack stand-in. Polaris calls counted from `sandbox.calls`
per step; group cache emptied before the first `groups`, warm afterwards. Whole run {elapsed:.1f} s.

{table}

{flows}

Targets: whois <= 3 calls: {c.met(ok_whois)} (max {max(whois.values())}).
No command scans all users (no unfiltered `GET /v1/users`, no paging): {c.met(ok_scan)}{"" if ok_scan else " (" + "; ".join(f"{n}: {b}" for n, b in any_scan) + ")"}.
Group list cached (2nd `groups` makes 0 calls): {c.met(ok_cache)} ({groups[0] if groups else "?"} then {groups[1] if len(groups) > 1 else "?"}).
"""
    c.write_section("call_economy", body)
    print(table)
    print(flows)
    print(
        f"whois {'met' if ok_whois else 'NOT met'}; no scans {'met' if ok_scan else 'NOT met'}; "
        f"cache {'met' if ok_cache else 'NOT met'}"
    )


if __name__ == "__main__":
    sys.exit(main())
