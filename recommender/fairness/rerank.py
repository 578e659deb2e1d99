"""Serving-time calibration: re-rank candidates so the list's category mix stays close to the
customer's own (Steck 2018, "Calibrated Recommendations", greedy maximal-marginal-relevance form).

Among the candidates, offers are picked one at a time; each step takes the offer maximizing

    (1 - strength) * sum of relevance in the list  -  strength * KL(target || list mix)

where relevance is the candidates' scores min-max scaled to [0, 1] within the request (so one
strength means the same for models whose scores live on different scales), and the list mix and
KL are those of recommender.fairness.categories. strength 0 is the plain top-k; strength 1 ignores
relevance. A customer with no categorized history (empty target) keeps the plain top-k: there is
nothing to calibrate to.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.evaluation import NO_OFFER, Scorer, top_k
from recommender.fairness.categories import SMOOTHING, normalize


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
    categories = offer_categories[candidates]  # (n, n_categories)
    positive = target > 0
    log_target = np.log(target[positive])
    mass = np.zeros(target.shape)
    available = np.ones(len(candidates), dtype=bool)
    chosen = np.empty(width, dtype=np.int64)
    for step in range(width):
        mix = normalize(mass + categories)[:, positive]  # the list mix if each candidate joined
        smoothed = (1 - smoothing) * mix + smoothing * target[positive]
        kl = (target[positive] * (log_target - np.log(smoothed))).sum(axis=1)
        # the relevance already in the list is the same for every candidate: only theirs differs
        objective = (1 - strength) * relevance - strength * kl
        objective[~available] = -np.inf
        pick = int(np.argmax(objective))
        chosen[step] = pick
        available[pick] = False
        mass += categories[pick]
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
