"""Offer categories as distributions, and the calibration gap between two of them (Steck 2018,
"Calibrated Recommendations").

A customer's history mix p is the category distribution of the offers they interacted with; their
list mix q is that of the offers recommended to them. An offer with several categories (a film that
is both Comedy and Drama) spreads its unit weight evenly over them; an offer with none adds nothing.
The calibration gap is KL(p || q~) with q~ = (1 - alpha) q + alpha p: Steck's smoothing keeps the
divergence finite when a list misses a category of the history, and alpha = 0.01 is his value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.data import MULTI_VALUE_SEPARATOR, Dataset
from recommender.errors import DataError
from recommender.evaluation import NO_OFFER

CATEGORY_ATTRIBUTES = ("category", "genre")  # tried in order when none is named
SMOOTHING = 0.01


def default_category_attribute(offers: Dataset | pd.DataFrame) -> str | None:
    """The first offer attribute among CATEGORY_ATTRIBUTES the offers have (None: no categories).
    offers: a Dataset, or an offers table (a Dataset's or an Artifact's)."""
    table = offers.offers if isinstance(offers, Dataset) else offers
    return next((name for name in CATEGORY_ATTRIBUTES if name in table.columns), None)


def offer_category_matrix(
    offers: Dataset | pd.DataFrame, attribute: str,
) -> tuple[np.ndarray, list[str]]:
    """(n_offers, n_categories) rows summing to 1 (0 for an offer without category), and the
    category names in column order (sorted). offers: a Dataset or an offers table, whose
    `attribute` holds one value or several joined by "|"."""
    table = offers.offers if isinstance(offers, Dataset) else offers
    if attribute not in table.columns or attribute == "title":
        present = [str(c) for c in table.columns if c != "title"]
        raise DataError(f"offers have no attribute {attribute!r}; they have "
                        f"{', '.join(present) or 'none'}", field="category")
    values = [
        set() if pd.isna(value) else {v for v in str(value).split(MULTI_VALUE_SEPARATOR) if v}
        for value in table[attribute]
    ]
    names = sorted(set().union(*values))
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(values), len(names)))
    for i, distinct in enumerate(values):
        for value in distinct:
            matrix[i, column[value]] = 1.0 / len(distinct)
    return matrix, names


def normalize(mass: np.ndarray) -> np.ndarray:
    """Rows of category mass as distributions; a row without mass stays all zero."""
    mass = np.asarray(mass, dtype=float)
    total = mass.sum(axis=-1, keepdims=True)
    return np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)


def history_distributions(train: Dataset, offer_categories: np.ndarray) -> np.ndarray:
    """(n_customers, n_categories): each customer's mix over their distinct training offers."""
    seen = train.interaction_matrix()
    seen = sp.csr_matrix((np.ones_like(seen.data), seen.indices, seen.indptr), shape=seen.shape)
    return normalize(seen @ offer_categories)


def list_distributions(lists: np.ndarray, offer_categories: np.ndarray) -> np.ndarray:
    """(n_lists, n_categories): the mix of each top-k list, every listed offer weighted equally;
    NO_OFFER slots add nothing."""
    lists = np.asarray(lists)
    valid = lists != NO_OFFER
    rows = offer_categories[np.where(valid, lists, 0)] * valid[..., None]
    return normalize(rows.sum(axis=-2))


def calibration_gap(target: np.ndarray, mix: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """KL(target || (1 - smoothing) mix + smoothing target) along the last axis, in nats.

    NaN where the target is empty (a customer without categorized history has nothing to be
    calibrated to). A mix without mass is treated as all-zero: the gap is then -log(smoothing).
    """
    target = np.asarray(target, dtype=float)
    smoothed = (1 - smoothing) * np.asarray(mix, dtype=float) + smoothing * target
    positive = target > 0
    # where target > 0, smoothed >= smoothing * target > 0, so the log is finite
    ratio = np.divide(target, smoothed, out=np.ones_like(target), where=positive)
    gap = (target * np.log(ratio)).sum(axis=-1)
    return np.where(positive.any(axis=-1), gap, np.nan)
