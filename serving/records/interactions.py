"""Interactions posted to the API (purchases, clicks, ratings), kept in the SQL database.

The database owns them, Redis only caches the history they extend (docs/architecture.md: Redis may cache,
never own): Redis here keeps nothing on disk, and a posted purchase must survive a restart and
reach the next training run (`trustrec train --recorded-interactions`). Erasure deletes them.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recommender.data import INTERACTION_COLUMNS
from serving.records.consent import MAX_ID_LENGTH
from serving.records.database import begin_write, metadata

interactions_table = sa.Table(
    "interactions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    # the client's own id for the event, so that a retried POST is recorded once
    sa.Column("event_id", sa.String(128), nullable=True, unique=True),
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), nullable=False, index=True),
    sa.Column("offer_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),  # when it happened, unix seconds
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)


def record_interaction(
    engine: Engine, *, request_id: str, customer_id: str, offer_id: str, kind: str, weight: float,
    timestamp: int, recorded_at: datetime, event_id: str | None = None,
) -> dict | None:
    """Commit one interaction (before Redis sees it: a failure here loses nothing). With an
    `event_id` already recorded, nothing is written and the earlier record is returned (a retry);
    otherwise None."""
    values = {"request_id": request_id, "customer_id": customer_id, "offer_id": offer_id,
              "kind": kind, "weight": float(weight), "timestamp": int(timestamp),
              "recorded_at": recorded_at, "event_id": event_id}
    with begin_write(engine) as connection:
        if event_id is not None:
            earlier = connection.execute(sa.select(interactions_table).where(
                interactions_table.c.event_id == event_id)).first()
            if earlier is not None:
                return dict(earlier._mapping)
        connection.execute(sa.insert(interactions_table).values(**values))
    return None


def delete_interactions(connection: sa.Connection, customer_id: str) -> int:
    """Erase one customer's interactions inside the caller's transaction; the number removed."""
    return connection.execute(sa.delete(interactions_table).where(
        interactions_table.c.customer_id == customer_id)).rowcount


def recorded_interactions(engine: Engine) -> pd.DataFrame:
    """Every recorded interaction, as Dataset.interactions columns, oldest first."""
    columns = [interactions_table.c[name] for name in INTERACTION_COLUMNS]
    query = sa.select(*columns).order_by(interactions_table.c.timestamp, interactions_table.c.id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    frame = pd.DataFrame(rows, columns=list(INTERACTION_COLUMNS))
    return frame.astype({"customer_id": str, "offer_id": str, "kind": str, "weight": float,
                         "timestamp": "int64"})


def recorded_since(engine: Engine, moment: datetime) -> list[tuple[str, str]]:
    """(customer id, offer id) of the interactions recorded after `moment`, in the order they were
    recorded: what an online store rebuilt from a model trained at `moment` must add back."""
    query = (sa.select(interactions_table.c.customer_id, interactions_table.c.offer_id)
             .where(interactions_table.c.recorded_at > moment)
             .order_by(interactions_table.c.recorded_at, interactions_table.c.id))
    with engine.connect() as connection:
        return [(row.customer_id, row.offer_id) for row in connection.execute(query)]
