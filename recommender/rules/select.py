"""Choosing k offers from candidates in rule order, under caps and diversity: the per-request part
of recommender.rules.engine, kept to a few array operations for the request path.

Positions index the candidates in their order without rules; `order` lists the positions still
eligible, best first by adjusted relevance. The functions return the positions taken, best first,
and the positions a cap held back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cap_walk(order: Sequence[int], columns: Sequence[int], categories: Sequence[tuple[int, ...]],
             limits: Sequence[int], k: int) -> tuple[list[int], set[int]]:
    """Take positions in `order`, skipping one while a category of its offer (columns[position];
    categories: per offer column) already holds its limit, until k are taken. Returns (taken,
    held back).

    Plain Python: the walk usually stops after a little more than k offers, and a dozen array
    passes over the whole pool cost more than that."""
    counts, taken, held = [0] * len(limits), [], set()
    for position in order:
        mine = categories[columns[position]]
        for j in mine:
            if counts[j] >= limits[j]:
                held.add(position)
                break
        else:
            taken.append(position)
            for j in mine:
                counts[j] += 1
            if len(taken) == k:
                break
    return taken, held


def one_category_mmr_order(order: np.ndarray, gain: np.ndarray, members: np.ndarray,
                           strength: float) -> np.ndarray:
    """Greedy MMR when similarity is 1 within a category and 0 across (one category per offer,
    members: (len(order), C) bool): the same order as the greedy loop, sorted at once.

    An offer's objective is its gain, less `strength` once its category is in the list. The
    category's best offer always comes before the others of it (higher gain, same penalty), so
    every other offer is picked, if at all, after it, at gain - strength: a stable sort of the
    gains with that penalty on all but each category's first."""
    seen_before = (members & (np.cumsum(members, axis=0) > 1)).any(axis=1)
    return order[np.argsort(-(gain - strength * seen_before), kind="stable")]


def mmr(order: np.ndarray, gain: np.ndarray, rows: np.ndarray, strength: float, k: int,
        members: np.ndarray | None = None, limits: Sequence[int] | None = None,
        offer_categories: Sequence[tuple[int, ...]] | None = None,
        ) -> tuple[list[int], set[int]]:
    """Greedy maximal marginal relevance: each step takes the offer maximizing gain - strength *
    (highest cosine similarity to an offer taken). rows: unit rows aligned with `order` (zero
    rows: similar to nothing). With caps (members, limits, offer_categories aligned with
    `order`), a category that reaches its limit blocks its other offers."""
    objective_base = gain.astype(float).copy()  # -inf once taken or blocked
    nearest = np.zeros(len(order))
    held: set[int] = set()
    counts = [0] * (len(limits) if limits is not None else 0)
    taken = []
    for _ in range(min(k, len(order))):
        objective = objective_base - strength * nearest
        pick = int(objective.argmax())
        if objective[pick] == -np.inf:
            break
        taken.append(pick)
        objective_base[pick] = -np.inf
        np.maximum(nearest, rows @ rows[pick], out=nearest)
        if members is not None:
            for j in offer_categories[pick]:
                counts[j] += 1
                if counts[j] == limits[j]:  # full: its other offers are held back
                    full = members[:, j] & (objective_base > -np.inf)
                    held.update(order[full].tolist())
                    objective_base[full] = -np.inf
    return order[taken].tolist(), held
