"""A customer may ask for a person without naming an offer: a case's request and offer are optional.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("request_id", existing_type=sa.String(64), nullable=True)
        batch.alter_column("offer_id", existing_type=sa.String(256), nullable=True)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM cases WHERE request_id IS NULL OR offer_id IS NULL"))
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("request_id", existing_type=sa.String(64), nullable=False)
        batch.alter_column("offer_id", existing_type=sa.String(256), nullable=False)
