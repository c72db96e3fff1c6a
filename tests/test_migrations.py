"""Alembic migrations create exactly the tables the models describe, and go down and up again."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db import Database, alembic_config
from bot.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path}/m.sqlite3"
    Database(url).migrate()
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(Database(url).engine).get_table_names()) == {"alembic_version"}
    Database(url).migrate()
    assert {"access_requests", "approvals", "audit_log", "slack_events"} <= set(
        inspect(Database(url).engine).get_table_names()
    )
