"""What a customer asked of their offers, kept until they undo it: an offer that is not relevant
(left out of their offers), a category to see less of (placed lower), a past purchase not to use
("this was a gift": left out of their history). Serving applies them from the next request;
training leaves the named pairs out of the customer's positives; erasure deletes them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from serving.records.consent import MAX_ID_LENGTH
from serving.records.database import begin_write, metadata

NOT_RELEVANT, SEE_LESS, LEAVE_OUT = "not_relevant", "see_less", "leave_out"
KINDS = (NOT_RELEVANT, SEE_LESS, LEAVE_OUT)

controls_table = sa.Table(
    "customer_controls", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.String(256), nullable=False),  # an offer id, or a category
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("customer_id", "kind", "value", name="uq_customer_controls"),
)


def add_control(connection: Connection, customer_id: str, kind: str, value: str,
                now: datetime) -> bool:
    """Record it (in the caller's transaction); False when it was recorded already."""
    exists = connection.execute(sa.select(controls_table.c.id).where(
        controls_table.c.customer_id == customer_id, controls_table.c.kind == kind,
        controls_table.c.value == value)).first()
    if exists is not None:
        return False
    connection.execute(sa.insert(controls_table).values(
        customer_id=customer_id, kind=kind, value=value, created_at=now))
    return True


def record_control(engine: Engine, customer_id: str, kind: str, value: str, now: datetime) -> bool:
    with begin_write(engine) as connection:
        return add_control(connection, customer_id, kind, value, now)


def remove_control(engine: Engine, customer_id: str, kind: str, value: str) -> bool:
    """Undo; False when there was nothing to undo."""
    with begin_write(engine) as connection:
        return connection.execute(sa.delete(controls_table).where(
            controls_table.c.customer_id == customer_id, controls_table.c.kind == kind,
            controls_table.c.value == value)).rowcount > 0


def controls_of(engine: Engine, customer_id: str) -> list[dict]:
    """{kind, value, created_at} of every control the customer set, oldest first."""
    query = (sa.select(controls_table).where(controls_table.c.customer_id == customer_id)
             .order_by(controls_table.c.created_at, controls_table.c.id))
    with engine.connect() as connection:
        return [{"kind": row.kind, "value": row.value, "created_at": row.created_at}
                for row in connection.execute(query)]


def all_controls(engine: Engine, kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str, str]]:
    """(customer id, kind, value) of every control of these kinds: what training leaves out."""
    query = sa.select(controls_table.c.customer_id, controls_table.c.kind,
                      controls_table.c.value).where(controls_table.c.kind.in_(kinds))
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def delete_controls(connection: Connection, customer_id: str) -> int:
    return connection.execute(sa.delete(controls_table).where(
        controls_table.c.customer_id == customer_id)).rowcount
