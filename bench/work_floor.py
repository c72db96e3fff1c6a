"""What the work behind a request costs, part by part, against the floor's ack (issue 13's CPU target).

    .venv/bin/python bench/work_floor.py          # ~1 minute; writes the `work_floor` section of RESULTS.md

Every figure is CPU time of this process (``time.process_time``), one thread, the Polaris sandbox and the Slack
stand-in in a child process (their CPU is not counted), so each is the client-side cost of one operation as the
product makes it:

- the floor: ``bench/floor_app.py``'s Bolt WSGI app acking a signed slash command, called in-process (no
  gunicorn, so it is a little cheaper than the floor ``bench/targets.py`` serves);
- one answer to a ``response_url`` (``slack_sdk``'s ``WebhookClient``, as Bolt's ``respond`` sends it), one Slack
  Web API call (``WebClient.chat_postMessage``), one Polaris call (``PolarisClient.find_user_by_email``);
- one read-only ORM transaction (``session.get`` of a request), one audit row in its own transaction
  (``AuditLog.record``, with the hash chain);
- one approval in the product, click to applied and told (``decide`` + the worker pass), in-process.

From these: the least an approval can cost with its counts (transactions, Slack and Polaris calls, counted in the
same approvals) and with the issue's target counts, as ratios to the floor's ack.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402


def cpu_per_op(fn, n: int, reps: int = 3) -> float:
    """Median over ``reps`` of the CPU milliseconds per call of ``fn`` over ``n`` calls (after 20 warm-up)."""
    for _ in range(20):
        fn()
    runs = []
    for _ in range(reps):
        start = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - start) / n * 1000)
    return statistics.median(runs)


def floor_ack(services: c.Services):
    """A callable that makes the floor app ack one signed slash command in-process (WSGI)."""
    import io

    os.environ["SLACK_SIGNING_SECRET"] = c.SIGNING_SECRET
    os.environ["SLACK_API_URL"] = services.slack_api_url
    os.environ["SLACK_BOT_TOKEN"] = c.BOT_TOKEN
    import floor_app

    app = floor_app.build_wsgi()

    def one():
        body = c.slash_body(c.OTHER, "help", services.response_url()).encode()
        headers = c.sign(body.decode())
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/slack/events",
            "QUERY_STRING": "",
            "CONTENT_TYPE": headers["Content-Type"],
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_SLACK_REQUEST_TIMESTAMP": headers["X-Slack-Request-Timestamp"],
            "HTTP_X_SLACK_SIGNATURE": headers["X-Slack-Signature"],
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "3000",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        status = []
        b"".join(app(environ, lambda s, h, *a: status.append(s)))
        assert status and status[0].startswith("200"), status

    return one


def main(argv=None) -> int:  # noqa: C901
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="calls per measurement")
    ap.add_argument("--approvals", type=int, default=30)
    ap.add_argument("--db", choices=("auto", "postgresql", "sqlite"), default="auto")
    args = ap.parse_args(argv)
    started = time.time()

    from slack_sdk import WebClient
    from slack_sdk.webhook import WebhookClient

    from bot import wiring
    from bot.db import Database
    from bot.models import AccessRequest
    from sqlalchemy import event

    services = c.Services(load_users=args.approvals + 5)
    rows = []
    try:
        with c.database(args.db) as (db_kind, db_url):
            db = Database(db_url)
            core = wiring.build_core(c.make_settings(services, db_url, max_commands_per_minute=10_000), db=db)
            ids = c.create_pending(services, db_url, range(args.approvals + 1), "Viewer")
            floor = cpu_per_op(floor_ack(services), args.n)
            webhook = cpu_per_op(lambda: WebhookClient(services.response_url()).send(text="done"), args.n)
            web = WebClient(token=c.BOT_TOKEN, base_url=services.slack_api_url)
            slack_call = cpu_per_op(lambda: web.chat_postMessage(channel=c.CHANNEL, text="x"), args.n)
            polaris_call = cpu_per_op(lambda: core.polaris.find_user_by_email("bob@example.com"), args.n)

            def read():
                with db.session() as s:
                    s.get(AccessRequest, ids[0])

            tx = cpu_per_op(read, args.n)
            audit_row = cpu_per_op(lambda: core.audit.record("bot", "bench.op", detail="x"), args.n)
            begun = [0]

            def begin(conn):  # as test_costs counts: an autocommit connection (the claims) begins no transaction
                if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                    begun[0] += 1

            event.listen(db.engine, "begin", begin)
            before = services.stats()
            spent = []
            for rid in ids[1:]:
                start = time.process_time()
                core.service.decide(rid, c.APPROVER, approve=True)
                core.service.run_due()
                spent.append((time.process_time() - start) * 1000)
            after = services.stats()
            event.remove(db.engine, "begin", begin)
            approval, n = statistics.median(spent), len(ids) - 1
            n_tx = begun[0] / n
            n_slack = (after["slack_calls"] - before["slack_calls"]) / n
            n_polaris = (after["polaris_calls"] - before["polaris_calls"]) / n
            uid = c.load_user(0)[0]
            command = cpu_per_op(lambda: core.service.handle_command(uid, "help"), args.n)
            refused = cpu_per_op(lambda: core.service.decide(ids[1], c.OTHER, approve=True), args.n)
            db.dispose()
    finally:
        services.stop()

    parts = n_tx * tx + n_slack * slack_call + n_polaris * polaris_call
    target = 6 * tx + 5 * slack_call + 2 * polaris_call

    # bench/targets.py: every other request a command, every other a click; of every 3 clicks on a request, one
    # approves it and 2 are refused (a non-approver, or decided already): 5 answers per approval.
    mixed = (3 * command + 2 * refused + approval) / 5 + floor + webhook

    def ratio(ms: float) -> str:
        return f"{ms / floor:.1f}x"

    rows = [
        ("floor: Bolt acks a signed slash command (in-process WSGI)", f"{floor:.3f}", "1.0x"),
        ("answer on `response_url` (WebhookClient)", f"{webhook:.3f}", ratio(webhook)),
        ("Slack Web API call (WebClient.chat_postMessage)", f"{slack_call:.3f}", ratio(slack_call)),
        ("Polaris call (PolarisClient.find_user_by_email)", f"{polaris_call:.3f}", ratio(polaris_call)),
        (f"read-only ORM transaction ({db_kind})", f"{tx:.3f}", ratio(tx)),
        (f"audit row in its own transaction, chained ({db_kind})", f"{audit_row:.3f}", ratio(audit_row)),
        ("**one approval in the product** (decide + worker pass, median)", f"{approval:.2f}", ratio(approval)),
        (
            f"its parts alone: {n_tx:.1f} transactions + {n_slack:.1f} Slack calls + {n_polaris:.1f} Polaris calls "
            "(counted in those approvals)",
            f"{parts:.2f}",
            ratio(parts),
        ),
        ("the issue's target counts: 6 transactions + 5 Slack calls + 2 Polaris calls", f"{target:.2f}", ratio(target)),
        (
            "a command with no Polaris call at least: ack + 1 transaction + 1 answer",
            f"{floor + tx + webhook:.3f}",
            ratio(floor + tx + webhook),
        ),
        (
            "`help` in the product (handle_command: rate limit, audit row, reply built)",
            f"{command:.3f}",
            ratio(command),
        ),
        ("a click on a decided request (decide: read, refusal audited)", f"{refused:.3f}", ratio(refused)),
        (
            "**the targets mix per completed answer**: (3 commands + 2 refused clicks + 1 approval) / 5 answers, "
            "plus an ack and a `response_url` answer each",
            f"{mixed:.2f}",
            ratio(mixed),
        ),
    ]
    body = (
        f"Run: {c.machine_facts()}.\n\nCommand: `.venv/bin/python bench/work_floor.py` ({args.n} calls per figure, median of "
        f"3; {len(ids) - 1} approvals; database {db_kind}; {time.time() - started:.0f} s). CPU milliseconds per "
        "operation in this process, the stand-ins in a child process.\n\n"
        + c.md_table(["operation", "CPU ms", "/ floor ack"], rows)
        + "\n\nReading it: the floor's ack is the whole of its work; the product's least work for one completed "
        "command is the ack, one transaction (rate limit and audit row) and one `response_url` answer. An "
        "approval's parts alone, at the counts it has now, are the ratio in the table; at the issue's target "
        "counts it would still be that row's ratio. Server CPU per completed request (section `targets`) "
        "averages these over the mix (every other request a click, every third click an approval).\n"
    )
    c.write_section("work_floor", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
