"""Manager approval: the requester's manager and the copy of the card sent to them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("manager_id", sa.String(32)))
        batch.add_column(sa.Column("manager_dm_channel", sa.String(32)))
        batch.add_column(sa.Column("manager_dm_ts", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("manager_dm_ts")
        batch.drop_column("manager_dm_channel")
        batch.drop_column("manager_id")
