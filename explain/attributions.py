"""Exact SHAP values of the score over data categories (design.md, "The model: additive by category").

With the average customer as background, the model is linear in each category's vector, so the
Shapley value of category g is phi_g(u, i) and the base value is base(i), the average customer's
score: no sampling, no approximation. A category the customer did not allow, or has no data in,
takes the average and gets exactly zero.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from recommender.additive import AdditiveModel
from recommender.ranking import CustomerState


@dataclass(frozen=True, eq=False)
class Attribution:
    """One customer's score for n offers, split by data category: score == base + contributions.sum(1).

    offers: (n,) offer columns; base: (n,) the average customer's score; contributions: (n, G)
    phi_g, zero where g is not used; score: (n,) computed as ranking.scores computes it;
    allowed: (G,) the consent mask given; used: (G,) allowed and holding data.
    """

    categories: tuple[str, ...]
    offers: np.ndarray
    base: np.ndarray
    contributions: np.ndarray
    score: np.ndarray
    allowed: np.ndarray
    used: np.ndarray

    def __len__(self) -> int:
        return len(self.offers)


# base(i) costs a pass over the whole catalog; it depends on the model alone, so it is kept per model.
# Keyed weakly (a dropped model frees its entry) and checked against the arrays it was computed from,
# so reassigning a model's arrays can never serve a stale base.
_BASES: weakref.WeakKeyDictionary[AdditiveModel, tuple[tuple[int, ...], np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def base_values(model: AdditiveModel) -> np.ndarray:
    """model.base() for every offer, computed once per model (read-only array)."""
    key = (id(model.item_vectors), id(model.item_bias), id(model.mean_vectors), id(model.mean_bias))
    cached = _BASES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    base = model.base()
    base.flags.writeable = False
    _BASES[model] = (key, base)
    return base


def attribute(
    model: AdditiveModel, state: CustomerState, allowed: np.ndarray, offers: np.ndarray
) -> Attribution:
    """Base value and per-category SHAP values of `state`'s score for the offer columns `offers`."""
    offers = np.atleast_1d(np.asarray(offers, dtype=np.intp))
    allowed = np.asarray(allowed, dtype=bool)
    used = model.used(state.has_data, allowed)
    dp, dc = model.deviations(state.p, state.c, used)
    q = model.item_vectors[offers]
    base = base_values(model)[offers]
    # phi_g as AdditiveModel.contributions computes it; the score as AdditiveModel.score_partials
    # (behind ranking.scores) does: summed deviations times q, so what is explained is what is served.
    contributions = q @ dp.T + dc
    score = (dp.sum(axis=0)[None] @ q.T)[0] + dc.sum() + base
    return Attribution(model.categories, offers, base, contributions, score, allowed, used)
