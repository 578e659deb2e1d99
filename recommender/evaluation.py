"""Top-k ranking metrics on a temporal split, per customer and averaged.

For each evaluated customer, every offer is scored, the customer's training items are excluded from
the candidates, and the k best remaining offers (ties: lower offer row first) are compared with the
customer's test offers T (distinct offers, binary relevance). With hits_i = 1 when the offer at rank
i (1-based) is in T:
    precision@k = sum(hits) / k
    recall@k    = sum(hits) / |T|
    ndcg@k      = sum(hits_i / log2(i + 1)) / sum_{i <= min(k, |T|)} 1 / log2(i + 1)
    map@k       = sum(hits_i * precision@i) / min(k, |T|)
    hit_rate@k  = 1 if any hit else 0
Means are taken over customers with at least one test offer. coverage@k is the share of the catalog
that appears in at least one evaluated customer's top-k list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.split import Split

Scorer = Callable[[np.ndarray], np.ndarray]
# evaluate()'s key name for each per-customer column, in the order reports show them
_SUMMARY = (("precision", "precision"), ("recall", "recall"), ("ndcg", "ndcg"), ("map", "map"),
            ("hit_rate", "hit"))
NO_OFFER = -1  # a top-k slot left empty because fewer than k offers were candidates


def top_k(scores: np.ndarray, exclude: sp.csr_matrix | None, k: int) -> np.ndarray:
    """(n, k) offer columns, best first; excluded and -inf offers are never returned.

    `exclude` has the rows of `scores`; its nonzeros are removed from the candidates. Ties break
    toward the lower offer column, so the lists are reproducible. A row with fewer than k
    candidates is padded with NO_OFFER.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores = np.asarray(scores)
    scores = np.array(scores, dtype=np.result_type(scores.dtype, np.float32))  # a copy we may edit
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (customers, offers), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n, n_offers = scores.shape
    if exclude is not None:
        if exclude.shape != scores.shape:
            raise ValueError(f"exclude has shape {exclude.shape}, scores {scores.shape}")
        scores[exclude.nonzero()] = -np.inf
    width = min(k, n_offers)
    result = np.full((n, k), NO_OFFER, dtype=np.int64)
    if n == 0 or width == 0:
        return result

    # argpartition alone picks arbitrarily among offers tied with the k-th score; instead keep
    # everything above it and the lowest-column ties, which is exactly `width` offers per row.
    kth = -np.partition(-scores, width - 1, axis=1)[:, width - 1 : width]
    above, tied = scores > kth, scores == kth
    need = width - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
    columns = np.nonzero(chosen)[1].reshape(n, width)  # row-major: ascending column per row
    chosen_scores = np.take_along_axis(scores, columns, axis=1)
    ranked = np.take_along_axis(columns, np.argsort(-chosen_scores, axis=1, kind="stable"), axis=1)
    ranked_scores = np.take_along_axis(scores, ranked, axis=1)
    result[:, :width] = np.where(np.isneginf(ranked_scores), NO_OFFER, ranked)
    return result


def top_k_one(scores: np.ndarray, k: int) -> np.ndarray:
    """top_k for one customer's (n_offers,) scores, without its batch machinery: the request path.

    Same order as top_k (ties toward the lower column); -inf offers are never returned, so the
    result may be shorter than k."""
    n_offers = len(scores)
    width = min(k, n_offers)
    if width < 1:
        return np.empty(0, dtype=np.int64)
    kth = np.partition(scores, n_offers - width)[n_offers - width]
    candidates = np.flatnonzero(scores >= kth)
    ranked = candidates[np.lexsort((candidates, -scores[candidates]))[:width]]
    return ranked[~np.isneginf(scores[ranked])]


