import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from recommender.data import Dataset
from recommender.evaluation import (
    NO_OFFER,
    evaluate,
    format_table,
    per_customer_metrics,
    top_k,
)
from recommender.split import Split, temporal_split
from recommender.taxonomy import Taxonomy


def make_dataset(n_customers: int, n_offers: int) -> Dataset:
    customers = pd.DataFrame(
        {"age_band": ["18-24", "25-34"] * (n_customers // 2) + ["35-44"] * (n_customers % 2)},
        index=pd.Index([f"c{i}" for i in range(n_customers)], name="customer_id"),
    )
    offer_ids = [f"o{i:03d}" for i in range(n_offers)]
    offers = pd.DataFrame({"title": offer_ids}, index=pd.Index(offer_ids, name="offer_id"))
    empty = pd.DataFrame({"customer_id": [], "offer_id": [], "kind": [], "weight": [],
                          "timestamp": []})
    return Dataset(customers, offers, empty, Taxonomy.default())


def interactions(dataset: Dataset, pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Interaction rows for (customer row, offer column) pairs."""
    return pd.DataFrame({
        "customer_id": [dataset.customer_ids[c] for c, _ in pairs],
        "offer_id": [dataset.offer_ids[o] for _, o in pairs],
        "kind": "purchase",
        "weight": 1.0,
        "timestamp": np.arange(len(pairs), dtype=np.int64),
    })


def hand_split(n_customers: int, n_offers: int, train: list[tuple[int, int]],
               test: list[tuple[int, int]]) -> Split:
    dataset = make_dataset(n_customers, n_offers)
    return Split(dataset.with_interactions(interactions(dataset, train)),
                 dataset.with_interactions(interactions(dataset, test)))


def fixed(scores: np.ndarray):
    """A scorer returning rows of a fixed (customers, offers) matrix."""
    return lambda rows: scores[rows]


def random_split(seed: int, n_customers: int = 120, n_offers: int = 200) -> Split:
    rng = np.random.default_rng(seed)
    dataset = make_dataset(n_customers, n_offers)
    popularity = rng.dirichlet(np.full(n_offers, 0.3))
    pairs = [(c, int(o)) for c in range(n_customers)
             for o in rng.choice(n_offers, size=rng.integers(3, 40), replace=False, p=popularity)]
    rows = interactions(dataset, pairs)
    rows["timestamp"] = rng.integers(0, 1000, size=len(rows))
    return temporal_split(dataset.with_interactions(rows.sort_values("timestamp")))


# --- top_k -----------------------------------------------------------------------------------

def test_top_k_orders_best_first_and_breaks_ties_by_lower_column() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # many ties
    for k in (1, 3, 7, 30):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k(scores, None, k), expected)


def test_top_k_never_returns_excluded_offers_and_pads_when_short() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 1, 1, 0]]))
    result = top_k(scores, exclude, 3)
    np.testing.assert_array_equal(result, [[1, 3, NO_OFFER], [3, NO_OFFER, NO_OFFER]])
    np.testing.assert_array_equal(scores[0], [5.0, 4.0, 3.0, 2.0])  # input left untouched
    np.testing.assert_array_equal(top_k(scores, None, 6)[1], [3, 2, 1, 0, NO_OFFER, NO_OFFER])


def test_top_k_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.0, np.nan]]), None, 1)


# --- metrics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 5, 10, 40])
def test_ndcg_equals_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    n_customers, n_offers = 200, 40
    relevance = rng.random((n_customers, n_offers)) < rng.uniform(0.02, 0.5, (n_customers, 1))
    relevance[np.arange(n_customers), rng.integers(n_offers, size=n_customers)] = True
    scores = rng.random((n_customers, n_offers))  # continuous: no ties, which sklearn averages
    split = hand_split(n_customers, n_offers, [], [tuple(p) for p in np.argwhere(relevance)])

    table = per_customer_metrics(fixed(scores), split, k=k)
    expected = [ndcg_score(relevance[[c]], scores[[c]], k=k) for c in range(n_customers)]
    np.testing.assert_allclose(table["ndcg"].to_numpy(), expected, rtol=1e-12)


def test_precision_recall_map_by_hand() -> None:
    scores = np.array([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])  # ranking o0, o1, o2, ...
    split = hand_split(1, 6, [], [(0, 0), (0, 2), (0, 5), (0, 2)])  # o2 twice: counted once
    row = per_customer_metrics(fixed(scores), split, k=3).iloc[0]
    # top 3 = o0 (hit), o1, o2 (hit)
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["recall"] == pytest.approx(2 / 3)
    assert row["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert row["hit"] == 1.0
    assert row["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 0.5))

    # o1 is a training item: top 3 = o0 (hit), o2 (hit), o3
    split = hand_split(1, 6, [(0, 1)], [(0, 0), (0, 2), (0, 5)])
    row = per_customer_metrics(fixed(scores), split, k=3).iloc[0]
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["map"] == pytest.approx((1 + 1) / 3)
    assert row["ndcg"] == pytest.approx((1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5))

    # one test item, missed at k=2: everything 0; map normalizes by min(k, |T|) = 1
    split = hand_split(1, 6, [], [(0, 4)])
    row = per_customer_metrics(fixed(scores), split, k=2).iloc[0]
    assert row.to_dict() == {"ndcg": 0.0, "recall": 0.0, "precision": 0.0, "hit": 0.0, "map": 0.0}
    row = per_customer_metrics(fixed(scores), split, k=5).iloc[0]
    assert row["map"] == pytest.approx(1 / 5) and row["recall"] == 1.0


def test_coverage_and_keys_by_hand() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [5.0, 4.0, 3.0, 2.0, 1.0],
                       [1.0, 2.0, 3.0, 4.0, 5.0]])
    split = hand_split(3, 5, [(0, 0)], [(0, 3), (1, 4)])  # customer 2 has no test item
    result = evaluate(fixed(scores), split, k=2)
    assert list(result) == ["precision@2", "recall@2", "ndcg@2", "map@2", "hit_rate@2",
                            "coverage@2", "customers"]
    # lists: customer 0 -> o1, o2 (o0 is training); customer 1 -> o0, o1
    assert result["coverage@2"] == pytest.approx(3 / 5)
    assert result["customers"] == 2
    assert result["hit_rate@2"] == 0.0


def test_oracle_scores_perfectly_and_random_scores_poorly() -> None:
    split = random_split(0)
    test = split.test.interaction_matrix().toarray()
    # training items get the highest scores: exclusion must keep them out of the lists
    oracle = test + 1000.0 * split.train.interaction_matrix().toarray()
    result = evaluate(fixed(oracle), split, k=10)
    assert result["ndcg@10"] == pytest.approx(1.0)
    assert result["map@10"] == pytest.approx(1.0)
    assert result["hit_rate@10"] == 1.0
    assert result["customers"] == int((test.sum(axis=1) > 0).sum()) > 50

    noise = np.random.default_rng(1).random(test.shape)
    assert evaluate(fixed(noise), split, k=10)["ndcg@10"] < 0.2


def test_evaluate_is_the_mean_of_per_customer_metrics() -> None:
    split = random_split(1)
    scores = np.random.default_rng(2).random((split.train.n_customers, split.train.n_offers))
    table = per_customer_metrics(fixed(scores), split, k=5)
    result = evaluate(fixed(scores), split, k=5, batch_size=7)
    assert table.index.name == "customer_id"
    assert list(table.columns) == ["ndcg", "recall", "precision", "hit", "map"]
    for key, column in [("ndcg@5", "ndcg"), ("recall@5", "recall"), ("precision@5", "precision"),
                        ("hit_rate@5", "hit"), ("map@5", "map")]:
        assert result[key] == pytest.approx(table[column].mean())
    assert result == evaluate(fixed(scores), split, k=5, batch_size=1000)


def test_a_customer_subset_is_evaluated_alone() -> None:
    split = hand_split(4, 5, [], [(0, 1), (2, 3), (3, 0)])
    scores = np.tile(np.arange(5.0), (4, 1))
    seen = []

    def scorer(rows: np.ndarray) -> np.ndarray:
        seen.extend(rows.tolist())
        return scores[rows]

    table = per_customer_metrics(scorer, split, k=1, customers=np.array([1, 2]))
    assert list(table.index) == ["c2"]  # c1 has no test item
    assert seen == [2]
    assert table.loc["c2", "hit"] == 0.0


def test_wrong_score_shape_is_refused() -> None:
    split = hand_split(2, 5, [], [(0, 1)])
    with pytest.raises(ValueError, match="shape"):
        evaluate(lambda rows: np.zeros((len(rows), 4)), split)


def test_no_customer_to_evaluate() -> None:
    split = hand_split(2, 5, [(0, 1)], [])
    result = evaluate(fixed(np.zeros((2, 5))), split, k=3)
    assert result["customers"] == 0 and math.isnan(result["ndcg@3"])


def test_format_table() -> None:
    text = format_table({
        "popularity": {"ndcg@10": 0.12345, "fit_seconds": 0.04, "customers": 943},
        "lightfm-hybrid": {"ndcg@10": 0.2, "fit_seconds": 12.345},
    })
    assert text.splitlines() == [
        "model           ndcg@10  fit_seconds  customers",
        "--------------  -------  -----------  ---------",
        "popularity       0.1235          0.0        943",
        "lightfm-hybrid   0.2000         12.3          -",
    ]
    only_y = format_table({"a": {"x": 1.0, "y": 2.0}}, columns=["y"])
    assert only_y.splitlines()[2] == "a      2.0000"
