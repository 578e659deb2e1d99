"""Feedback's `offer_served`: feedback on a signed request id is taken before the response's audit
record may be written, and that record's writer settles whether the offer was served. Feedback
recorded before this revision was always checked first: true.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("offer_served", sa.Boolean, nullable=True))
    op.execute(sa.text("UPDATE feedback SET offer_served = :true").bindparams(true=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("offer_served")
