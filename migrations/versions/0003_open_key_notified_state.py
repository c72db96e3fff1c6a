"""One open request per person and group (``open_key``), and the last state the requester was told of.

``open_key`` is ``<email>|<group id or 'reset'>`` while a request is pending or approved and NULL after; a
unique index on it stops two concurrent identical requests (NULLs do not collide). ``notified_state`` lets
the worker resend a DM that Slack did not take.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("open_key", sa.String(400)))
        batch.add_column(sa.Column("notified_state", sa.String(12)))
        batch.create_unique_constraint("uq_access_requests_open_key", ["open_key"])
    op.create_index("ix_access_requests_state_updated", "access_requests", ["state", "updated_at"])
    op.create_index("ix_access_requests_card_stale", "access_requests", ["card_stale"])


def downgrade() -> None:
    op.drop_index("ix_access_requests_card_stale", table_name="access_requests")
    op.drop_index("ix_access_requests_state_updated", table_name="access_requests")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_constraint("uq_access_requests_open_key", type_="unique")
        batch.drop_column("notified_state")
        batch.drop_column("open_key")
