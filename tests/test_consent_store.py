"""Consent records against real databases: a SQLite file always, PostgreSQL when it is reachable.

Set TRUSTREC_TEST_POSTGRES_URL to point at another server; each test gets a schema of its own
there (via search_path), dropped afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from recommender.consent import (
    FULL,
    NO_PERSONAL_DATA,
    NONE,
    OPT_IN,
    SEGMENT,
    Consent,
    default_consent,
)
from recommender.errors import DataError
from recommender.taxonomy import HISTORY, Taxonomy
from serving.records.consent import ConsentConflict, ConsentStore, consent_table, history_table
from serving.records.database import create_schema, make_engine

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = Taxonomy.default()
LOCATION = Consent(frozenset({"location"}), FULL)
PROFILE = Consent(frozenset({"location", "profile"}), SEGMENT)
EVERYTHING = Consent(frozenset(TAXONOMY.categories), FULL)


# --- backends -------------------------------------------------------------------------------------
@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def changes():
    """Customer ids the on_change hook was called with."""
    return []


@pytest.fixture
def store(engine, changes):
    return ConsentStore(engine, TAXONOMY, on_change=changes.append)


def row_counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (consent_table, history_table)
        )


# --- reading and writing --------------------------------------------------------------------------
def test_schema_creation_twice_is_harmless(engine, store):
    store.set("c1", LOCATION, actor="customer:c1", source="customer")
    create_schema(engine)
    assert store.get("c1") == LOCATION
    assert row_counts(engine) == (1, 1)


@pytest.mark.parametrize("regime", ["opt_in", "opt_out"])
def test_no_record_means_the_regime_default(engine, regime):
    store = ConsentStore(engine, TAXONOMY, regime=regime)
    assert store.get_record("c1") is None
    assert store.get("c1") == store.decide("c1") == default_consent(TAXONOMY, regime)
    assert store.history("c1") == []


def test_unknown_regime_is_rejected(engine):
    with pytest.raises(DataError) as error:
        ConsentStore(engine, TAXONOMY, regime="opt_sideways")
    assert error.value.field == "regime"


def test_set_returns_the_committed_version(store):
    before = datetime.now(UTC)
    assert store.set("c1", LOCATION, actor="customer:c1", source="customer") == 1
    assert store.set("c1", PROFILE.to_dict(), actor="customer:c1", source="customer") == 2
    record = store.get_record("c1")
    assert (record.customer_id, record.consent, record.version) == ("c1", PROFILE, 2)
    assert record.updated_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= record.updated_at <= datetime.now(UTC)
    assert store.get("c1") == store.decide("c1") == PROFILE
    assert store.get("c2") == EVERYTHING  # other customers are untouched (opt-out default)


def test_history_records_who_when_old_new_and_source(store):
    store.set("c1", LOCATION, actor="customer:c1", source="customer")
    store.set("c1", PROFILE, actor="shop-backend", source="storefront")
    store.set("c1", EVERYTHING, actor="admin:alice", source="admin")
    history = store.history("c1")
    assert [(h["version"], h["actor"], h["source"]) for h in history] == [
        (1, "customer:c1", "customer"),
        (2, "shop-backend", "storefront"),
        (3, "admin:alice", "admin"),
    ]
    assert [h["old"] for h in history] == [None, LOCATION.to_dict(), PROFILE.to_dict()]
    assert [h["new"] for h in history] == [c.to_dict() for c in (LOCATION, PROFILE, EVERYTHING)]
    times = [datetime.fromisoformat(h["changed_at"]) for h in history]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert times[-1] == store.get_record("c1").updated_at
    json.dumps(history)  # ready for the API as it is


BAD_WRITES = [
    pytest.param({"consent": Consent(frozenset({"shoe_size"}), FULL)}, "allowed", id="category"),
    pytest.param({"consent": {"allowed": ["shoe_size"], "level": FULL}}, "allowed", id="as-dict"),
    pytest.param({"consent": {"allowed": ["location"], "level": "max"}}, "level", id="level"),
    pytest.param({"consent": ["location"]}, "consent", id="not-a-consent"),
    pytest.param({"customer_id": ""}, "customer_id", id="empty-id"),
    pytest.param({"customer_id": "c" * 129}, "customer_id", id="long-id"),
    pytest.param({"customer_id": "c1\n"}, "customer_id", id="newline-id"),
    pytest.param({"customer_id": "c\x00"}, "customer_id", id="nul-id"),
    pytest.param({"customer_id": 42}, "customer_id", id="int-id"),
    pytest.param({"source": "robot"}, "source", id="source"),
    pytest.param({"actor": ""}, "actor", id="actor"),
    pytest.param({"actor": "x\x1b[2J"}, "actor", id="control-actor"),
    pytest.param({"expected_version": -1}, "expected_version", id="version"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_WRITES)
def test_invalid_input_writes_nothing(engine, store, changes, bad, field):
    store.set("c1", LOCATION, actor="customer:c1", source="customer")
    write = {
        "customer_id": "c1", "consent": PROFILE, "actor": "customer:c1", "source": "customer",
    } | bad
    with pytest.raises(DataError) as error:
        store.set(write.pop("customer_id"), write.pop("consent"), **write)
    assert error.value.field == field
    assert row_counts(engine) == (1, 1)
    assert store.get_record("c1").version == 1 and store.get("c1") == LOCATION
    assert changes == ["c1"]  # from the first, valid write only


def test_longest_valid_id_is_accepted(store):
    customer = "c" * 128
    store.set(customer, LOCATION, actor="a" * 128, source="customer")
    assert store.get(customer) == LOCATION


def test_version_conflict_raises_and_keeps_the_record(engine, store, changes):
    assert store.set("c1", LOCATION, actor="a", source="customer", expected_version=0) == 1
    assert store.set("c1", PROFILE, actor="a", source="customer", expected_version=1) == 2
    with pytest.raises(ConsentConflict) as error:
        store.set("c1", EVERYTHING, actor="b", source="admin", expected_version=1)
    assert (error.value.expected, error.value.actual) == (1, 2)
    with pytest.raises(ConsentConflict):
        store.set("c2", EVERYTHING, actor="b", source="admin", expected_version=3)
    record = store.get_record("c1")
    assert (record.consent, record.version) == (PROFILE, 2)
    assert store.get_record("c2") is None
    assert row_counts(engine) == (1, 2)
    assert changes == ["c1", "c1"]


def test_concurrent_writers_lose_no_update(engine):
    """8 threads x 25 writes to one customer, each thread toggling its own category."""
    n_threads, n_writes = 8, 25
    wide = Taxonomy(
        categories=(HISTORY, *(f"category_{t}" for t in range(1, n_threads))),
        purposes={}, attributes={},
    )
    store = ConsentStore(engine, wide)

    def written(t: int, k: int) -> Consent:
        return Consent(frozenset({wide.categories[t]}) if k % 2 == 0 else frozenset(), FULL)

    start, errors = threading.Barrier(n_threads), []

    def writer(t: int) -> None:
        try:
            start.wait()
            for k in range(n_writes):
                store.set("c1", written(t, k), actor=f"thread-{t}", source="storefront")
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    total = n_threads * n_writes
    history = store.history("c1")
    assert store.get_record("c1").version == total
    assert [h["version"] for h in history] == list(range(1, total + 1))
    assert history[0]["old"] is None
    for previous, change in zip(history, history[1:], strict=False):
        assert change["old"] == previous["new"]  # an unbroken chain of true old values
    assert history[-1]["new"] == store.get("c1").to_dict()
    for t in range(n_threads):  # every write is there, in the order its thread made it
        mine = [h["new"] for h in history if h["actor"] == f"thread-{t}"]
        assert mine == [written(t, k).to_dict() for k in range(n_writes)]


# --- durability and failures ----------------------------------------------------------------------
READ_BACK = """
import json, sys
from recommender.taxonomy import Taxonomy
from serving.records.consent import ConsentStore
from serving.records.database import make_engine
store = ConsentStore(make_engine(sys.argv[1]), Taxonomy.default())
record, history = store.get_record(sys.argv[2]), store.history(sys.argv[2])
print(json.dumps({"record": record.to_dict(), "history": history}))
"""

WRITE_AND_DIE = """
import os, sys
from recommender.consent import Consent
from recommender.taxonomy import Taxonomy
from serving.records.consent import ConsentStore
from serving.records.database import make_engine
store = ConsentStore(make_engine(sys.argv[1]), Taxonomy.default())
version = store.set(sys.argv[2], Consent(frozenset({"profile"}), "segment"), actor="child",
                    source="admin")
