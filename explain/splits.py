"""Each category's contribution split over the customer's own features: "because you bought X, Y".

A category's partial vector is the weighted sum of its feature embeddings, p_ug = sum_j w_j e_j,
with weights summing to 1 within the category, so

    phi_g(u, i) = sum over j in g of  w_j * ((e_j - pbar_g) . q_i + (beta_j - cbar_g))

exactly, and the same holds relative to the catalog mean (q_i - qbar, biases cancelling). With
history_mode "items" the history features are the customer's distinct past offers, so the history
term splits by past offer; the attribute categories split by attribute value
(age band vs gender). With "identity" the history is one learned embedding per customer: it has
one part, the whole term, and cannot be split by past offer. Models without a feature space
(implicit, popularity) cannot be split at all.

The arithmetic mirrors how the partials were built, so the parts add up to phi_g to float64
rounding (~1e-15), not merely to ~1e-7:
- a feature the model never learned is skipped there without renormalizing, i.e. it acts as a
  zero vector, and so it does here (a past offer newer than the model still gets its share);
- partials come from float32 weights (AdditiveModel: stored at training and rebuilt at serving
  time alike), whose weights sum to 1 only up to rounding: their weights are rounded the same way,
  and the average is shared out in proportion w_j / W_g, W_g the category's weight total, so it
  is subtracted exactly once.
Every split is checked against phi_g before anyone reads it, and a category whose split does not
add up is marked inexact, so that criteria say the history cannot be split rather than invent it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from explain.attributions import Attribution
from explain.context import IDENTITY_PREFIX, ExplainContext, context
from recommender.artifacts import Artifact
from recommender.features import history_weights
from recommender.ranking import CustomerState

# Sums of float64 products: the split may differ from phi_g by rounding, never by more than this
# share of the magnitudes involved. The float32-weight mismatch it guards against is ~1e-7.
_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class FeatureSplit:
    """labels: (m,) the customer's features in used categories: the offer id of a past offer, else
    the feature's name ("age_band=25-34", "customer:<id>"); category: (m,) category index;
    contributions: (n, m), summing within each category to Attribution.contributions; relative:
    (n, m), the same relative to the catalog mean, summing to Attribution.relative; exact: (G,) the
    split of g adds up (False for categories that are not used or cannot be split). A category's
    features are contiguous: blocks[g] is their slice. learned: (m,) the feature is the customer's
    learned identity (history "identity" or "blend"), not a past offer; there is one at most, the
    last of the history block."""

    labels: np.ndarray
    category: np.ndarray
    contributions: np.ndarray
    relative: np.ndarray
    exact: np.ndarray
    blocks: dict[int, slice]
    learned: np.ndarray

    def of(self, category: int) -> slice:
        """Positions (into labels and the columns of contributions) of one category's features."""
        return self.blocks.get(category, slice(0, 0))


def split_features(artifact: Artifact, state: CustomerState, attribution: Attribution
                   ) -> FeatureSplit:
    """The attribution's contributions split over the customer's features, per category."""
    model = artifact.model
    n_categories = len(model.categories)
    ctx = context(artifact)
    if model.features is None or ctx.history_mode is None:
        return _empty(len(attribution), n_categories)
    labels, rows, category, weights, blocks, learned = _features(ctx, state, attribution.used)
    # the offers' rows, then qbar's: each part is linear in q_i, so at qbar it is its catalog mean
    q = np.empty((len(attribution) + 1, model.item_vectors.shape[1]))
    np.take(model.item_vectors, attribution.offers, axis=0, out=q[:-1])
    q[-1] = model.catalog_mean()[0]
    # the partials' float32 weights times float64 embeddings, all in float64, so regrouping
    # w_j * (e_j . q_i) changes nothing beyond float64 rounding
    weights = weights.astype(np.float32).astype(np.float64)
    vectors, bias = ctx.vectors[rows], ctx.bias[rows]
    if state.identity is not None and learned.any():
        # read from the online store: the identity came with the customer, not the model
        vectors[-1], bias[-1] = state.identity.vector, state.identity.bias
    own = (q @ vectors.T + bias) * weights
    # The average's share of each feature is w_j / W_g, W_g the category's weight total (1 up to the
    # float32 rounding of stored weights), so the parts sum to (p_ug - pbar_g) . q + c_ug - cbar_g.
    total = np.bincount(category, weights, minlength=n_categories)
    average = q @ model.mean_vectors.T + model.mean_bias  # (n + 1, G): pbar_g . q_i + cbar_g
    parts = own - average[:, category] * (weights / total[category])
    contributions, mean = parts[:-1], parts[-1]
    return FeatureSplit(labels, category, contributions, contributions - mean,
                        _check(contributions, category, attribution), blocks, learned)


