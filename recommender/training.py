"""Training runs: choose epochs on validation, measure on test, fit the served model, package it.

Protocol (recommender.split): the test split holds each customer's most recent positives;
validation is carved from the training part the same way. Early stopping and any choice of
hyperparameters (a model's own search, as the served stack's, or a tuning grid) look at validation
only; the test split is measured once, by a model fitted on the whole training part with the chosen
values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommender.artifacts import Artifact, make_manifest
from recommender.consent import Consent, category_mask
from recommender.data import Dataset
from recommender.evaluation import evaluate
from recommender.models import MODELS, TUNING_GRIDS, Recommender, make_model, model_name
from recommender.models.hybrid import HybridRecommender
from recommender.models.stack import StackedRecommender
from recommender.split import Split, temporal_split
from recommender.tuning import best_params, grid, tune


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
    # every candidate compared on validation (a model's own search, or a tuning grid), if any
    selection: pd.DataFrame | None = None
    refit_seconds: float = 0.0  # of train_seconds, the final fit with the chosen settings


def _with_seed(params: dict, model: Recommender, seed: int | None) -> dict:
    if seed is not None and "random_state" in model.get_params():
        return params | {"random_state": seed}
    return params


def consent_levels(name: str) -> tuple[str, ...]:
    """The reduced personalization levels worth evaluating for model `name`: those of the models
    that use customer attributes, the stack and the hybrids (a pure-history model under `segment`
    is just popularity)."""
    name = model_name(name)
    if MODELS[name][0] in (StackedRecommender, HybridRecommender) and name != "lightfm-cf":
        return ("segment", "none")
    return ()


def level_allowed(model: Recommender, level: str) -> np.ndarray:
    """The categories a personalization level lets into the score when every category is allowed."""
    categories = model.to_additive().categories
    return category_mask(Consent(frozenset(categories), level), categories)


def train_and_evaluate(
    dataset: Dataset, name: str, params: dict | None = None, *, seed: int | None = None,
    k: int = 10, split: Split | None = None, levels: tuple[str, ...] = (),
    tuning_grid: Mapping[str, Sequence] | None = None, show_progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> TrainingRun:
    """Fit `name` choosing on validation (early stopping, the model's own search, or the best of
    `tuning_grid`'s candidates), refit on the training part with what was chosen, test once.

    levels: personalization levels ("segment", "none") to also measure on test, for models
    whose additive form has several categories. report receives a line as each stage starts."""
    report = report or (lambda line: None)
    name = model_name(name)
    params = dict(params or {})
    split = split or temporal_split(dataset)
    inner = temporal_split(split.train)
    report(f"split: {len(inner.train.interactions)} interactions to fit, "
           f"{len(inner.test.interactions)} to validate, {len(split.test.interactions)} to test")
    probe = make_model(name, **params)
    params = _with_seed(params, probe, seed)
    started = time.perf_counter()
    selection = None
    if tuning_grid:
        candidates = [params | point for point in grid(**tuning_grid)]
        selection = tune(dataset, name, candidates, seed=seed, k=k, split=split,
                         show_progress=show_progress)
        params = params | best_params(selection, tuning_grid)
    report(f"{name}: choosing settings on validation")
    model = make_model(name, **params).fit(inner.train, validation=inner.test)
    validation_metrics = evaluate(model.score, inner, k=k)
    params = params | chosen_params(model)
    if getattr(model, "selection_", None) is not None:
        selection = model.selection_
    report(f"{name}: refitting on the training part, then measuring on test once")
    refit_started = time.perf_counter()
    model = make_model(name, **params).fit(split.train)
    seconds = time.perf_counter() - started
    refit_seconds = time.perf_counter() - refit_started
    test_metrics = evaluate(model.score, split, k=k)
    run = TrainingRun(name, params, model, split, validation_metrics, test_metrics, seconds,
                      selection=selection, refit_seconds=refit_seconds)
    for level in levels:
        allowed = level_allowed(model, level)
        run.level_metrics[level] = evaluate(
            lambda rows, allowed=allowed: model.to_additive().score(rows, allowed), split, k=k
        )
    return run


def chosen_params(model: Recommender) -> dict:
    """What a model fitted with validation chose for its refit: its epochs (early stopping) or
    its selected_params_ (a search)."""
    chosen = dict(getattr(model, "selected_params_", {}))
    if hasattr(model, "epochs_") and "epochs" in model.get_params():
        chosen["epochs"] = int(model.epochs_)
    return chosen


def fit_served_model(dataset: Dataset, run: TrainingRun) -> Recommender:
    """The same hyperparameters and epochs, fitted on all the data: the model that is served."""
    return make_model(run.name, **run.params).fit(dataset)


def build_artifact(
    dataset: Dataset, run: TrainingRun, model: Recommender, consent_counts: dict | None = None
) -> Artifact:
    """Package the served model; consent_counts (recommender.consent.training_data) say what
    consent kept out of the data."""
    history_mode = None
    if model.to_additive().features is not None:
        history_mode = getattr(model, "history_mode_", None) or model.get_params().get("history")
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
        selection=None if run.selection is None else _jsonable_rows(run.selection),
    )
    history = dataset.interactions[["customer_id", "offer_id", "timestamp"]].reset_index(drop=True)
    return Artifact(
        manifest=manifest, model=model.to_additive(), customers=dataset.customers,
        offers=dataset.offers, history=history,
    )


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _jsonable_rows(table: pd.DataFrame) -> list[dict]:
    """The selection table as JSON rows: empty cells left out, numpy scalars as Python values."""
    return [{column: (value.item() if isinstance(value, np.generic) else value)
             for column, value in row.items() if not pd.isna(value)}
            for row in table.to_dict("records")]


def compare(
    dataset: Dataset, names: Sequence[str], *, seeds: Iterable[int] = (0,), k: int = 10,
    tune: bool = False, params: Mapping[str, dict] | None = None, show_progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Test metrics of each model over `seeds` (mean, and the sd of NDCG), with the mean train
    seconds (any tuning or search included) and refit seconds (the final fit alone); models that
    use customer attributes get rows under the consent levels segment and none too. tune: each
    baseline first tuned on validation over its TUNING_GRIDS grid."""
    params = dict(params or {})
    rows: dict[str, dict[str, float]] = {}
    for name in tqdm(names, desc="compare", unit="model", disable=not show_progress):
        quiet = {"show_progress": False} if "show_progress" in make_model(name).get_params() else {}
        runs = [
            train_and_evaluate(dataset, name, params.get(name, {}) | quiet, seed=seed, k=k,
                               levels=consent_levels(name), show_progress=False,
                               tuning_grid=TUNING_GRIDS.get(name) if tune else None)
            for seed in seeds
        ]
        rows[name] = mean_and_spread([r.test_metrics for r in runs]) | {
            "train seconds": float(np.mean([r.train_seconds for r in runs])),
            "refit seconds": float(np.mean([r.refit_seconds for r in runs])),
        }
        for level in runs[0].level_metrics:
            rows[f"{name} [consent {level}]"] = mean_and_spread(
                [r.level_metrics[level] for r in runs])
    return rows


def mean_and_spread(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean over seeds of every metric, with the standard deviation of NDCG."""
    out = {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}
    ndcg = [m for m in rows[0] if m.startswith("ndcg@")][0]
    out[f"{ndcg} sd"] = float(np.std([r[ndcg] for r in rows]))
    return out
