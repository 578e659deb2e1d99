"""The consent-aware hybrid: additive by category, exactly, and equal to LightFM's own prediction."""

from __future__ import annotations

import numpy as np
import pytest
from trained import FAST, movielens_dataset, synthetic_artifact, synthetic_dataset

from recommender.evaluation import evaluate
from recommender.features import customer_feature_weights, user_feature_matrix
from recommender.models import HybridRecommender, make_model
from recommender.split import temporal_split
from recommender.taxonomy import HISTORY


@pytest.fixture(scope="module", params=["items", "identity", "blend"])
def fitted(request):
    return HybridRecommender(history=request.param, **FAST).fit(synthetic_dataset())


def test_additive_form_equals_lightfm_prediction(fitted):
    customers = np.arange(0, synthetic_dataset().n_customers, 97)
    ours = fitted.score(customers)
    theirs = fitted.lightfm_predict(customers)
    # LightFM computes in float32; the additive form in float64 from the same parameters
    assert np.allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())


def test_score_is_base_plus_allowed_contributions(fitted):
    model = fitted.to_additive()
    rng = np.random.default_rng(0)
    offers = np.arange(model.n_offers)
    for customer in rng.choice(model.n_customers, 30, replace=False):
        allowed = rng.random(len(model.categories)) < 0.5
        p, c, has_data = model.partials(customer)
        phi = model.contributions(p, c, has_data, allowed, offers)
        score = model.score(np.array([customer]), allowed)[0]
        assert np.allclose(model.base() + phi.sum(axis=1), score, atol=1e-5)
        assert (phi[:, ~allowed] == 0).all()


def test_category_with_no_data_contributes_nothing():
    model = synthetic_artifact("hybrid").model
    assert model.has_data.all(axis=1).any()
    p, c, _ = model.partials(0)
    nothing = np.zeros(len(model.categories), dtype=bool)
    phi = model.contributions(p, c, nothing, np.ones_like(nothing), np.arange(model.n_offers))
    assert (phi == 0).all()


def test_weights_are_normalized_within_each_category_only():
    dataset = synthetic_dataset()
    matrix, _, categories = user_feature_matrix(dataset, "items")
    for g in np.unique(categories):
        sums = np.asarray(matrix[:, categories == g].sum(axis=1)).ravel()
        assert np.allclose(sums[sums > 0], 1.0)
    weights = customer_feature_weights(
        dataset.taxonomy, {"age_band": "25-34", "gender": "female"}, ["a", "b", "c", "d"]
    )
    assert weights["age_band=25-34"] == weights["gender=female"] == 0.5
    assert weights["history:a"] == 0.25


def test_early_stopping_keeps_the_best_validation_epoch():
    dataset = synthetic_dataset()
    split = temporal_split(dataset)
    model = HybridRecommender(**(FAST | {"epochs": 12, "patience": 2})).fit(
        split.train, validation=split.test
    )
    curve = dict(model.validation_curve_)
    assert model.epochs_ == max(curve, key=curve.get)
    assert evaluate(model.score, split)["ndcg@10"] == pytest.approx(curve[model.epochs_])


def test_fitted_attributes_and_params():
    model = make_model("lightfm-cf", no_components=8)
    assert not hasattr(model, "additive_")
    assert model.get_params()["user_categories"] == (HISTORY,)
    with pytest.raises(ValueError, match="loss"):
        HybridRecommender(loss="hinge").fit(synthetic_dataset())


def test_unawareness_leaves_protected_attributes_out():
    model = HybridRecommender(exclude_attributes=("age_band", "gender"), **FAST).fit(
        synthetic_dataset()
    )
    names = [str(n) for n in model.feature_names_]
    assert not any(n.startswith(("age_band=", "gender=")) for n in names)
    demographics = model.taxonomy_.categories.index("demographics")
    assert not model.to_additive().has_data[demographics].any()


@pytest.mark.slow
def test_smoke_training_on_movielens_learns():
    dataset = movielens_dataset()
    split = temporal_split(dataset)
    model = HybridRecommender(**FAST).fit(split.train)
    ndcg = evaluate(model.score, split)["ndcg@10"]
    popularity = evaluate(make_model("popularity").fit(split.train).score, split)["ndcg@10"]
    assert ndcg > popularity
