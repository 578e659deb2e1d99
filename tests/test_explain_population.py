"""The marketer's view (shap.Explanation objects shap's plots draw) and implicit ALS explanations."""

from __future__ import annotations

from functools import cache

import matplotlib
import numpy as np
import pytest
import shap

from explain.als import explain_als
from explain.attributions import attribute
from explain.criteria import why
from explain.population import population_explanations
from explain.templates import Templates
from recommender.artifacts import Artifact, make_manifest
from recommender.consent import Consent
from recommender.loaders import generate_storefront
from recommender.models.hybrid import HybridRecommender
from recommender.models.implicit_models import ALSRecommender
from recommender.ranking import customer_state, rank
from recommender.taxonomy import HISTORY

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

SMALL = {"n_customers": 400, "n_offers": 60}


@cache
def small():
    dataset = generate_storefront(seed=3, **SMALL).dataset
    model = HybridRecommender(epochs=3, num_threads=1, random_state=0, show_progress=False,
                              no_components=16).fit(dataset)
    manifest = make_manifest(model_name="hybrid", params={}, taxonomy=model.taxonomy_,
                             history_mode=model.history, data_fingerprint=dataset.fingerprint(),
                             counts={}, metrics={})
    history = dataset.interactions[["customer_id", "offer_id", "timestamp"]]
    artifact = Artifact(manifest=manifest, model=model.to_additive(), customers=dataset.customers,
                        offers=dataset.offers, history=history.reset_index(drop=True))
    return dataset, artifact


def test_population_explanation_holds_the_exact_values():
    _, artifact = small()
    customers = list(artifact.customer_rows)[:30]
    offers = list(artifact.offer_columns)[:4]
    explanation = population_explanations(artifact, customers, offers, relative=False)
    categories = artifact.model.categories
    assert explanation.values.shape == (120, len(categories))
    assert explanation.feature_names == [Templates.default().name(c) for c in categories]
    state = customer_state(artifact, customers[1])
    a = attribute(artifact.model, state, np.ones(len(categories), dtype=bool),
                  np.array([artifact.offer_columns[o] for o in offers]))
    np.testing.assert_array_equal(explanation.values[4:8], a.contributions)
    np.testing.assert_array_equal(explanation.base_values[4:8], a.base)
    np.testing.assert_allclose(explanation.values.sum(1) + explanation.base_values,
                               np.concatenate([attribute(artifact.model, customer_state(artifact, c),
                                                         np.ones(4, dtype=bool),
                                                         [artifact.offer_columns[o]
                                                          for o in offers]).score
                                               for c in customers]), atol=1e-9)


def test_population_follows_consent_and_shap_plots_draw_it():
    _, artifact = small()
    customers = list(artifact.customer_rows)[:40]
    segment = Consent(frozenset({"demographics", "location", "profile", HISTORY}), "segment")
    consents = {c: segment for c in customers[::2]}  # the others have no record: no personal data
    explanation = population_explanations(artifact, customers, k=3, consent=consents)
    assert explanation.values.shape == (120, 4)
    history = artifact.model.categories.index(HISTORY)
    assert (explanation.values[:, history] == 0).all() and (explanation.data[:, history] == 0).all()
    unrecorded = np.repeat(np.arange(40) % 2 == 1, 3)
    assert (explanation.values[unrecorded] == 0).all() and (explanation.data[unrecorded] == 0).all()
    relative = population_explanations(artifact, customers[:5], k=2)
    assert relative.values.shape == (10, 4)
    state = customer_state(artifact, customers[0])
    a = attribute(artifact.model, state, np.ones(4, dtype=bool), rank(artifact, state,
                  np.ones(4, dtype=bool), 2)[0])
    np.testing.assert_array_equal(relative.values[:2], a.relative)  # the advantage, as /why
    np.testing.assert_array_equal(relative.base_values[:2], a.relative_base)
    for draw in (lambda e: shap.plots.waterfall(e[0], show=False),
                 lambda e: shap.plots.bar(e, show=False),
                 lambda e: shap.plots.beeswarm(e, show=False)):
        draw(explanation)
        plt.close("all")


def test_als_explanation_names_past_offers():
    dataset, _ = small()
    model = ALSRecommender(factors=16, iterations=5, random_state=0, num_threads=1,
                           show_progress=False).fit(dataset)
    titles = dataset.offers["title"].to_numpy()
    row = 5
    offer = int(np.argmax(model.score(np.array([row]))[0]))
    criteria = explain_als(model, row, offer, titles, max_items=2)
    assert len(criteria) == 1
    criterion = criteria[0]
    assert criterion.category == HISTORY and criterion.share == 1.0
    assert criterion.contribution == pytest.approx(model.score(np.array([row]))[0, offer], abs=1e-4)
    past = set(titles[model.train_matrix_[row].indices])
    named = [p["title"] for p in criterion.data["past_offers"]]
    assert 0 < len(named) <= 2 and set(named) <= past
    assert criterion.text == "You bought " + Templates.default().join(named)
    # a customer without training history gets the average customer's offers: popularity only
    cold = np.flatnonzero(~model.has_history_)
    if len(cold):
        assert [c.category for c in explain_als(model, int(cold[0]), offer, titles)] == ["popularity"]


def test_artifact_of_a_history_model_says_it_cannot_split():
    """An implicit model's artifact has no feature space: its history criterion says so."""
    dataset, hybrid = small()
    model = ALSRecommender(factors=16, iterations=5, random_state=0, num_threads=1,
                           show_progress=False).fit(dataset)
    manifest = dict(hybrid.manifest, history_mode=None)
    artifact = Artifact(manifest=manifest, model=model.to_additive(), customers=dataset.customers,
                        offers=dataset.offers, history=hybrid.history)
    state = customer_state(artifact, "c00005")
    allowed = np.ones(4, dtype=bool)
    payload = why(artifact, state, allowed, dataset.offers.index[0])
    history = [c for c in payload["criteria"] if c["category"] == HISTORY]
    assert len(history) == 1 and "past_offers" not in history[0]["data"]
    assert history[0]["note"] == Templates.default().note("unsplit")
    assert {n["category"]: n["reason"] for n in payload["not_used"]} == {
        "demographics": "not_in_model", "location": "not_in_model", "profile": "not_in_model"}
