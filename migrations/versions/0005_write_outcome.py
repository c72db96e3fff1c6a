"""What a resumed apply needs to know about a Polaris write whose answer may have been lost.

``write_started_at`` (since 0001) is now set just before the write is sent (the reset PUT after its fresh
GET, the ``POST /v1/users``); ``write_answered_at`` is set when Polaris answered it with success, so a write
started and not answered has an unknown outcome. ``write_had_update_password`` records whether the user
already had ``UPDATE_PASSWORD`` pending in the GET before a reset PUT (then its presence proves nothing).

Revision ID: 0005
Revises: 0004 (rechained onto 0004 at merge)
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("write_answered_at", sa.DateTime))
        batch.add_column(sa.Column("write_had_update_password", sa.Boolean))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("write_had_update_password")
        batch.drop_column("write_answered_at")
