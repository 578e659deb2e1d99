"""Small trained models shared by the test modules (trained once per test session)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from recommender.artifacts import Artifact
from recommender.data import Dataset
from recommender.evaluation import evaluate
from recommender.loaders import load_movielens, load_synthetic
from recommender.models import SERVED, make_model
from recommender.split import temporal_split
from recommender.training import TrainingRun, build_artifact

ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"
FAST = {"epochs": 5, "num_threads": 1, "random_state": 0, "show_progress": False}
# the served stack fitted without validation takes its default weights: every component, fast
STACK = {"num_threads": 1, "random_state": 0, "show_progress": False}


def require_ml100k() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {ML100K}")
    return ML100K


def artifact_for(dataset: Dataset, name: str = SERVED, **params: object) -> Artifact:
    """A served-style artifact of `name` fitted on all of `dataset` (deterministic: one thread)."""
    if name.startswith(("hybrid", "lightfm")):
        params = FAST | params
    elif name in (SERVED, "served"):
        params = STACK | params
    model = make_model(name, **params).fit(dataset)
    split = temporal_split(dataset)
    run = TrainingRun(name, params, model, split, {}, evaluate(model.score, split), 0.0)
    return build_artifact(dataset, run, model)


@cache
def synthetic_dataset(seed: int = 0) -> Dataset:
    return load_synthetic(seed=seed)


@cache
def synthetic_artifact(name: str = SERVED) -> Artifact:
    """The served model (or `name`: "hybrid" is the LightFM hybrid, history "blend")."""
    return artifact_for(synthetic_dataset(), name)


@cache
def movielens_dataset() -> Dataset:
    return load_movielens(require_ml100k(), report=None)


@cache
def movielens_artifact(name: str = SERVED) -> Artifact:
    return artifact_for(movielens_dataset(), name)
