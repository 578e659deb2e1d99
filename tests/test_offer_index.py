"""Approximate top-k over a large catalog against exact ranking: the index may only miss an
offer, never misstate one. Through the online store, as a worker serves a published version."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from trained import artifact_for

from recommender import ranking
from recommender.loaders.synthetic import load_synthetic
from serving.publish import publish
from serving.redis_store import ModelCache, RedisModelStore, state_from_record


@cache
def catalog():
    """The served model on a storefront with a catalog large enough to need ranking in depth."""
    return artifact_for(load_synthetic(0, n_customers=1500, n_offers=2000))


@pytest.fixture
def indexed(redis_client, redis_prefix):
    artifact = catalog()
    publish(artifact, redis_client, redis_prefix, progress=False, offer_index=True)
    store = RedisModelStore(redis_client, redis_prefix)
    return artifact, store, ModelCache(store).snapshot()


def test_index_recall_under_random_consent_and_exact_scores(indexed):
    artifact, store, loaded = indexed
    assert loaded.offer_index is not None and loaded.offer_index.n_offers == 2000
    rng = np.random.default_rng(0)
    customers = rng.choice(artifact.customers.index, 150, replace=False)
    found = total = 0
    for customer_id in customers:
        record, history, _, _ = store.fetch_customer(loaded.version, customer_id)
        state = state_from_record(loaded, customer_id, record, history)
        allowed = rng.random(len(artifact.model.categories)) < 0.6
        columns, scores = ranking.rank(loaded, state, allowed, 10)
        want, want_scores = ranking.rank(artifact, state, allowed, 10)
        found += len(set(columns.tolist()) & set(want.tolist()))
        total += len(want)
        # what is shown is scored exactly, in order, and never a past offer
        exact = ranking.scores(artifact.model, state, allowed)
        np.testing.assert_allclose(scores, exact[columns], rtol=0, atol=1e-12)
        assert np.all(np.diff(scores) <= 0)
        if allowed[artifact.model.categories.index("interaction_history")]:
            assert not set(loaded.offers.index[columns]) & set(state.history)
    assert found / total >= 0.98, f"recall@10 {found / total:.3f}"


def test_small_catalogs_are_published_without_an_index(redis_client, redis_prefix):
    publish(artifact_for(load_synthetic(0, n_customers=200, n_offers=60)), redis_client,
            redis_prefix, progress=False)
    assert ModelCache(RedisModelStore(redis_client, redis_prefix)).snapshot().offer_index is None
