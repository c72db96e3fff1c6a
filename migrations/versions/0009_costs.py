"""The costs (issue 13): a rate-limit window per person and the DM channel cache.

- ``command_windows``: per Slack user, ``count`` commands since ``started_at``; one upsert per command replaces a
  ``COUNT`` over ``audit_log``.
- ``dm_channels``: per Slack user, the IM channel ``conversations.open`` gave, so it is asked once per person.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_windows",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "dm_channels",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("opened_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dm_channels")
    op.drop_table("command_windows")
