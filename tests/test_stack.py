"""The served stack: its parts against independent computations, its search, and what it records.

Consent invariance, exact SHAP values and the split by past offer are tested on it with every other
served model (test_consent_enforcement.py, test_explain.py)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from trained import STACK, synthetic_dataset

from recommender.errors import DataError
from recommender.evaluation import evaluate
from recommender.models import SERVED, make_model, model_name
from recommender.models.implicit_models import binarize
from recommender.models.item_item import EASERecommender, ease_weights, factorize
from recommender.models.segments import RARE_VALUE, fit_segments, offer_attribute_matrix
from recommender.models.stack import HISTORY_EASE, PROFILE, StackedRecommender
from recommender.models.weights import coordinate_ascent
from recommender.split import temporal_split
from recommender.training import build_artifact, consent_levels, train_and_evaluate


def test_served_is_the_stack_and_uses_attributes():
    assert SERVED == "stack" and model_name("served") == "stack"
    assert consent_levels("served") == ("segment", "none")
    with pytest.raises(DataError, match="unknown model 'nope'"):
        model_name("nope")


# --- the parts -----------------------------------------------------------------------------------
def test_ease_weights_solve_each_column_with_a_zero_diagonal():
    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    weights = ease_weights(matrix, 5.0)
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    for i in range(12):
        others = [j for j in range(12) if j != i]
        # the ridge regression of column i on the other columns, solved directly
        expected = np.linalg.solve(gram[np.ix_(others, others)] + 5.0 * np.eye(11), gram[others, i])
        np.testing.assert_allclose(weights[others, i], expected, rtol=1e-9, atol=1e-12)
        assert weights[i, i] == 0.0


def test_ease_refuses_a_catalog_too_large_and_a_bad_regularization():
    with pytest.raises(DataError, match="positive"):
        ease_weights(sp.csr_matrix(np.eye(3, dtype=np.float32)), 0.0)


def test_factorize_is_exact_for_small_catalogs_and_best_rank_otherwise():
    rng = np.random.default_rng(1)
    small = rng.normal(size=(5, 5))
    embeddings, side = factorize(small, rank=8)
    np.testing.assert_array_equal(embeddings @ side.T, small)
    low_rank = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 30))
    embeddings, side = factorize(low_rank, rank=3)
    assert embeddings.shape == side.shape == (30, 3)
    np.testing.assert_allclose(embeddings @ side.T, low_rank, atol=1e-8)


def test_segment_lift_counts_segment_choices_against_the_catalog():
    # 4 customers in segment a=x choose offer 0; 1 customer in a=y chooses offer 1 (too small:
    # pooled into a=* with min_customers 2)
    membership = sp.csr_matrix(np.array([[1, 0]] * 4 + [[0, 1]], dtype=float))
    choices = sp.csr_matrix(np.array([[1, 0, 0]] * 4 + [[0, 1, 0]], dtype=np.float32))
    names = np.array(["a=x", "a=y"], dtype=object)
    segments = fit_segments(membership, names, choices, offer_attribute_matrix([], 3),
                            smoothing=1.0, min_customers=2)
    assert segments.names == ("a=x", f"a={RARE_VALUE}")
    assert segments.slot == {"a=x": 0, "a=y": 1}
    popularity = np.array([5.0, 2.0, 1.0]) / 8.0  # choices + 1 each
    expected = np.log((np.array([4.0, 0, 0]) + popularity) / (4.0 + 1.0)) - np.log(popularity)
    np.testing.assert_allclose(segments.offer_lift[0], expected)
    assert segments.offer_lift[0, 0] > 0 > segments.offer_lift[0, 1]
    # no offer attributes: no lift through them
    np.testing.assert_array_equal(segments.attribute_lift, 0.0)


def test_coordinate_ascent_adds_a_component_that_helps_and_not_one_that_does_not():
    truth = np.array([3.0, 2.0, 1.0, 0.0])
    scores = {"anchor": np.array([[1.0, 0.0, 2.0, 0.0]]), "useful": truth[None],
              "noise": np.array([[0.0, 0.0, 0.0, 5.0]])}

    def metric(total: np.ndarray) -> np.ndarray:  # 1 when the top offer is offer 0
        return (total.argmax(axis=1) == 0).astype(float)

    weights, best, trace = coordinate_ascent(scores, metric, "anchor")
    assert weights["anchor"] == 1.0 and weights["useful"] >= 0.5 and weights["noise"] == 0.0
    assert best == 1.0 and trace[0]["step"] == "anchor"


# --- the model -----------------------------------------------------------------------------------
@cache
def history_only() -> tuple[StackedRecommender, EASERecommender]:
    dataset = synthetic_dataset()
    weights = {"history_ease": 1.0, "history_knn": 0.0, "history_attributes": 0.0, "profile": 0.0,
               "popularity": 0.0}
    weights |= {f"{prefix}{c}": 0.0 for prefix in ("segments:", "segment_attributes:")
                for c in ("demographics", "location", "profile")}
    stack = StackedRecommender(weights=weights, history_rank=dataset.n_offers, **STACK).fit(dataset)
    return stack, EASERecommender(regularization=stack.history_regularization).fit(dataset)


def test_stack_with_history_alone_is_ease_scaled_by_history_length():
    stack, ease = history_only()
    model = stack.to_additive()
    rows = np.flatnonzero(ease.has_history_)[:50]
    counts = np.asarray(ease.train_matrix_[rows].sum(axis=1)).ravel()
    scale = stack.weights_[HISTORY_EASE]
    # every other component is weighted 0: score = base + (p_u - pbar) . q with p_u . q the mean of
    # B's rows over the customer's past offers (exact: rank = the catalog's size)
    history = model.categories.index("interaction_history")
    own = stack.score(rows) - model.base() + model.item_vectors @ model.mean_vectors[history]
    np.testing.assert_allclose(own * counts[:, None] / scale, ease.score(rows), rtol=1e-5, atol=1e-5)
    assert stack.history_mode_ == "items"  # no learned profile: past offers alone


def test_stack_uses_every_category_with_default_weights():
    stack = make_model(SERVED, **STACK).fit(synthetic_dataset())
    model = stack.to_additive()
    assert stack.history_mode_ == "blend" and stack.weights_[PROFILE] > 0
    assert model.has_data.any(axis=1).all()  # every category carries some customer's data
    names = [str(n) for n in model.features.names]
    assert any(n.startswith("history:") for n in names)
    assert any(n.startswith("customer:") for n in names)
    assert any(n.startswith("age_band=") for n in names)


def test_bad_parameters_are_refused_by_name():
    dataset = synthetic_dataset()
    with pytest.raises(DataError, match="unknown component 'colour'") as error:
        make_model(SERVED, weights={"colour": 1.0}, **STACK).fit(dataset)
    assert error.value.field == "weights"
    with pytest.raises(DataError, match="history_rank must be at least 1"):
        make_model(SERVED, history_rank=0, **STACK).fit(dataset)


@cache
def searched():
    dataset = synthetic_dataset()
    split = temporal_split(dataset)
    inner = temporal_split(split.train)
    model = make_model(SERVED, **STACK).fit(inner.train, validation=inner.test)
    return dataset, split, inner, model


def test_search_compares_candidates_on_validation_and_records_them():
    _, _, inner, model = searched()
    table = model.selection_
    assert {"history_ease", "history_knn", "profile", "weights"} <= set(table["stage"])
    singles = table[table["stage"] != "weights"]["val_ndcg@10"]
    # the weights start from the best single component and only move up
    assert model.validation_ndcg_ >= singles.max() - 1e-12
    again = evaluate(make_model(SERVED, **STACK, **model.selected_params_).fit(inner.train).score,
                     inner)["ndcg@10"]
    assert again == pytest.approx(model.validation_ndcg_, abs=0.01)  # scored on a sample, refit
    assert model.selected_params_["search"] is False


def test_time_budget_skips_what_does_not_fit_and_still_fits():
    _, _, inner, _ = searched()
    model = make_model(SERVED, time_budget=1e-6, **STACK).fit(inner.train, validation=inner.test)
    skipped = model.selection_[model.selection_["stage"] != "weights"]
    assert (skipped["skipped"] == "time budget").all()
    assert model.score(np.arange(3)).shape == (3, inner.train.n_offers)


def test_training_refits_what_validation_chose_and_the_manifest_records_it():
    dataset, split, _, _ = searched()
    run = train_and_evaluate(dataset, "served", STACK, seed=0, split=split,
                             levels=consent_levels(SERVED))
    assert run.name == SERVED and run.params["search"] is False and "weights" in run.params
    assert run.selection is not None and len(run.selection) > 10
    manifest = build_artifact(dataset, run, run.model).manifest
    assert manifest["model"] == SERVED
    assert manifest["history_mode"] == run.model.history_mode_
    assert {row["stage"] for row in manifest["selection"]} >= {"history_ease", "weights"}
    # the served model beats what it falls back to without personal data
    assert run.test_metrics["ndcg@10"] > run.level_metrics["none"]["ndcg@10"]


def test_stack_matches_a_plain_binary_matrix_input():
    # interaction weights (quantities, ratings) never change the stack: it reads them as binary
    dataset = synthetic_dataset()
    heavier = dataset.with_interactions(dataset.interactions.assign(weight=7.0))
    a = make_model(SERVED, **STACK).fit(dataset).score(np.arange(5))
    b = make_model(SERVED, **STACK).fit(heavier).score(np.arange(5))
    np.testing.assert_array_equal(a, b)
    assert (binarize(dataset.interaction_matrix()).data == 1).all()


def test_excluded_attributes_never_enter_the_stack():
    stack = make_model(SERVED, exclude_attributes=("age_band", "gender"), **STACK).fit(
        synthetic_dataset())
    names = [str(n) for n in stack.to_additive().features.names]
    assert not any(n.startswith(("age_band=", "gender=")) for n in names)
    assert any(n.startswith("region=") for n in names)
    assert "age_band" not in stack.taxonomy_.attributes
