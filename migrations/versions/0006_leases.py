"""The access lifecycle: time-bound memberships (``leases``), a request's duration and removal plan, and Block
Kit blocks for a DM (the Extend / I'm done buttons before a lease ends).

- ``leases``: one row per time-bound membership (see :class:`bot.models.Lease`); ``active_key`` unique while
  pending or active, so a later grant for the same person and group extends the lease instead of adding one.
- ``access_requests.duration_seconds``: a grant for a time (``None``: for good); ``access_requests.plan``: JSON
  of what a removal or offboarding takes away, shown on its card before anyone approves.
- ``deliveries.blocks``: a DM's blocks (JSON), sent with its text.

New request kinds (``leave``, ``remove``, ``offboard``) and the state ``cancelled`` are values of existing
string columns: no change is needed for them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("access_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("extended_by", sa.String(36)),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("slack_id", sa.String(32)),
        sa.Column("polaris_user_id", sa.String(64)),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(200)),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("active_key", sa.String(400)),
        sa.Column("started_at", sa.DateTime),
        sa.Column("ends_at", sa.DateTime),
        sa.Column("warn_at", sa.DateTime),
        sa.Column("warned_at", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("last_error", sa.String(200)),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("end_reason", sa.String(40)),
        sa.Column("ended_by", sa.String(32)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("active_key", name="uq_leases_active_key"),
    )
    op.create_index("ix_leases_state_ends", "leases", ["state", "ends_at"])
    op.create_index("ix_leases_state_warn", "leases", ["state", "warn_at"])
    op.create_index("ix_leases_request", "leases", ["request_id"])
    op.create_index("ix_leases_email_state", "leases", ["email", "state"])
    op.create_index("ix_leases_state_next", "leases", ["state", "next_attempt_at"])
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("duration_seconds", sa.Integer))
        batch.add_column(sa.Column("plan", sa.Text))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("blocks", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("blocks")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("plan")
        batch.drop_column("duration_seconds")
    op.drop_index("ix_leases_state_next", table_name="leases")
    op.drop_index("ix_leases_email_state", table_name="leases")
    op.drop_index("ix_leases_request", table_name="leases")
    op.drop_index("ix_leases_state_warn", table_name="leases")
    op.drop_index("ix_leases_state_ends", table_name="leases")
    op.drop_table("leases")
