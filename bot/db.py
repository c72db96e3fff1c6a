"""Database access: one SQLAlchemy engine per process, short sessions, and Alembic migrations.

SQLite (the default, a single process) and PostgreSQL (any number of processes sharing one server) both
work. Sessions are not thread-safe: every listener invocation or worker step opens its own with
:meth:`Database.session` and closes it at the end.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Database:
    """Engine and session factory for ``url`` (a SQLAlchemy URL such as ``sqlite:///bot.sqlite3`` or
    ``postgresql+psycopg2://user@host/db``; plain ``postgresql://``/``postgres://`` URLs are accepted)."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 30):
        self.url = normalize_url(url)
        kwargs: dict = {"echo": echo, "future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # One connection per thread that may hold one (listeners, work pool, worker, health): no waiting on
            # the pool. Connections are recycled instead of pinged before each use (a ping is a round trip).
            kwargs.update(pool_size=pool_size, max_overflow=10, pool_recycle=1800, pool_pre_ping=False)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back on an exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextlib.contextmanager
    def joining(self, session: Session | None) -> Iterator[Session]:
        """The caller's ``session`` when one is given (its transaction commits or rolls back with the caller's),
        else a new one as :meth:`session` makes."""
        if session is not None:
            yield session
        else:
            with self.session() as s:
                yield s

    def ping(self) -> bool:
        """True when a ``SELECT 1`` succeeds."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def migrate(self) -> None:
        """Run Alembic migrations up to head on this database."""
        migrate(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


def normalize_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg2 driver; leave others as they are."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str):
    """An Alembic ``Config`` for this repository's ``migrations/`` pointed at ``url``."""
    from alembic.config import Config

    cfg = Config(os.path.join(ROOT, "alembic.ini"))
    cfg.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str) -> None:
    """``alembic upgrade head`` on ``url``."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
