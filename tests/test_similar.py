"""SimilarOffers (recommender/similar.py) against brute force, and the similar-offers benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks.similar import leave_last_out, main, protocol, time_order
from recommender.data import Dataset
from recommender.loaders import load_dataset
from recommender.similar import NO_NEIGHBOUR, SimilarOffers

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"


def random_matrix(seed: int, customers: int = 60, offers: int = 25, density: float = 0.15
                  ) -> sp.csr_matrix:
    """Binary customers x offers with an empty customer, an offer nobody bought and an offer
    bought only by a customer who bought nothing else (both without co-buyers)."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((customers, offers)) < density).astype(float)
    dense[0] = 0.0  # a customer without interactions
    dense[:, 1] = 0.0  # an offer nobody bought
    dense[:, 2] = 0.0
    dense[1] = 0.0
    dense[1, 2] = 1.0  # offer 2: one buyer, who bought nothing else
    # weights, not just ones: fit must read presence only
    return sp.csr_matrix(dense * rng.integers(1, 4, size=dense.shape))


def brute_scores(matrix: sp.csr_matrix, a: float, b: float, s: float) -> tuple[np.ndarray, ...]:
    """(co-occurrence counts, scores with non-candidates at -inf, buyers) from dense algebra."""
    x = (matrix.toarray() > 0).astype(float)
    counts = x.T @ x
    per_customer = x.sum(axis=1)
    weight = np.where(per_customer > 0, per_customer, 1.0) ** -a
    numerator = x.T @ (weight[:, None] * x)
    buyers = x.sum(axis=0)
    safe = np.maximum(buyers, 1.0)
    scores = numerator / (np.outer(safe ** (1 - b), safe ** b) + s)
    scores[counts == 0] = -np.inf
    np.fill_diagonal(scores, -np.inf)
    return counts, scores, buyers


def brute_neighbours(scores: np.ndarray, n: int) -> list[np.ndarray]:
    """Per offer, its n best candidates: score descending, ties toward the lower offer."""
    rows = []
    for row in scores:
        candidates = np.flatnonzero(np.isfinite(row))
        order = candidates[np.lexsort((candidates, -row[candidates]))]
        rows.append(order[:n])
    return rows


def assert_matches_brute_force(model: SimilarOffers, matrix: sp.csr_matrix,
                               scores: np.ndarray | None = None) -> None:
    counts, brute, buyers = brute_scores(matrix, model.customer_exponent,
                                         model.popularity_exponent, model.shrinkage)
    if scores is not None:
        brute = scores
    n_offers = matrix.shape[1]
    width = model.neighbours
    assert model.neighbours_.shape == (n_offers, width) and model.neighbours_.dtype == np.int32
    assert model.scores_.shape == (n_offers, width) and model.scores_.dtype == np.float64
    assert model.together_.shape == (n_offers, width) and model.together_.dtype == np.int32
    assert model.buyers_.dtype == np.int32
    np.testing.assert_array_equal(model.buyers_, buyers)
    for offer, expected in enumerate(brute_neighbours(brute, width)):
        row = model.neighbours_[offer]
        found = row[row != NO_NEIGHBOUR]
        np.testing.assert_array_equal(found, expected)
        assert (row[len(found):] == NO_NEIGHBOUR).all()
        # the criterion's numbers are exact counts, whatever the ranking score
        np.testing.assert_array_equal(model.together_[offer, : len(found)], counts[offer, found])
        assert (model.together_[offer, len(found):] == 0).all()
        np.testing.assert_allclose(model.scores_[offer, : len(found)], brute[offer, found],
                                   rtol=1e-12)
        assert (model.scores_[offer, len(found):] == 0.0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("params", [
    {},  # the defaults
    {"customer_exponent": 0.0, "popularity_exponent": 0.5, "shrinkage": 0.0},  # cosine
    {"customer_exponent": 0.0, "popularity_exponent": 0.0, "shrinkage": 0.0},  # share of buyers
    {"customer_exponent": 1.0, "popularity_exponent": 1.0, "shrinkage": 20.0},
])
def test_neighbours_equal_brute_force_co_occurrence(seed, params):
    matrix = random_matrix(seed)
    model = SimilarOffers(neighbours=40, **params).fit(matrix)  # more than the catalog: all of it
    assert_matches_brute_force(model, matrix)


def test_top_n_keeps_the_n_best_with_ties_toward_the_lower_offer():
    matrix = random_matrix(3, customers=200, offers=30, density=0.1)
    model = SimilarOffers(neighbours=4).fit(matrix)
    assert_matches_brute_force(model, matrix)
    # ties exist in this matrix (share-of-buyers scores are small fractions), and are resolved
    tied = SimilarOffers(neighbours=3, customer_exponent=0.0, popularity_exponent=0.0,
                         shrinkage=0.0).fit(matrix)
    assert_matches_brute_force(tied, matrix)


def test_blockwise_fit_is_identical_to_one_block():
    matrix = random_matrix(4, customers=300, offers=70, density=0.08)
    whole = SimilarOffers(neighbours=10, block_cells=10**9).fit(matrix)
    for cells in (1, 70, 3 * 70 + 5, 1000):  # one row per block, one, three, fourteen
        blocks = SimilarOffers(neighbours=10, block_cells=cells).fit(matrix)
        for name in ("neighbours_", "scores_", "together_", "buyers_"):
            np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))


