"""The costs (issue 13): a rate-limit window per person and the DM channel cache.

- ``command_windows``: per Slack user, ``count`` commands since ``started_at``; one upsert per command replaces a
  ``COUNT`` over ``audit_log``.
- ``dm_channels``: per Slack user, the IM channel ``conversations.open`` gave, so it is asked once per person.
- ``ix_access_requests_untold``: a partial index on ``updated_at`` of the requests whose requester was not told
  their state, so the worker's idle pass reads those only (it read every request decided that day).

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
UNTOLD = "notified_state IS NULL OR notified_state <> state"  # as bot.models.UNTOLD was at this revision


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
    op.create_index(
        "ix_access_requests_untold",
        "access_requests",
        ["updated_at"],
        postgresql_where=sa.text(UNTOLD),
        sqlite_where=sa.text(UNTOLD),
    )


def downgrade() -> None:
    op.drop_index("ix_access_requests_untold", table_name="access_requests")
    op.drop_table("dm_channels")
    op.drop_table("command_windows")