print(version, flush=True)
os._exit(0)  # no clean shutdown: what was acknowledged must already be durable
"""


def run_python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_records_survive_a_restart(database_url, engine, store):
    store.set("c1", LOCATION, actor="customer:c1", source="customer")
    store.set("c1", PROFILE, actor="customer:c1", source="customer")
    engine.dispose()

    seen = json.loads(run_python(READ_BACK, database_url, "c1"))
    assert seen["record"] | {"updated_at": None} == {
        "customer_id": "c1", **PROFILE.to_dict(), "version": 2, "updated_at": None,
    }
    assert [h["new"] for h in seen["history"]] == [LOCATION.to_dict(), PROFILE.to_dict()]

    # The other way round: a process acknowledges a write, then dies without cleaning up.
    assert run_python(WRITE_AND_DIE, database_url, "c1").strip() == "3"
    fresh = make_engine(database_url)
    try:
        record = ConsentStore(fresh, TAXONOMY).get_record("c1")
        assert (record.consent, record.version) == (Consent(frozenset({"profile"}), SEGMENT), 3)
    finally:
        fresh.dispose()


@pytest.mark.parametrize("existing", [True, False], ids=["update", "first-write"])
def test_interrupted_write_keeps_the_previous_record(engine, store, changes, existing):
    """A history row the database refuses (a source outside its CHECK constraint), written after
    the record in the same transaction, must take the record change down with it."""
    if existing:
        store.set("c1", LOCATION, actor="customer:c1", source="customer")
    before = store.get_record("c1"), store.history("c1"), row_counts(engine)
    with pytest.raises(sa.exc.IntegrityError):
        store._write("c1", EVERYTHING, "intruder", "backdoor", None)  # skips input checks
    assert (store.get_record("c1"), store.history("c1"), row_counts(engine)) == before
    assert changes == (["c1"] if existing else [])
    assert store.set("c1", PROFILE, actor="customer:c1", source="customer") == (
        2 if existing else 1
    )


def test_corrupt_record_fails_closed(engine, store):
    store.set("c1", EVERYTHING, actor="customer:c1", source="customer")
    with engine.begin() as connection:
        connection.execute(sa.update(consent_table).values(allowed="{not json"))
    with pytest.raises(DataError):
        store.get("c1")
    assert store.decide("c1").level == NONE
    # A fresh choice replaces the corrupt record; history keeps what was there verbatim.
    assert store.set("c1", LOCATION, actor="admin:alice", source="admin") == 2
    assert store.history("c1")[-1]["old"] == {"allowed": "{not json", "level": FULL}


def test_missing_schema_fails_closed(database_url):
    engine = make_engine(database_url)  # create_schema never called
    try:
        assert ConsentStore(engine, TAXONOMY).decide("c1").level == NONE
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/x", "sqlite:////nonexistent-dir/trustrec/consent.db"],
    ids=["postgresql-down", "sqlite-no-dir"],
)
@pytest.mark.parametrize("regime", ["opt_in", "opt_out"])
def test_unreachable_database_fails_closed(url, regime, caplog):
    engine = make_engine(url)
    try:
        store = ConsentStore(engine, TAXONOMY, regime=regime)
        with pytest.raises(sa.exc.OperationalError):
            store.get("c1")
        assert store.decide("c1") == Consent(frozenset(), NONE)
        assert "non-personalized" in caplog.text
    finally:
        engine.dispose()


def test_decide_never_raises_on_bad_ids(store):
    assert store.decide("") == store.decide("c\n") == store.decide(None) == Consent(
        frozenset(), NONE
    )


def test_categories_dropped_from_the_taxonomy_are_not_used(engine, store):
    store.set("c1", EVERYTHING, actor="customer:c1", source="customer")
    narrow = Taxonomy(categories=(HISTORY, "location"), purposes={}, attributes={})
    assert ConsentStore(engine, narrow).get("c1").allowed == {HISTORY, "location"}


# --- the invalidation hook and erasure ------------------------------------------------------------
def test_on_change_fires_after_commit_only(engine):
    seen = []

    def on_change(customer_id: str) -> None:
        # Another connection must already see the change: it is committed.
        record = store.get_record(customer_id)
        seen.append((customer_id, record and record.version))

    store = ConsentStore(engine, TAXONOMY, on_change=on_change)
    store.set("c1", LOCATION, actor="a", source="customer")
    store.set("c1", PROFILE, actor="a", source="customer", expected_version=1)
    with pytest.raises(ConsentConflict):
        store.set("c1", EVERYTHING, actor="a", source="customer", expected_version=1)
    with pytest.raises(DataError):
        store.set("c1", EVERYTHING, actor="a", source="robot")
    assert seen == [("c1", 1), ("c1", 2)]


def test_failing_hook_propagates_but_the_change_stays(engine):
    def on_change(customer_id: str) -> None:
        raise ConnectionError("cache down")

    store = ConsentStore(engine, TAXONOMY, on_change=on_change)
    with pytest.raises(ConnectionError):
        store.set("c1", LOCATION, actor="a", source="customer")
    assert store.get_record("c1").version == 1


def test_an_erased_customer_gets_nothing_until_they_choose_again(engine):
    erased = {"c1"}
    store = ConsentStore(engine, TAXONOMY, erased=lambda customer_id: customer_id in erased)
    assert store.get("c1") == NO_PERSONAL_DATA  # not the opt-out default of everything
    assert store.get("c2") == EVERYTHING
    assert ConsentStore(engine, TAXONOMY, regime=OPT_IN).get("c1").level == NONE
    store.set("c1", PROFILE, actor="a", source="customer")  # their own choice, after the erasure
    assert store.get("c1") == PROFILE
