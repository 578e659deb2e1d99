"""Attribute values a customer corrected or cleared, and the history of each change.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attribute_corrections",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("attribute", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "attribute_correction_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("attribute", sa.String(64), nullable=False),
        sa.Column("old", sa.String(256), nullable=True),
        sa.Column("new", sa.String(256), nullable=True),
        sa.Column("cleared", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("attribute_correction_history") as batch:
        batch.create_index(batch.f("ix_attribute_correction_history_customer_id"),
                           ["customer_id"])


def downgrade() -> None:
    op.drop_table("attribute_correction_history")
    op.drop_table("attribute_corrections")
