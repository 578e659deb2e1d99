"""Champion/challenger: the arm that served each response.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("served_responses") as batch:
        batch.add_column(sa.Column("arm", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("served_responses") as batch:
        batch.drop_column("arm")
