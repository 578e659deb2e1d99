"""implicit ALS: implicit's own per-past-offer explanation, worded as a history criterion.

Artifacts do not hold the implicit model, so this takes the fitted ALSRecommender. implicit splits
the whole score p_u . q_i over the customer's past offers (no average-customer baseline, unlike
explain.attributions): the criterion's contribution is that whole score, its share 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explain.criteria import Criterion, direction_of
from explain.templates import POPULARITY, Templates
from recommender.models.implicit_models import ALSRecommender
from recommender.taxonomy import HISTORY


def explain_als(
    model: ALSRecommender, customer_row: int, offer_col: int, titles: Sequence[str] | np.ndarray,
    *, max_items: int = 3, templates: Templates | None = None,
) -> list[Criterion]:
    """"Because you bought X, Y" for one customer row and offer column of a fitted ALS model.

    titles: offer titles by column. A customer without training history scores as the average
    customer: their only criterion is popularity."""
    templates = templates or Templates.default()
    if not model.has_history_[customer_row]:
        score = float(model.score(np.array([customer_row]))[0, offer_col])
        direction = direction_of(score)
        text = templates.criterion(POPULARITY, direction).format(
            name=templates.name(POPULARITY), items="", values="")
        return [Criterion(POPULARITY, text, score, 1.0, direction, {})]
    total, top, _ = model.explain(customer_row, offer_col, N=max_items)
    total = float(total)
    direction = direction_of(total)
    sign = 1.0 if total >= 0 else -1.0
    chosen = [(int(j), float(s)) for j, s in top if sign * s > 0]
    if direction == "negative":  # implicit lists the largest; a negative total is told by the smallest
        _, everything, _ = model.explain(customer_row, offer_col, N=model.train_matrix_.shape[1])
        chosen = sorted(((int(j), float(s)) for j, s in everything if s < 0), key=lambda p: p[1])
        chosen = chosen[:max_items]
    past = [{"offer_col": j, "title": str(titles[j]), "contribution": s} for j, s in chosen]
    text = templates.criterion(HISTORY, direction).format(
        name=templates.name(HISTORY), items=templates.join([p["title"] for p in past]), values="")
    data = {"past_offer_count": int(model.train_matrix_[customer_row].nnz), "past_offers": past}
    return [Criterion(HISTORY, text, total, 1.0, direction, data)]