def per_customer_metrics(
    score: Scorer, split: Split, k: int = 10, batch_size: int = 256,
    customers: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per evaluated customer (index customer_id), columns ndcg, recall, precision, hit,
    map: what the fairness audit groups by customer attributes.

    `score(rows)` returns (len(rows), n_offers) scores for an int array of customer rows (the
    Recommender.score contract). `customers` restricts the evaluation to these customer rows;
    those without test offers are skipped, as their recall is undefined.
    """
    return _evaluate(score, split, k, batch_size, customers)[0]


def evaluate(
    score: Scorer, split: Split, k: int = 10, batch_size: int = 256,
    customers: np.ndarray | None = None,
) -> dict[str, float]:
    """Means of per_customer_metrics, coverage@k and the number of customers evaluated.

    Keys (for k=10): precision@10, recall@10, ndcg@10, map@10, hit_rate@10, coverage@10, customers.
    With no customer to evaluate, the metrics are NaN and customers is 0.
    """
    table, lists = _evaluate(score, split, k, batch_size, customers)
    summary = {f"{name}@{k}": float(table[column].mean()) for name, column in _SUMMARY}
    recommended = np.unique(lists[lists != NO_OFFER])
    evaluated = len(table)
    summary[f"coverage@{k}"] = len(recommended) / split.train.n_offers if evaluated else np.nan
    summary["customers"] = evaluated
    return summary


def _evaluate(
    score: Scorer, split: Split, k: int, batch_size: int, customers: np.ndarray | None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-customer metrics and the top-k lists they were computed from (rows aligned)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    test = split.test.interaction_matrix()
    has_test = np.diff(test.indptr) > 0
    if customers is None:
        rows = np.flatnonzero(has_test)
    else:
        rows = np.asarray(customers, dtype=np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(has_test)):
            raise ValueError(f"customer rows must lie in [0, {len(has_test)})")
        rows = rows[has_test[rows]]
    train = split.train.interaction_matrix()
    lists = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        scores = np.asarray(score(batch))
        expected = (len(batch), split.train.n_offers)
        if scores.shape != expected:
            raise ValueError(f"score returned shape {scores.shape}, expected {expected}")
        lists[start : start + len(batch)] = top_k(scores, train[batch], k)
    return _metrics(lists, test[rows], split.test.customer_ids[rows], k), lists


def _metrics(
    lists: np.ndarray, test: sp.csr_matrix, customer_ids: np.ndarray, k: int,
) -> pd.DataFrame:
    """Per-customer metrics of top-k lists against the test rows aligned with them (nonzero =
    relevant; every row has at least one)."""
    n, n_offers = test.shape
    targets = np.diff(test.indptr)
    test_pairs = np.repeat(np.arange(n, dtype=np.int64), targets) * n_offers + test.indices
    listed_pairs = np.arange(n, dtype=np.int64)[:, None] * n_offers + lists
    hits = (lists != NO_OFFER) & np.isin(listed_pairs, test_pairs)

    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(k, targets) - 1]
    n_hits = hits.sum(axis=1)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return pd.DataFrame(
        {
            "ndcg": (hits @ discount) / ideal,
            "recall": n_hits / targets,
            "precision": n_hits / k,
            "hit": (n_hits > 0).astype(float),
            "map": (hits * precision_at_i).sum(axis=1) / np.minimum(k, targets),
        },
        index=pd.Index(customer_ids, name="customer_id", dtype=object),
    )


def format_table(rows: dict[str, dict[str, float]], columns: list[str] | None = None) -> str:
    """A plain-text table: one row per model, one column per metric (default: every key, in order
    of first appearance). Floats get 4 decimals, columns named "...seconds..." 1, ints none;
    a missing value shows as "-", text as it is."""
    if columns is None:
        columns = list(dict.fromkeys(c for metrics in rows.values() for c in metrics))
    header = ["model", *columns]
    body = [[name, *(_cell(c, metrics.get(c)) for c in columns)] for name, metrics in rows.items()]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def _cell(column: str, value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(value)
    if "seconds" in column:
        return f"{value:.1f}"
    return f"{value:.4f}"