@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"ML-100K is not at {ML100K}")
def test_ml100k_slice_equals_brute_force():
    dataset = load_dataset(ML100K, "movielens")
    matrix = dataset.interaction_matrix()[:, :300].tocsr()  # 943 customers x 300 films
    model = SimilarOffers(neighbours=25, block_cells=300 * 37).fit(matrix)
    assert_matches_brute_force(model, matrix)
    assert model.together_.max() > 100  # real co-occurrence, not a near-empty slice


def test_offers_without_co_buyers():
    matrix = random_matrix(5)
    model = SimilarOffers(neighbours=5).fit(matrix)
    for offer in (1, 2):  # nobody bought 1; 2's only buyer bought nothing else
        assert (model.neighbours_[offer] == NO_NEIGHBOUR).all()
        assert (model.together_[offer] == 0).all() and (model.scores_[offer] == 0).all()
        offers, scores = model.similar(offer, 10)
        assert offers.shape == (0,) and scores.shape == (0,)
        offers, scores, contributions = model.session(np.array([offer]), 10)
        assert offers.shape == (0,) and scores.shape == (0,) and contributions.shape == (0, 1)
        assert offer not in model.neighbours_  # and no one lists them
    assert model.buyers_[1] == 0 and model.buyers_[2] == 1
    empty = SimilarOffers(neighbours=3).fit(sp.csr_matrix((4, 6)))
    assert (empty.neighbours_ == NO_NEIGHBOUR).all() and (empty.buyers_ == 0).all()


def test_similar_is_the_row_less_the_excluded():
    matrix = random_matrix(6, customers=120, offers=30, density=0.2)
    model = SimilarOffers(neighbours=12).fit(matrix)
    offer = 5
    row = model.neighbours_[offer]
    row = row[row != NO_NEIGHBOUR]
    offers, scores = model.similar(offer, 4)
    np.testing.assert_array_equal(offers, row[:4])
    np.testing.assert_array_equal(scores, model.scores_[offer, :4])
    assert offers.dtype == np.int64 and scores.dtype == np.float64
    assert (np.diff(scores) <= 0).all()
    exclude = np.array([row[0], row[2], offer, 29])
    offers, scores = model.similar(offer, 4, exclude=exclude)
    expected = [o for o in row if o not in exclude][:4]
    np.testing.assert_array_equal(offers, expected)
    assert not np.isin(offers, exclude).any()
    assert len(model.similar(offer, 100)[0]) == len(row)  # no padding comes back
    with pytest.raises(IndexError):
        model.similar(30, 3)


