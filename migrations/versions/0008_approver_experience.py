"""Approver experience: reminders, escalation, the decider's note and the duration asked when less was granted.

- ``access_requests.remind_at``: when the next reminder of a pending request is due (``None``: none left);
  ``reminders_sent``: how many went out (at most the policy's ``max_reminders``). The messages themselves are
  rows of the delivery ledger (``deliveries``, key ``remind:<n>``), so each is sent once.
- ``access_requests.escalate_at``: when a pending request goes to the policy's ``escalate_to`` (``None``: never,
  or done); ``escalated_at``: when it did.
- ``access_requests.decision_note``: the reason given with a Deny, or the comment given with an approval.
- ``access_requests.asked_duration_seconds``: what was asked, when an approver granted a shorter time
  (``duration_seconds`` then holds what was granted).
- Indexes ``(state, remind_at)`` and ``(state, escalate_at)``: the worker's pass costs what is due.

Revision ID: 0008
Revises: 0007 (written against 0006; rechained onto the audit chain's 0007 at merge)
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("remind_at", sa.DateTime))
        batch.add_column(sa.Column("reminders_sent", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("escalate_at", sa.DateTime))
        batch.add_column(sa.Column("escalated_at", sa.DateTime))
        batch.add_column(sa.Column("decision_note", sa.Text))
        batch.add_column(sa.Column("asked_duration_seconds", sa.Integer))
    op.create_index("ix_access_requests_state_remind", "access_requests", ["state", "remind_at"])
    op.create_index("ix_access_requests_state_escalate", "access_requests", ["state", "escalate_at"])


def downgrade() -> None:
    op.drop_index("ix_access_requests_state_escalate", table_name="access_requests")
    op.drop_index("ix_access_requests_state_remind", table_name="access_requests")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("asked_duration_seconds")
        batch.drop_column("decision_note")
        batch.drop_column("escalated_at")
        batch.drop_column("escalate_at")
        batch.drop_column("reminders_sent")
        batch.drop_column("remind_at")
