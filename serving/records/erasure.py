"""Erasing a customer's records: served responses, feedback, cases and posted interactions, with
one anonymous tombstone per customer (an HMAC of the id) that keeps the counts of what was removed
and keeps the customer out of the next training run."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.audit import (
    cases_table,
    erasures_table,
    feedback_table,
    served_table,
    subject_hash,
)
from serving.records.database import begin_write
from serving.records.interactions import delete_interactions


def erase_records(engine: Engine, customer_id: str, secret: str, now: datetime,
                  removed_elsewhere: dict[str, int]) -> tuple[int, str, dict[str, int]]:
    """(receipt id, subject hash, counts removed) after deleting the customer's rows in one
    transaction; removed_elsewhere (consent rows, Redis keys) joins the counts on the receipt."""
    with begin_write(engine) as connection:
        counts = {
            "served_responses": connection.execute(sa.delete(served_table).where(
                served_table.c.customer_id == customer_id)).rowcount,
            "feedback": connection.execute(sa.delete(feedback_table).where(
                feedback_table.c.customer_id == customer_id)).rowcount,
            "cases": connection.execute(sa.delete(cases_table).where(
                cases_table.c.customer_id == customer_id)).rowcount,
            "interactions": delete_interactions(connection, customer_id),
        }
        counts |= removed_elsewhere
        digest = subject_hash(customer_id, secret)
        values = {"erased_at": now, "counts": json.dumps(counts, sort_keys=True)}
        # one tombstone per customer: erasing again (to finish an interrupted erasure, say)
        # updates it instead of leaving a second note that the customer existed
        receipt_id = connection.execute(sa.select(erasures_table.c.id).where(
            erasures_table.c.subject_hash == digest)).scalar()
        if receipt_id is None:
            receipt_id = connection.execute(sa.insert(erasures_table).values(
                subject_hash=digest, **values)).inserted_primary_key[0]
        else:  # the receipt adds up what every erasure of this customer removed
            earlier = json.loads(connection.execute(sa.select(erasures_table.c.counts).where(
                erasures_table.c.id == receipt_id)).scalar())
            values["counts"] = json.dumps(
                {name: counts.get(name, 0) + earlier.get(name, 0) for name in counts | earlier},
                sort_keys=True)
            connection.execute(sa.update(erasures_table).where(
                erasures_table.c.id == receipt_id).values(**values))
    return receipt_id, digest, counts
