"""The marketer's Python API (trustrec.notebook): tables hold what the library computes."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from explain.attributions import attribute
from explain.criteria import why
from recommender.errors import DataError
from recommender.loaders import generate_storefront
from recommender.ranking import customer_state, rank
from recommender.taxonomy import HISTORY
from recommender.training import build_artifact, train_and_evaluate
from trustrec import notebook as tr

SMALL = {"n_customers": 400, "n_offers": 60}
# one thread: two fits with the same seed give the same model
FAST = {"epochs": 3, "no_components": 16, "num_threads": 1, "show_progress": False}


@cache
def small(seed: int = 3):
    return generate_storefront(seed=seed, **SMALL).dataset


@cache
def small_run():
    return tr.train(small(), "hybrid", FAST)


@cache
def small_artifact():
    run = small_run()
    return build_artifact(small(), run, run.model)


def test_compare_models_one_row_per_model_with_spread_over_seeds():
    table = tr.compare_models(small(), ["hybrid", "popularity"], params={"hybrid": FAST},
                              seeds=(0, 1))
    assert list(table.index) == ["hybrid", "hybrid [consent segment]", "hybrid [consent none]",
                                 "popularity"]
    for metric in ("ndcg@10", "precision@10", "recall@10", "coverage@10"):
        assert {metric, f"{metric} sd"} <= set(table.columns)
    runs = [train_and_evaluate(small(), "hybrid", FAST, seed=s, levels=("segment", "none"))
            for s in (0, 1)]
    ndcg = [r.test_metrics["ndcg@10"] for r in runs]
    assert table.loc["hybrid", "ndcg@10"] == pytest.approx(np.mean(ndcg))
    assert table.loc["hybrid", "ndcg@10 sd"] == pytest.approx(np.std(ndcg))
    assert table.loc["hybrid [consent none]", "recall@10"] == pytest.approx(
        np.mean([r.level_metrics["none"]["recall@10"] for r in runs]))
    popularity = train_and_evaluate(small(), "popularity").test_metrics
    assert table.loc["popularity", "seeds"] == 1  # no seed to vary: trained once
    assert table.loc["popularity", "ndcg@10 sd"] == 0
    assert table.loc["popularity", "coverage@10"] == pytest.approx(popularity["coverage@10"])


def test_compare_models_refuses_bad_input_before_training():
    with pytest.raises(DataError) as unknown:
        tr.compare_models(small(), ["hybrid", "nope"])
    assert unknown.value.field == "model"
    with pytest.raises(DataError) as stray:
        tr.compare_models(small(), ["popularity"], params={"als": {}})
    assert stray.value.field == "params"
    with pytest.raises(DataError):
        tr.compare_models(small(), ["popularity"], seeds=())


def test_tune_one_row_per_grid_point_best_first_and_best_params():
    grid = {"no_components": [8, 16], "learning_rate": [0.05]}
    table = tr.tune(small(), "hybrid", grid, params=FAST)
    assert len(table) == 2
    assert set(table["no_components"]) == {8, 16}
    assert table["val_ndcg@10"].is_monotonic_decreasing
    assert not {"num_threads", "show_progress"} & set(table.columns)  # fixed settings left out
    best = tr.best_params(table, grid)
    assert best == {"no_components": int(table.loc[0, "no_components"]), "learning_rate": 0.05}
    assert type(best["no_components"]) is int and type(best["learning_rate"]) is float
    json.dumps(best)  # ready for a manifest
    figure = tr.plot_validation_curves(table, "no_components", by="learning_rate")
    assert len(figure.axes[0].lines) == 1
    assert len(tr.plot_validation_curves(table, "learning_rate", by="no_components")
               .axes[0].lines) == 2


def test_tune_refuses_an_empty_axis_or_unknown_parameter():
    with pytest.raises(DataError) as empty:
        tr.tune(small(), "hybrid", {"no_components": []})
    assert empty.value.field == "grid"
    with pytest.raises(DataError) as unknown:
        tr.tune(small(), "hybrid", {"components": [8]})
    assert unknown.value.field == "param"


def test_train_evaluation_table_and_saved_models(tmp_path):
    run = small_run()
    table = tr.evaluation_table(run)
    assert list(table.index) == ["validation", "test", "test [consent segment]",
                                 "test [consent none]"]
    assert table.loc["test", "ndcg@10"] == run.test_metrics["ndcg@10"]
    assert table.loc["test [consent none]", "ndcg@10"] == run.level_metrics["none"]["ndcg@10"]

    assert tr.latest_model(tmp_path) is None
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{")  # unreadable: skipped, not fatal
    path = tr.save_model(small(), run, tmp_path)
    assert tr.latest_model(tmp_path, small()) == path
    other = small(seed=4)
    assert tr.latest_model(tmp_path, other) is None  # trained on other data
    assert tr.load_or_train(small(), tmp_path).version == path.name
    trained = tr.load_or_train(other, tmp_path, "popularity")
    assert trained.manifest["model"] == "popularity"
    assert tr.latest_model(tmp_path, other).name == trained.version
    assert tr.latest_model(tmp_path, small()) == path


def test_explain_customer_is_what_the_api_serves():
    artifact = small_artifact()
    customer = "c00007"
    table = tr.explain_customer(artifact, customer, k=4)
    allowed = np.ones(len(artifact.model.categories), dtype=bool)
    state = customer_state(artifact, customer)
    columns, scores = rank(artifact, state, allowed, 4)
    assert list(table.index) == [1, 2, 3, 4]
    assert list(table["offer_id"]) == [str(artifact.offers.index[c]) for c in columns]
    np.testing.assert_array_equal(table["score"].to_numpy(), scores)
    for offer_id, text in zip(table["offer_id"], table["why"], strict=True):
        full = why(artifact, state, allowed, offer_id)
        assert text.startswith(full["criteria"][0]["text"])
    assert table.attrs["not_used"] == []

    segment = tr.explain_customer(artifact, customer, k=4, consent="segment")
    assert not segment["from"].str.contains(HISTORY).any()
    assert any("not used" in reason for reason in segment.attrs["not_used"])
    nothing = tr.explain_customer(artifact, customer, k=4, consent="none")
    assert (nothing["from"] == "popularity 100%").all()
    assert len(nothing.attrs["not_used"]) == len(artifact.model.categories)


def test_explain_customer_refuses_unknown_customer_or_level():
    with pytest.raises(DataError) as unknown:
        tr.explain_customer(small_artifact(), "nobody")
    assert unknown.value.field == "customer_id"
    with pytest.raises(DataError) as level:
        tr.explain_customer(small_artifact(), "c00007", consent="most")
    assert level.value.field == "level"


def test_offer_explanation_adds_up_to_the_relative_score():
    artifact = small_artifact()
    explanation = tr.offer_explanation(artifact, "c00011")
    top = tr.explain_customer(artifact, "c00011", k=1)
    assert explanation.feature_names[0]  # named categories for shap's plots
    state = customer_state(artifact, "c00011")
    a = attribute(artifact.model, state, np.ones(len(artifact.model.categories), dtype=bool),
                  [artifact.offer_columns[top["offer_id"].iloc[0]]])
    assert explanation.base_values + explanation.values.sum() == pytest.approx(
        a.score[0] - a.average_score, abs=1e-9)
    other = tr.offer_explanation(artifact, "c00011", artifact.offers.index[5])
    assert other.values.shape == (len(artifact.model.categories),)
    with pytest.raises(DataError) as unknown:
        tr.offer_explanation(artifact, "c00011", "no-such-offer")
    assert unknown.value.field == "offer_id"


def test_category_importance_and_customer_profile():
    artifact = small_artifact()
    importance = tr.category_importance(artifact, customers=50, k=2)
    assert importance.values.shape == (100, len(artifact.model.categories))
    again = tr.category_importance(artifact, customers=50, k=2)
    np.testing.assert_array_equal(importance.values, again.values)  # seeded sample
    chosen = tr.category_importance(artifact, customers=["c00001", "c00002"], k=1)
    assert chosen.values.shape[0] == 2
    assert tr.category_importance(artifact, customers=10_000, k=1).values.shape[0] == SMALL[
        "n_customers"]
    profile = tr.customer_profile(artifact, "c00001")
    assert profile.index[-1] == HISTORY
    assert profile.loc[HISTORY, "data"].startswith(f"{len(artifact.histories['c00001'])} past")
    assert set(profile.index) <= set(artifact.model.categories)


def test_audit_frames_and_plots_hold_the_report():
    artifact = small_artifact()
    report = tr.audit(artifact, small(), n_boot=50)
    gaps = tr.audit_gaps(report)
    assert [pair for pair, flagged in gaps["flagged"].items() if flagged] == report.flagged()
    for (attribute_name, metric), row in gaps.iterrows():
        comparison = report.comparison(attribute_name, metric)
        assert row["difference"] == comparison.difference and row["worst"] == comparison.worst
    groups = tr.audit_groups(report)
    for attribute_name, audited in report.attributes.items():
        assert groups.loc[attribute_name, "customers"].sum() == sum(audited.sizes.values())
    assert set(tr.audit_plots(report)) == {a for a, au in report.attributes.items() if au.metrics}


def test_unawareness_of_the_artifact_configuration():
    comparison = tr.unawareness(small_artifact(), small(), seeds=(0,), n_boot=20)
    assert comparison.model == "hybrid"
    assert list(comparison.table().index) == ["aware", "unaware"]
    figure = tr.plot_unawareness(comparison)
    assert len(figure.axes) == len(comparison.protected)


def test_output_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(tr.OUTPUT_ENV, raising=False)
    assert str(tr.output_dir()) == ".."
    monkeypatch.setenv(tr.OUTPUT_ENV, str(tmp_path))
    assert tr.output_dir() == tmp_path


def test_rules_preview_is_reachable_from_the_notebook_api():
    rules = pytest.importorskip("recommender.rules")
    assert tr.preview_rules is rules.preview
    with pytest.raises(AttributeError):
        tr.no_such_thing  # noqa: B018


def test_a_saved_model_leaves_out_what_the_consent_records_withhold(tmp_path):
    from recommender.artifacts import load_artifact
    from recommender.consent import Consent
    from serving.records.consent import ConsentStore
    from serving.records.database import create_schema, make_engine

    dataset = small()
    withdrawn = str(dataset.interactions["customer_id"].iloc[0])
    url = f"sqlite:///{tmp_path / 'records.db'}"
    engine = make_engine(url)
    create_schema(engine)
    ConsentStore(engine, dataset.taxonomy).set(
        withdrawn, Consent(frozenset({"demographics"}), "full"), actor=withdrawn, source="customer")
    engine.dispose()

    everything = load_artifact(tr.save_model(dataset, small_run(), tmp_path / "all"))
    assert withdrawn in set(everything.history["customer_id"])
    consented = load_artifact(tr.save_model(dataset, small_run(), tmp_path / "served",
                                            consent_db=url))
    assert withdrawn not in set(consented.history["customer_id"])
    assert consented.manifest["counts"]["customers_history_excluded"] == 1
