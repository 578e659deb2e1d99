"""Segment affinities: how much more often customers with an attribute value choose an offer.

For an attribute value f (a segment: "age_band=25-34") and an offer i, the smoothed log-lift

    lift[f, i] = log((c_fi + m p_i) / (n_f + m)) - log p_i

with c_fi the segment's customers who chose i, n_f = sum_i c_fi, p_i the offer's share of all
choices and m the smoothing (choices' worth of prior). A small segment stays near 0, its prior. The
same lift over offer attributes (genre, category, price band), spread back to the offers carrying
them, generalizes across offers that few customers chose. Values held by fewer than
`min_customers` customers share one pooled segment per attribute, so a sparse attribute (a postcode
with one customer) does not get an affinity of its own learned from one person.

Only aggregates over customers enter here: what a customer contributes to their own score is
which segments they belong to (their attribute values), nothing learned from them alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

RARE_VALUE = "*"  # the pooled segment of an attribute's rare values: "zip_prefix=*"


@dataclass(frozen=True)
class Segments:
    """names: (S,) one per segment ("age_band=25-34", or "zip_prefix=*" for the pooled rare
    values); slot: feature name -> its segment's row; offer_lift and attribute_lift: (S,
    n_offers) log-lifts, per offer and through offer attributes."""

    names: tuple[str, ...]
    slot: dict[str, int]
    offer_lift: np.ndarray
    attribute_lift: np.ndarray


def offer_attribute_matrix(values_by_attribute: list[list[list[str]]], n_offers: int
                           ) -> sp.csr_matrix:
    """(n_offers, V): each offer's attribute values, the row summing to 1 (0 without any).

    values_by_attribute[a][i]: the values of attribute a for offer i (Dataset.offer_attribute_values)."""
    rows, cols, names = [], [], {}
    for a, per_offer in enumerate(values_by_attribute):
        for i, values in enumerate(per_offer):
            for value in values:
                rows.append(i)
                cols.append(names.setdefault((a, value), len(names)))
    onehot = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_offers, max(len(names), 1)))
    onehot.sum_duplicates()
    onehot.data[:] = 1.0
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(counts, 1.0)) @ onehot)


def log_lift(counts: np.ndarray, prior: np.ndarray, smoothing: float) -> np.ndarray:
    """(S, n) smoothed log-lift of each row's distribution over the columns against `prior`."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.log((counts + smoothing * prior) / (totals + smoothing)) - np.log(prior)


def fit_segments(
    membership: sp.csr_matrix, feature_names: np.ndarray, choices: sp.csr_matrix,
    offer_attributes: sp.csr_matrix, *, smoothing: float = 20.0, min_customers: int = 10,
) -> Segments:
    """Segments from membership (customers x attribute features, nonzero = member), their
    feature names ("attribute=value"), binary choices (customers x offers) and
    offer_attribute_matrix. Features held by fewer than min_customers customers are pooled."""
    membership = sp.csr_matrix(membership)
    membership.data[:] = 1.0
    size = np.asarray(membership.sum(axis=0)).ravel()
    attribute = np.array([str(n).split("=", 1)[0] for n in feature_names], dtype=object)
    segment_names: dict[str, int] = {}
    slot = {}
    for name, a, n in zip(feature_names, attribute, size, strict=True):
        key = str(name) if n >= min_customers else f"{a}={RARE_VALUE}"
        slot[str(name)] = segment_names.setdefault(key, len(segment_names))
    to_segment = sp.csr_matrix(
        (np.ones(len(feature_names)), (np.arange(len(feature_names)), [slot[str(n)] for n in
                                                                        feature_names])),
        shape=(len(feature_names), max(len(segment_names), 1)))
    members = sp.csr_matrix(membership @ to_segment)  # customers x segments
    members.data[:] = 1.0
    per_offer = np.asarray((members.T @ choices).todense(), dtype=np.float64)
    popularity = np.asarray(choices.sum(axis=0), dtype=np.float64).ravel() + 1.0
    offer_lift = log_lift(per_offer, popularity / popularity.sum(), smoothing)
    per_value = np.asarray(per_offer @ offer_attributes, dtype=np.float64)
    value_share = np.asarray((choices @ offer_attributes).sum(axis=0), np.float64).ravel() + 1.0
    attribute_lift = np.asarray(
        offer_attributes @ log_lift(per_value, value_share / value_share.sum(), smoothing).T).T
    return Segments(tuple(segment_names), slot, offer_lift[: len(segment_names)],
                    attribute_lift[: len(segment_names)])
