"""Training runs: choose epochs on validation, measure on test, fit the served model, package it.

Protocol (recommender.split): the test split holds each customer's most recent positives;
validation is carved from the training part the same way. Early stopping and any choice of
hyperparameters look at validation only; the test split is measured once, by a model fitted on the
whole training part with the chosen number of epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from recommender.artifacts import Artifact, make_manifest
from recommender.consent import Consent, category_mask
from recommender.data import Dataset
from recommender.evaluation import evaluate
from recommender.models import MODELS, Recommender, make_model
from recommender.split import Split, temporal_split


@dataclass
class TrainingRun:
    """What one model name + hyperparameters gave on one dataset and seed."""

    name: str
    params: dict
    model: Recommender  # fitted on split.train: the model the test metrics describe
    split: Split
    validation_metrics: dict[str, float]
    test_metrics: dict[str, float]
    train_seconds: float
    level_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _with_seed(params: dict, model: Recommender, seed: int | None) -> dict:
    if seed is not None and "random_state" in model.get_params():
        return params | {"random_state": seed}
    return params


def consent_levels(name: str) -> tuple[str, ...]:
    """The reduced personalization levels worth evaluating for model `name`: those of the hybrids
    that use customer attributes (a pure-history model under `segment` is just popularity)."""
    if MODELS[name][0].__name__ == "HybridRecommender" and name != "lightfm-cf":
        return ("segment", "none")
    return ()


def level_allowed(model: Recommender, level: str) -> np.ndarray:
    """The categories a personalization level lets into the score when every category is allowed."""
    categories = model.to_additive().categories
    return category_mask(Consent(frozenset(categories), level), categories)


def train_and_evaluate(
    dataset: Dataset, name: str, params: dict | None = None, *, seed: int | None = None,
    k: int = 10, split: Split | None = None, levels: tuple[str, ...] = (),
) -> TrainingRun:
    """Fit `name` with early stopping on validation, refit on the training part, test once.

    levels: personalization levels ("segment", "none") to also measure on test, for models
    whose additive form has several categories."""
    params = dict(params or {})
    split = split or temporal_split(dataset)
    inner = temporal_split(split.train)
    probe = make_model(name, **params)
    params = _with_seed(params, probe, seed)
    started = time.perf_counter()
    model = make_model(name, **params).fit(inner.train, validation=inner.test)
    validation_metrics = evaluate(model.score, inner, k=k)
    if hasattr(model, "epochs_") and "epochs" in model.get_params():
        params = params | {"epochs": int(model.epochs_)}
    model = make_model(name, **params).fit(split.train)
    seconds = time.perf_counter() - started
    test_metrics = evaluate(model.score, split, k=k)
    run = TrainingRun(name, params, model, split, validation_metrics, test_metrics, seconds)
    for level in levels:
        allowed = level_allowed(model, level)
        run.level_metrics[level] = evaluate(
            lambda rows, allowed=allowed: model.to_additive().score(rows, allowed), split, k=k
        )
    return run


def fit_served_model(dataset: Dataset, run: TrainingRun) -> Recommender:
    """The same hyperparameters and epochs, fitted on all the data: the model that is served."""
    return make_model(run.name, **run.params).fit(dataset)


def build_artifact(
    dataset: Dataset, run: TrainingRun, model: Recommender, consent_counts: dict | None = None
) -> Artifact:
    """Package the served model; consent_counts (recommender.consent.training_data) say what
    consent kept out of the data."""
    history_mode = model.get_params().get("history") if model.to_additive().features else None
    manifest = make_manifest(
        model_name=run.name,
        params=_jsonable(run.params),
        taxonomy=getattr(model, "taxonomy_", dataset.taxonomy),
        history_mode=history_mode,
        data_fingerprint=dataset.fingerprint(),
        counts=dataset.summary() | {
            "train_interactions": len(run.split.train.interactions),
            "test_interactions": len(run.split.test.interactions),
        } | (consent_counts or {}),
        metrics={"validation": run.validation_metrics, "test": run.test_metrics}
        | {f"test_{level}": m for level, m in run.level_metrics.items()},
    )
    history = dataset.interactions[["customer_id", "offer_id", "timestamp"]].reset_index(drop=True)
    return Artifact(
        manifest=manifest, model=model.to_additive(), customers=dataset.customers,
        offers=dataset.offers, history=history,
    )


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def mean_and_spread(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean over seeds of every metric, with the standard deviation of NDCG."""
    out = {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}
    ndcg = [m for m in rows[0] if m.startswith("ndcg@")][0]
    out[f"{ndcg} sd"] = float(np.std([r[ndcg] for r in rows]))
    return out
