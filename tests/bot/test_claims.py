"""Claims (bot/claims.py): one holder per name at a time, on SQLite and PostgreSQL, released on exit."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import create_engine, text

from bot.claims import Claims, _key
from bot.db import Database, normalize_url


def test_one_holder_at_a_time_and_released_after_the_block(db):
    a, b = Claims(db), Claims(db)
    with a.hold("user:alice@example.com") as got:
        assert got
        seen = []
        t = threading.Thread(target=lambda: seen.append(b.hold("user:alice@example.com").__enter__()))
        t.start()
        t.join(5)
        assert seen == [False]
    with b.hold("user:alice@example.com") as got:
        assert got


def test_wait_gives_the_claim_once_it_is_released(db):
    a, b = Claims(db), Claims(db)
    release = threading.Event()

    def holder():
        with a.hold("requester:U0ALICE"):
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    try:
        with b.hold("requester:U0ALICE") as got:
            assert not got
        threading.Timer(0.2, release.set).start()
        with b.hold("requester:U0ALICE", wait=5.0) as got:
            assert got
    finally:
        release.set()
        t.join(5)


def test_keys_are_salted_by_schema_but_unchanged_in_public():
    rid = str(uuid.uuid4())
    assert _key(rid) == int.from_bytes(uuid.UUID(rid).bytes[:8], "big", signed=True)
    assert _key(rid, "pab_one") != _key(rid, "pab_two") != _key(rid)
    assert _key("user:a@example.com", "pab_one") != _key("user:a@example.com", "pab_two")


@pytest.mark.postgresql_only
def test_two_schemas_of_one_database_never_block_each_other(db, database_url):
    """Advisory locks are per database: a second deployment (or test run) in another schema must not see our
    claims. Before the salt, this claim was refused."""
    import os

    base = os.environ["TEST_DATABASE_URL"]
    schema = f"pab_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    other = Database(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
    try:
        with Claims(db).hold("user:alice@example.com") as mine, Claims(other).hold("user:alice@example.com") as theirs:
            assert mine and theirs
    finally:
        other.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
