"""The tamper-evident audit trail: every ``audit_log`` row carries ``prev_hash`` (the seal of the row before it) and
``row_hash``, its own seal: HMAC-SHA256 keyed by ``AUDIT_KEY`` (``hmac-sha256:<hex>``), or plain SHA-256 when no
key is set (``sha256:<hex>``), over ``prev_hash``, a newline and the row's canonical encoding (:func:`canonical`).
The first row's ``prev_hash`` is :data:`GENESIS`.

Appends form one linear chain across processes. :class:`bot.audit.AuditLog` hands each row to :func:`attach`;
nothing is written until the session commits. Then, in SQLAlchemy's ``before_commit`` (:func:`_seal_on_commit`):

1. the session's other pending changes are flushed first (so the transaction takes every row lock it needs
   before step 2, and never waits for one while holding the chain);
2. the one ``audit_chain`` row is locked (PostgreSQL ``SELECT … FOR UPDATE``; SQLite: an ``UPDATE`` of it,
   which takes the database's write lock) and its ``last_hash`` read;
3. the rows are sealed in order, inserted (their ids come from the sequence now, under the lock) and the head
   moved to the last of them; the commit releases the lock.

Why this is one chain in id order: a row's id is drawn after its transaction locked the head and the lock is held
until that transaction commits, so of two appending transactions the one that commits first also drew every one
of its ids first; a transaction that rolls back leaves a gap in the ids (harmless: rows link by hash, not by
id) and no head change. Rows are never sealed "later": the lock is held only for the inserts and the commit
itself (no Slack or Polaris call, no wait on another lock), which is why the ack path does not slow down.

The canonical encoding excludes ``id`` (the order of ids is what :func:`verify` checks) and includes every other
column: ``at`` as a UTC ISO string to the microsecond, ``None`` as JSON ``null`` (distinct from ``""``),
``duration_ms`` as a decimal string to three places, so SQLite and PostgreSQL give the same bytes.

What the chain proves: a row edited, deleted, inserted or moved after it was written is found by
:func:`verify`, unless the writer knew ``AUDIT_KEY`` (without a key anyone can recompute SHA-256, so only a copy
of the head kept elsewhere, :func:`witness_text` posted to Slack, shows a rewrite of the whole table).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from typing import Iterable, Iterator

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from .models import AuditChainHead, AuditEvent

GENESIS = "0" * 64
HMAC, SHA256 = "hmac-sha256", "sha256"
#: The columns a seal covers, in encoding order.
FIELDS = (
    "at",
    "actor",
    "action",
    "request_id",
    "target",
    "outcome",
    "detail",
    "polaris_method",
    "polaris_path",
    "polaris_status",
    "duration_ms",
)
#: Columns of ``app.py audit export`` (csv header, jsonl keys), in this order; stable.
EXPORT_COLUMNS = ("id", *FIELDS, "prev_hash", "row_hash")
_PENDING = "audit_chain.pending"
_SEALER = "audit_chain.sealer"


def iso(at: dt.datetime | None) -> str | None:
    """``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC; a naive value is taken as UTC), or ``None``."""
    if at is None:
        return None
    if at.tzinfo is not None:
        if at.utcoffset():
            at = at.astimezone(dt.timezone.utc)
        at = at.replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"  # as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), faster


def canonical(values: Iterable) -> bytes:
    """The bytes a seal covers for one row, ``values`` in :data:`FIELDS` order: a compact JSON array (UTF-8),
    ``at`` per :func:`iso`, ``duration_ms`` as ``"%.3f"``, ``None`` as ``null``."""
    out = []
    for name, value in zip(FIELDS, values, strict=True):
        if name == "at":
            value = iso(value)
        elif name == "duration_ms" and value is not None:
            value = f"{float(value):.3f}"
        elif name == "polaris_status" and value is not None:
            value = int(value)
        out.append(value)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


class Sealer:
    """Computes seals: keyed (HMAC-SHA256 with ``key``, a str) or plain SHA-256 when ``key`` is empty."""

    def __init__(self, key: str | None = None):
        self._key = key.encode() if key else None
        self.algorithm = HMAC if key else SHA256

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def seal(self, prev: str, values: Iterable, algorithm: str | None = None) -> str:
        """The seal (``<algorithm>:<hex>``) of a row with ``values`` after the row sealed ``prev``. Raises
        ``ValueError`` for ``hmac-sha256`` without a key."""
        algorithm = algorithm or self.algorithm
        message = prev.encode() + b"\n" + canonical(values)
        if algorithm == HMAC:
            if self._key is None:
                raise ValueError("AUDIT_KEY is needed to check a keyed seal")
            return f"{HMAC}:{hmac.new(self._key, message, hashlib.sha256).hexdigest()}"
        if algorithm != SHA256:
            raise ValueError(f"unknown seal algorithm {algorithm[:20]!r}")
        return f"{SHA256}:{hashlib.sha256(message).hexdigest()}"


def row_values(row) -> tuple:
    """The :data:`FIELDS` of an :class:`AuditEvent` (or any object with those attributes)."""
    return tuple(getattr(row, name) for name in FIELDS)


# =============================================================================== appending
def attach(session: Session, sealer: Sealer, row: AuditEvent) -> None:
    """Queue ``row`` to be sealed and inserted when ``session`` commits (dropped if it rolls back)."""
    session.info.setdefault(_PENDING, []).append(row)
    session.info[_SEALER] = sealer


# Plain SQL, compiled once: the ORM's update() costs more CPU than the statement itself (issue 13 counts it).
_TOUCH = text("UPDATE audit_chain SET id = id WHERE id = 1")
_READ = text("SELECT last_id, last_hash FROM audit_chain WHERE id = 1")
_READ_LOCKED = text("SELECT last_id, last_hash FROM audit_chain WHERE id = 1 FOR UPDATE")
_CREATE = text("INSERT INTO audit_chain (id, last_id, last_hash) VALUES (1, NULL, NULL) ON CONFLICT (id) DO NOTHING")
_MOVE = text("UPDATE audit_chain SET last_id = :i, last_hash = :h, updated_at = :u WHERE id = 1")


def _lock_head(conn) -> tuple[int | None, str]:
    """Lock the chain head for the rest of the transaction; (last id, last hash). Creates it when missing."""
    sqlite = conn.dialect.name == "sqlite"
    for _ in range(2):
        if sqlite:  # an UPDATE takes SQLite's write lock, so the read below is the latest head
            conn.execute(_TOUCH)
        found = conn.execute(_READ if sqlite else _READ_LOCKED).first()
        if found is not None:
            return found[0], found[1] or GENESIS
        conn.execute(_CREATE)
    raise RuntimeError("the audit chain head cannot be created")


@event.listens_for(Session, "before_commit")
def _seal_on_commit(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    sealer: Sealer = session.info.pop(_SEALER)
    session.flush()  # every other change first: the chain lock is taken last and held for the inserts only
    append(session.connection(), sealer, rows)


_COLUMNS = (*FIELDS, "prev_hash", "row_hash")
_MAX_ID = text("SELECT max(id) FROM audit_log")
_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) FROM generate_series(1, :n)")


def _draw_ids(conn, n: int) -> list[int]:
    """``n`` new ``audit_log`` ids, ascending, while the head is locked: PostgreSQL's sequence; SQLite's next
    rowids (the write lock is held, so nobody else inserts)."""
    if conn.dialect.name == "sqlite":
        top = conn.execute(_MAX_ID).scalar() or 0
        return list(range(top + 1, top + 1 + n))
    return sorted(conn.execute(_NEXT_IDS, {"n": n}).scalars())


def append(conn, sealer: Sealer, rows: list) -> None:
    """Seal ``rows`` (:class:`AuditEvent` objects, not in any session) onto the chain and insert them through
    SQLAlchemy Core, in one ``INSERT`` on ``conn``'s transaction (whose commit releases the
    head lock taken here). Each row's ``id``, ``prev_hash`` and ``row_hash`` are set on it."""
    _, prev = _lock_head(conn)
    last = prev
    for row in rows:
        row.prev_hash = last
        row.row_hash = last = sealer.seal(last, row_values(row))
    table = AuditEvent.__table__
    params = [{name: getattr(row, name) for name in _COLUMNS} for row in rows]
    if len(rows) == 1:
        rows[0].id = conn.execute(table.insert().returning(table.c.id), params[0]).scalar_one()
    else:  # ids drawn first, in order, under the head lock: one multi-row INSERT with them
        for row, values, rid in zip(rows, params, _draw_ids(conn, len(rows)), strict=True):
            row.id = values["id"] = rid
        conn.execute(table.insert(), params)
    conn.execute(_MOVE, {"i": rows[-1].id, "h": last, "u": _now().replace(tzinfo=None)})


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_HEAD_AND_TOP = text(
    "SELECT h.last_id, h.last_hash, (SELECT max(a.id) FROM audit_log a) FROM audit_chain h WHERE h.id = 1"
)


