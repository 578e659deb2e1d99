"""What was vectorized for a million customers (benchmarks/scale.py) gives exactly what the
per-customer loops it replaced gave: the same feature matrix, names and categories (so the same
models, bit for bit), and the same past offers per customer. The loops are kept here as the
reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from trained import ML100K, synthetic_dataset

from recommender.artifacts import Artifact
from recommender.data import Dataset
from recommender.features import (
    HISTORY_MODES,
    customer_feature_weights,
    customer_histories,
    user_feature_matrix,
)
from recommender.loaders import load_movielens
from recommender.taxonomy import HISTORY, Taxonomy


def reference_user_feature_matrix(
    dataset: Dataset, history_mode: str = "items", taxonomy: Taxonomy | None = None
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """user_feature_matrix as it was: customer_feature_weights row by row."""
    taxonomy = taxonomy or dataset.taxonomy
    names: dict[str, int] = {}
    categories: list[int] = []

    def column(name: str, category: str) -> int:
        if name not in names:
            names[name] = len(names)
            categories.append(taxonomy.categories.index(category))
        return names[name]

    if history_mode in ("items", "blend"):
        for offer in dataset.offer_ids:
            column(f"history:{offer}", HISTORY)
    rows, cols, weights = [], [], []
    histories = customer_histories(dataset)
    records = dataset.customers.to_dict("records")
    for row, (customer_id, attributes) in enumerate(zip(dataset.customer_ids, records, strict=True)):
        features = customer_feature_weights(
            taxonomy, attributes, histories[row], history_mode=history_mode,
            customer_id=customer_id if histories[row] else None,
        )
        for name, weight in features.items():
            category = HISTORY if name.startswith(("history:", "customer:")) else \
                taxonomy.attributes[name.split("=", 1)[0]]
            rows.append(row)
            cols.append(column(name, category))
            weights.append(weight)
    matrix = sp.csr_matrix(
        (np.asarray(weights, np.float32), (rows, cols)), shape=(dataset.n_customers, len(names))
    )
    return matrix, np.array(list(names), dtype=object), np.asarray(categories, dtype=np.int32)


def reference_histories(history: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Artifact.histories as it was: a pandas group per customer."""
    ordered = history.sort_values("timestamp", kind="stable")
    return {
        str(customer): tuple(dict.fromkeys(group["offer_id"].astype(str)))
        for customer, group in ordered.groupby("customer_id", sort=False)
    }


def assert_same_matrix(found, expected) -> None:
    (matrix, names, categories), (want, want_names, want_categories) = found, expected
    assert list(names) == list(want_names)
    assert categories.dtype == want_categories.dtype
    np.testing.assert_array_equal(categories, want_categories)
    assert matrix.shape == want.shape and matrix.dtype == want.dtype
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(matrix, part), getattr(want, part))


def awkward_dataset() -> Dataset:
    """Multi-valued and repeated values, unknown values, empty strings, customers without history,
    repeated interactions, an offer nobody chose."""
    customers = pd.DataFrame({
        "age_band": ["25-34", np.nan, "25-34", "65+", "", "18-24"],
        "gender": ["female", "male", None, "female", "male", "female"],
        "region": ["north|south", "south", "north|north|east", np.nan, "east|", "west"],
        "occupation": ["chef", "chef", "nurse", np.nan, "nurse", np.nan],
    }, index=pd.Index([f"c{i}" for i in range(6)], name="customer_id"))
    offers = pd.DataFrame({"title": [f"offer {j}" for j in range(5)],
                           "category": ["a", "b", "a", "c", "b"]},
                          index=pd.Index([f"o{j}" for j in range(5)], name="offer_id"))
    interactions = pd.DataFrame({
        "customer_id": ["c2", "c0", "c2", "c0", "c3", "c2", "c5", "c0"],
        "offer_id": ["o1", "o3", "o1", "o0", "o3", "o2", "o1", "o3"],
        "kind": "purchase", "weight": 1.0,
        "timestamp": [5, 1, 3, 1, 2, 2, 9, 0],
    })
    return Dataset(customers, offers, interactions, Taxonomy.default())


DATASETS = {"awkward": awkward_dataset, "synthetic": synthetic_dataset}


@pytest.mark.parametrize("mode", HISTORY_MODES)
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_user_feature_matrix_equals_the_per_customer_loop(name, mode):
    dataset = DATASETS[name]()
    assert_same_matrix(user_feature_matrix(dataset, mode),
                       reference_user_feature_matrix(dataset, mode))
    # a taxonomy leaving attributes out (fairness through unawareness)
    restricted = dataset.taxonomy.restricted(["age_band", "region"])
    assert_same_matrix(user_feature_matrix(dataset, mode, restricted),
                       reference_user_feature_matrix(dataset, mode, restricted))


def test_user_feature_matrix_on_movielens():
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {ML100K}")
    dataset = load_movielens(ML100K, report=None)
    for mode in HISTORY_MODES:
        assert_same_matrix(user_feature_matrix(dataset, mode),
                           reference_user_feature_matrix(dataset, mode))


def test_user_feature_matrix_without_customers_or_interactions():
    dataset = awkward_dataset()
    silent = dataset.with_interactions(dataset.interactions.iloc[:0])
    for mode in HISTORY_MODES:
        assert_same_matrix(user_feature_matrix(silent, mode),
                           reference_user_feature_matrix(silent, mode))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_histories_equal_the_per_customer_groups(name):
    dataset = DATASETS[name]()
    history = dataset.interactions[["customer_id", "offer_id", "timestamp"]]
    artifact = Artifact({}, None, dataset.customers, dataset.offers, history)
    found, want = artifact.histories, reference_histories(history)
    assert found == want
    assert list(found) == list(want)  # customers in the same order too
    empty = Artifact({}, None, dataset.customers, dataset.offers, history.iloc[:0])
    assert empty.histories == {}
