"""Costs of the work behind each ack (issue 13), counted in-process through the core: transactions, statements,
Slack and Polaris calls per approval (click to applied and requester told), per refusal, per command; and the
statements of an idle worker pass. Counts, not timings (timings are bench/'s)."""

from __future__ import annotations

import contextlib
import dataclasses

from sqlalchemy import event

from tests.bot.access.helpers import newest, only_request, requests_of
from tests.conftest import APPROVER, APPROVER2, OTHER, REQUESTER


# SQLite 19, PostgreSQL 19. 56 and 65, then 25, then 21, before: the delivery ledger owes and takes a state's DM and thread
# reply in one transaction and records an outcome with what follows it; the worker reads what is due in fewer
# transactions; the claims' advisory locks are taken on autocommit connections (two transactions per claim on
# PostgreSQL before); a flow's held audit rows go with its last transaction (AuditLog.carry), and the cards are
# synced from the request as the decision or the apply just wrote it (not read again); the requester's DM and thread
# reply are owed in the transaction that changes the state (bot/access/state_messages.py).
MAX_APPROVAL_TRANSACTIONS = 19
# The click alone: the request read; the decision written with the messages it owes; the card taken; its outcome,
# with the flow's audit rows. 7, then 5, before.
MAX_CLICK_TRANSACTIONS = 4
# A later approval for a person with a Polaris account whose DM channel is known, less the worker pass's own reads
# (what is due: 4 a pass, shared by all the work it finds): the 4 of the click; the apply's take and the transaction
# that marks it applied and owes its messages; the card's take and outcome; the DM's and the thread reply's outcomes.
MAX_STEADY_APPROVAL_TRANSACTIONS = 10
# SQLite 101, PostgreSQL 105 (as before this step: the card's own read of the request moved into the transaction
# that takes it, and a state change marks its cards owed, 2 statements each): the claims' pg_try_advisory_lock /
# pg_advisory_unlock are 6 statements SQLite has not, and the audit chain's sequence read replaces SQLite's two
# statements with one.
MAX_APPROVAL_STATEMENTS = 105


@dataclasses.dataclass
class Counts:
    """What one block cost: transactions begun, statements executed (their SQL), Slack and Polaris calls."""

    transactions: int = 0
    statements: list[str] = dataclasses.field(default_factory=list)
    slack: list[str] = dataclasses.field(default_factory=list)
    polaris: list[str] = dataclasses.field(default_factory=list)

    def audit_inserts(self) -> int:
        return sum(s.count("INSERT INTO audit_log") and 1 for s in self.statements)


@contextlib.contextmanager
def counting(db, slack, sandbox):
    """Count from entry to exit: SQLAlchemy ``begin`` (but on autocommit connections, which begin no database
    transaction: :mod:`bot.claims`) and ``before_cursor_execute`` engine events, the Slack
    stand-in's call log, the Polaris sandbox's call log."""
    counts = Counts()

    def on_begin(conn):
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # the claims' locks: none begun
            counts.transactions += 1

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        counts.statements.append(statement)

    event.listen(db.engine, "begin", on_begin)
    event.listen(db.engine, "before_cursor_execute", on_statement)
    slack_before, polaris_before = len(slack.calls), len(sandbox.calls)
    try:
        yield counts
    finally:
        event.remove(db.engine, "begin", on_begin)
        event.remove(db.engine, "before_cursor_execute", on_statement)
        counts.slack = [m for m, _ in slack.calls[slack_before:]]
        counts.polaris = [f"{c.method} {c.path}" for c in sandbox.calls[polaris_before:]]


def _report(name, c: Counts):
    print(
        f"\n{name}: {c.transactions} transactions, {len(c.statements)} statements, "
        f"{c.audit_inserts()} audit inserts, {len(c.slack)} Slack calls {c.slack}, {len(c.polaris)} Polaris calls"
    )


