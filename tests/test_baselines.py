"""Pure-history baselines: the additive form reproduces each model exactly, scikit-learn
conventions hold, ALS explanations add up, and planted structure is found."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from recommender.data import Dataset
from recommender.models.implicit_models import (
    ALSRecommender,
    BPRRecommender,
    ItemKNNRecommender,
)
from recommender.models.popularity import PopularityRecommender
from recommender.taxonomy import HISTORY, Taxonomy


def make_dataset(histories: list[list[int]], n_offers: int, weights: list[float] | None = None,
                 ) -> Dataset:
    """Customer c interacts with offers histories[c]; weights cycle over the interactions."""
    customer_ids = [f"c{c}" for c in range(len(histories))]
    offer_ids = [f"o{i}" for i in range(n_offers)]
    customers = pd.DataFrame(
        {"age_band": [("25-34", "55-64")[c % 2] for c in range(len(customer_ids))]},
        index=pd.Index(customer_ids, name="customer_id"),
    )
    offers = pd.DataFrame({"title": offer_ids}, index=pd.Index(offer_ids, name="offer_id"))
    rows = [(f"c{c}", f"o{i}") for c, items in enumerate(histories) for i in items]
    interactions = pd.DataFrame(rows, columns=["customer_id", "offer_id"])
    interactions["kind"] = "rating"
    cycle = weights or [1.0]
    interactions["weight"] = [cycle[k % len(cycle)] for k in range(len(rows))]
    interactions["timestamp"] = np.arange(len(rows))
    return Dataset(customers, offers, interactions, Taxonomy.default())


def random_dataset(seed: int, n_customers: int = 40, n_offers: int = 30,
                   weights: list[float] | None = None) -> Dataset:
    """Random histories, a few customers without any (they must score as the average customer)."""
    rng = np.random.default_rng(seed)
    histories = [
        [] if c % 10 == 9 else list(rng.choice(n_offers, size=rng.integers(1, 9), replace=False))
        for c in range(n_customers)
    ]
    return make_dataset(histories, n_offers, weights)


def planted_dataset(seed: int = 0, group_size: int = 25, offers_per_group: int = 10) -> Dataset:
    """Even customers pick only among offers 0..9, odd customers only among 10..19."""
    rng = np.random.default_rng(seed)
    histories = []
    for c in range(2 * group_size):
        first = (c % 2) * offers_per_group
        picks = rng.choice(offers_per_group, size=5, replace=False)
        histories.append(list(first + picks))
    return make_dataset(histories, 2 * offers_per_group)


MODELS = {
    "als": lambda: ALSRecommender(factors=8, iterations=10, random_state=0, num_threads=1,
                                  show_progress=False),
    "bpr": lambda: BPRRecommender(factors=8, learning_rate=0.05, iterations=200, random_state=0,
                                  num_threads=1, show_progress=False),
    "knn-cosine": lambda: ItemKNNRecommender(neighbours=10, num_threads=1, show_progress=False),
    "knn-bm25": lambda: ItemKNNRecommender(neighbours=10, weighting="bm25", num_threads=1,
                                           show_progress=False),
    "popularity": lambda: PopularityRecommender(),
}
FITTED_ATTRIBUTE = {
    "als": "user_factors_", "bpr": "user_factors_", "knn-cosine": "weights_",
    "knn-bm25": "weights_", "popularity": "popularity_",
}
HISTORY_MODELS = [name for name in MODELS if name != "popularity"]


def warm_and_cold(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    has = np.diff(dataset.interaction_matrix().indptr) > 0
    return np.flatnonzero(has), np.flatnonzero(~has)


# --- the additive contract -------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_additive_form_reproduces_the_model(name: str) -> None:
    train = random_dataset(1)
    model = MODELS[name]().fit(train)
    additive = model.to_additive()
    warm, cold = warm_and_cold(train)
    everyone = np.arange(train.n_customers)
    scores = model.score(everyone)
    assert scores.dtype == np.float64 and scores.shape == (train.n_customers, train.n_offers)
    np.testing.assert_allclose(additive.score(warm), model.score(warm), atol=1e-6, rtol=0)
    # no history, no deviation: the average customer's score, in both forms
    np.testing.assert_array_equal(additive.score(cold), np.tile(additive.base(), (len(cold), 1)))
    np.testing.assert_allclose(model.score(cold), additive.score(cold), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_only_history_carries_data(name: str) -> None:
    train = random_dataset(2)
    additive = MODELS[name]().fit(train).to_additive()
    assert additive.categories == train.taxonomy.categories
    assert additive.features is None
    history = train.taxonomy.categories.index(HISTORY)
    others = [g for g in range(len(additive.categories)) if g != history]
    assert not additive.has_data[others].any()
    assert not additive.partial_vectors[others].any() and not additive.partial_bias.any()
    warm, _ = warm_and_cold(train)
    expected = np.zeros(train.n_customers, dtype=bool)
    if name != "popularity":
        expected[warm] = True
    np.testing.assert_array_equal(additive.has_data[history], expected)


@pytest.mark.parametrize("name", HISTORY_MODELS)
def test_history_is_the_only_personal_input(name: str) -> None:
    """Withholding interaction_history leaves every customer with the average customer's score."""
    train = random_dataset(3)
    additive = MODELS[name]().fit(train).to_additive()
    others = [g for g in train.taxonomy.categories if g != HISTORY]
    blind = additive.score(np.arange(train.n_customers), allowed=others)
    np.testing.assert_array_equal(blind, np.tile(additive.base(), (train.n_customers, 1)))


