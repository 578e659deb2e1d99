"""The audit trail's fields as columns: what a served response carried (actor, consent, offers,
params, reasons, rules version, rule changes) leaves the packed `payload` text for columns of its
own, JSON where it is structured. Existing rows are unpacked; downgrade packs them again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FIELDS = ("actor", "consent", "offers", "params", "reasons", "rules_version", "rule_changes")
DEFAULTS = {"actor": "", "consent": {}, "offers": [], "params": {}, "reasons": {},
            "rules_version": None, "rule_changes": []}
BATCH = 1000


def _table(*columns: sa.Column) -> sa.Table:
    return sa.table("served_responses", sa.column("request_id", sa.String), *columns)


def upgrade() -> None:
    with op.batch_alter_table("served_responses") as batch:
        batch.add_column(sa.Column("actor", sa.String(32), nullable=True))
        for name in ("consent", "offers", "params", "reasons"):
            batch.add_column(sa.Column(name, sa.JSON, nullable=True))
        batch.add_column(sa.Column("rules_version", sa.String(128), nullable=True))
        batch.add_column(sa.Column("rule_changes", sa.JSON, nullable=True))
    connection = op.get_bind()
    packed = _table(sa.column("payload", sa.Text))
    unpacked = _table(sa.column("actor", sa.String), sa.column("rules_version", sa.String),
                      *(sa.column(n, sa.JSON) for n in ("consent", "offers", "params", "reasons",
                                                        "rule_changes")))
    rows = connection.execute(sa.select(packed.c.request_id, packed.c.payload)).all()
    for start in range(0, len(rows), BATCH):
        for request_id, payload in rows[start:start + BATCH]:
            values = json.loads(payload or "{}")
            connection.execute(
                sa.update(unpacked).where(unpacked.c.request_id == request_id).values(
                    **{name: values.get(name) if values.get(name) is not None else DEFAULTS[name]
                       for name in FIELDS}))
    with op.batch_alter_table("served_responses") as batch:
        batch.drop_column("payload")
        for name in FIELDS:
            if name != "rules_version":
                batch.alter_column(name, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("served_responses") as batch:
        batch.add_column(sa.Column("payload", sa.Text, nullable=True))
    connection = op.get_bind()
    unpacked = _table(sa.column("actor", sa.String), sa.column("rules_version", sa.String),
                      *(sa.column(n, sa.JSON) for n in ("consent", "offers", "params", "reasons",
                                                        "rule_changes")))
    packed = _table(sa.column("payload", sa.Text))
    for row in connection.execute(sa.select(unpacked)).mappings().all():
        connection.execute(sa.update(packed).where(packed.c.request_id == row["request_id"])
                           .values(payload=json.dumps({n: row[n] for n in FIELDS}, default=str)))
    with op.batch_alter_table("served_responses") as batch:
        for name in FIELDS:
            batch.drop_column(name)
        batch.alter_column("payload", nullable=False)
