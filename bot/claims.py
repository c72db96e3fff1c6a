"""Who applies an approved access request: exactly one worker at a time, across processes.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection held for the whole
apply; if the process dies (kill -9, crash), PostgreSQL drops the connection and the lock with it, so the
request is picked up again by the next worker cycle anywhere. Advisory locks are shared by the whole
database, so a deployment in a schema other than ``public`` salts its keys with the schema name: two bots (or
test runs) in two schemas of one database never block each other. SQLite serves one process, so an in-process
set of claimed IDs is enough there.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from typing import Iterator

from sqlalchemy import text

from .db import Database

_local_lock = threading.Lock()
_local_held: dict[str, set[str]] = {}  # SQLite: names held in this process, per database URL


def _key(name: str, schema: str = "public") -> int:
    """A signed 64-bit advisory lock key: from the UUID of a request, or a hash of any other name
    (e.g. ``user:alice@example.com``); in a schema other than ``public``, a hash of ``<schema>/<name>``."""
    if schema != "public":
        name = f"{schema}/{name}"
    try:
        raw = uuid.UUID(name).bytes[:8]
    except ValueError:
        raw = hashlib.sha256(name.encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


class Claims:
    """``with claims.hold(name) as got:`` — ``got`` is True when this worker holds ``name`` (a request ID, or
    ``user:<email>`` so that two requests never change the same Polaris user at once)."""

    def __init__(self, db: Database):
        self.db = db
        self._held = _local_held.setdefault(str(db.url), set()) if db.is_sqlite else set()
        self._schema: str | None = None  # PostgreSQL's current_schema(), read on first use

    @contextlib.contextmanager
    def hold(self, request_id: str, *, wait: float = 0.0) -> Iterator[bool]:
        """Hold ``request_id`` for the block; with ``wait`` (seconds), keep trying that long first."""
        deadline = time.monotonic() + wait
        while True:
            with self._hold(request_id) as got:
                if got or time.monotonic() >= deadline:
                    yield got
                    return
            time.sleep(0.02)

    @contextlib.contextmanager
    def _hold(self, request_id: str) -> Iterator[bool]:
        if self.db.is_sqlite:
            with _local_lock:
                if request_id in self._held:
                    got = False
                else:
                    self._held.add(request_id)
                    got = True
            try:
                yield got
            finally:
                if got:
                    with _local_lock:
                        self._held.discard(request_id)
            return
        # Autocommit: a session-level lock needs no transaction, so taking and dropping it are one round trip each
        # (no BEGIN, no COMMIT; issue 13). The pool puts the connection's isolation level back when it is returned.
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if self._schema is None:
                self._schema = str(conn.execute(text("SELECT current_schema()")).scalar() or "public")
            key = _key(request_id, self._schema)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
