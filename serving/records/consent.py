"""Consent records in the SQL database: each customer's current choice, and every change to it.

A change is one transaction: the record (with a version number) and a history row (who, when,
from where, old and new value) commit together or not at all, and `set` returns only after the
commit. Writers never lose an update: a write applies only to the version it read, and otherwise
starts over from a fresh read, so the history is an unbroken chain of true old -> new values.

The request path reads through `decide`, which fails closed: when the record cannot be read, the
customer gets non-personalized offers, never personalized ones (docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import random
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from recommender.consent import (
    LEVELS,
    NO_PERSONAL_DATA,
    OPT_IN,
    OPT_OUT,
    Consent,
    default_consent,
)
from recommender.errors import DataError, TrustRecError
from recommender.taxonomy import Taxonomy
from serving.records.database import begin_write, metadata

log = logging.getLogger(__name__)

SOURCES = ("customer", "storefront", "admin")
MAX_ID_LENGTH = 128
MAX_ATTEMPTS = 100  # writes without expected_version retry this often under contention


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


consent_table = sa.Table(
    "consent",
    metadata,
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("allowed", sa.Text, nullable=False),  # JSON list of category names, sorted
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(_one_of("level", LEVELS), name="ck_consent_level"),
    sa.CheckConstraint("version >= 1", name="ck_consent_version"),
)

history_table = sa.Table(
    "consent_history",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
        autoincrement=True,
    ),
    sa.Column("customer_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # the version this change created
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("old_value", sa.Text, nullable=True),  # JSON consent; NULL for the first record
    sa.Column("new_value", sa.Text, nullable=False),  # JSON consent
    # One history row per version: the database itself refuses a forked chain.
    sa.UniqueConstraint("customer_id", "version", name="uq_consent_history_version"),
    sa.CheckConstraint(_one_of("source", SOURCES), name="ck_consent_history_source"),
)


class ConsentConflict(TrustRecError):
    """The record changed since the version the writer expected: re-read, then decide again."""

    def __init__(self, customer_id: str, expected: int | None, actual: int | None) -> None:
        self.customer_id, self.expected, self.actual = customer_id, expected, actual
        found = "a concurrent change" if actual is None else f"version {actual}"
        super().__init__(
            f"consent of customer {customer_id!r} changed: expected version {expected}, "
            f"found {found}; re-read and retry"
        )


class _LostRace(Exception):
    """Another writer changed the record between our read and our write."""


@dataclass(frozen=True)
class ConsentRecord:
    customer_id: str
    consent: Consent
    version: int
    updated_at: datetime  # UTC

    def to_dict(self) -> dict:
        return {
            "customer_id": self.customer_id,
            **self.consent.to_dict(),
            "version": self.version,
            "updated_at": self.updated_at.isoformat(),
        }


def check_name(value: object, field: str = "customer_id") -> str:
    """`value` if it is a usable identifier: 1 to 128 characters, no control characters."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise DataError(f"{field} is longer than {MAX_ID_LENGTH} characters", field=field)
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise DataError(f"{field} contains control characters", field=field)
    if "\ufffd" in value:  # what decoding leaves of bytes that were not UTF-8
        raise DataError(f"{field} is not valid UTF-8", field=field)
    return value


