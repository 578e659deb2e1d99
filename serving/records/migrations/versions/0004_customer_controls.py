"""Customer controls: offers marked not relevant, categories to see less of, purchases not to use.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_controls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("customer_id", "kind", "value", name="uq_customer_controls"),
    )
    with op.batch_alter_table("customer_controls") as batch:
        batch.create_index(batch.f("ix_customer_controls_customer_id"), ["customer_id"])


def downgrade() -> None:
    op.drop_table("customer_controls")
