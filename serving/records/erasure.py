"""Erasing a customer's records: consent and its history, served responses, feedback, cases and
posted interactions, in one transaction, with one anonymous tombstone per customer (an HMAC of the
id) that keeps the counts of what was removed, keeps the customer out of the next training run and
out of every publish, and keeps their consent at "nothing" until they choose again."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recommender.errors import TrustRecError
from serving.records.audit import (
    cases_table,
    erased_ids,
    erasures_table,
    feedback_table,
    is_erased,
    served_table,
    subject_hash,
)
from serving.records.consent import consent_table, history_table
from serving.records.controls import delete_controls
from serving.records.database import begin_write
from serving.records.interactions import delete_interactions


def erase_records(engine: Engine, customer_id: str, secret: str, now: datetime,
                  removed_elsewhere: dict[str, int]) -> tuple[int, str, dict[str, int]]:
    """(receipt id, subject hash, counts removed) after deleting the customer's rows in one
    transaction; removed_elsewhere (Redis keys) joins the counts on the receipt."""
    with begin_write(engine) as connection:
        counts = {
            # the record first: on PostgreSQL this waits for a consent writer holding the row
            "consent_rows": connection.execute(sa.delete(consent_table).where(
                consent_table.c.customer_id == customer_id)).rowcount,
            "consent_history_rows": connection.execute(sa.delete(history_table).where(
                history_table.c.customer_id == customer_id)).rowcount,
            "served_responses": connection.execute(sa.delete(served_table).where(
                served_table.c.customer_id == customer_id)).rowcount,
            "feedback": connection.execute(sa.delete(feedback_table).where(
                feedback_table.c.customer_id == customer_id)).rowcount,
            "cases": connection.execute(sa.delete(cases_table).where(
                cases_table.c.customer_id == customer_id)).rowcount,
            "interactions": delete_interactions(connection, customer_id),
            "controls": delete_controls(connection, customer_id),
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


def is_tombstoned(engine: Engine, customer_id: str, secret: str) -> bool:
    """Whether the customer's erasure is recorded."""
    digest = subject_hash(customer_id, secret)
    with engine.connect() as connection:
        return connection.execute(sa.select(erasures_table.c.id).where(
            erasures_table.c.subject_hash == digest).limit(1)).first() is not None


def erased_among(engine: Engine, customer_ids, secret: str | None) -> set[str]:
    """The ids among `customer_ids` whose erasure is recorded. Tombstones hold an HMAC made with
    the serving secret (TRUSTREC_SECRET_KEY): without it they cannot be recognised, an error."""
    hashes = erased_ids(engine)
    if not hashes:
        return set()
    if not secret:
        raise TrustRecError(f"{len(hashes)} erased customers are recorded: set TRUSTREC_SECRET_KEY "
                            "(the serving secret) so that they can be left out")
    return is_erased((str(c) for c in customer_ids), hashes, secret)
