"""The delivery ledger (``deliveries``: one row per Slack message owed, with its attempts and backoff), the
number of Retry presses on a request, and an index to prune ``slack_events`` by age.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("access_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12)),
        sa.Column("text", sa.Text),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("last_error", sa.String(80)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("request_id", "kind", "recipient", "key", name="uq_deliveries_request_kind_recipient_key"),
    )
    op.create_index("ix_deliveries_status_next", "deliveries", ["status", "next_attempt_at"])
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("retries", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_slack_events_received_at", "slack_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_events_received_at", table_name="slack_events")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("retries")
    op.drop_index("ix_deliveries_status_next", table_name="deliveries")
    op.drop_table("deliveries")
