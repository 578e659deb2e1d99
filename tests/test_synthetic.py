"""The synthetic storefront: deterministic, the promised shape, and a ground truth that holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.errors import DataError
from recommender.loaders import generate_storefront, load_synthetic, synthetic
from recommender.loaders.synthetic import (
    CATEGORIES,
    DRIVER_ATTRIBUTES,
    SEGMENT_PREFERENCES,
    Storefront,
)
from recommender.taxonomy import HISTORY

SMALL = {"n_customers": 300, "n_offers": 60}


@pytest.fixture(scope="module")
def store() -> Storefront:
    return generate_storefront()


def with_category(store: Storefront) -> pd.DataFrame:
    dataset = store.dataset
    return dataset.interactions.join(dataset.offers["category"], on="offer_id")


def share_in(interactions: pd.DataFrame, categories: pd.Series) -> pd.Series:
    """Per customer, the share of their interactions in the given per-customer categories."""
    wanted = categories.reindex(interactions["customer_id"]).to_numpy()
    inside = [c in w for c, w in zip(interactions["category"], wanted, strict=True)]
    return pd.Series(inside).groupby(interactions["customer_id"].to_numpy()).mean()


def test_same_seed_same_data_other_seed_other_data():
    first, again = generate_storefront(seed=7, **SMALL), generate_storefront(seed=7, **SMALL)
    for name in ("customers", "offers", "interactions"):
        pd.testing.assert_frame_equal(getattr(first.dataset, name), getattr(again.dataset, name))
    pd.testing.assert_series_equal(first.driver, again.driver)
    assert first.dataset.fingerprint() == again.dataset.fingerprint()
    other = generate_storefront(seed=8, **SMALL)
    assert other.dataset.fingerprint() != first.dataset.fingerprint()
    assert not other.driver.equals(first.driver)
    assert load_synthetic(seed=7, **SMALL).fingerprint() == first.dataset.fingerprint()


def test_defaults_are_sized(store):
    dataset = store.dataset
    assert (dataset.n_customers, dataset.n_offers) == (3000, 300)
    counts = dataset.interactions.groupby("customer_id").size().reindex(dataset.customer_ids)
    assert counts.min() >= 5 and counts.max() <= 40
    assert not dataset.interactions.duplicated(["customer_id", "offer_id"]).any()


def test_tables_follow_the_dataset_contract(store):
    dataset = store.dataset
    taxonomy = dataset.taxonomy
    assert {a: taxonomy.category_of(a) for a in dataset.customer_attributes()} == {
        "age_band": "demographics", "gender": "demographics", "region": "location",
        "occupation": "profile"}
    offers = dataset.offers
    assert set(offers["category"]) == set(CATEGORIES) and len(CATEGORIES) == 10
    assert set(offers["price_band"]) == {"low", "mid", "high"}
    assert offers["title"].str.fullmatch(r"[A-Z][\w' -]+ \((low|mid|high)\)").all()
    interactions = dataset.interactions
    assert set(interactions["kind"]) == {"purchase", "click"}
    assert (interactions["weight"] == 1.0).all()
    assert interactions["timestamp"].is_monotonic_increasing
    span = interactions["timestamp"].max() - interactions["timestamp"].min()
    assert 360 * 86400 < span <= 365 * 86400


def test_driver_truth_is_labelled_consistently(store):
    assert set(store.driver) == {HISTORY, *DRIVER_ATTRIBUTES}
    history = store.driver == HISTORY
    assert store.driver_attribute[history].isna().all()
    assert (store.driver_attribute[~history] == store.driver[~history].map(DRIVER_ATTRIBUTES)).all()
    assert 0.3 < history.mean() < 0.5  # the default mix gives history 40%
    customers = store.dataset.customers
    for category, attribute in DRIVER_ATTRIBUTES.items():
        rows = store.driver == category
        expected = customers.loc[rows, attribute].map(SEGMENT_PREFERENCES[attribute])
        assert (store.preferred_categories[rows].map(set) == expected.map(set)).all()


@pytest.mark.parametrize("category, attribute", sorted(DRIVER_ATTRIBUTES.items()))
def test_segment_drivers_concentrate_in_their_segment_categories(store, category, attribute):
    customers = store.dataset.customers
    segment_categories = customers[attribute].map(SEGMENT_PREFERENCES[attribute])
    share = share_in(with_category(store), segment_categories)
    driven = share[store.driver[share.index] == category].mean()
    history = share[store.driver[share.index] == HISTORY].mean()
    assert driven > 0.55  # most of their choices, though their group is half noise
    assert history < 0.3  # ~2 of 10 categories: this attribute says nothing about them
    assert driven > 2.5 * history


def test_history_drivers_follow_their_own_past(store):
    interactions = with_category(store)
    history = store.driver[store.driver == HISTORY].index
    mine = interactions[interactions["customer_id"].isin(history)
                        & ~store.noisy.reindex(interactions["customer_id"]).to_numpy()]
    position = mine.groupby("customer_id").cumcount()
    size = mine.groupby("customer_id")["offer_id"].transform("size")
    early, late = mine[position < size // 2], mine[position >= size // 2]
    top_two = early.groupby("customer_id")["category"].agg(
        lambda c: tuple(c.value_counts().index[:2]))
    assert share_in(late, top_two).mean() > 0.5  # ~0.2 if the past said nothing
    # and their favourites are personal: they do not cluster by any attribute
    favourites = store.preferred_categories[history].map(frozenset)
    customers = store.dataset.customers.loc[history]
    for attribute in DRIVER_ATTRIBUTES.values():
        assert favourites.groupby(customers[attribute]).nunique().min() > 10


def test_planted_disparity_hits_one_gender(store):
    assert store.disparity_group == ("gender", "female") and store.disparity == 0.5
    assert (store.noisy == (store.dataset.customers["gender"] == "female")).all()
    share = share_in(with_category(store), store.preferred_categories)
    by_noise = share.groupby(store.noisy[share.index]).mean()
    assert by_noise[False] - by_noise[True] > 0.2
    fair = generate_storefront(disparity=0.0)
    share = share_in(with_category(fair), fair.preferred_categories)
    assert not fair.noisy.any()
    by_gender = share.groupby(fair.dataset.customers["gender"].reindex(share.index)).mean()
    assert abs(by_gender["female"] - by_gender["male"]) < 0.03


def test_strength_zero_erases_the_segment_signal():
    store = generate_storefront(seed=3, strength=0.0, disparity=0.0, **SMALL)
    share = share_in(with_category(store), store.preferred_categories)
    assert share.mean() < 0.3


@pytest.mark.parametrize("options, field", [
    ({"n_offers": 5}, "n_offers"),
    ({"strength": 1.5}, "strength"),
    ({"interactions_per_customer": (0, 3)}, "interactions_per_customer"),
    ({"drivers": {"shoe_size": 1.0}}, "drivers"),
    ({"disparity_group": "robots"}, "disparity_group"),
])
def test_bad_parameters_are_refused(options, field):
    with pytest.raises(DataError) as error:
        generate_storefront(**{**SMALL, **options})
    assert error.value.field == field


def test_tiny_storefront_caps_interactions_at_offer_count():
    dataset = load_synthetic(n_customers=20, n_offers=10)
    counts = dataset.interactions.groupby("customer_id").size()
    assert counts.max() <= 10 and counts.min() >= 5
    assert np.isin(dataset.offers["category"], CATEGORIES).all()


# --- the sparse sampler (large storefronts: time and memory linear in the interactions) --------
@pytest.fixture(scope="module")
def sparse() -> Storefront:
    return generate_storefront(sampler="sparse")


def test_auto_sampler_keeps_the_dense_data_below_its_threshold(monkeypatch):
    dense = generate_storefront(seed=7, sampler="dense", **SMALL)
    assert generate_storefront(seed=7, **SMALL).dataset.fingerprint() == dense.dataset.fingerprint()
    sparse = generate_storefront(seed=7, sampler="sparse", **SMALL)
    assert sparse.dataset.fingerprint() != dense.dataset.fingerprint()
    # the customers, offers and truth come before the interactions: the same in both
    for name in ("customers", "offers"):
        pd.testing.assert_frame_equal(getattr(sparse.dataset, name), getattr(dense.dataset, name))
    pd.testing.assert_series_equal(sparse.preferred_categories, dense.preferred_categories)
    monkeypatch.setattr(synthetic, "DENSE_MAX_CELLS", SMALL["n_customers"] * SMALL["n_offers"] - 1)
    assert generate_storefront(seed=7, **SMALL).dataset.fingerprint() \
        == sparse.dataset.fingerprint()


def test_sparse_sampler_is_deterministic():
    first = generate_storefront(seed=7, sampler="sparse", **SMALL)
    again = generate_storefront(seed=7, sampler="sparse", **SMALL)
    pd.testing.assert_frame_equal(first.dataset.interactions, again.dataset.interactions)
    other = generate_storefront(seed=8, sampler="sparse", **SMALL)
    assert other.dataset.fingerprint() != first.dataset.fingerprint()


def test_sparse_sampler_draws_distinct_offers_in_range(sparse, store):
    interactions = sparse.dataset.interactions
    counts = interactions.groupby("customer_id").size().reindex(sparse.dataset.customer_ids)
    assert counts.min() >= 5 and counts.max() <= 40 and counts.notna().all()
    assert 20 < counts.mean() < 25  # uniform over 5..40
    assert not interactions.duplicated(["customer_id", "offer_id"]).any()
    # the same table as the dense sampler's: columns, types, order by time
    dense = store.dataset.interactions
    assert list(interactions.columns) == list(dense.columns)
    assert (interactions.dtypes == dense.dtypes).all()
    assert interactions.index.equals(pd.RangeIndex(len(interactions)))
    assert interactions["timestamp"].is_monotonic_increasing
    assert set(interactions["kind"]) == {"purchase", "click"}
    assert 0.25 < (interactions["kind"] == "click").mean() < 0.35


@pytest.mark.parametrize("category, attribute", sorted(DRIVER_ATTRIBUTES.items()))
def test_sparse_segment_drivers_concentrate_in_their_segment_categories(sparse, category,
                                                                        attribute):
    customers = sparse.dataset.customers
    segment_categories = customers[attribute].map(SEGMENT_PREFERENCES[attribute])
    share = share_in(with_category(sparse), segment_categories)
    driven = share[sparse.driver[share.index] == category]
    history = share[sparse.driver[share.index] == HISTORY].mean()
    # chance is 2 of 10 categories; the noisy half of them still buys half in their categories
    assert driven[~sparse.noisy[driven.index]].mean() > 0.7
    assert driven.mean() > 0.55
    assert history < 0.3
    assert driven.mean() > 2.5 * history


def test_sparse_history_drivers_follow_their_own_past(sparse):
    interactions = with_category(sparse)
    history = sparse.driver[sparse.driver == HISTORY].index
    mine = interactions[interactions["customer_id"].isin(history)
                        & ~sparse.noisy.reindex(interactions["customer_id"]).to_numpy()]
    position = mine.groupby("customer_id").cumcount()
    size = mine.groupby("customer_id")["offer_id"].transform("size")
    early, late = mine[position < size // 2], mine[position >= size // 2]
    top_two = early.groupby("customer_id")["category"].agg(
        lambda c: tuple(c.value_counts().index[:2]))
    assert share_in(late, top_two).mean() > 0.5
    # mostly in their own favourite categories (chance: 2 of 10), noisy half included
    assert share_in(interactions, sparse.preferred_categories)[history].mean() > 0.55


def test_sparse_planted_disparity_and_null_group():
    # a catalog large enough for 40 distinct offers to fit in two categories (60 offers is not)
    store = generate_storefront(n_customers=600, n_offers=600, seed=2, sampler="sparse",
                                drivers={HISTORY: 0.5, "random": 0.5})
    share = share_in(with_category(store), store.preferred_categories)
    driver = store.driver[share.index]
    noisy = store.noisy[share.index]
    assert share[(driver == "random")].mean() < 0.3  # uniform: about 2 of 10 categories
    assert share[(driver == HISTORY) & ~noisy].mean() - share[(driver == HISTORY) & noisy].mean() \
        > 0.2


def test_sparse_sampler_fills_a_catalog_barely_larger_than_the_counts():
    # every customer needs 8 to 10 of 10 offers: the rounds end with uniform top-ups
    store = generate_storefront(n_customers=50, n_offers=10, sampler="sparse",
                                interactions_per_customer=(8, 10))
    counts = store.dataset.interactions.groupby("customer_id").size()
    assert len(counts) == 50 and counts.min() >= 8 and counts.max() <= 10
    assert not store.dataset.interactions.duplicated(["customer_id", "offer_id"]).any()


def test_unknown_sampler_is_refused():
    with pytest.raises(DataError) as error:
        generate_storefront(sampler="quantum", **SMALL)
    assert error.value.field == "sampler"
