"""The audit trail: every served offers/why response, feedback on it, the cases staff handle, and
the tombstones of erasures, in the same SQL database as consent (serving.records.database).

Recording stays off the request path: `AuditWriter` (the `on_served` hook) puts the row on a
bounded queue and one background thread writes batches, each in one transaction. When the queue is
full the request blocks up to `block_ms`; if there is still no room, the row is written
synchronously in the request (a full queue is counted in `trustrec_audit_queue_full_total` and
logged). A row is never dropped: if that synchronous write fails, the hook raises and the client
gets a 500 instead of offers that could not be recorded. The background thread retries a failed
batch until it commits; `flush()` waits for everything queued, and runs at exit.

Having taken a row, the thread waits up to `linger_ms` for more before it writes: a transaction
costs far more than a row (measured on SQLite with synchronous=FULL: ~0.9 ms of CPU and a ~5 ms
fsync for a batch of one, ~0.07 ms of CPU per row for batches of 20), and under load, writing
whatever was queued meant batches of one or two rows costing the worker more CPU than the request
itself. `flush()` and `close()` end the wait at once.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.consent import MAX_ID_LENGTH
from serving.records.database import begin_write, metadata
from serving.records.journal import Journal, orphans
from serving.served import ServedRecord

log = logging.getLogger(__name__)

FEEDBACK_KINDS = ("clicked", "purchased", "dismissed", "not_relevant", "see_less", "report",
                  "talk_to_person")
POSITIVE_KINDS = ("clicked", "purchased")
CASE_KINDS = ("report", "talk_to_person")
CASE_STATUSES = ("open", "in_progress", "resolved", "closed")
CLOSED_STATUSES = ("resolved", "closed")
MAX_TEXT = 2000

_ID = sa.String(MAX_ID_LENGTH)
_SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")

served_table = sa.Table(
    "served_responses", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("served_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("customer_id", _ID, nullable=False, index=True),
    sa.Column("endpoint", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("personalization", sa.String(16), nullable=False),
    sa.Column("consent_source", sa.String(16), nullable=False),
    sa.Column("categories_used", sa.Text, nullable=False),  # JSON list
    sa.Column("n_offers", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=True),  # from request start to the hook
    sa.Column("actor", sa.String(32), nullable=False),  # storefront, admin or customer
    sa.Column("consent", sa.JSON, nullable=False),  # the consent applied: allowed, level
    sa.Column("offers", sa.JSON, nullable=False),  # [[offer_id, score], ...] as served
    sa.Column("params", sa.JSON, nullable=False),  # the request's parameters
    sa.Column("reasons", sa.JSON, nullable=False),  # offer id -> the criteria shown
    sa.Column("rules_version", sa.String(128), nullable=True),  # business rules in force
    sa.Column("rule_changes", sa.JSON, nullable=False),  # what the rules changed, per offer
    sa.Column("arm", sa.String(16), nullable=True),  # champion/challenger; null: one version live
)

feedback_table = sa.Table(
    "feedback", metadata,
    sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("customer_id", _ID, nullable=False, index=True),
    sa.Column("offer_id", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("case_id", sa.String(64), nullable=True),
    # whether the offer was in the response: null until the response's audit record is written
    # (feedback on a signed request id is taken before that; the record's writer settles it)
    sa.Column("offer_served", sa.Boolean, nullable=True),
)

cases_table = sa.Table(
    "cases", metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("customer_id", _ID, nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=True),  # none: asked without an offer
    sa.Column("offer_id", sa.String(256), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("note", sa.Text, nullable=True),  # staff's latest note
)

erasures_table = sa.Table(
    "erasures", metadata,
    sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("subject_hash", sa.String(64), nullable=False, index=True),  # HMAC of the id
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("counts", sa.Text, nullable=False),  # JSON: what was removed, by store
)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def row_from(record: ServedRecord, latency_ms: float | None) -> dict:
    return {
        "request_id": record.request_id,
        "served_at": datetime.fromtimestamp(record.served_at, UTC),
        "customer_id": record.customer_id,
        "endpoint": record.endpoint,
        "model_version": record.model_version,
        "personalization": record.personalization,
        "consent_source": record.consent_source,
        "categories_used": json.dumps(list(record.categories_used)),
        "n_offers": len(record.offers),
        "latency_ms": latency_ms,
        "actor": record.actor,
        "consent": record.consent,
        "offers": [[offer, score] for offer, score in record.offers],
        "params": record.params,
        "reasons": record.reasons,
        "rules_version": record.rules_version,
        "rule_changes": record.rule_changes or [],
        "arm": record.arm,
    }


def record_dict(row) -> dict:
    """A served_responses row as the API shows it."""
    return {
        "request_id": row.request_id,
        "served_at": utc(row.served_at).isoformat(),
        "endpoint": row.endpoint,
        "model_version": row.model_version,
        "personalization": row.personalization,
        "consent": row.consent,
        "consent_source": row.consent_source,
        "categories_used": json.loads(row.categories_used),
        "offers": [{"offer_id": o, "score": s} for o, s in row.offers],
        "reasons": row.reasons or {},
        "rules_version": row.rules_version,
        "rule_changes": row.rule_changes or [],
        "latency_ms": row.latency_ms,
        "arm": row.arm,
    }


_STOP = object()


class AuditWriter:
    """The `on_served` hook that records every served response (see the module docstring)."""

    def __init__(
        self, engine: Engine, *, queue_size: int = 10_000, batch_size: int = 500,
        block_ms: int = 50, on_full: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter, linger_ms: float = 50,
        secret: str | None = None, journal: str | Path | None = None,
    ) -> None:
        self.engine, self.batch_size, self.block_s = engine, batch_size, block_ms / 1000
        # with the serving secret, rows of customers erased after being served are never written:
        # another worker may have erased them while this one still held their rows
        self.secret = secret
        self.linger_s = linger_ms / 1000
        self.on_full, self.clock = on_full, clock
        self.queue_full_total = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending: dict[str, dict] = {}  # request id -> row, until committed
        self._lock = threading.Lock()
        # journal: rows are appended there before the response leaves (serving.records.journal)
        self._journal = None
        self._segment_of: dict[str, str] = {}  # request id -> its journal segment
        if journal is not None:
            self._replay(journal)
            self._journal = Journal(journal)
        self._closed = False
        self._failing = False  # the last write failed: the database is down, most likely
        self._hurry = threading.Event()  # set by flush() and close(): stop lingering
        self._thread = threading.Thread(target=self._run, name="trustrec-audit", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the hook ---------------------------------------------------------------------------
    def __call__(self, record: ServedRecord) -> None:
        self.submit(record, _request_latency_ms(self.clock))

    def submit(self, record: ServedRecord, latency_ms: float | None = None) -> None:
        row = row_from(record, latency_ms)
        with self._lock:
            self._pending[row["request_id"]] = row
            if self._journal is not None:
                self._segment_of[row["request_id"]] = self._journal.append(row)
        if not self._closed:
            try:
                self._queue.put(row, timeout=self.block_s)
                return
            except queue.Full:
                self.queue_full_total += 1
                if self.on_full is not None:
                    self.on_full()
                log.warning("audit queue full (%d rows): writing request %s synchronously",
                            self._queue.maxsize, row["request_id"])
        try:
            self._write([row])  # raises: the client gets a 500, the row is not lost silently
        except Exception:
            with self._lock:
                self._pending.pop(row["request_id"], None)
            raise
        self._committed([row])

    # --- reading what may not be committed yet ------------------------------------------------
    def pending(self, request_id: str) -> dict | None:
        with self._lock:
            return self._pending.get(request_id)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row queued so far is committed; False if that took over `timeout`
        seconds (the database is down: the rows stay queued and the writer keeps retrying)."""
        if self._failing:  # the database is down: waiting would only hold the request
            return False
        deadline = time.monotonic() + timeout
        self._hurry.set()
        done = self._queue.all_tasks_done
        with done:  # the queue's own lock: nothing in here may call the queue's methods
            while self._queue.unfinished_tasks and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                done.wait(left)
            else:
                return True
        log.warning("audit flush timed out with %d rows queued", self.depth)
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._hurry.set()
            self._thread.join(timeout=30)
        if self._pending:
            log.error("audit writer closed with %d rows not written%s", len(self._pending),
                      "; they stay in the journal" if self._journal is not None else "")
        if self._journal is not None:
            self._journal.close()

    # --- the background thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            batch, stop = [item], False
            # Linger for more rows (module docstring), asleep rather than woken by each row; then
            # take what is queued. A batch holds no more rows than the queue may: queue_size keeps
            # bounding what waits, and a full queue still pushes back when the database stalls.
            deadline = time.monotonic() + self.linger_s
            while len(batch) < min(self.batch_size, self._queue.maxsize or self.batch_size):
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._hurry.is_set():
                        break
                    self._hurry.wait(left)
                    continue
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._hurry.clear()  # a flush() from now on sees this batch in unfinished_tasks
            self._write_retrying(batch)
            for _ in range(len(batch) + stop):
                self._queue.task_done()
            if stop:
                return

    def _write_retrying(self, batch: list[dict]) -> None:
        delay = 0.05
        while True:
            try:
                self._write(batch)
            except Exception as exc:
                self._failing = True
                log.error("audit batch of %d rows not written, retrying: %s", len(batch), exc)
                if self._closed and delay > 2:
                    log.error("audit writer closing: %d rows lost", len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._failing = False
            self._committed(batch)
            return

    def _committed(self, rows: list[dict]) -> None:
        with self._lock:
            for row in rows:
                self._pending.pop(row["request_id"], None)
                segment = self._segment_of.pop(row["request_id"], None)
                if segment is not None:
                    self._journal.committed(segment)

    def _replay(self, directory: str | Path) -> None:
        """Commit the rows journalled by processes that died before their writer did."""
        for path, rows in orphans(directory):
            try:
                with begin_write(self.engine) as connection:
                    ids = [row["request_id"] for row in rows]
                    present = set()
                    for start in range(0, len(ids), 500):
                        present |= set(connection.execute(
                            sa.select(served_table.c.request_id).where(
                                served_table.c.request_id.in_(ids[start:start + 500]))).scalars())
                    missing = self._not_erased(
                        connection, [row for row in rows if row["request_id"] not in present])
                    if missing:
                        connection.execute(sa.insert(served_table), missing)
                        _settle_feedback(connection, missing)
            except Exception as exc:  # the database may be down: the next start tries again
                log.error("audit journal %s not replayed: %s", path, exc)
                continue
            path.unlink(missing_ok=True)
            log.warning("audit journal %s: %d rows of a process that died committed (%d were "
                        "already)", path.name, len(missing), len(rows) - len(missing))

    def _write(self, rows: list[dict]) -> None:
        with begin_write(self.engine) as connection:
            rows = self._not_erased(connection, rows)
            if rows:
                connection.execute(sa.insert(served_table), rows)
                _settle_feedback(connection, rows)

    def _not_erased(self, connection: sa.Connection, rows: list[dict]) -> list[dict]:
        if not self.secret:
            return rows
        hashes = {row["customer_id"]: subject_hash(row["customer_id"], self.secret) for row in rows}
        erased: dict[str, datetime] = {}
        for digest, moment in connection.execute(
                sa.select(erasures_table.c.subject_hash, erasures_table.c.erased_at).where(
                    erasures_table.c.subject_hash.in_(set(hashes.values())))):
            erased[digest] = max(utc(moment), erased.get(digest, utc(moment)))
        if not erased:
            return rows
        kept = [row for row in rows if not (hashes[row["customer_id"]] in erased
                                           and row["served_at"] <= erased[hashes[row["customer_id"]]])]
        log.info("audit: %d rows of erased customers not written", len(rows) - len(kept))
        return kept


def _settle_feedback(connection: sa.Connection, rows: list[dict]) -> None:
    """Feedback taken before these responses' records were written: was its offer served?"""
    offers = {row["request_id"]: {o for o, _ in row["offers"]} for row in rows}
    waiting = connection.execute(
        sa.select(feedback_table.c.id, feedback_table.c.request_id, feedback_table.c.offer_id)
        .where(feedback_table.c.request_id.in_(list(offers)),
               feedback_table.c.offer_served.is_(None))).all()
    for row in waiting:
        served = row.offer_id in offers[row.request_id]
        connection.execute(sa.update(feedback_table).where(feedback_table.c.id == row.id)
                           .values(offer_served=served))
        if not served:
            log.warning("feedback %d named offer %r, not served in %s", row.id, row.offer_id,
                        row.request_id)


def _request_latency_ms(clock: Callable[[], float]) -> float | None:
    from flask import g, has_request_context

    if not has_request_context():
        return None
    started = g.get("started")
    return None if started is None else (clock() - started) * 1000


# --- queries -----------------------------------------------------------------------------------
def served_record(engine: Engine, request_id: str, writer: AuditWriter | None = None) -> dict | None:
    """{"customer_id", "offers": [offer ids]} of a served response, including one still queued."""
    if writer is not None:
        row = writer.pending(request_id)
        if row is not None:
            return {"customer_id": row["customer_id"], "offers": [o for o, _ in row["offers"]]}
    query = sa.select(served_table.c.customer_id, served_table.c.offers).where(
        served_table.c.request_id == request_id)
    with engine.connect() as connection:
        found = connection.execute(query).first()
    if found is None:
        return None
    return {"customer_id": found.customer_id, "offers": [o for o, _ in found.offers]}


def customer_records(
    engine: Engine, customer_id: str, since: datetime | None, until: datetime | None,
) -> list:
    query = sa.select(served_table).where(served_table.c.customer_id == customer_id)
    if since is not None:
        query = query.where(served_table.c.served_at >= since)
    if until is not None:
        query = query.where(served_table.c.served_at < until)
    query = query.order_by(served_table.c.served_at.desc(), served_table.c.request_id)
    with engine.connect() as connection:
        return connection.execute(query).all()


def purge(engine: Engine, days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete served responses and feedback older than `days`, and cases closed before then.
    Returns rows removed per table."""
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with begin_write(engine) as connection:
        served = connection.execute(
            sa.delete(served_table).where(served_table.c.served_at < cutoff)).rowcount
        feedback = connection.execute(
            sa.delete(feedback_table).where(feedback_table.c.created_at < cutoff)).rowcount
        cases = connection.execute(sa.delete(cases_table).where(
            cases_table.c.status.in_(CLOSED_STATUSES), cases_table.c.updated_at < cutoff)).rowcount
    return {"served_responses": served, "feedback": feedback, "cases": cases}


# --- erasure ---------------------------------------------------------------------------------------
def subject_hash(customer_id: str, secret: str) -> str:
    """How a tombstone names an erased customer: an HMAC of the id, never the id itself."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def erased_ids(engine: Engine) -> set[str]:
    """Subject hashes of every erased customer (training excludes these, see `is_erased`)."""
    with engine.connect() as connection:
        return set(connection.execute(sa.select(erasures_table.c.subject_hash)).scalars())


def is_erased(customer_ids: Iterable[str], hashes: set[str], secret: str) -> set[str]:
    """The ids among `customer_ids` whose erasure is recorded (hash each with the same secret)."""
    return {c for c in customer_ids if subject_hash(str(c), secret) in hashes}
