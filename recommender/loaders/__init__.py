"""Loaders that turn outside data into a Dataset: MovieLens, your own CSV/Parquet, or the built-in
synthetic storefront."""

from __future__ import annotations

import os
from typing import Any

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.loaders.movielens import load_movielens
from recommender.loaders.synthetic import Storefront, generate_storefront, load_synthetic
from recommender.loaders.tabular import load_tabular

FORMATS = ("movielens", "csv", "tabular", "parquet", "synthetic")

__all__ = [
    "FORMATS", "Storefront", "generate_storefront", "load_dataset", "load_movielens",
    "load_synthetic", "load_tabular",
]


def load_dataset(path: str | os.PathLike[str] | None, format: str, **options: Any) -> Dataset:
    """Load `path` in `format`: "movielens" (a MovieLens-100K folder), "csv" / "tabular" /
    "parquet" (a TOML mapping file naming CSV or Parquet tables) or "synthetic" (path: None or a
    seed such as "7"). `options` go to the format's loader (e.g. report=, taxonomy=, seed=)."""
    kind = str(format).strip().lower()
    if kind == "synthetic":
        if path is not None and str(path).strip():
            if not str(path).strip().isdigit():
                raise DataError(f"synthetic data takes a seed, not {str(path)!r}", field="path")
            options.setdefault("seed", int(str(path)))
        return load_synthetic(**options)
    if kind not in FORMATS:
        raise DataError(f"unknown format {format!r} (one of {', '.join(FORMATS)})",
                        field="format")
    if path is None or not str(path).strip():
        raise DataError(f"format {kind!r} needs a path", field="path")
    if kind == "movielens":
        return load_movielens(path, **options)
    return load_tabular(path, **options)
