"""The audit log (bot/audit.py): what a row may hold, the order it is read back in, and that a row written in a
caller's session lives and dies with that session's transaction."""

from __future__ import annotations

import time

import pytest

from bot.audit import DETAIL_MAX, AuditLog, audit_context
from bot.db import Database
from bot.models import AuditEvent

TOKEN = "xoxb-1111-2222-abcdefABCDEF"


@pytest.fixture
def audit(db):
    return AuditLog(db)


def rows(db) -> list[AuditEvent]:
    from sqlalchemy import select

    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_record_redacts_tokens_in_free_text(audit, db):
    audit.record(
        "U0ALICE",
        "command",
        target=f"alice {TOKEN}",
        detail=f"header Authorization: Bearer {TOKEN}",
        polaris_path=f"/v1/users?key={TOKEN}",
    )
    (row,) = rows(db)
    for text in (row.target, row.detail, row.polaris_path):
        assert TOKEN not in text and "[REDACTED]" in text


def test_record_caps_every_field(audit, db):
    audit.record(
        "U" * 50,
        "a" * 60,
        target="t" * 400,
        outcome="o" * 30,
        detail="d" * 2000,
        polaris_path="/" + "p" * 400,
        duration_ms=1.23456,
    )
    (row,) = rows(db)
    assert len(row.actor) == 32 and len(row.action) == 40 and len(row.outcome) == 20
    assert len(row.detail) == DETAIL_MAX and row.detail.endswith("…")
    assert len(row.target) == 320 and row.target.endswith("…")
    assert len(row.polaris_path) == 300 and row.polaris_path.endswith("…")
    assert row.duration_ms == 1.23


def test_record_keeps_short_text_as_is_and_names_the_bot_for_no_actor(audit, db):
    audit.record("", "request.created", request_id="r1", detail="Viewer for alice", target=None)
    (row,) = rows(db)
    assert (row.actor, row.detail, row.target, row.outcome) == ("bot", "Viewer for alice", None, "ok")


def test_for_request_is_oldest_first_and_only_that_request(audit):
    for action in ("request.created", "decision.approve", "apply.done"):
        audit.record("U0BOB", action, request_id="r1")
        audit.record("U0BOB", "other", request_id="r2")
    assert [r.action for r in audit.for_request("r1")] == ["request.created", "decision.approve", "apply.done"]
    assert audit.for_request("nothing") == []


def test_for_actor_is_newest_first_and_limited(audit):
    for i in range(5):
        audit.record("U0ALICE", f"step.{i}")
        audit.record("U0BOB", "elsewhere")
        time.sleep(0.002)  # distinct timestamps: the order is by ``at``
    assert [r.action for r in audit.for_actor("U0ALICE")] == [f"step.{i}" for i in (4, 3, 2, 1, 0)]
    assert [r.action for r in audit.for_actor("U0ALICE", limit=2)] == ["step.4", "step.3"]


def test_a_row_in_a_rolled_back_session_is_gone(audit, db):
    with pytest.raises(RuntimeError):
        with db.session() as s:
            audit.record("U0BOB", "decision.approve", request_id="r1", session=s)
            s.flush()  # written in the transaction ...
            raise RuntimeError("the decision failed")  # ... which rolls back
    assert audit.for_request("r1") == []
    with db.session() as s:
        audit.record("U0BOB", "decision.approve", request_id="r1", session=s)
    assert [r.action for r in audit.for_request("r1")] == ["decision.approve"]


def test_record_without_a_session_never_raises(tmp_path, caplog):
    broken = AuditLog(Database(f"sqlite:///{tmp_path}/no-such-dir/x.sqlite3"))
    broken.record("U0ALICE", "command")  # no table, no file: logged, not raised
    assert any("could not write audit row" in r.getMessage() for r in caplog.records)


def test_polaris_hook_records_the_call_for_the_current_context(audit):
    with audit_context("U0BOB", "r1"):
        audit.polaris_hook("GET", "/v1/users", 200, 12.5, None)
    audit.polaris_hook("POST", "/v1/users", 503, 3.0, "ServiceUnavailable")
    (mine,) = audit.for_request("r1")
    assert (mine.actor, mine.action, mine.outcome, mine.polaris_status) == ("U0BOB", "polaris.call", "ok", 200)
    (other,) = audit.for_actor("bot")
    assert (other.outcome, other.detail, other.polaris_method) == ("error", "ServiceUnavailable", "POST")


def test_a_row_written_with_a_session_inside_a_batch_comes_after_the_rows_held_before_it(audit, db):
    # The trial's finding: `audit export` (oldest first, by id) listed apply.done before the Polaris calls that
    # preceded it, because those were held in the batch and written when it ended.
    with audit.batch():
        audit.record("bot", "polaris.call", detail="first")
        with db.session() as s:
            audit.record("bot", "apply.done", detail="second", session=s)
        audit.record("bot", "notify", detail="third")
    got = rows(db)
    assert [r.detail for r in got] == ["first", "second", "third"]
    assert [r.at for r in got] == sorted(r.at for r in got)
    from bot.audit_chain import Sealer, verify

    assert verify(db, Sealer()).ok


def test_rows_held_in_a_batch_survive_a_session_that_rolls_back(audit, db):
    with audit.batch():
        audit.record("bot", "polaris.call", detail="first")
        with pytest.raises(RuntimeError):
            with db.session() as s:
                audit.record("bot", "apply.done", detail="rolled back", session=s)
                raise RuntimeError("the caller's transaction fails")
        audit.record("bot", "notify", detail="third")
    assert [r.detail for r in rows(db)] == ["first", "third"]  # the Polaris call is not lost with the session


def _transactions(db):
    from sqlalchemy import event

    begun = []
    event.listen(db.engine, "begin", lambda conn: begun.append(1))
    return begun


def test_rows_carried_by_a_session_are_written_with_it_and_not_again(audit, db):
    with db.session() as s:  # the chain head exists (its first row creates it)
        audit.record("bot", "setup", session=s)
    begun = _transactions(db)
    with audit.batch():
        audit.record("bot", "polaris.call", detail="first")
        audit.record("bot", "notify.update", detail="second")
        with db.session() as s:
            audit.carry(s)
            s.execute(__import__("sqlalchemy").text("SELECT 1"))
    assert len(begun) == 1  # the carrying session's transaction only: none of the batch's own at its end
    assert [r.detail for r in rows(db)][1:] == ["first", "second"]  # once each, in the events' order
    from bot.audit_chain import Sealer, verify

    assert verify(db, Sealer()).ok


def test_rows_carried_by_a_session_that_rolls_back_are_written_when_the_batch_ends(audit, db):
    with audit.batch():
        audit.record("bot", "polaris.call", detail="first")
        with pytest.raises(RuntimeError):
            with db.session() as s:
                audit.carry(s)
                raise RuntimeError("the carrying transaction fails")
        audit.record("bot", "notify", detail="second")
    assert [r.detail for r in rows(db)] == ["first", "second"]


def test_carry_outside_a_batch_carries_nothing(audit, db):
    audit.record("bot", "alone")  # written at once, in a transaction of its own
    with db.session() as s:
        audit.carry(s)
    assert [r.detail or r.action for r in rows(db)] == ["alone"]