class ConsentStore:
    """Consent records of one deployment: `regime` says what customers without a record get.

    `on_change(customer_id)` runs after every committed change or deletion (serving drops its
    cache entry there). If it raises, the change stays committed and the exception propagates,
    so the caller knows a cache may still hold the old value.
    """

    def __init__(
        self, engine: Engine, taxonomy: Taxonomy, regime: str = OPT_OUT,
        on_change: Callable[[str], None] | None = None,
        erased: Callable[[str], bool] | None = None,
    ) -> None:
        self.engine, self.taxonomy, self.regime, self.on_change = (
            engine, taxonomy, regime, on_change
        )
        self.erased = erased
        self.default = default_consent(taxonomy, regime)  # also rejects an unknown regime

    # --- reading ----------------------------------------------------------------------------
    def get(self, customer_id: str) -> Consent:
        """The customer's consent: their record, or the regime's default when they have none."""
        record = self.get_record(customer_id)
        return self.default_for(customer_id) if record is None else record.consent

    def default_for(self, customer_id: str) -> Consent:
        """The consent of a customer without a record: the regime's default, but nothing at all
        for an erased customer (`erased`), until they choose again. An erasure never widens
        what may be used, even where the regime's default allows everything."""
        if self.erased is not None and self.regime != OPT_IN and self.erased(customer_id):
            return NO_PERSONAL_DATA
        return self.default

    def get_record(self, customer_id: str) -> ConsentRecord | None:
        customer_id = check_name(customer_id)
        query = sa.select(consent_table).where(consent_table.c.customer_id == customer_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return ConsentRecord(
            customer_id, self._decode(row.allowed, row.level), row.version, _utc(row.updated_at)
        )

    def consents(self) -> dict[str, Consent]:
        """Every stored consent by customer id (a training run reads them once)."""
        query = sa.select(consent_table.c.customer_id, consent_table.c.allowed, consent_table.c.level)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return {row.customer_id: self._decode(row.allowed, row.level) for row in rows}

    def decide(self, customer_id: str) -> Consent:
        """`get`, failing closed: any error means no personal data. Never raises."""
        found = self.read(customer_id)
        return NO_PERSONAL_DATA if found is None else found

    def read(self, customer_id: str) -> Consent | None:
        """`get`, or None (logged) when the record cannot be read, whatever the reason: the one
        place that decides what failing closed means. Never raises."""
        try:
            return self.get(customer_id)
        except Exception as exc:  # anything at all: personalizing on a guess is the one bad outcome
            log.warning(
                "consent of customer %r unreadable, serving non-personalized offers: %s",
                customer_id, exc,
            )
            return None

    def history(self, customer_id: str) -> list[dict]:
        """Every change, oldest first: version, changed_at (ISO 8601), actor, source, old, new."""
        customer_id = check_name(customer_id)
        query = (
            sa.select(history_table)
            .where(history_table.c.customer_id == customer_id)
            # Versions follow commit order; on PostgreSQL ids follow insert order, which may not.
            .order_by(history_table.c.version)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "version": row.version,
                "changed_at": _utc(row.changed_at).isoformat(),
                "actor": row.actor,
                "source": row.source,
                "old": None if row.old_value is None else json.loads(row.old_value),
                "new": json.loads(row.new_value),
            }
            for row in rows
        ]

    # --- writing ----------------------------------------------------------------------------
    def set(
        self, customer_id: str, consent: Consent | Mapping, *, actor: str, source: str,
        expected_version: int | None = None,
    ) -> int:
        """Record a new consent; returns its version once committed.

        `consent` may be a Consent or its dict form. With `expected_version` (0: no record yet)
        the write happens only if the record is still at that version, else ConsentConflict.
        Without it, a write that races another one re-reads and applies on top of it.
        """
        customer_id = check_name(customer_id)
        actor = check_name(actor, "actor")
        if source not in SOURCES:
            raise DataError(
                f"unknown source {source!r}; expected one of {', '.join(SOURCES)}", field="source"
            )
        consent = self._check(consent)
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
            or expected_version < 0
        ):
            raise DataError("expected_version must be an integer >= 0", field="expected_version")

        for attempt in range(MAX_ATTEMPTS):
            try:
                version = self._write(customer_id, consent, actor, source, expected_version)
            except _LostRace:
                if expected_version is not None:
                    raise ConsentConflict(customer_id, expected_version, None) from None
                # Jittered backoff, so writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))
                continue
            self._notify(customer_id)
            return version
        raise ConsentConflict(customer_id, None, None)

    def _write(
        self, customer_id: str, consent: Consent, actor: str, source: str,
        expected_version: int | None,
    ) -> int:
        """One attempt, in one transaction: record, then history. Inputs are already checked."""
        now = datetime.now(UTC)
        allowed = json.dumps(sorted(consent.allowed))
        with begin_write(self.engine) as connection:
            row = connection.execute(
                sa.select(consent_table).where(consent_table.c.customer_id == customer_id)
            ).first()
            current = 0 if row is None else row.version
            if expected_version is not None and expected_version != current:
                raise ConsentConflict(customer_id, expected_version, current)
            values = {"allowed": allowed, "level": consent.level, "updated_at": now}
            if row is None:
                version, old = 1, None
                self._insert_record(connection, customer_id, values)
            else:
                version, old = row.version + 1, _stored_value(row.allowed, row.level)
                # Matching the old value too, not only the version: a record erased and
                # re-created meanwhile restarts at version 1 and must not pass for the one read.
                updated = connection.execute(
                    sa.update(consent_table)
                    .where(
                        consent_table.c.customer_id == customer_id,
                        consent_table.c.version == row.version,
                        consent_table.c.allowed == row.allowed,
                        consent_table.c.level == row.level,
                    )
                    .values(version=version, **values)
                )
                if updated.rowcount != 1:
                    raise _LostRace
            connection.execute(
                sa.insert(history_table).values(
                    customer_id=customer_id, version=version, changed_at=now, actor=actor,
                    source=source, old_value=old, new_value=_encode(consent),
                )
            )
        return version

    @staticmethod
    def _insert_record(connection: Connection, customer_id: str, values: dict) -> None:
        try:
            connection.execute(
                sa.insert(consent_table).values(customer_id=customer_id, version=1, **values)
            )
        except sa.exc.IntegrityError:
            # Values are checked, so only the key can clash: another writer created the record.
            raise _LostRace from None

    def _notify(self, customer_id: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(customer_id)
        except Exception:
            log.error("consent of customer %r committed, but on_change failed", customer_id)
            raise

    # --- values -----------------------------------------------------------------------------
    def _check(self, consent: Consent | Mapping) -> Consent:
        if isinstance(consent, Consent):
            return consent.validate(self.taxonomy)
        if isinstance(consent, Mapping):
            return Consent.from_dict(consent, self.taxonomy)
        raise DataError("consent must be a Consent or its dict form", field="consent")

    def _decode(self, allowed: str, level: str) -> Consent:
        names = _parse_allowed(allowed)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise DataError("stored consent is corrupt", field="allowed")
        # A category the taxonomy no longer defines cannot be used by any model: drop it.
        known = set(self.taxonomy.categories)
        return Consent(frozenset(name for name in names if name in known), level)


def _encode(consent: Consent) -> str:
    return json.dumps(consent.to_dict(), sort_keys=True)


def _parse_allowed(allowed: str) -> object:
    try:
        return json.loads(allowed)
    except ValueError:
        return allowed  # corrupt: callers reject it, or keep it verbatim as history


def _stored_value(allowed: str, level: str) -> str:
    """The record as it was stored, for history: not filtered through today's taxonomy."""
    return json.dumps({"allowed": _parse_allowed(allowed), "level": level}, sort_keys=True)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