def test_knn_history_partial_is_the_binary_train_row() -> None:
    train = random_dataset(4, weights=[4.0, 5.0, 1.0])
    model = MODELS["knn-cosine"]().fit(train)
    additive = model.to_additive()
    history = train.taxonomy.categories.index(HISTORY)
    expected = (train.interaction_matrix().toarray() > 0).astype(float)
    np.testing.assert_array_equal(additive.partial_vectors[history], expected)
    np.testing.assert_array_equal(additive.item_vectors, model.weights_.T.toarray())


def test_knn_score_is_what_implicit_ranks_by() -> None:
    train = random_dataset(5)
    model = MODELS["knn-bm25"]().fit(train)
    customer = int(warm_and_cold(train)[0][0])
    ids, implicit_scores = model.model_.recommend(
        customer, model.train_matrix_[customer], N=train.n_offers,
        filter_already_liked_items=False,
    )
    np.testing.assert_allclose(model.score([customer])[0, ids], implicit_scores, rtol=1e-6)


def test_bpr_item_bias_is_implicits_extra_column() -> None:
    train = random_dataset(6)
    model = MODELS["bpr"]().fit(train)
    warm, _ = warm_and_cold(train)
    implicit_scores = model.model_.user_factors[warm] @ model.model_.item_factors.T
    np.testing.assert_allclose(model.score(warm), implicit_scores, rtol=1e-5, atol=1e-6)


# --- weights do not matter -------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_weights_are_binarized(name: str) -> None:
    plain = MODELS[name]().fit(random_dataset(7))
    rated = MODELS[name]().fit(random_dataset(7, weights=[4.0, 5.0, 2.5]))
    everyone = np.arange(40)
    np.testing.assert_array_equal(plain.score(everyone), rated.score(everyone))


