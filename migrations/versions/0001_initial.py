"""Access requests, approvals, audit log, Slack events.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("requester_id", sa.String(32), nullable=False),
        sa.Column("requester_email", sa.String(320)),
        sa.Column("target_email", sa.String(320), nullable=False),
        sa.Column("target_slack_id", sa.String(32)),
        sa.Column("target_first_name", sa.String(200), nullable=False),
        sa.Column("target_last_name", sa.String(200), nullable=False),
        sa.Column("group_id", sa.String(64)),
        sa.Column("group_name", sa.String(200)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("decided_by", sa.String(32)),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("approval_channel", sa.String(32)),
        sa.Column("approval_ts", sa.String(32)),
        sa.Column("post_attempts", sa.Integer, nullable=False),
        sa.Column("card_stale", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("claimed_by", sa.String(80)),
        sa.Column("write_started_at", sa.DateTime),
        sa.Column("polaris_user_id", sa.String(64)),
        sa.Column("outcome", sa.Text),
        sa.Column("applied_at", sa.DateTime),
    )
    op.create_index("ix_access_requests_requester_state", "access_requests", ["requester_id", "state"])
    op.create_index("ix_access_requests_state_expires", "access_requests", ["state", "expires_at"])
    op.create_index("ix_access_requests_state_next", "access_requests", ["state", "next_attempt_at"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("access_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("approver_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("request_id", "approver_id", name="uq_approvals_request_approver"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(36)),
        sa.Column("target", sa.String(320)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("polaris_method", sa.String(8)),
        sa.Column("polaris_path", sa.String(300)),
        sa.Column("polaris_status", sa.Integer),
        sa.Column("duration_ms", sa.Float),
    )
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_index("ix_audit_log_request", "audit_log", ["request_id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "slack_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_events")
    op.drop_table("audit_log")
    op.drop_table("approvals")
    op.drop_table("access_requests")
