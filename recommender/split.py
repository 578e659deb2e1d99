"""The evaluation protocol: a per-customer temporal split of the interactions.

Protocol. Every interaction row is a positive (loaders decide what counts as one, e.g. ratings
of 4 and above). Each customer's positives are ordered by timestamp; ties are broken by offer id,
then by original row order, so the split depends on the rows and not on the order a loader emitted
them. A customer with n >= `min_positives` positives (default 5) gives their most recent
max(1, floor(n * `test_fraction`)) positives (default 20%) to test and the rest to train; a customer
with fewer positives stays entirely in train. No randomness is involved: the same interactions
always give the same split. A test positive whose (customer, offer) pair also occurs in that
customer's train part (a repeat purchase or re-rating) is dropped from the split altogether and
counted in `Split.repeats_dropped`: training items are excluded from the candidates at evaluation,
so they could never be hit. Hence no test pair occurs in train, and every test positive of a
customer is at least as recent as all of that customer's train positives.

Validation for early stopping is carved from train by the same protocol:
`temporal_split(split.train)` gives (train for fitting, validation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.data import Dataset

# n * fraction can land just below an integer in floating point (0.29 * 100 = 28.999...).
_FLOOR_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Split:
    """train and test share customers, offers and taxonomy; only the interactions differ."""

    train: Dataset
    test: Dataset
    repeats_dropped: int = 0


def temporal_split(dataset: Dataset, test_fraction: float = 0.2, min_positives: int = 5) -> Split:
    """Split each customer's most recent positives into test (see the module docstring)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if min_positives < 1:
        raise ValueError(f"min_positives must be at least 1, got {min_positives}")
    interactions = dataset.interactions
    customers = dataset.customer_codes.astype(np.int64)
    offers = dataset.offer_codes.astype(np.int64)
    # Rank offers by id so ties break on the id itself, not on the offers table's row order.
    offer_rank = np.empty(dataset.n_offers, dtype=np.int64)
    offer_rank[dataset.offers.index.argsort()] = np.arange(dataset.n_offers)
    timestamps = interactions["timestamp"].to_numpy(np.int64)
    rows = np.arange(len(interactions))
    order = np.lexsort((rows, offer_rank[offers], timestamps, customers))

    sorted_customers = customers[order]
    counts = np.bincount(sorted_customers, minlength=dataset.n_customers)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = rows - starts[sorted_customers]  # 0 = the customer's oldest positive
    n_test = np.where(
        counts >= min_positives,
        np.maximum(1, np.floor(counts * test_fraction + _FLOOR_TOLERANCE).astype(np.int64)),
        0,
    )
    is_test = np.zeros(len(interactions), dtype=bool)
    is_test[order] = position >= counts[sorted_customers] - n_test[sorted_customers]

    pairs = customers * dataset.n_offers + offers
    repeat = is_test & np.isin(pairs, pairs[~is_test])
    train = interactions[~is_test]
    test = interactions[is_test & ~repeat]
    return Split(
        train=dataset.with_interactions(train),
        test=dataset.with_interactions(test),
        repeats_dropped=int(repeat.sum()),
    )