def test_session_scores_are_sums_of_the_viewed_offers_scores():
    matrix = random_matrix(7, customers=150, offers=40, density=0.15)
    model = SimilarOffers(neighbours=8).fit(matrix)  # truncated: not every pair is kept
    n_offers = matrix.shape[1]
    # dense per-viewed scores from the lists: what a viewed offer adds to each other offer
    kept = np.zeros((n_offers, n_offers))
    for offer in range(n_offers):
        row = model.neighbours_[offer]
        kept[offer, row[row != NO_NEIGHBOUR]] = model.scores_[offer, row != NO_NEIGHBOUR]
    viewed = np.array([3, 17, 3, 25])  # a repeat view counts again
    exclude = np.array([0, 9])
    offers, scores, contributions = model.session(viewed, 6, exclude=exclude)
    assert contributions.shape == (len(offers), len(viewed))
    np.testing.assert_array_equal(contributions, kept[viewed][:, offers].T)
    np.testing.assert_array_equal(scores, contributions.sum(axis=1))
    # the ranking is the brute-force one over every candidate, ties toward the lower offer
    total = kept[viewed].sum(axis=0)
    candidates = np.flatnonzero(total > 0)
    candidates = candidates[~np.isin(candidates, np.concatenate([viewed, exclude]))]
    expected = candidates[np.lexsort((candidates, -total[candidates]))][:6]
    np.testing.assert_array_equal(offers, expected)
    np.testing.assert_allclose(scores, total[expected], rtol=1e-12)
    assert not np.isin(offers, np.concatenate([viewed, exclude])).any()
    # "because you looked at X": the largest contributor's count is kept and exact
    counts = (matrix.toarray() > 0).astype(int)
    counts = counts.T @ counts
    for offer, row in zip(offers, contributions, strict=True):
        top = viewed[int(np.argmax(row))]
        assert model.together_with(int(top), np.array([offer]))[0] == counts[top, offer] > 0
    # one viewed offer: the same as similar()
    alone, alone_scores, alone_contributions = model.session(np.array([17]), 5)
    np.testing.assert_array_equal(alone, model.similar(17, 5)[0])
    np.testing.assert_array_equal(alone_contributions[:, 0], alone_scores)
    nothing = model.session(np.array([], dtype=np.int64), 5)
    assert [len(part) for part in nothing] == [0, 0, 0]


def test_session_breaks_ties_toward_the_lower_offer():
    # share-of-buyers scores of small counts tie often; ranking must not depend on the sort
    matrix = random_matrix(12, customers=40, offers=120, density=0.1)
    model = SimilarOffers(neighbours=120, customer_exponent=0.0, popularity_exponent=0.0,
                          shrinkage=0.0).fit(matrix)
    counts, shares, _ = brute_scores(matrix, 0.0, 0.0, 0.0)
    viewed = np.array([10, 11, 12])
    offers, scores, _ = model.session(viewed, 100)
    total = np.where(np.isfinite(shares[viewed]), shares[viewed], 0.0).sum(axis=0)
    candidates = np.flatnonzero(total > 0)
    candidates = candidates[~np.isin(candidates, viewed)]
    expected = candidates[np.lexsort((candidates, -total[candidates]))][:100]
    assert len(np.unique(total[expected])) < len(expected) - 10  # many ties indeed
    np.testing.assert_array_equal(offers, expected)


def test_together_with_reports_counts_and_unknown_pairs():
    matrix = random_matrix(8)
    model = SimilarOffers(neighbours=3).fit(matrix)
    row = model.neighbours_[4]
    outside = np.setdiff1d(np.arange(matrix.shape[1]), row)[0]
    counts = model.together_with(4, np.array([row[1], outside, row[0]]))
    np.testing.assert_array_equal(counts, [model.together_[4, 1], -1, model.together_[4, 0]])


