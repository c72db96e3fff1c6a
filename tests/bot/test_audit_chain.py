"""The audit chain (bot/audit_chain.py, issue 12): rows sealed at commit in one chain, and ``verify`` naming the
first row edited, deleted, inserted or reordered, on SQLite and PostgreSQL; appends from two processes at once;
the migration sealing rows written before it; the canonical encoding."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select, text

from bot.audit import AuditLog
from bot.audit_chain import GENESIS, Sealer, canonical, head, verify
from bot.db import Database
from bot.models import AuditChainHead, AuditEvent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def audit(db):
    return AuditLog(db)


def seals(db) -> list[tuple[int, str, str]]:
    with db.session() as s:
        return [(r.id, r.prev_hash, r.row_hash) for r in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def write(audit, n: int = 6) -> list[int]:
    for i in range(n):
        audit.record("U0ALICE", "command", target=f"t{i}", detail=None if i % 2 else "", duration_ms=i * 1.5)
    return [rid for rid, _, _ in seals(audit.db)]


def sql(db, statement: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_rows_are_chained_in_id_order_and_the_head_is_the_last(audit, db):
    ids = write(audit)
    rows = seals(db)
    assert rows[0][1] == GENESIS
    for (_, _, before), (_, prev, _) in zip(rows, rows[1:], strict=False):
        assert prev == before
    assert all(h.startswith("sha256:") for _, _, h in rows)
    assert head(db) == (ids[-1], rows[-1][2])
    verdict = verify(db, Sealer())
    assert verdict.ok and verdict.rows == 6 and verdict.last_id == ids[-1], verdict


def test_an_empty_table_verifies(db):
    assert verify(db, Sealer()).ok


def test_a_row_in_a_callers_session_is_sealed_when_it_commits_and_never_when_it_rolls_back(audit, db):
    write(audit, 2)
    with db.session() as s:
        audit.record("U0BOB", "decision.approve", session=s)
        audit.record("U0BOB", "decision.approve", target="second", session=s)
    with pytest.raises(RuntimeError):
        with db.session() as s:
            audit.record("U0BOB", "decision.deny", session=s)
            raise RuntimeError("rolled back")
    assert [r.action for r in _rows(db)] == ["command", "command", "decision.approve", "decision.approve"]
    assert verify(db, Sealer()).ok


def _rows(db) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_an_edited_row_is_named(audit, db):
    ids = write(audit)
    sql(db, "UPDATE audit_log SET detail = 'nothing to see' WHERE id = :i", i=ids[3])
    verdict = verify(db, Sealer())
    assert not verdict.ok and (verdict.kind, verdict.row_id) == ("edited", ids[3]), verdict
    assert verdict.last_id == ids[2]


def test_an_edited_time_is_named(audit, db):
    ids = write(audit)
    sql(db, "UPDATE audit_log SET at = :at WHERE id = :i", at=dt.datetime(2020, 1, 1), i=ids[1])
    assert (verify(db, Sealer()).kind, verify(db, Sealer()).row_id) == ("edited", ids[1])


def test_a_deleted_row_is_named_by_the_row_after_it(audit, db):
    ids = write(audit)
    sql(db, "DELETE FROM audit_log WHERE id = :i", i=ids[2])
    verdict = verify(db, Sealer())
    assert (verdict.ok, verdict.kind, verdict.row_id) == (False, "deleted", ids[3]), verdict
    assert f"after row {ids[1]}" in verdict.problem


def test_rows_deleted_at_the_end_show_against_the_head(audit, db):
    ids = write(audit)
    sql(db, "DELETE FROM audit_log WHERE id >= :i", i=ids[4])
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("deleted", ids[3]) and str(ids[5]) in verdict.problem, verdict


def test_the_first_row_deleted_is_named(audit, db):
    ids = write(audit)
    sql(db, "DELETE FROM audit_log WHERE id = :i", i=ids[0])
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("deleted", ids[1]) and "at the start" in verdict.problem


def _make_room(db, after_id: int) -> int:
    """Move the rows after ``after_id`` up by 1000 ids, so a row can be inserted between; the free id."""
    sql(db, "UPDATE audit_log SET id = id + 1000 WHERE id > :i", i=after_id)
    return after_id + 1


def test_an_inserted_row_with_a_forged_seal_is_named(audit, db):
    ids = write(audit)
    free = _make_room(db, ids[2])
    prev = seals(db)[2][2]
    sql(
        db,
        "INSERT INTO audit_log (id, at, actor, action, outcome, prev_hash, row_hash) "
        "VALUES (:i, :at, 'U0MALLORY', 'decision.approve', 'ok', :p, :h)",
        i=free,
        at=dt.datetime(2026, 1, 1),
        p=prev,
        h="sha256:" + "f" * 64,
    )
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("inserted", free), verdict


def test_an_inserted_row_without_a_seal_is_named(audit, db):
    ids = write(audit)
    free = _make_room(db, ids[0])
    sql(
        db,
        "INSERT INTO audit_log (id, at, actor, action, outcome) VALUES (:i, :at, 'U0MALLORY', 'x', 'ok')",
        i=free,
        at=dt.datetime(2026, 1, 1),
    )
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("unsealed", free), verdict


def test_a_row_appended_with_a_recomputed_unkeyed_seal_shows_against_the_head(audit, db):
    """Without AUDIT_KEY anyone can compute SHA-256: a forged last row shows against the head; forged with the head
    too, only against a witness post."""
    ids = write(audit)
    prev = seals(db)[-1][2]
    at = dt.datetime(2026, 1, 1)
    forged = Sealer().seal(prev, (at, "U0MALLORY", "decision.approve", None, None, "ok", None, None, None, None, None))
    sql(
        db,
        "INSERT INTO audit_log (id, at, actor, action, outcome, prev_hash, row_hash) "
        "VALUES (:i, :at, 'U0MALLORY', 'decision.approve', 'ok', :p, :h)",
        i=ids[-1] + 10,
        at=at,
        p=prev,
        h=forged,
    )
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("inserted", ids[-1] + 10), verdict
    assert "after the chain head" in verdict.problem
    sql(db, "UPDATE audit_chain SET last_id = :i, last_hash = :h", i=ids[-1] + 10, h=forged)  # the head too
    assert verify(db, Sealer()).ok  # now only a copy of the head kept elsewhere (a witness post) shows it
    verdict = verify(db, Sealer(), expect={ids[-1]: seals(db)[-2][2], ids[-1] + 10: "sha256:" + "0" * 64})
    assert (verdict.kind, verdict.row_id) == ("witness", ids[-1] + 10)


def test_reordered_rows_are_named(audit, db):
    ids = write(audit)
    a, b = ids[2], ids[3]
    sql(db, "UPDATE audit_log SET id = -1 WHERE id = :a", a=a)
    sql(db, "UPDATE audit_log SET id = :a WHERE id = :b", a=a, b=b)
    sql(db, "UPDATE audit_log SET id = :b WHERE id = -1", b=b)
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("reordered", a), verdict


def test_a_witnessed_seal_that_differs_is_named(audit, db):
    ids = write(audit)
    good = seals(db)[2][2]
    assert verify(db, Sealer(), expect={ids[2]: good}).ok
    verdict = verify(db, Sealer(), expect={ids[2]: "sha256:" + "1" * 64})
    assert (verdict.kind, verdict.row_id) == ("witness", ids[2])
    assert verify(db, Sealer(), expect={ids[-1] + 99: good}).kind == "witness"


def test_keyed_rows_need_the_key_and_a_wrong_key_fails(db):
    audit = AuditLog(db, key="k" * 32)
    write(audit, 3)
    assert all(h.startswith("hmac-sha256:") for _, _, h in seals(db))
    assert verify(db, Sealer("k" * 32)).ok
    assert verify(db, Sealer()).kind == "key"
    assert verify(db, Sealer("another key")).kind == "edited"


def test_an_unkeyed_row_after_keyed_rows_is_refused(db):
    write(AuditLog(db, key="k" * 32), 2)
    write(AuditLog(db), 1)  # a process started without AUDIT_KEY
    assert verify(db, Sealer("k" * 32)).kind == "key"


def test_threads_appending_at_once_make_one_chain(audit, db):
    def work(n):
        for i in range(25):
            audit.record(f"U0T{n}", "command", detail=str(i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = verify(db, Sealer())
    assert verdict.ok and verdict.rows == 150, verdict


def test_verify_while_rows_are_appended_checks_up_to_the_head_it_read(audit, db):
    write(audit, 20)
    stop = threading.Event()

    def keep_appending():
        while not stop.is_set():
            audit.record("U0BUSY", "command")

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        verdicts = [verify(db, Sealer()) for _ in range(5)]
    finally:
        stop.set()
        writer.join()
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert verify(db, Sealer()).ok


APPEND = """
import sys
from bot.audit import AuditLog
from bot.db import Database
db = Database(sys.argv[1])
audit = AuditLog(db)
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    if i % 3:
        audit.record("U0P" + sys.argv[3], "command", detail=str(i))
    else:
        with db.session() as s:
            audit.record("U0P" + sys.argv[3], "decision.approve", detail=str(i), session=s)
            audit.record("U0P" + sys.argv[3], "decision.approve", detail="second", session=s)
