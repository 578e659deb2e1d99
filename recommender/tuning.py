"""Hyperparameter search on the validation split only (the test split is never looked at)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommender.data import Dataset
from recommender.evaluation import evaluate
from recommender.models import make_model
from recommender.split import Split, temporal_split


def grid(**axes: list) -> list[dict]:
    """Every combination of the given values: grid(factors=[32, 64], alpha=[1, 5])."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def tune(
    dataset: Dataset, name: str, candidates: list[dict], *, seed: int | None = 0, k: int = 10,
    split: Split | None = None, show_progress: bool = True,
) -> pd.DataFrame:
    """Validation NDCG@k of each candidate, best first. Validation is carved from the training
    part of the test split, so choosing on it leaves the test split untouched."""
    split = split or temporal_split(dataset)
    inner = temporal_split(split.train)
    rows = []
    for params in tqdm(candidates, desc=f"tune {name}", unit="fit", disable=not show_progress):
        model = make_model(name, **params)
        if seed is not None and "random_state" in model.get_params():
            model.set_params(random_state=seed)
        if "show_progress" in model.get_params():
            model.set_params(show_progress=False)
        started = time.perf_counter()
        model.fit(inner.train, validation=inner.test)
        metrics = evaluate(model.score, inner, k=k)
        rows.append(params | {
            f"val_ndcg@{k}": metrics[f"ndcg@{k}"],
            "epochs": getattr(model, "epochs_", None),
            "seconds": time.perf_counter() - started,
        })
    return pd.DataFrame(rows).sort_values(f"val_ndcg@{k}", ascending=False, ignore_index=True)


def best_params(table: pd.DataFrame, grid: Mapping[str, Sequence] | Sequence[str]) -> dict:
    """The grid values of the table's best row (its first, as tune sorts it), as plain Python
    values ready for training and an artifact's manifest."""
    best = {name: table[name].iloc[0] for name in grid}  # by column: a row would mix int and float
    return {name: value.item() if isinstance(value, np.generic) else value
            for name, value in best.items()}