def test_an_approval_costs_what_it_does(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    req = only_request(db)
    with counting(db, slack, sandbox) as c:
        assert service.decide(req.id, APPROVER, approve=True) is None
        service.run_due()
        service.drain()
    _report("approval", c)
    assert service.get(req.id).state == "applied"
    # Issue 13's target is 6 transactions and 5 Slack calls; measured before this work: 91 transactions,
    # 147 statements, 14 audit INSERTs, 11 Slack calls (3 conversations.open). These bounds hold what is reached.
    assert c.transactions <= MAX_APPROVAL_TRANSACTIONS, c.statements
    assert len(c.statements) <= MAX_APPROVAL_STATEMENTS, c.statements
    assert c.audit_inserts() <= 4, c.statements
    assert len(c.slack) <= 8, c.slack
    assert c.slack.count("conversations.open") <= 1, c.slack  # the requester's DM channel, once
    # One DM and one thread reply: the approval's are held back and superseded by the outcome's (APPROVED_HOLD).
    assert c.slack.count("chat.postMessage") <= 2, c.slack
    assert c.slack.count("chat.update") <= 2, c.slack  # the card, once per state change (approved, applied)


def test_a_later_approval_costs_ten_transactions_beside_the_worker_pass(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    service.decide(only_request(db).id, APPROVER, approve=True)
    service.run_due()
    service.drain()  # alice has a Polaris account now, and the bot knows her DM channel
    before = {r.id for r in requests_of(db)}
    service.handle_command(REQUESTER, "request Data Analyst")
    service.drain()
    req = newest(db, before)
    with counting(db, slack, sandbox) as idle:
        service.run_due()
    with counting(db, slack, sandbox) as c:
        assert service.decide(req.id, APPROVER, approve=True) is None
        service.run_due()
        service.drain()
    _report("later approval", c)
    _report("its worker pass alone", idle)
    assert service.get(req.id).state == "applied"
    assert c.transactions - idle.transactions <= MAX_STEADY_APPROVAL_TRANSACTIONS, c.statements
    assert "conversations.open" not in c.slack, c.slack


def test_a_click_costs_four_transactions_and_loses_no_audit_row(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    req = only_request(db)
    with counting(db, slack, sandbox) as c:
        assert service.decide(req.id, APPROVER, approve=True) is None
    _report("click", c)
    assert c.transactions <= MAX_CLICK_TRANSACTIONS, c.statements
    actions = [e.action for e in service.audit.for_request(req.id)]
    assert "decision.approve" in actions and "notify.update" in actions, actions  # the card's update is audited
    from bot.audit_chain import Sealer, verify

    assert verify(db, Sealer(service.ctx.settings.audit_key)).ok


def test_a_click_on_a_decided_request_is_refused_in_the_transaction_that_read_it(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    req = only_request(db)
    assert service.decide(req.id, APPROVER, approve=False) is None
    with counting(db, slack, sandbox) as c:
        assert "Already denied" in service.decide(req.id, APPROVER2, approve=True)
    _report("refusal (decided)", c)
    assert (c.transactions, c.audit_inserts(), c.slack, c.polaris) == (1, 1, [], [])


def test_an_authority_refusal_costs_one_read_and_one_write(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    req = only_request(db)
    with counting(db, slack, sandbox) as c:
        assert "Only approvers" in service.decide(req.id, OTHER, approve=True)
    _report("refusal (authority)", c)
    # the request read, then its refusal and the Polaris call that decided it written together
    assert (c.transactions, c.audit_inserts(), len(c.polaris)) == (2, 1, 1)


def test_a_command_does_not_count_the_audit_log(service, db, slack, sandbox, groups):
    with counting(db, slack, sandbox) as c:
        service.handle_command(REQUESTER, "request Viewer")
        service.drain()
    _report("command", c)
    assert not [s for s in c.statements if "count(" in s.lower() and "audit_log" in s], c.statements


def test_an_idle_worker_pass_reads_only_what_is_due(service, db, slack, sandbox, groups):
    service.handle_command(REQUESTER, "request Viewer")
    service.drain()
    service.run_due()
    with counting(db, slack, sandbox) as c:
        service.run_due()
    _report("idle pass", c)
    for s in c.statements:
        print(" ", " ".join(s.split())[:300])


def test_a_persons_dm_channel_is_opened_once_and_shared_by_processes(core, db, slack, settings):
    from bot.dm_channels import DmChannels
    from bot.slack import SlackGateway

    core.slack.send_dm(REQUESTER, "one")
    core.slack.send_dm(REQUESTER, "two")
    assert [m for m, _ in slack.calls].count("conversations.open") == 1
    other = SlackGateway(settings.slack_bot_token, base_url=settings.slack_api_url, channels=DmChannels(db))
    other.send_dm(REQUESTER, "three from another process")
    assert [m for m, _ in slack.calls].count("conversations.open") == 1
    assert [m["text"] for m in slack.messages_in(slack.dm_channel(REQUESTER))] == [
        "one",
        "two",
        "three from another process",
    ]


def test_a_dm_channel_slack_no_longer_knows_is_opened_again(core, db, slack):
    core.slack.send_dm(REQUESTER, "one")
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    core.slack.send_dm(REQUESTER, "two")
    assert [m for m, _ in slack.calls].count("conversations.open") == 2
    assert [m["text"] for m in slack.messages_in(slack.dm_channel(REQUESTER))] == ["one", "two"]


def test_batched_audit_rows_from_many_threads_form_one_chain_that_verifies(db):
    import threading

    from bot.audit import AuditLog
    from bot.audit_chain import Sealer, verify

    audit = AuditLog(db, key="k" * 32)
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def flow(i):
        with audit.batch():
            for n in range(5):
                audit.record(f"U{i}", "polaris.call", detail=f"call {n}")
            with db.session() as s:  # a row of a transaction of the flow's own goes with it, the held rows first
                audit.record(f"U{i}", "decision.approve", session=s)

    threads = [threading.Thread(target=flow, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = verify(db, Sealer("k" * 32))
    assert verdict.ok and verdict.rows == 48, verdict
    assert sum("INSERT INTO audit_log" in s for s in statements) == 8  # one per flow: its session takes the held rows


def test_a_manager_card_to_a_dm_channel_slack_no_longer_knows_is_posted_in_a_new_one(core, db, slack):
    core.slack.send_dm(REQUESTER, "one")
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    channel, ts = core.slack.dm_card(REQUESTER, "a card", [])
    assert [m for m, _ in slack.calls].count("conversations.open") == 2
    assert slack.find_message(channel, ts) is not None


def test_a_card_reads_what_the_person_has_once_per_sync(service, db, slack, sandbox, groups):
    """The card is rendered again after it is posted (the request row changed) and for the manager's copy; each
    render read the person's effective permissions again for the same answer (call_economy: 2 reads of
    ``effectivepermissions`` and 2 searches per request command). One sync of the cards now reads once."""
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    with counting(db, slack, sandbox) as c:
        service.handle_command(REQUESTER, "request Data Analyst")
        service.drain()
    _report("request by someone with an account", c)
    assert only_request(db).approval_ts
    assert [p for p in c.polaris if p.endswith("/effectivepermissions")] == [
        f"GET /v1/users/{sandbox.find_user('alice@example.com')['id']}/effectivepermissions"
    ], c.polaris
