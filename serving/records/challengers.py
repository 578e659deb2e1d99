"""The experiments' record: which challenger ran, for what share, from when, and how it ended.

Redis holds the running experiment's pointer (`{m}:challenger`, serving.arms), which every request
reads; the database holds its record, so that an online store rebuilt after Redis lost everything
(serving.healing) restores the experiment with its version, share and start, and the arms and
their outcomes carry on where they were. serving.publish writes the record with each change:
started with `publish(challenger=)`, ended by `promote` ("promoted"), `end_challenger` ("ended"),
or by another challenger published over it ("replaced").
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.arms import Challenger
from serving.records.database import begin_write, metadata

PROMOTED, ENDED, REPLACED = "promoted", "ended", "replaced"

experiments_table = sa.Table(
    "experiments", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("challenger", sa.String(128), nullable=False),  # the version
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),  # promoted, ended, replaced
)


def record_started(engine: Engine, challenger: Challenger) -> None:
    """`challenger` runs from its `since`: any other running experiment was replaced by it. The
    same experiment recorded again (a store rebuilt from the record) changes nothing."""
    table = experiments_table
    started = datetime.fromisoformat(challenger.since)
    with begin_write(engine) as connection:
        running = connection.execute(sa.select(table.c.id, table.c.challenger, table.c.started_at)
                                     .where(table.c.ended_at.is_(None))).all()
        if any(r.challenger == challenger.version and _utc(r.started_at) == started
               for r in running):
            return
        if running:
            connection.execute(table.update().where(table.c.ended_at.is_(None))
                               .values(ended_at=started, outcome=REPLACED))
        connection.execute(table.insert().values(
            challenger=challenger.version, share=challenger.share, started_at=started))


def record_ended(engine: Engine, version: str, outcome: str) -> None:
    """The running experiment of challenger `version` ended now, `outcome` (PROMOTED, ENDED)."""
    table = experiments_table
    with begin_write(engine) as connection:
        connection.execute(table.update().where(table.c.ended_at.is_(None),
                                                table.c.challenger == version)
                           .values(ended_at=datetime.now(UTC), outcome=outcome))


def running_experiment(engine: Engine) -> Challenger | None:
    """The experiment the record says runs, or None."""
    table = experiments_table
    with engine.connect() as connection:
        row = connection.execute(sa.select(table).where(table.c.ended_at.is_(None))
                                 .order_by(table.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Challenger(row.challenger, row.share,
                      _utc(row.started_at).isoformat(timespec="seconds"))


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
