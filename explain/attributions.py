"""Exact SHAP values of the score over data categories (docs/architecture.md, "The additive model").

With the average customer as background, the model is linear in each category's vector, so the
Shapley value of category g is phi_g(u, i) and the base value is base(i), the average customer's
score: no sampling, no approximation. A category the customer did not allow, or has no data in,
takes the average and gets exactly zero.

The same decomposition, taken relative to the customer's average over the catalog, explains why
this offer rather than a typical one: subtracting a per-customer constant changes no ranking, and
it removes what LightFM leaves arbitrary (a category can shift all of a customer's scores alike,
which decides nothing). Relative to the catalog mean, phi_g becomes (p_ug - pbar_g) . (q_i - qbar)
and base(i) becomes base(i) - mean base: still exact SHAP values, of the relative score. Criteria
rank and word by these; measured on the synthetic storefront, they name the category that drove a
customer far more often than the raw values, whose per-customer constants drown the signal.
"""

from __future__ import annotations

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

    Relative to the catalog (module docstring): mean_base and mean_contributions (G,) are the
    averages of base and phi_g over all offers; relative_base == base - mean_base and
    relative == contributions - mean_contributions, so
    score - (mean_base + mean_contributions.sum()) == relative_base + relative.sum(1).
    """

    categories: tuple[str, ...]
    offers: np.ndarray
    base: np.ndarray
    contributions: np.ndarray
    score: np.ndarray
    allowed: np.ndarray
    used: np.ndarray
    mean_base: float
    mean_contributions: np.ndarray

    @property
    def relative_base(self) -> np.ndarray:
        return self.base - self.mean_base

    @property
    def relative(self) -> np.ndarray:
        return self.contributions - self.mean_contributions

    @property
    def average_score(self) -> float:
        """The customer's mean score over the catalog (under the same consent)."""
        return self.mean_base + float(self.mean_contributions.sum())

    def __len__(self) -> int:
        return len(self.offers)


def base_values(model: AdditiveModel) -> np.ndarray:
    """model.base() for every offer, computed once per model (read-only array)."""
    return model.base()


def attribute(
    model: AdditiveModel, state: CustomerState, allowed: np.ndarray, offers: np.ndarray
) -> Attribution:
    """Base value and per-category SHAP values of `state`'s score for the offer columns `offers`."""
    offers = np.atleast_1d(np.asarray(offers, dtype=np.intp))
    allowed = np.asarray(allowed, dtype=bool)
    mean_item, mean_base = model.catalog_mean()
    used = model.used(state.has_data, allowed)
    dp, dc = model.deviations(state.p, state.c, used)
    q = model.item_vectors[offers]
    base = model.base()[offers]
    # phi_g as AdditiveModel.contributions computes it; the score as AdditiveModel.score_partials
    # (behind ranking.scores) does: summed deviations times q, so what is explained is what is served.
    contributions = q @ dp.T + dc
    score = (dp.sum(axis=0)[None] @ q.T)[0] + dc.sum() + base
    mean_contributions = mean_item @ dp.T + dc  # phi is linear in q_i: its catalog mean
    return Attribution(
        model.categories, offers, base, contributions, score, allowed, used, mean_base,
        mean_contributions,
    )
