"""The live catalog: offers marked unavailable or added after training, and every change.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_offers",
        sa.Column("offer_id", sa.String(256), primary_key=True),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "catalog_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("offer_id", sa.String(256), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("catalog_changes") as batch:
        batch.create_index(batch.f("ix_catalog_changes_offer_id"), ["offer_id"])


def downgrade() -> None:
    op.drop_table("catalog_changes")
    op.drop_table("catalog_offers")