def head_and_top(db) -> tuple[int | None, str | None, int | None]:
    """(last id, last hash, highest id in ``audit_log``) read in one statement; (None, None, None) without a
    head row."""
    with db.engine.connect() as conn:
        found = conn.execute(_HEAD_AND_TOP).first()
    return (found[0], found[1], found[2]) if found else (None, None, None)


def head(db) -> tuple[int | None, str | None]:
    """The chain head now: (last id, last hash); (None, None) before the first row."""
    with db.session() as s:
        found = s.execute(
            select(AuditChainHead.last_id, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
        ).first()
    return (found[0], found[1]) if found else (None, None)


# =============================================================================== reading
def stream(
    db,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    up_to: int | None = None,
    batch: int = 5000,
) -> Iterator:
    """Every ``audit_log`` row as a tuple in :data:`EXPORT_COLUMNS` order, in id order, ``since`` <= ``at`` <
    ``until`` (aware UTC; either may be None), ``id`` <= ``up_to`` when given. Streams: one server-side cursor
    on PostgreSQL, ``batch`` rows in memory at a time."""
    table = AuditEvent.__table__
    q = select(*[table.c[name] for name in EXPORT_COLUMNS]).order_by(table.c.id)
    if up_to is not None:
        q = q.where(table.c.id <= up_to)
    if since is not None:
        q = q.where(table.c.at >= since)
    if until is not None:
        q = q.where(table.c.at < until)
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(q)
        for row in result:
            yield tuple(row)


@dataclasses.dataclass
class Verdict:
    """What :func:`verify` found: ``ok``; ``rows`` read; the last row's ``last_id`` and ``last_hash``; for a
    break, ``kind`` (``edited``, ``deleted``, ``inserted``, ``reordered``, ``unsealed``, ``head``, ``key``,
    ``witness``), ``row_id`` (the first row found wrong, or None) and ``problem`` (a sentence)."""

    ok: bool
    rows: int
    last_id: int | None
    last_hash: str | None
    kind: str | None = None
    row_id: int | None = None
    problem: str | None = None
    unkeyed: int = 0


def _check(sealer: Sealer, prev_hash: str, values: tuple, stored: str) -> bool | None:
    """True when ``stored`` is the seal of ``values`` after ``prev_hash``; None when it cannot be checked."""
    algorithm = stored.partition(":")[0]
    if algorithm == HMAC and not sealer.keyed:
        return None
    try:
        return hmac.compare_digest(sealer.seal(prev_hash, values, algorithm), stored)
    except ValueError:
        return False


def verify(db, sealer: Sealer, *, expect: dict[int, str] | None = None) -> Verdict:
    """Walk the whole chain in id order, streaming (memory does not grow with the table), and compare its end
    with the ``audit_chain`` head and each ``expect`` checkpoint (row id -> seal, e.g. from a witness post).

    Rows appended while it runs are left for the next run (the walk ends at the head read when it starts); a row
    above that head that was already there is ``inserted``. The first break found is named: a row whose content no longer matches its seal (``edited``); a row with a
    seal the chain skips (``inserted``) or none at all (``unsealed``); a row that is intact but follows another
    row than the one before it: ``reordered`` when its predecessor (or the expected successor) appears later,
    else ``deleted`` (the rows in between are gone); a chain whose end is not the head (``head``); a keyed seal
    without ``AUDIT_KEY``, or an unkeyed one after keyed ones while it is set (``key``); a checkpoint missed
    (``witness``)."""
    # The head, and the highest id, are read first in one statement (one snapshot): a committed row and its head
    # move commit together, so a row above the head then was never appended by the bot (inserted), while rows
    # above the highest id then are appended meanwhile: the next run checks them.
    head_id, head_hash, max_id = head_and_top(db)
    walk = _Walk(sealer, dict(expect or {}))
    rows = iter(stream(db))
    for row in rows:
        if head_id is not None and row[0] > head_id:
            if max_id is not None and row[0] <= max_id:
                problem = f"row {row[0]} is after the chain head (row {head_id}): it was inserted"
                return walk.broken("inserted", row[0], problem)
            break
        found = walk.step(row, rows)
        if found is not None:
            return found
    return walk.end(head_id, head_hash)


class _Walk:
    """The state of one :func:`verify` walk: the seal and id of the last good row, rows read."""

    def __init__(self, sealer: Sealer, expect: dict[int, str]):
        self.sealer, self.expect = sealer, expect
        self.prev, self.prev_id, self.count, self.unkeyed, self.keyed_seen = GENESIS, None, 0, 0, False

    def broken(self, kind: str, row_id: int | None, problem: str) -> Verdict:
        return Verdict(False, self.count, self.prev_id, self.prev, kind, row_id, problem)

    def _seal_problem(self, rid: int, r_hash: str | None, p_hash: str | None) -> Verdict | None:
        if not r_hash or not p_hash:
            return self.broken("unsealed", rid, f"row {rid} has no seal: it was written outside the bot")
        if r_hash.startswith(SHA256 + ":"):
            self.unkeyed += 1
            if self.keyed_seen and self.sealer.keyed:
                return self.broken("key", rid, f"row {rid} is sealed without AUDIT_KEY after keyed rows")
        else:
            self.keyed_seen = True
        return None

    def step(self, row: tuple, rows: Iterator) -> Verdict | None:
        """Check one row (``rows``: the rest, read on only to name a break); a :class:`Verdict` on a break."""
        rid, values, p_hash, r_hash = row[0], row[1:-2], row[-2], row[-1]
        self.count += 1
        problem = self._seal_problem(rid, r_hash, p_hash)
        if problem is not None:
            return problem
        intact = _check(self.sealer, p_hash, values, r_hash)
        if intact is None:
            return self.broken("key", rid, f"row {rid} is sealed with a key: set AUDIT_KEY to verify it")
        linked = p_hash == self.prev
        if intact and linked:
            if rid in self.expect and self.expect.pop(rid) != r_hash:
                return self.broken("witness", rid, f"row {rid} differs from the witnessed seal")
            self.prev, self.prev_id = r_hash, rid
            return None
        if linked:  # the content changed: edited, unless the chain goes on without it (a row slipped in)
            after = next(rows, None)
            if after is not None and after[-2] == self.prev:
                return self.broken("inserted", rid, f"row {rid} was inserted: the chain skips it")
            return self.broken("edited", rid, f"row {rid} was edited: it no longer matches its seal")
        if not intact:
            return self.broken("edited", rid, f"row {rid} was edited or inserted (its seal and its link are wrong)")
        return self._out_of_place(rid, p_hash, rows)

    def _out_of_place(self, rid: int, p_hash: str, rows: Iterator) -> Verdict:
        """An intact row that follows another row than the last good one: moved, or rows before it deleted."""
        for later in rows:
            if later[-1] == p_hash or later[-2] == self.prev:
                return self.broken("reordered", rid, f"row {rid} is out of order (rows were reordered)")
        where = f"after row {self.prev_id}" if self.prev_id is not None else "at the start"
        return self.broken("deleted", rid, f"rows were deleted {where}, before row {rid}")

    def end(self, head_id: int | None, head_hash: str | None) -> Verdict:
        """The verdict once every row checked out: the chain must end at the head."""
        last = None if self.prev_id is None else self.prev
        if (head_id, head_hash) != (self.prev_id, last):
            if head_id is not None and (self.prev_id is None or head_id > self.prev_id):
                problem = (
                    f"rows were deleted at the end: the chain head names row {head_id}, the last is {self.prev_id}"
                )
                return self.broken("deleted", self.prev_id, problem)
            return self.broken("head", head_id, "the chain head does not match the last row")
        if self.sealer.keyed and self.count and not self.keyed_seen:
            # Unkeyed rows pass only as the start of a keyed chain: a chain with no keyed row at all is what
            # anyone could have rewritten without the key.
            return self.broken(
                "key",
                self.prev_id,
                "no row is sealed with AUDIT_KEY: the trail may have been rewritten without the key (if AUDIT_KEY "
                "was only just set, run any command so that one row is sealed with it, then verify again)",
            )
        if self.expect:
            rid = min(self.expect)
            return self.broken("witness", rid, f"the witnessed row {rid} is not in the chain")
        return Verdict(True, self.count, self.prev_id, last, unkeyed=self.unkeyed)


def witness_text(last_id: int | None, last_hash: str | None) -> str:
    """The witness message: the chain head, so a later rewrite of the whole table shows against this copy."""
    if last_id is None:
        return ":ledger: Audit chain head: empty (no rows yet)."
    return f":ledger: Audit chain head: row {last_id}, seal `{last_hash}`. Check it with `python app.py audit verify --expect {last_id}:{last_hash}`."
