"""Each category's contribution split over the customer's own features: "because you bought X, Y".

A category's partial vector is the weighted sum of its feature embeddings, p_ug = sum_j w_j e_j,
with weights summing to 1 within the category, so

    phi_g(u, i) = sum over j in g of  w_j * ((e_j - pbar_g) . q_i + (beta_j - cbar_g))

exactly. With history_mode "items" the history features are the customer's distinct past offers,
so the history term splits by past offer; the attribute categories split by attribute value
(age band vs gender). With "identity" the history is one learned embedding per customer: it has
one part, the whole term, and cannot be split by past offer. Models without a feature space
(implicit, popularity) cannot be split at all.

The weights mirror how the partials were built: a feature the model never learned is skipped
there without renormalizing, i.e. it acts as a zero vector, and so it does here; partials stored
in training came from a float32 weight matrix, so their weights are rounded the same way. Every
split is checked against phi_g before anyone reads it, and a category whose split does not add up
is marked inexact rather than shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain.attributions import Attribution, mean_item_vector
from explain.context import ExplainContext, context
from recommender.artifacts import Artifact
from recommender.features import customer_feature_weights
from recommender.ranking import CustomerState

# Sums of float64 products: the split may differ from phi_g by rounding, never by more than this
# share of the magnitudes involved. The float32-weight mismatch it guards against is ~1e-7.
_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class FeatureSplit:
    """names: (m,) the customer's features in used categories ("history:<offer_id>",
    "age_band=25-34", "customer:<id>"); category: (m,) category index; contributions: (n, m),
    summing within each category to Attribution.contributions; relative: (n, m), the same relative
    to the catalog mean, summing to Attribution.relative; exact: (G,) the split of g adds up
    (False for categories that are not used or cannot be split)."""

    names: np.ndarray
    category: np.ndarray
    contributions: np.ndarray
    relative: np.ndarray
    exact: np.ndarray

    def of(self, category: int) -> np.ndarray:
        """Positions (into names) of one category's features."""
        return np.flatnonzero(self.category == category)


def split_features(artifact: Artifact, state: CustomerState, attribution: Attribution) -> FeatureSplit:
    """The attribution's contributions split over the customer's features, per category."""
    model = artifact.model
    n_categories = len(model.categories)
    ctx = context(artifact)
    if model.features is None or ctx.history_mode is None:
        return _empty(len(attribution), n_categories)
    names, weights, stored = _weights(artifact, ctx, state)
    category = np.fromiter((ctx.category_of(name) for name in names), dtype=np.intp, count=len(names))
    keep = attribution.used[category]
    names, weights, category = names[keep], weights[keep], category[keep]
    rows = np.fromiter((ctx.feature_rows.get(name, ctx.missing) for name in names), dtype=np.intp,
                       count=len(names))
    vectors, bias = ctx.vectors[rows], ctx.bias[rows]
    if stored:
        # from_features: float32 weights times float64 embeddings
        weights = weights.astype(np.float32).astype(np.float64)
        vectors, bias = vectors.astype(np.float64), bias.astype(np.float64)
    else:
        # partials_from_features: weight * embedding in the embeddings' own dtype
        weights = weights.astype(vectors.dtype)
    own_vectors = (weights[:, None] * vectors).astype(np.float64)
    own_bias = (weights * bias).astype(np.float64)
    weights = weights.astype(np.float64)
    # The average's share of each feature is w_j / W_g, W_g the category's weight total (1 up to the
    # float32 rounding of stored weights), so the parts sum to (p_ug - pbar_g) . q + c_ug - cbar_g.
    total = np.bincount(category, weights, minlength=n_categories)
    # the offers' rows, then qbar's: each part is linear in q_i, so at qbar it is its catalog mean
    q = np.vstack([model.item_vectors[attribution.offers], mean_item_vector(model)])
    average = q @ model.mean_vectors.T + model.mean_bias  # (n + 1, G): pbar_g . q_i + cbar_g
    parts = q @ own_vectors.T + own_bias - average[:, category] * (weights / total[category])
    contributions, mean = parts[:-1], parts[-1]
    return FeatureSplit(names, category, contributions, contributions - mean,
                        _check(contributions, category, attribution))


def _weights(artifact: Artifact, ctx: ExplainContext, state: CustomerState
             ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(names, weights, stored) of the features behind the state's partials: `stored` when they
    are the partials stored at training rather than rebuilt from features."""
    weights = customer_feature_weights(
        ctx.taxonomy, state.attributes, state.history, history_mode=ctx.history_mode,
        customer_id=state.customer_id if state.known else None,
    )
    names = np.array(list(weights), dtype=object)
    values = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
    return names, values, _stored(artifact, state)


def _stored(artifact: Artifact, state: CustomerState) -> bool:
    """Whether the state holds the partials stored at training (not rebuilt from features)."""
    row = artifact.customer_rows.get(state.customer_id) if state.known else None
    if row is None:
        return False
    model = artifact.model
    return bool(np.array_equal(state.c, model.partial_bias[:, row])
                and np.array_equal(state.p, model.partial_vectors[:, row]))


def _check(contributions: np.ndarray, category: np.ndarray, attribution: Attribution) -> np.ndarray:
    n_categories = len(attribution.categories)
    onehot = np.zeros((len(category), n_categories))
    onehot[np.arange(len(category)), category] = 1.0
    sums = contributions @ onehot
    scale = np.abs(contributions) @ onehot + np.abs(attribution.contributions) + 1.0
    close = np.abs(sums - attribution.contributions) <= _TOLERANCE * scale
    return attribution.used & close.all(axis=0)


def _empty(n: int, n_categories: int) -> FeatureSplit:
    return FeatureSplit(
        np.array([], dtype=object), np.array([], dtype=np.intp), np.zeros((n, 0)), np.zeros((n, 0)),
        np.zeros(n_categories, dtype=bool),
    )
