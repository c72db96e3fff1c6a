"""EXPLAIN ANALYZE of every statement of one idle worker pass on PostgreSQL with 100k access requests (issue 13:
the pass must cost what is due, not what exists). Loads bench/audit_scale.py's data set into a fresh schema,
settles every open request, runs passes until nothing is due, then captures one pass and prints each statement
with its plan. Usage: ``.venv/bin/python bench/idle_explain.py [requests]`` (``BENCH_DATABASE_URL`` as in
bench/common.py)."""

from __future__ import annotations

import datetime as dt
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import event, text  # noqa: E402

from bench import common as c  # noqa: E402
from bench.audit_scale import generate, load  # noqa: E402

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def main(n_requests: int = 100_000) -> int:
    """Print the plans; returns 0."""
    from bot import wiring
    from bot.config import Settings
    from bot.db import Database
    from bot.models import AccessRequest, Approval, AuditEvent

    requests, approvals, audit = generate(20_000, n_requests, 2_000, 11, NOW)
    for r in requests:
        r.setdefault("retries", 0)
        r.setdefault("reminders_sent", 0)
    with c.database("postgresql") as (_, url):
        db = Database(url)
        for table, rows in ((AccessRequest, requests), (Approval, approvals), (AuditEvent, audit)):
            load(db, table.__table__, rows)
        with db.engine.begin() as conn:  # idle: nothing open, everyone told, every card posted
            conn.execute(
                text(
                    "UPDATE access_requests SET state = 'denied', open_key = NULL, notified_state = 'denied', "
                    "approval_ts = '1.1' WHERE state IN ('pending', 'approved')"
                )
            )
            conn.execute(text("ANALYZE"))
        settings = Settings(
            slack_bot_token="xoxb-bench",
            slack_signing_secret="s",
            slack_api_url="http://127.0.0.1:9/",
            polaris_api_url="http://127.0.0.1:9",
            polaris_api_key="k",
            database_url=url,
            approval_channel="C1",
            approvers=frozenset({"U1"}),
            admins=frozenset({"U2"}),
        )
        core = wiring.build_core(settings, db=db)
        core.service.clock = lambda: NOW
        for _ in range(8):  # what the data left owed (requesters told of old decisions) is tried first
            core.service.run_due(limit=200)
        seen: list[str] = []

        def on(conn, cursor, statement, parameters, context, executemany):
            seen.append(cursor.mogrify(statement, parameters).decode())

        event.listen(db.engine, "before_cursor_execute", on)
        core.service.run_due()
        event.remove(db.engine, "before_cursor_execute", on)
        total = 0.0
        with db.engine.connect() as conn:
            for sql in seen:
                plan = [r[0] for r in conn.execute(text("EXPLAIN ANALYZE " + sql.replace("%", "%%")))]
                total += float(plan[-1].split()[2])
                print("=" * 100, "\n" + " ".join(sql.split())[:300], "\n" + "\n".join(plan))
        print(f"\n{len(seen)} statements, {total:.3f} ms of execution in all, at {n_requests:,} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:2])))
