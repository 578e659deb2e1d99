"""Everything the records database holds about one customer, for "download my data": every row of
every table keyed by the customer's id, whole, in one read."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.database import metadata, table_modules


def customer_rows(engine: Engine, customer_id: str) -> dict[str, list[dict]]:
    """Table name -> the customer's rows (JSON-ready: times in ISO 8601), for every table with a
    customer_id column, in one transaction so the parts agree."""
    table_modules()
    out = {}
    with engine.connect() as connection, connection.begin():
        for table in metadata.sorted_tables:
            if "customer_id" not in table.c:
                continue
            query = sa.select(table).where(table.c.customer_id == customer_id)
            out[table.name] = [_plain(dict(row._mapping)) for row in connection.execute(query)]
    return out


def _plain(row: dict) -> dict:
    return {name: value.isoformat() if isinstance(value, datetime) else
            json.loads(json.dumps(value, default=str)) for name, value in row.items()}
