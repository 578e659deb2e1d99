"""Offers related to offers rather than to a person: similar offers for a product page, and offers
for an anonymous visitor from what they looked at in the session (passed in the request, stored
nowhere). No personal data is involved in either.

Both read the version's "bought together" table (recommender.similar, fitted at publish on the
training history) and the live catalog: withdrawn offers never appear. Every offer carries one
exact criterion in plain words: how many customers bought it together with the offer on the page,
or which viewed offer put it there and with what share of its score. Where the table has fewer
offers than asked (a rarely bought or newly added offer), the list is filled with the offers most
bought in the same category, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.catalog import default_category_attribute
from recommender.features import attribute_values
from serving.errors import ApiError, bad_parameter
from serving.explaining import ServedVersion, served
from serving.redis_store import LoadedModel

BOUGHT_TOGETHER, VIEWED, POPULARITY = "bought_together", "viewed", "popularity"
MAX_VIEWED = 50  # the session's most recent views that count
ANONYMOUS_DISCLOSURE = (
    "These offers were selected by an automated system from what customers bought together. No "
    "personal data about you was used, and what you looked at is not stored.")
POLICY_URL = "/v1/policy"


@dataclass(frozen=True)
class Related:
    """One answer: offers (id, title, score, criteria) and the columns they came from."""

    offers: list[dict]
    model_version: str


def similar(loaded: LoadedModel, offer_id: str, k: int, exclude: Sequence[str] = (),
            never: np.ndarray | None = None) -> Related:
    """Offers bought together with `offer_id`, best first. never: offer columns the shop's
    business rules exclude."""
    columns = loaded.offer_columns
    column = columns.get(offer_id)
    if column is None:
        raise ApiError(404, "unknown_offer", f"no offer {offer_id!r} in the catalog", "offer_id")
    banned = _banned(loaded, exclude, never) | {column}
    names = served(loaded).titles
    chosen: list[tuple[int, float, dict]] = []
    table = loaded.similar
    if table is not None and column < len(table.buyers_):
        found, scores = table.similar(column, k, exclude=np.fromiter(banned, dtype=np.int64))
        together = table.together_with(column, found)
        buyers = int(table.buyers_[column])
        for other, score, n in zip(found.tolist(), scores.tolist(), together.tolist(), strict=True):
            chosen.append((other, score, _criterion(
                BOUGHT_TOGETHER, f"Bought by {n} of the {buyers} customers who bought "
                                 f"{names[column]}", 1.0)))
    chosen += _popular_fill(loaded, column, k - len(chosen), banned | {c for c, _, _ in chosen})
    return Related(_offers(loaded, chosen), loaded.version)


def session(loaded: LoadedModel, viewed: Sequence[str], k: int, exclude: Sequence[str] = (),
            never: np.ndarray | None = None) -> Related:
    """Offers for a visitor who looked at `viewed` (oldest first): each offer's score is the sum,
    over the viewed offers, of how strongly it is bought together with each; its criteria name
    the viewed offers behind it with their exact shares."""
    columns = loaded.offer_columns
    unknown = [o for o in viewed if o not in columns]
    if unknown:
        raise bad_parameter("viewed", f"no offer {unknown[0]!r} in the catalog")
    seen = [columns[o] for o in dict.fromkeys(reversed(viewed))][:MAX_VIEWED]  # latest first
    banned = _banned(loaded, exclude, never) | set(seen)
    names = served(loaded).titles
    chosen: list[tuple[int, float, dict]] = []
    table = loaded.similar
    trained = [c for c in seen if table is not None and c < len(table.buyers_)]
    if trained:
        found, scores, parts = table.session(np.array(trained), k,
                                             exclude=np.fromiter(banned, dtype=np.int64))
        for other, score, share in zip(found.tolist(), scores.tolist(), parts, strict=True):
            best = np.argsort(-share, kind="stable")[:2]  # the views that put it here
            criteria = []
            for b in best.tolist():
                if share[b] <= 0:
                    break
                n = int(table.together_with(trained[b], np.array([other]))[0])
                criteria.append(_criterion(
                    VIEWED, f"Because you looked at {names[trained[b]]}: bought together with "
                            f"it by {n} customers", float(share[b] / score)))
            chosen.append((other, score, criteria))
    anchor = seen[0] if seen else None
    chosen += _popular_fill(loaded, anchor, k - len(chosen), banned | {c for c, _, _ in chosen})
    return Related(_offers(loaded, chosen), loaded.version)


def envelope(loaded: LoadedModel, personalization: str, rules_version: str | None) -> dict:
    """What every offers answer carries, for an answer about no one."""
    return {"model_version": loaded.version, "personalization": personalization,
            "categories_used": [], "rules_version": rules_version,
            "disclosure": {"text": ANONYMOUS_DISCLOSURE, "policy": POLICY_URL, "automated": True},
            "links": {"policy": POLICY_URL}}


def _banned(loaded: LoadedModel, exclude: Sequence[str], never: np.ndarray | None) -> set[int]:
    columns = loaded.offer_columns
    banned = {columns[o] for o in (*loaded.unavailable, *exclude) if o in columns}
    return banned | set(never.tolist()) if never is not None else banned


def _criterion(category: str, text: str, share: float) -> dict:
    return {"category": category, "text": text, "share": share, "direction": "positive"}


def _popular_fill(loaded: LoadedModel, anchor: int | None, n: int, banned: set[int]
                  ) -> list[tuple[int, float, dict]]:
    """Up to n of the most bought offers, of the anchor offer's category when it has one."""
    if n <= 0:
        return []
    version = served(loaded)
    attribute = default_category_attribute(loaded.offers)
    order = loaded.popular_columns
    values: list[str] = []
    if attribute is not None and anchor is not None:
        values = attribute_values(loaded.offers[attribute].iloc[anchor])
        if values:
            holding = version.holding(attribute)
            order = order[np.isin(order, np.concatenate([holding[v] for v in values]))]
    where = f" in {attribute} {' / '.join(values)}" if values else ""
    out = []
    for column in order[:n + len(banned)].tolist():  # enough, whatever is banned
        if column in banned:
            continue
        bought = int(loaded.popularity[column])
        out.append((column, 0.0, _criterion(
            POPULARITY, f"Popular{where}: bought by {bought} customers", 1.0)))
        if len(out) == n:
            break
    return out


def _offers(loaded: LoadedModel, chosen: list[tuple[int, float, object]]) -> list[dict]:
    version: ServedVersion = served(loaded)
    ids, names = version.offer_ids, version.titles
    return [{"offer_id": ids[c], "title": names[c], "score": float(score),
             "criteria": criteria if isinstance(criteria, list) else [criteria]}
            for c, score, criteria in chosen]
