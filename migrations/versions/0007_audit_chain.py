"""The tamper-evident audit trail and drift reports.

- ``audit_log.prev_hash``, ``audit_log.row_hash``: each row's seal and the seal of the row before it
  (:mod:`bot.audit_chain`).
- ``audit_chain``: the chain head (one row: the last sealed id and its seal), locked by every append.
- ``schedule_marks``: when a periodic job (the daily witness post, ``reconcile``) last ran, for all processes.
- ``reconcile_baseline``: the Polaris state ``app.py reconcile --baseline`` accepted.

The rows already in ``audit_log`` are sealed here, in id order, as the start of the chain: with ``AUDIT_KEY``
when it is set in the environment of ``app.py migrate`` (set it before migrating), else with SHA-256. The
sealing code is frozen in this file (it must not change when bot/ does).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import hashlib
import hmac
import json
import os

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_GENESIS = "0" * 64
_FIELDS = (
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


def _canonical(values) -> bytes:
    out = []
    for name, value in zip(_FIELDS, values, strict=True):
        if name == "at" and value is not None:
            value = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # stored naive UTC
        elif name == "duration_ms" and value is not None:
            value = f"{float(value):.3f}"
        elif name == "polaris_status" and value is not None:
            value = int(value)
        out.append(value)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


def _seal(key: bytes | None, prev: str, values) -> str:
    message = prev.encode() + b"\n" + _canonical(values)
    if key:
        return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(message).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(80)))
        batch.add_column(sa.Column("row_hash", sa.String(80)))
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.BigInteger),
        sa.Column("last_hash", sa.String(80)),
        sa.Column("updated_at", sa.DateTime),
    )
    op.create_table(
        "schedule_marks",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "reconcile_baseline",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("group_id", sa.String(64)),
        sa.Column("enabled", sa.Boolean),
        sa.Column("taken_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_reconcile_baseline_kind_email", "reconcile_baseline", ["kind", "email"])
    _seal_existing(op.get_bind())


def _seal_existing(conn, batch: int = 5000) -> None:
    key = (os.environ.get("AUDIT_KEY") or "").strip().encode() or None
    types = {"at": sa.DateTime, "polaris_status": sa.Integer, "duration_ms": sa.Float}
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("prev_hash", sa.String),
        sa.column("row_hash", sa.String),
        *(sa.column(n, types.get(n, sa.String)) for n in _FIELDS),
    )
    prev, last_id = _GENESIS, None
    while True:
        q = sa.select(log.c.id, *[log.c[n] for n in _FIELDS]).order_by(log.c.id).limit(batch)
        if last_id is not None:
            q = q.where(log.c.id > last_id)
        rows = conn.execute(q).all()
        if not rows:
            break
        updates = []
        for row in rows:
            seal = _seal(key, prev, row[1:])
            updates.append({"rid": row[0], "p": prev, "h": seal})
            prev, last_id = seal, row[0]
        conn.execute(
            log.update()
            .where(log.c.id == sa.bindparam("rid"))
            .values(prev_hash=sa.bindparam("p"), row_hash=sa.bindparam("h")),
            updates,
        )
    head = sa.table("audit_chain", sa.column("id"), sa.column("last_id"), sa.column("last_hash"))
    conn.execute(head.insert().values(id=1, last_id=last_id, last_hash=None if last_id is None else prev))


def downgrade() -> None:
    op.drop_index("ix_reconcile_baseline_kind_email", table_name="reconcile_baseline")
    op.drop_table("reconcile_baseline")
    op.drop_table("schedule_marks")
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