"""


def test_two_processes_appending_at_once_make_one_chain(db, database_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND, database_url, "60", str(n)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # both start appending at once
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=120) == 0
    verdict = verify(db, Sealer())
    assert verdict.ok and verdict.rows == 2 * 80, verdict
    actors = {r.actor for r in _rows(db)}
    assert actors == {"U0P0", "U0P1"}


def test_a_missing_head_row_is_made_again_and_the_fork_is_found(audit, db):
    ids = write(audit, 3)
    sql(db, "DELETE FROM audit_chain")
    audit.record("U0ALICE", "command")
    verdict = verify(db, Sealer())
    assert (verdict.kind, verdict.row_id) == ("deleted", ids[-1] + 1) or verdict.kind == "reordered", verdict
    with db.session() as s:
        assert s.get(AuditChainHead, 1) is not None


def test_the_canonical_encoding_is_stable_across_types():
    naive = dt.datetime(2026, 3, 4, 5, 6, 7, 890)
    aware = naive.replace(tzinfo=dt.timezone.utc)
    values = (aware, "U1", "a", None, "", "ok", "é", None, None, 200, 1.5)
    assert canonical(values) == canonical((naive, *values[1:]))
    assert (
        canonical(values) == b'["2026-03-04T05:06:07.000890Z","U1","a",null,"","ok","\xc3\xa9",null,null,200,"1.500"]'
    )
    assert canonical((*values[:-1], 1.50000000001)) == canonical(values)
    assert canonical((aware, "U1", "a", "", *values[4:])) != canonical(values)  # None is not ""
    other = aware.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert canonical((other, *values[1:])) == canonical(values)


# ------------------------------------------------------------------ the migration seals the rows before it
def _fresh_database(database_url, tmp_path):
    """A fresh, unmigrated database of the same kind as ``database_url``, and a cleanup."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/fresh.sqlite3", lambda: None
    import uuid

    from sqlalchemy import create_engine

    schema = f"pab_{uuid.uuid4().hex[:10]}"
    base = database_url.split("?")[0]
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return f"{base}?options=-csearch_path%3D{schema}", drop