def test_popularity_counts_distinct_customers() -> None:
    train = make_dataset([[0, 1], [0], [0, 2], []], n_offers=4, weights=[5.0])
    repeated = train.with_interactions(
        pd.concat([train.interactions, train.interactions.iloc[:1]])
    )
    model = PopularityRecommender().fit(repeated)
    np.testing.assert_array_equal(model.popularity_, [3.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(model.score([0, 3]), [[3, 1, 1, 0], [3, 1, 1, 0]])


# --- scikit-learn conventions ----------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_fitted_attributes_only_after_fit(name: str) -> None:
    model = MODELS[name]()
    attribute = FITTED_ATTRIBUTE[name]
    assert not hasattr(model, attribute)
    with pytest.raises(NotFittedError):
        model.score(np.arange(3))
    with pytest.raises(NotFittedError):
        model.to_additive()
    assert model.fit(random_dataset(8)) is model
    assert hasattr(model, attribute) and model.features_ is None


@pytest.mark.parametrize(
    "model",
    [
        ALSRecommender(factors=3, regularization=0.5, alpha=7.0, iterations=2, random_state=4,
                       num_threads=1, show_progress=False),
        BPRRecommender(factors=5, learning_rate=0.2, regularization=0.3, iterations=7,
                       random_state=9, num_threads=3),
        ItemKNNRecommender(neighbours=7, weighting="bm25", K1=2.0, B=0.5, num_threads=1),
        PopularityRecommender(),
    ],
    ids=lambda model: type(model).__name__,
)
def test_get_params_round_trips_the_constructor(model) -> None:
    params = model.get_params()
    assert type(model)(**params).get_params() == params
    assert clone(model).get_params() == params
    for key, value in params.items():
        assert getattr(model, key) == value


def test_default_parameters() -> None:
    assert ALSRecommender().get_params() == dict(
        factors=64, regularization=0.05, alpha=2.0, iterations=15, random_state=None,
        num_threads=2, show_progress=True,
    )
    assert BPRRecommender().get_params() == dict(
        factors=64, learning_rate=0.01, regularization=0.01, iterations=100, random_state=None,
        num_threads=2, show_progress=True,
    )
    assert ItemKNNRecommender().get_params() == dict(
        neighbours=50, weighting="cosine", K1=1.2, B=0.75, num_threads=2, show_progress=True,
    )
    assert PopularityRecommender().get_params() == {}


def test_unknown_knn_weighting_is_refused_at_fit() -> None:
    model = ItemKNNRecommender(weighting="jaccard", show_progress=False)
    with pytest.raises(ValueError, match="weighting"):
        model.fit(random_dataset(9))


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_random_state_makes_factorizations_reproducible(name: str) -> None:
    train = random_dataset(10)
    first, second = MODELS[name]().fit(train), MODELS[name]().fit(train)
    np.testing.assert_array_equal(first.user_factors_, second.user_factors_)
    np.testing.assert_array_equal(first.item_factors_, second.item_factors_)
    other = MODELS[name]().set_params(random_state=1).fit(train)
    assert not np.array_equal(first.item_factors_, other.item_factors_)


# --- ALS explanations ------------------------------------------------------------------------
def test_als_explanation_adds_up_to_the_score() -> None:
    train = random_dataset(11)
    model = MODELS["als"]().fit(train)
    warm, _ = warm_and_cold(train)
    scores = model.score(warm)
    user_weights = None
    for row, customer in enumerate(warm[:10]):
        history = set(model.train_matrix_[customer].indices)
        for offer in (0, 7, 19):
            total, top, user_weights = model.explain(
                int(customer), offer, N=train.n_offers,
                user_weights=user_weights if offer else None,
            )
            assert {j for j, _ in top} == history
            contributions = [s for _, s in top]
            assert contributions == sorted(contributions, reverse=True)
            assert sum(contributions) == pytest.approx(total, abs=1e-9)
            assert total == pytest.approx(scores[row, offer], rel=1e-4, abs=1e-5)


def test_als_explanation_keeps_the_top_n() -> None:
    train = random_dataset(12)
    model = MODELS["als"]().fit(train)
    customer = int(np.argmax(np.diff(model.train_matrix_.indptr)))
    _, everything, _ = model.explain(customer, 3, N=train.n_offers)
    _, top, _ = model.explain(customer, 3, N=2)
    assert top == everything[:2]


def test_als_refuses_to_explain_a_customer_without_history() -> None:
    train = random_dataset(13)
    model = MODELS["als"]().fit(train)
    _, cold = warm_and_cold(train)
    with pytest.raises(ValueError, match="no training history"):
        model.explain(int(cold[0]), 0)


# --- planted structure -----------------------------------------------------------------------
# The planted structure has rank 2; with more factors and little regularization, the
# factorizations also memorize which in-group offers each customer happened to skip.
PLANTED = {
    **MODELS,
    "als": lambda: ALSRecommender(factors=2, regularization=1.0, iterations=10, random_state=0,
                                  num_threads=1, show_progress=False),
    "bpr": lambda: BPRRecommender(factors=2, learning_rate=0.05, regularization=0.1,
                                  iterations=200, random_state=0, num_threads=1,
                                  show_progress=False),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", HISTORY_MODELS)
def test_recommendations_stay_within_the_group(name: str, seed: int) -> None:
    train = planted_dataset(seed)
    model = PLANTED[name]().fit(train)
    everyone = np.arange(train.n_customers)
    scores = model.score(everyone)
    seen = model.train_matrix_.toarray() > 0
    scores[seen] = -np.inf  # evaluation excludes training items itself
    top = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    own_group = (everyone % 2)[:, None]
    np.testing.assert_array_equal(top // 10, np.broadcast_to(own_group, top.shape))