def _features(ctx: ExplainContext, state: CustomerState, used: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, slice], np.ndarray]:
    """(labels, feature rows, categories, weights, blocks, learned) of the state's features in used
    categories, grouped by category; learned marks the learned identity (not a past offer).

    Weighted by the functions that built the partials: customer_feature_weights, whose history part
    is history_weights, used here directly so that no feature name is formatted per past offer (a
    history may be long, and this is on the serving path)."""
    known = ctx.attribute_features(state.attributes)
    blocks: dict[int, slice] = {}
    if all(used[g] for g in known.blocks):
        labels, rows = list(known.names), list(known.rows)
        weights, category = list(known.weights), list(known.categories)
        blocks.update(known.blocks)
    else:
        labels, rows, weights, category = [], [], [], []
        for g, block in known.blocks.items():
            if used[g]:
                blocks[g] = slice(len(labels), len(labels) + block.stop - block.start)
                labels += known.names[block]
                rows += known.rows[block]
                weights += known.weights[block]
                category += known.categories[block]
    n_attributes = len(labels)
    identity = None
    if used[ctx.history]:
        offers, offer_weight, identity, identity_weight = history_weights(
            state.history, history_mode=ctx.history_mode,
            customer_id=state.customer_id if state.known else None)
        if offers:
            labels += offers
            history_rows, missing = ctx.history_rows, ctx.missing
            rows += [history_rows.get(o, missing) for o in offers]
            weights += [offer_weight] * len(offers)
        if identity is not None:
            labels.append(IDENTITY_PREFIX + identity)
            rows.append(ctx.feature_rows.get(labels[-1], ctx.missing))
            weights.append(identity_weight)
        if len(labels) > n_attributes:
            category += [ctx.history] * (len(labels) - n_attributes)
            blocks[ctx.history] = slice(n_attributes, len(labels))
    learned = np.zeros(len(labels), dtype=bool)
    if identity is not None:
        learned[-1] = True
    return (np.array(labels, dtype=object), np.array(rows, dtype=np.intp),
            np.array(category, dtype=np.intp), np.array(weights, dtype=np.float64), blocks, learned)


def _check(contributions: np.ndarray, category: np.ndarray, attribution: Attribution) -> np.ndarray:
    """Per category, whether the split adds up to phi_g; one scale for the whole response keeps
    this to a handful of operations (it runs on every request)."""
    onehot = _identity(len(attribution.categories))[category]  # (m, G) feature -> category
    error = np.abs(contributions @ onehot - attribution.contributions).max(axis=0, initial=0.0)
    scale = np.abs(contributions).sum(axis=1).max(initial=0.0) + 1.0
    return attribution.used & (error <= _TOLERANCE * scale)


@functools.cache
def _identity(n: int) -> np.ndarray:
    identity = np.eye(n)
    identity.flags.writeable = False
    return identity


def _empty(n: int, n_categories: int) -> FeatureSplit:
    return FeatureSplit(
        np.array([], dtype=object), np.array([], dtype=np.intp), np.zeros((n, 0)), np.zeros((n, 0)),
        np.zeros(n_categories, dtype=bool), {}, np.zeros(0, dtype=bool),
    )
