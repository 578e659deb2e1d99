"""Plain-language criteria for "Why do I see this?", ranked by exact contributions.

Each criterion is one data category, or popularity, with:
- contribution: its exact SHAP value relative to the catalog (explain.attributions): how far it moved
  this offer's score away from the customer's typical offer. Popularity is base(i) minus the
  average base, what the average customer thinks of this offer against a typical one. The
  contributions add up to score - average_score exactly.
- share: |contribution| / the sum of |contribution| over the offer's criteria, so shares add up to
  1: "40% of what set this offer apart came from your purchases". The direction says which way.
- data: the data behind it, only ever from categories that were used: the attribute values, or the
  past offers that weighed most (in the criterion's direction).
Criteria are ordered: those that raised the offer, largest first, then those that lowered it,
largest first; negative ones are reported, never dropped.

The full "why" payload (one offer) and the compact list (every offer of a response) come from the
same OfferExplanations, and only the criteria actually shown are worded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from explain.attributions import Attribution, attribute
from explain.context import HISTORY_PREFIX, ExplainContext, context
from explain.splits import FeatureSplit, split_features
from explain.templates import POPULARITY, Templates
from recommender.artifacts import Artifact
from recommender.consent import Consent
from recommender.features import attribute_values
from recommender.ranking import CustomerState

METHOD = "exact SHAP values over data categories, the average customer as background"
_POPULARITY = -1  # criterion key of popularity; categories use their index


@dataclass(frozen=True)
class Criterion:
    category: str  # a data category, or "popularity"
    text: str
    contribution: float
    share: float
    direction: str  # "positive", "negative" or "neutral"
    data: dict
    note: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.note is None:
            del out["note"]
        return out


@dataclass(frozen=True)
class NotUsed:
    """A category that did not enter the score: reason "consent", "level", "no_data", "not_in_model"."""

    category: str
    name: str
    reason: str
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def direction_of(value: float) -> str:
    return "positive" if value > 0 else "negative" if value < 0 else "neutral"


class OfferExplanations:
    """Why each of n offers is shown to one customer, from one attribution and its split."""

    def __init__(
        self, artifact: Artifact, state: CustomerState, attribution: Attribution,
        split: FeatureSplit, *, consent: Consent | None = None, templates: Templates | None = None,
        max_items: int = 3,
    ) -> None:
        self.artifact = artifact
        self.state = state
        self.attribution = attribution
        self.split = split
        self.consent = consent
        self.templates = templates or Templates.default()
        self.max_items = max_items
        self._ctx: ExplainContext = context(artifact)
        self._attribute_sums: dict[int, tuple[list[str], np.ndarray]] = {}
        self._used = np.flatnonzero(attribution.used)
        # (n, 1 + used) relative contributions: popularity first, then the used categories
        self._parts = np.column_stack([attribution.relative_base, attribution.relative[:, self._used]])
        self._keys = np.array([_POPULARITY, *self._used])
        magnitude = np.abs(self._parts)
        total = magnitude.sum(axis=1, keepdims=True)
        self._shares = np.divide(magnitude, total, out=np.zeros_like(magnitude), where=total > 0)
        # raised first, largest first; then lowered, largest first
        self._order = np.lexsort((-magnitude, self._parts <= 0), axis=-1)

    def __len__(self) -> int:
        return len(self.attribution)

    @cached_property
    def offer_ids(self) -> list[str]:
        return [str(o) for o in self._ctx.offer_ids[self.attribution.offers]]

    @property
    def personal_data_used(self) -> bool:
        return bool(self.attribution.used.any())

    # --- criteria --------------------------------------------------------------------------------
    def criteria(self, i: int) -> list[Criterion]:
        """All criteria of the i-th offer, in order."""
        return [self._criterion(i, int(j)) for j in self._order[i]]

    def compact(self, i: int, top: int = 2) -> list[dict]:
        """The first `top` criteria of the i-th offer, for the offers list."""
        return [
            {"category": c.category, "text": c.text, "share": c.share, "direction": c.direction}
            for c in (self._criterion(i, int(j)) for j in self._order[i][:top])
        ]

    def _criterion(self, i: int, j: int) -> Criterion:
        value = float(self._parts[i, j])
        share = float(self._shares[i, j])
        direction = direction_of(value)
        key = int(self._keys[j])
        if key == _POPULARITY:
            text = self.templates.criterion(POPULARITY, direction)
            return Criterion(POPULARITY, text.format_map(self._fill(POPULARITY)), value, share,
                             direction, {})
        category = self.attribution.categories[key]
        if key == self._ctx.history:
            return self._history(i, category, value, share, direction)
        return self._attributes(i, key, category, value, share, direction)

    def _fill(self, category: str, items: str = "", values: str = "") -> dict[str, str]:
        return {"name": self.templates.name(category), "items": items, "values": values}

    def _history(self, i: int, category: str, value: float, share: float,
                 direction: str) -> Criterion:
        data: dict = {"past_offer_count": len(self.state.history)}
        g = self._ctx.history
        if self._ctx.history_mode != "items" or not self.split.exact[g] or direction == "neutral":
            note = None
            if direction != "neutral":
                note = self.templates.note(
                    "learned_profile" if self._ctx.history_mode == "identity" else "unsplit"
                )
            text = self.templates.criterion(category, direction, variant="_unsplit")
            return Criterion(category, text.format_map(self._fill(category)), value, share,
                             direction, data, note)
        positions = self._positions[g]
        parts = self.split.relative[i, positions]
        sign = 1.0 if value > 0 else -1.0
        chosen = np.argsort(-sign * parts, kind="stable")[: self.max_items]
        chosen = chosen[sign * parts[chosen] > 0]
        offers = [str(name)[len(HISTORY_PREFIX):] for name in self.split.names[positions[chosen]]]
        titles = [self._ctx.title(o) for o in offers]
        data["past_offers"] = [
            {"offer_id": o, "title": t, "contribution": float(c)}
            for o, t, c in zip(offers, titles, parts[chosen], strict=True)
        ]
        text = self.templates.criterion(category, direction)
        fill = self._fill(category, items=self.templates.join(titles))
        return Criterion(category, text.format_map(fill), value, share, direction, data)

    def _attributes(self, i: int, g: int, category: str, value: float, share: float,
                    direction: str) -> Criterion:
        values = self._values[g]
        speaker = None
        if self.split.exact[g] and direction != "neutral":
            # the attribute that moved the category most in the criterion's direction speaks
            attributes, sums = self._by_attribute(g)
            totals = self.split.relative[i] @ sums
            speaker = attributes[int(np.argmax(totals if value > 0 else -totals))]
        text = self.templates.criterion(category, direction, attribute=speaker)
        shown = self.templates.join([", ".join(v) if isinstance(v, list) else v
                                     for v in values.values()])
        return Criterion(category, text.format_map(self._fill(category, values=shown)), value,
                         share, direction, dict(values))

    # --- per customer, shared by every offer -----------------------------------------------------
    @cached_property
    def _positions(self) -> dict[int, np.ndarray]:
        return {int(g): self.split.of(int(g)) for g in self._used}

    def _by_attribute(self, g: int) -> tuple[list[str], np.ndarray]:
        """An attribute category's attributes, and the (m, A) 0/1 matrix summing its split by them."""
        cached = self._attribute_sums.get(g)
        if cached is None:
            positions = self._positions[g]
            attributes = [str(self.split.names[p]).split("=", 1)[0] for p in positions]
            unique = list(dict.fromkeys(attributes))
            matrix = np.zeros((len(self.split.names), len(unique)))
            matrix[positions, [unique.index(a) for a in attributes]] = 1.0
            cached = self._attribute_sums[g] = (unique, matrix)
        return cached

    @cached_property
    def _values(self) -> dict[int, dict[str, str | list[str]]]:
        """The attribute values behind each used attribute category (used categories only)."""
        out: dict[int, dict[str, str | list[str]]] = {int(g): {} for g in self._used}
        for name, raw in self.state.attributes.items():
            g = self._ctx.attribute_category.get(name)
            if g is None or g not in out or g == self._ctx.history:
                continue
            values = attribute_values(raw)
            if values:
                out[g][name] = values[0] if len(values) == 1 else values
        return out

    @cached_property
    def not_used(self) -> list[NotUsed]:
        """Categories that did not enter the score, and why (the same for every offer)."""
        out = []
        for g, category in enumerate(self.attribution.categories):
            if self.attribution.used[g]:
                continue
            if not self.attribution.allowed[g]:
                reason = ("level" if self.consent is not None and category in self.consent.allowed
                          else "consent")
            elif not self._ctx.in_model[g]:
                reason = "not_in_model"
            else:
                reason = "no_data"
            name = self.templates.name(category)
            level = self.consent.level if self.consent is not None else ""
            text = self.templates.not_used(reason).format(name=name, level=level)
            out.append(NotUsed(category, name, reason, text))
        return out

    # --- JSON ------------------------------------------------------------------------------------
    def payload(self, i: int) -> dict:
        """The full "why" of the i-th offer, JSON-ready."""
        a = self.attribution
        offer_id = self.offer_ids[i]
        return {
            "offer_id": offer_id,
            "title": self._ctx.title(offer_id),
            "score": float(a.score[i]),
            "average_score": a.average_score,
            "criteria": [c.to_dict() for c in self.criteria(i)],
            "not_used": [n.to_dict() for n in self.not_used],
            "categories_used": [a.categories[g] for g in self._used],
            "personal_data_used": self.personal_data_used,
            "message": None if self.personal_data_used else self.templates.message("no_personal_data"),
            "attribution": {
                "method": METHOD,
                "base": float(a.base[i]),
                "contributions": dict(zip(a.categories, map(float, a.contributions[i]), strict=True)),
            },
        }


def explain_offers(
    artifact: Artifact, state: CustomerState, allowed: np.ndarray, offers: Sequence[int] | np.ndarray,
    *, consent: Consent | None = None, templates: Templates | None = None, max_items: int = 3,
) -> OfferExplanations:
    """Explanations of the offer columns `offers` for one customer under the mask `allowed`
    (consent, when given, only words why a category was not used)."""
    attribution = attribute(artifact.model, state, allowed, np.asarray(offers, dtype=np.intp))
    split = split_features(artifact, state, attribution)
    return OfferExplanations(artifact, state, attribution, split, consent=consent,
                             templates=templates, max_items=max_items)


def why(
    artifact: Artifact, state: CustomerState, allowed: np.ndarray, offer_id: str, *,
    consent: Consent | None = None, templates: Templates | None = None, max_items: int = 3,
) -> dict:
    """The full "Why do I see this?" payload of one offer."""
    column = artifact.offer_columns.get(str(offer_id))
    if column is None:
        raise KeyError(f"unknown offer {offer_id!r}")
    explanations = explain_offers(artifact, state, allowed, [column], consent=consent,
                                  templates=templates, max_items=max_items)
    return explanations.payload(0)