def brute_sequence(matrix: sp.csr_matrix, times: sp.csr_matrix, a: float, gamma: float,
                   window: int, decay: float) -> np.ndarray:
    """sum over customers of n_u ** -a * (1 + gamma * f) for pairs bought by u, f by the steps
    between distinct purchase times (module docstring), by loops."""
    n_offers = matrix.shape[1]
    numerator = np.zeros((n_offers, n_offers))
    for u in range(matrix.shape[0]):
        offers = times.indices[times.indptr[u]:times.indptr[u + 1]]
        when = times.data[times.indptr[u]:times.indptr[u + 1]]
        if len(offers) == 0:
            continue
        distinct = np.unique(when)
        step = {int(o): int(np.searchsorted(distinct, t)) for o, t in zip(offers, when, strict=True)}
        weight = len(offers) ** -a
        for i in offers:
            for j in offers:
                if i == j:
                    continue
                d = step[int(j)] - step[int(i)]
                bonus = decay ** max(d - 1, 0) if 0 <= d <= window else 0.0
                numerator[i, j] += weight * (1 + gamma * bonus)
    return numerator


@pytest.mark.parametrize("window, decay", [(1, 1.0), (3, 0.5), (10, 0.8)])
def test_sequence_bonus_equals_brute_force(window, decay):
    matrix = random_matrix(9, customers=80, offers=20, density=0.3)
    rng = np.random.default_rng(9)
    # few distinct times, so that baskets (equal times) are common
    times = matrix.copy().astype(np.int64)
    times.data = rng.integers(1_000, 1_008, size=times.nnz)
    params = {"customer_exponent": 0.75, "popularity_exponent": 0.25, "shrinkage": 5.0}
    model = SimilarOffers(neighbours=30, sequence_weight=2.0, sequence_window=window,
                          sequence_decay=decay, **params).fit(matrix, times)
    numerator = brute_sequence(matrix, times, 0.75, 2.0, window, decay)
    counts, _, buyers = brute_scores(matrix, **{"a": 0.75, "b": 0.25, "s": 5.0})
    safe = np.maximum(buyers, 1.0)
    scores = numerator / (np.outer(safe ** 0.75, safe ** 0.25) + 5.0)
    scores[counts == 0] = -np.inf
    np.fill_diagonal(scores, -np.inf)
    assert_matches_brute_force(model, matrix, scores)
    # the bonus is directional: later offers gain, earlier ones do not
    assert not np.allclose(numerator, numerator.T)
    # the counts stay co-occurrence counts: the time order changes the ranking, not the words
    plain = SimilarOffers(neighbours=30, **params).fit(matrix)
    np.testing.assert_array_equal(model.buyers_, plain.buyers_)


def test_sequence_needs_timestamps_of_the_same_pattern():
    matrix = random_matrix(10)
    with pytest.raises(ValueError, match="timestamps"):
        SimilarOffers(sequence_weight=1.0).fit(matrix)
    other = sp.csr_matrix(matrix.shape, dtype=np.int64)
    with pytest.raises(ValueError, match="pattern"):
        SimilarOffers(sequence_weight=1.0).fit(matrix, other)
    # without a sequence weight the timestamps change nothing
    times = matrix.astype(np.int64)
    a = SimilarOffers(neighbours=5).fit(matrix, times)
    b = SimilarOffers(neighbours=5).fit(matrix)
    np.testing.assert_array_equal(a.scores_, b.scores_)


def test_invalid_parameters_are_refused():
    matrix = random_matrix(11)
    for params in ({"neighbours": 0}, {"popularity_exponent": 1.5}, {"shrinkage": -1.0},
                   {"sequence_window": 0}, {"sequence_decay": 0.0}, {"block_cells": 0}):
        with pytest.raises(ValueError):
            SimilarOffers(**params).fit(matrix)


