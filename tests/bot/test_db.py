"""Database access (bot/db.py): URL normalisation, ``ping`` on a dead URL, sessions commit or roll back, and
migrating a migrated database changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from bot.db import Database, normalize_url
from bot.models import AuditEvent, utcnow


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg2://u:p@h:5432/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+psycopg2://u@h/d?sslmode=require"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("sqlite:///bot.sqlite3", "sqlite:///bot.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected
    assert normalize_url(expected) == expected  # idempotent


def test_the_database_keeps_the_normalized_url():
    database = Database("postgres://u@127.0.0.1:1/d")
    assert database.url == "postgresql+psycopg2://u@127.0.0.1:1/d" and not database.is_sqlite
    database.dispose()


def test_ping_is_true_on_a_live_database(db):
    assert db.ping() is True


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
        "sqlite:////nonexistent-dir-for-polaris-access-bot/x.sqlite3",
    ],
)
def test_ping_on_a_dead_url_is_false_not_an_exception(url):
    database = Database(url)
    try:
        assert database.ping() is False
    finally:
        database.dispose()


def _row(action: str) -> AuditEvent:
    return AuditEvent(at=utcnow(), actor="bot", action=action, outcome="ok")


def test_session_commits_at_the_end_and_rolls_back_on_an_exception(db):
    with db.session() as s:
        s.add(_row("kept"))
    with pytest.raises(ValueError):
        with db.session() as s:
            s.add(_row("dropped"))
            s.flush()
            raise ValueError
    with db.session() as s:
        assert list(s.scalars(select(AuditEvent.action))) == ["kept"]


def _state(database: Database) -> tuple:
    with database.engine.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return revision, sorted(inspect(database.engine).get_table_names())


def test_migrate_twice_is_a_no_op(db):
    """``db`` is migrated already (as after a release): migrating again keeps the revision, the tables and
    the rows."""
    with db.session() as s:
        s.add(_row("before"))
    before = _state(db)
    db.migrate()
    db.migrate()
    assert _state(db) == before and len(before[0]) == 1
    with db.session() as s:
        assert list(s.scalars(select(AuditEvent.action))) == ["before"]


def test_migrate_twice_on_a_fresh_file(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/fresh.sqlite3")
    try:
        database.migrate()
        first = _state(database)
        database.migrate()
        assert _state(database) == first and "audit_log" in first[1]
    finally:
        database.dispose()
