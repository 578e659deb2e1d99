"""Serving-time calibration: re-rank candidates so the list's category mix stays close to the
customer's own (Steck 2018, "Calibrated Recommendations", greedy maximal-marginal-relevance form).

Among the candidates, offers are picked one at a time; each step takes the offer maximizing

    (1 - strength) * sum of relevance in the list  -  strength * KL(target || list mix)

where relevance is the candidates' scores min-max scaled to [0, 1] within the request (so one
strength means the same for models whose scores live on different scales), and the list mix and
KL are those of recommender.catalog. strength 0 is the plain top-k; strength 1 ignores
relevance. A customer with no categorized history (empty target) keeps the plain top-k: there is
nothing to calibrate to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.artifacts import Artifact
from recommender.catalog import (
    SMOOTHING,
    default_category_attribute,
    list_distributions,
    offer_category_matrix,
)
from recommender.errors import DataError
from recommender.evaluation import NO_OFFER, Scorer, top_k
from recommender.ranking import CustomerState, rank
from recommender.taxonomy import HISTORY


def calibrated_rerank(
    candidates: np.ndarray, scores: np.ndarray, offer_categories: np.ndarray,
    target_distribution: np.ndarray, k: int, strength: float, smoothing: float = SMOOTHING,
) -> np.ndarray:
    """The k offer columns (best first) chosen from `candidates` (offer columns) with `scores`
    (aligned), given `offer_categories` ((n_offers, n_categories), rows summing to 1 or 0) and the
    customer's `target_distribution` ((n_categories,)). Ties go to the higher score, then to the
    lower column, as in evaluation.top_k."""
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    candidates = np.asarray(candidates, dtype=np.int64)
    scores = np.asarray(scores, dtype=float)
    if candidates.shape != scores.shape or candidates.ndim != 1:
        raise ValueError("candidates and scores must be 1-D and aligned")
    # plain order first: argmax then keeps top_k's tie-breaking whenever objectives tie
    order = np.lexsort((candidates, -scores))
    candidates, scores = candidates[order], scores[order]
    width = min(k, len(candidates))
    target = np.asarray(target_distribution, dtype=float)
    if strength == 0 or not target.any():
        return candidates[:width]

    spread = scores[0] - scores[-1]
    relevance = (scores - scores[-1]) / spread if spread > 0 else np.ones_like(scores)
    # Only the target's categories enter the KL, but every category counts in the list's mass.
    # KL(p || q~) = sum p log p - sum p log q~, and the first term is the same for every
    # candidate, so the step maximizes (1 - strength) relevance + strength * (log q~ @ p).
    positive = target > 0
    rows = offer_categories[candidates]
    categories, row_mass = rows[:, positive], rows.sum(axis=1)
    p = target[positive]
    floor = smoothing * p
    gain = (1 - strength) * relevance  # -inf once picked
    mass, total = np.zeros(len(p)), 0.0
    chosen = np.empty(width, dtype=np.int64)
    for step in range(width):
        # the list's mix if each candidate joined (a list without any category mass has mix 0)
        scale = (1 - smoothing) / np.maximum(total + row_mass, 1e-12)
        smoothed = (mass + categories) * scale[:, None] + floor
        pick = int(np.argmax(gain + strength * (np.log(smoothed) @ p)))
        chosen[step] = pick
        gain[pick] = -np.inf
        mass += categories[pick]
        total += row_mass[pick]
    return candidates[chosen]


def reranked_scorer(
    score: Scorer, seen: sp.csr_matrix, offer_categories: np.ndarray, targets: np.ndarray, *,
    k: int, strength: float, n_candidates: int = 100, smoothing: float = SMOOTHING,
) -> Scorer:
    """A scorer whose top-k is the calibrated re-rank of `score`'s top `n_candidates`, for
    evaluation.per_customer_metrics and the audit.

    seen: customers x offers, nonzero = excluded from candidates (the training interactions, as in
    evaluation); targets: (n_customers, n_categories) each customer's history mix. The returned
    scores are k, k-1, ..., 1 on the chosen offers and -inf elsewhere, so any top-k of them is the
    re-ranked list in order.
    """

    def rerank_scores(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        base = np.asarray(score(rows), dtype=float)
        pool = top_k(base, seen[rows], max(k, n_candidates))
        out = np.full(base.shape, -np.inf)
        for i, row in enumerate(rows):
            candidates = pool[i][pool[i] != NO_OFFER]
            picked = calibrated_rerank(candidates, base[i, candidates], offer_categories,
                                       targets[row], k, strength, smoothing)
            out[i, picked] = np.arange(len(picked), 0, -1)
        return out

    return rerank_scores


@dataclass(eq=False)
class CalibratedReranker:
    """The serving-time option: one customer's offers, calibrated, for one artifact (the category
    matrix is built once, requests only re-rank).

    rank() takes the model's top `n_candidates` under the customer's consent (ranking.rank) and
    re-ranks them towards the category mix of the customer's history. That target *is* personal
    data (interaction_history), so a customer who did not allow it gets the plain top-k: the
    re-rank never uses what consent withheld. Returned scores are the model's own, so the
    explanation of each offer is unchanged; only the order and the choice among candidates move.
    """

    artifact: Artifact
    strength: float
    n_candidates: int = 100
    category_attribute: str | None = None
    offer_categories: np.ndarray = field(init=False, repr=False)
    categories: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        attribute = self.category_attribute or default_category_attribute(self.artifact.offers)
        if attribute is None:
            raise DataError("offers have no category attribute to calibrate on "
                            "(name one with category_attribute)", field="category")
        self.category_attribute = attribute
        self.offer_categories, self.categories = offer_category_matrix(self.artifact.offers,
                                                                       attribute)

    def target(self, state: CustomerState) -> np.ndarray:
        """The category mix of the customer's history (all zero without history)."""
        columns = self.artifact.offer_columns
        history = np.array([[columns[o] for o in state.history if o in columns]], dtype=np.int64)
        return list_distributions(history, self.offer_categories)[0]

    def rank(self, state: CustomerState, allowed: np.ndarray, k: int, *,
             exclude: Iterable[str] = (), exclude_history: bool = True,
             ) -> tuple[np.ndarray, np.ndarray]:
        """(offer columns, model scores) of the calibrated top k, best first."""
        columns, scores = rank(self.artifact, state, allowed, max(k, self.n_candidates),
                               exclude=exclude, exclude_history=exclude_history)
        history_allowed = bool(allowed[self.artifact.model.categories.index(HISTORY)])
        target = self.target(state) if history_allowed else np.zeros(len(self.categories))
        picked = calibrated_rerank(columns, scores, self.offer_categories, target, k,
                                   self.strength)
        position = {int(c): i for i, c in enumerate(columns)}
        return picked, scores[[position[int(c)] for c in picked]]
