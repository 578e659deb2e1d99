"""The live catalog: offers the shop marked unavailable (out of stock, withdrawn) and offers it
added after training, with every change kept (who, when, what) as the catalog's audit trail.

The database is the record; Redis holds a copy that every worker reads (serving.catalog). The
catalog's serial is the id of its newest change, so a copy can tell whether it is behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from serving.records.database import begin_write, metadata

UNAVAILABLE, AVAILABLE, ADDED = "unavailable", "available", "added"
CHANGES = (UNAVAILABLE, AVAILABLE, ADDED)
MAX_OFFER_ID = 256

offers_table = sa.Table(
    "catalog_offers", metadata,
    sa.Column("offer_id", sa.String(MAX_OFFER_ID), primary_key=True),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=True),  # offers added after training only
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

changes_table = sa.Table(
    "catalog_changes", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("offer_id", sa.String(MAX_OFFER_ID), nullable=False, index=True),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=True),
    sa.Column("actor", sa.String(32), nullable=False),  # admin (API key) or cli
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class CatalogState:
    """What the live catalog changes of the trained one: serial 0 is no change at all."""

    serial: int = 0
    unavailable: frozenset[str] = frozenset()
    added: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # id -> attributes

    def to_json(self) -> str:
        return json.dumps({"serial": self.serial, "unavailable": sorted(self.unavailable),
                           "added": dict(self.added)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CatalogState:
        data = json.loads(text)
        return cls(int(data["serial"]), frozenset(data["unavailable"]),
                   {k: dict(v) for k, v in data["added"].items()})


def catalog_state(engine: Engine) -> CatalogState:
    """The catalog as the records hold it now."""
    with engine.connect() as connection:
        return _state(connection)


def _state(connection: Connection) -> CatalogState:
    serial = connection.execute(sa.select(sa.func.max(changes_table.c.id))).scalar() or 0
    rows = connection.execute(sa.select(offers_table)).all()
    return CatalogState(
        int(serial), frozenset(r.offer_id for r in rows if not r.available),
        {r.offer_id: dict(r.attributes) for r in rows if r.attributes is not None})


def set_available(engine: Engine, offer_ids: Iterable[str], available: bool, actor: str,
                  now: datetime) -> tuple[CatalogState, list[str]]:
    """Mark offers available or not, in one transaction. Returns the state after it and the ids
    whose availability changed (marking an offer as it already is records nothing)."""
    changed = []
    with begin_write(engine) as connection:
        for offer_id in dict.fromkeys(offer_ids):
            row = connection.execute(sa.select(offers_table).where(
                offers_table.c.offer_id == offer_id)).first()
            if (row.available if row is not None else True) == available:
                continue
            if row is None:
                connection.execute(sa.insert(offers_table).values(
                    offer_id=offer_id, available=available, attributes=None, updated_at=now))
            else:
                connection.execute(sa.update(offers_table).where(
                    offers_table.c.offer_id == offer_id).values(available=available,
                                                                updated_at=now))
            connection.execute(sa.insert(changes_table).values(
                offer_id=offer_id, change=AVAILABLE if available else UNAVAILABLE,
                attributes=None, actor=actor, changed_at=now))
            changed.append(offer_id)
        return _state(connection), changed


class OfferExists(ValueError):
    """The offer is in the catalog already."""


def add_offer(engine: Engine, offer_id: str, attributes: Mapping[str, str], actor: str,
              now: datetime, *, trained: Iterable[str] = ()) -> CatalogState:
    """Add an offer the model was not trained with (available at once). OfferExists when the
    trained catalog (`trained`) or an earlier addition has it."""
    with begin_write(engine) as connection:
        row = connection.execute(sa.select(offers_table).where(
            offers_table.c.offer_id == offer_id)).first()
        if offer_id in set(trained) or (row is not None and row.attributes is not None):
            raise OfferExists(offer_id)
        values = {"available": True, "attributes": dict(attributes), "updated_at": now}
        if row is None:
            connection.execute(sa.insert(offers_table).values(offer_id=offer_id, **values))
        else:
            connection.execute(sa.update(offers_table).where(
                offers_table.c.offer_id == offer_id).values(**values))
        connection.execute(sa.insert(changes_table).values(
            offer_id=offer_id, change=ADDED, attributes=dict(attributes), actor=actor,
            changed_at=now))
        return _state(connection)


def catalog_changes(engine: Engine, limit: int = 100) -> list[dict]:
    """The newest changes first: {serial, offer_id, change, attributes, actor, changed_at}."""
    c = changes_table.c
    with engine.connect() as connection:
        rows = connection.execute(sa.select(changes_table).order_by(c.id.desc()).limit(limit)).all()
    return [{"serial": r.id, "offer_id": r.offer_id, "change": r.change,
             "attributes": r.attributes, "actor": r.actor,
             "changed_at": r.changed_at.isoformat()} for r in rows]