def small_log() -> Dataset:
    """Three customers: c1's last two share a time (a basket), c2 repeats an offer last, c3 has
    one interaction."""
    import pandas as pd

    from recommender.taxonomy import Taxonomy

    rows = [("c1", "o1", 10), ("c1", "o2", 20), ("c1", "o3", 30), ("c1", "o4", 30),
            ("c2", "o2", 5), ("c2", "o3", 6), ("c2", "o2", 7),
            ("c3", "o4", 1)]
    interactions = pd.DataFrame(rows, columns=["customer_id", "offer_id", "timestamp"])
    interactions["kind"], interactions["weight"] = "purchase", 1.0
    interactions = interactions.sort_values("timestamp", kind="stable")
    customers = pd.DataFrame(index=pd.Index(["c1", "c2", "c3"], name="customer_id"))
    offers = pd.DataFrame({"title": ["A", "B", "C", "D"]},
                          index=pd.Index(["o1", "o2", "o3", "o4"], name="offer_id"))
    return Dataset(customers, offers, interactions[["customer_id", "offer_id", "kind", "weight",
                                                    "timestamp"]], Taxonomy.default())


def test_leave_last_out_protocol():
    dataset = small_log()
    orders = set()
    for seed in range(8):
        part = protocol(dataset, seed)
        # c2's last (o2 again) is a repeat: dropped and counted; c3 has one interaction: train
        assert part.repeats_dropped == 1
        np.testing.assert_array_equal(part.customers, [0])
        query, target = int(part.queries[0]), int(part.targets[0])
        assert {query, target} == {2, 3}  # o3 and o4, bought at one time, in a drawn order
        orders.add((query, target))
        train = part.train.toarray()
        # everything but each customer's last row: c1 keeps o1, o2 and the query
        expected = np.zeros((3, 4))
        expected[0, [0, 1, query]] = 1
        expected[1, [1, 2]] = 1
        expected[2, 3] = 1
        np.testing.assert_array_equal(train, expected)
        assert part.first_seen[1, 1] == 5  # c2's first time on o2, not the held-out repeat
        assert protocol(dataset, seed).queries[0] == query  # one draw per seed
    assert len(orders) == 2  # ties are not ordered by offer id
    # validation: the protocol once more on the training rows
    validation = protocol(dataset, 0, validation=True)
    assert validation.train.nnz == protocol(dataset, 0).train.nnz - 2
    again = leave_last_out(*time_order(dataset, 0), dataset.n_customers, dataset.n_offers)
    np.testing.assert_array_equal(again.targets, protocol(dataset, 0).targets)


def test_benchmark_runs_on_the_synthetic_storefront(tmp_path, capsys):
    out = tmp_path / "similar.json"
    assert main(["--datasets", "synthetic", "--seeds", "2", "--json", str(out),
                 "--methods", "popularity,itemknn-cosine,itemknn-bm25,similar"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic" in printed and "similar against item-kNN" in printed
    results = json.loads(out.read_text())
    rows = results["datasets"]["synthetic"]["methods"]
    assert results["seeds"] == 2 and results["defaults"] == SimilarOffers().get_params()
    assert results["datasets"]["synthetic"]["protocol"]["queries"] == 3000
    for row in rows.values():
        assert 0 < row["ndcg@10"] <= row["hr@10"] <= 1 and 0 < row["coverage@10"] <= 1
    # the synthetic storefront has no ties: the protocol draws nothing, the methods neither
    assert rows["similar"]["ndcg@10 sd"] == 0.0
    # what the defaults were chosen for (docstring of recommender/similar.py): ahead of both
    assert rows["similar"]["ndcg@10"] > rows["itemknn-bm25"]["ndcg@10"]
    assert rows["itemknn-bm25"]["ndcg@10"] > rows["itemknn-cosine"]["ndcg@10"] \
        > rows["popularity"]["ndcg@10"]
    assert results["summary"]["synthetic"]["ahead of itemknn-cosine"] == 2