@pytest.mark.parametrize("key", [None, "migration-key-0123456789"])
def test_the_migration_seals_existing_rows_as_the_start_of_the_chain(database_url, tmp_path, monkeypatch, key):
    from alembic import command

    from bot.db import alembic_config

    url, drop = _fresh_database(database_url, tmp_path)
    try:
        command.upgrade(alembic_config(url), "0006")
        old = Database(url)
        with old.engine.begin() as conn:
            for i in range(7):
                conn.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, outcome, detail, duration_ms, polaris_status) "
                        "VALUES (:at, 'U0OLD', 'command', 'ok', :d, :ms, :st)"
                    ),
                    {
                        "at": dt.datetime(2025, 1, 1, 0, 0, i, 123456),
                        "d": None if i % 2 else f"d{i}",
                        "ms": 2.25,
                        "st": 200,
                    },
                )
        old.dispose()
        if key:
            monkeypatch.setenv("AUDIT_KEY", key)
        else:
            monkeypatch.delenv("AUDIT_KEY", raising=False)
        command.upgrade(alembic_config(url), "head")
        database = Database(url)
        assert verify(database, Sealer(key)).ok
        AuditLog(database, key=key).record("U0NEW", "command")  # the chain goes on from the sealed rows
        verdict = verify(database, Sealer(key))
        assert verdict.ok and verdict.rows == 8, verdict
        database.dispose()
    finally:
        drop()
