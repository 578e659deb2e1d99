"""What a customer asked of their offers, kept until they undo it: an offer that is not relevant
(left out of their offers), a category to see less of (placed lower), a past purchase not to use
("this was a gift": left out of their history); and the attribute values they corrected or
cleared, with a history of each change. Serving applies them from the next request; training
leaves the named pairs out of the customer's positives and uses the corrected values; erasure
deletes them."""

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
    """The customer's controls, corrections and their history (erasure)."""
    return sum(connection.execute(sa.delete(table).where(table.c.customer_id == customer_id)
                                  ).rowcount
               for table in (controls_table, corrections_table, correction_history_table))


# --- corrections of the customer's attribute values ------------------------------------------------
corrections_table = sa.Table(
    "attribute_corrections", metadata,
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("attribute", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=True),  # None: cleared, "do not use any value"
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

correction_history_table = sa.Table(
    "attribute_correction_history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), nullable=False, index=True),
    sa.Column("attribute", sa.String(64), nullable=False),
    sa.Column("old", sa.String(256), nullable=True),
    sa.Column("new", sa.String(256), nullable=True),
    sa.Column("cleared", sa.Boolean, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
)


def correct_attributes(engine: Engine, customer_id: str, values: dict[str, str | None],
                       actor: str, now: datetime) -> None:
    """Set (a value) or clear (None) each attribute, with a history row each, in one transaction."""
    with begin_write(engine) as connection:
        for attribute, value in values.items():
            where = (corrections_table.c.customer_id == customer_id,
                     corrections_table.c.attribute == attribute)
            old = connection.execute(sa.select(corrections_table.c.value).where(*where)).first()
            connection.execute(sa.delete(corrections_table).where(*where))
            connection.execute(sa.insert(corrections_table).values(
                customer_id=customer_id, attribute=attribute, value=value, updated_at=now))
            connection.execute(sa.insert(correction_history_table).values(
                customer_id=customer_id, attribute=attribute, old=None if old is None else old[0],
                new=value, cleared=value is None, changed_at=now, actor=actor))


def corrections_of(engine: Engine, customer_id: str) -> dict[str, str | None]:
    query = sa.select(corrections_table.c.attribute, corrections_table.c.value).where(
        corrections_table.c.customer_id == customer_id)
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def all_corrections(engine: Engine) -> list[tuple[str, str, str | None]]:
    """(customer id, attribute, value or None when cleared) of every correction: for training."""
    query = sa.select(corrections_table.c.customer_id, corrections_table.c.attribute,
                      corrections_table.c.value)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def correction_history(engine: Engine, customer_id: str) -> list[dict]:
    query = (sa.select(correction_history_table)
             .where(correction_history_table.c.customer_id == customer_id)
             .order_by(correction_history_table.c.changed_at, correction_history_table.c.id))
    with engine.connect() as connection:
        return [{"attribute": r.attribute, "old": r.old, "new": r.new, "cleared": r.cleared,
                 "changed_at": r.changed_at, "actor": r.actor} for r in connection.execute(query)]
