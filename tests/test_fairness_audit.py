"""The audit on the synthetic storefront, whose planted disparity is known: gender "female" has
noisy interactions, so every model serves that group worse, and disparity=0 removes it."""

import argparse
from functools import cache

import numpy as np
import pytest
from trained import FAST, artifact_for

from recommender.catalog import calibration_gap, list_distributions
from recommender.consent import FULL, Consent, category_mask
from recommender.errors import DataError
from recommender.evaluation import evaluate
from recommender.fairness import (
    CalibratedReranker,
    audit_artifact,
    audit_configuration,
    compare_unawareness,
    consent_scorer,
    protected_attributes,
)
from recommender.fairness.command import audit_command
from recommender.loaders import generate_storefront
from recommender.models import make_model
from recommender.ranking import customer_state, rank
from recommender.split import temporal_split
from recommender.taxonomy import HISTORY

MODEL = "itemknn-cosine"  # deterministic and fast; the planted noise hurts any model


@cache
def storefront(disparity: float = 0.5):
    return generate_storefront(disparity=disparity)


@cache
def audit_of(disparity: float):
    return audit_configuration(storefront(disparity).dataset, MODEL, n_boot=300, seed=0)


def test_the_planted_gender_disparity_is_flagged():
    truth = storefront()
    assert truth.disparity_group == ("gender", "female")
    report = audit_of(0.5)
    for metric in ("ndcg@10", "recall@10", "hit_rate@10"):
        gap = report.comparison("gender", metric)
        assert (gap.worst, gap.best) == ("female", "male")
        assert gap.flagged and gap.difference_ci[0] > 0
        assert gap.ratio_ci[1] < 1
    assert ("gender", "ndcg@10") in report.flagged()
    assert "| ndcg@10 | male" in report.to_markdown() and "**yes**" in report.to_markdown()


def test_without_the_planted_disparity_the_gender_gap_is_noise():
    planted = audit_of(0.5).comparison("gender", "ndcg@10")
    clean = audit_of(0.0).comparison("gender", "ndcg@10")
    assert not clean.flagged
    assert clean.difference_ci[0] < 0 < clean.difference_ci[1]
    assert clean.difference < planted.difference / 5  # measured: 0.0003 against 0.11


def test_audit_reports_every_protected_attribute_with_calibration_on_offer_categories():
    report = audit_of(0.5)
    assert list(report.attributes) == ["age_band", "gender"]  # taxonomy.toml [protected]
    assert report.category_attribute == "category"
    assert report.customers == report.attributes["gender"].sizes["female"] \
        + report.attributes["gender"].sizes["male"]
    metrics = set(report.attributes["gender"].metrics)
    assert metrics == {"ndcg@10", "recall@10", "hit_rate@10", "calibration_gap@10", "coverage@10"}
    assert not report.comparison("gender", "calibration_gap@10").higher_is_better
    for mix in report.attributes["gender"].category_mix.values():
        assert sum(mix["history"].values()) == pytest.approx(1, abs=1e-3)
        assert sum(mix["recommended"].values()) == pytest.approx(1, abs=1e-3)


def test_artifact_audit_refits_the_configuration_instead_of_scoring_a_model_that_saw_the_test():
    dataset = storefront().dataset
    artifact = artifact_for(dataset, MODEL)
    report = audit_artifact(artifact, dataset, n_boot=50)
    split = temporal_split(dataset)
    honest = evaluate(make_model(MODEL).fit(split.train).score, split)["ndcg@10"]
    leaky = artifact.manifest["metrics"]["test"]["ndcg@10"]  # the served model, fitted on all data
    assert report.overall["ndcg@10"] == pytest.approx(honest, abs=1e-12)
    assert report.overall["ndcg@10"] < leaky
    assert report.label == artifact.version
    assert any("refits its configuration" in note for note in report.notes)


def test_consent_level_none_scores_every_customer_alike():
    split = temporal_split(storefront().dataset)
    model = make_model(MODEL).fit(split.train)
    scores = consent_scorer(model, "none")(np.arange(5))
    assert np.allclose(scores, scores[0])
    mask = category_mask(Consent(frozenset(model.to_additive().categories), FULL),
                         model.to_additive().categories)
    assert np.allclose(consent_scorer(model, allowed=mask)(np.arange(5)),
                       model.score(np.arange(5)))


def test_attributes_to_audit_must_exist():
    dataset = storefront().dataset
    assert protected_attributes(dataset) == ["age_band", "gender"]
    assert protected_attributes(dataset, ["region"]) == ["region"]
    with pytest.raises(DataError, match="no attribute 'religion'"):
        protected_attributes(dataset, ["religion"])


def test_audit_command_writes_the_audit_folder(tmp_path, capsys):
    dataset = storefront().dataset
    from recommender.artifacts import save_artifact

    path = save_artifact(artifact_for(dataset, MODEL), tmp_path / "models")
    args = argparse.Namespace(artifact=str(path), out=None, level=None, k=10, n_boot=50, seed=0,
                              attribute=["gender"], category=None)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert audit_command(args, dataset) == 0
    finally:
        os.chdir(cwd)
    folder = tmp_path / "audits" / path.name
    assert sorted(p.name for p in folder.iterdir()) == ["audit.json", "audit.md", "gender.png"]
    out = capsys.readouterr().out
    assert "## Fairness audit" in out and "configuration of" in out


def test_unawareness_trains_without_the_protected_attributes_and_compares_gaps():
    dataset = generate_storefront(n_customers=600, seed=1).dataset
    comparison = compare_unawareness(dataset, "hybrid", FAST | {"epochs": 2}, seeds=(0,),
                                     n_boot=100)
    table = comparison.table()
    assert list(table.index) == ["aware", "unaware"]
    assert {"ndcg@10", "gender gap", "gender gap CI", "age_band flagged"} <= set(table.columns)
    assert "exclude_attributes=('age_band', 'gender')" in comparison.audits["unaware"][0].notes[0]
    change, (low, high) = comparison.gap_change("gender")
    assert low <= change <= high
    assert "Cost of unawareness" in comparison.to_markdown()
    with pytest.raises(DataError, match="exclude_attributes"):
        compare_unawareness(dataset, "popularity")


def test_serving_rerank_calibrates_only_with_the_history_consented_to():
    artifact = artifact_for(storefront().dataset, MODEL)
    model = artifact.model
    everything = np.ones(len(model.categories), dtype=bool)
    no_history = everything.copy()
    no_history[model.categories.index(HISTORY)] = False
    plain_gap, calibrated_gap = [], []
    strong = CalibratedReranker(artifact, strength=0.9)
    for customer_id in list(artifact.customer_rows)[:40]:
        state = customer_state(artifact, customer_id)
        plain, plain_scores = rank(artifact, state, everything, 10)
        columns, scores = CalibratedReranker(artifact, strength=0.0).rank(state, everything, 10)
        assert np.array_equal(columns, plain) and np.array_equal(scores, plain_scores)
        # withheld history: no target, so exactly the plain top-k under that consent
        assert np.array_equal(strong.rank(state, no_history, 10)[0],
                              rank(artifact, state, no_history, 10)[0])
        columns, scores = strong.rank(state, everything, 10)
        assert len(set(columns)) == 10 and not set(columns) & {
            artifact.offer_columns[o] for o in state.history}
        target = strong.target(state)
        plain_gap.append(calibration_gap(target, list_distributions(plain[None],
                                                                    strong.offer_categories)[0]))
        calibrated_gap.append(calibration_gap(target, list_distributions(
            columns[None], strong.offer_categories)[0]))
    assert np.mean(calibrated_gap) < 0.5 * np.mean(plain_gap)
