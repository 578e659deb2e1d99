"""Plain-language criteria for "Why do I see this?", ranked by exact contributions.

What is explained is the offer's advantage: how far its score stands above (or below) the
customer's average score over the catalog, under the same consent. That is the quantity that
decides the ranking (a constant shared by all of a customer's offers ranks nothing), and its
exact Shapley decomposition over data categories, the average customer standing in for what is
withheld, is explain.attributions' relative one: value = base + sum of contributions, where base,
the popularity part, is what the average customer's advantage for this offer would be. Words,
directions, shares, the page's bars, `attribution` in /why and the audit record's reasons all
come from these numbers and no others.

Each criterion is one data category, or popularity, with:
- contribution: its part of the advantage.
- share: |contribution| / the sum of |contribution| over the offer's criteria, so shares add up to
  1: "40% of what set this offer apart came from your purchases". The direction says which way.
- data: the data behind it, only ever from categories that were used: the attribute values, or the
  past offers that weighed most (in the criterion's direction).
Criteria are ordered: those that raised the offer, largest first, then those that lowered it,
largest first; negative ones are reported, never dropped. Those under `min_share` of the
explanation are not worded: /why lists them together as `minor`.

Past offers are named only when, together, they moved the offer the way the criterion says; when a
learned profile of the customer's taste carries the history's part instead (history_mode "blend"),
the criterion says so in those words.

The full "why" payload (one offer) and the compact list (every offer of a response) come from the
same OfferExplanations, and only the criteria actually shown are worded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from explain.attributions import Attribution, attribute
from explain.context import ExplainContext, context
from explain.splits import FeatureSplit, split_features
from explain.templates import POPULARITY, Templates
from recommender.artifacts import Artifact
from recommender.consent import Consent
from recommender.ranking import CustomerState
from recommender.taxonomy import HISTORY

METHOD = "exact SHAP values over data categories, the average customer as background"
EXPLAINS = ("value: how far this offer's score is above your average score over all offers, "
            "under your privacy settings; base: that advantage for the average customer "
            "(popularity); contributions: how much each kind of your data added or took away. "
            "base plus the contributions equals value.")
MIN_SHARE = 0.02  # criteria under this share of the explanation are listed, not worded
_POPULARITY = -1  # criterion key of popularity; categories use their index
_TINY = np.finfo(float).tiny


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


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """(n, k) columns of each row's k largest values, largest first.

    Short rows are sorted; long ones (a long history) take k passes of argmax, far cheaper than
    sorting hundreds for the few past offers a criterion names."""
    if values.shape[1] <= 64:
        return np.argsort(-values, axis=1, kind="stable")[:, :k]
    values = values.copy()
    rows = np.arange(len(values))
    top = np.empty((len(values), k), dtype=np.intp)
    for t in range(k):
        top[:, t] = best = values.argmax(axis=1)
        values[rows, best] = -np.inf
    return top


def direction_of(value: float) -> str:
    return "positive" if value > 0 else "negative" if value < 0 else "neutral"


class OfferExplanations:
    """Why each of n offers is shown to one customer, from one attribution and its split.

    What every offer needs (order, shares, top past offers, the speaking attribute) is computed for
    all offers at once with numpy and then read as Python lists: a response words 10 offers, and
    per-offer numpy calls would cost more than the arithmetic. Only the criteria actually shown
    are worded, and wording that does not depend on the offer is formatted once per response."""

    def __init__(
        self, artifact: Artifact, state: CustomerState, attribution: Attribution,
        split: FeatureSplit, *, consent: Consent | None = None, templates: Templates | None = None,
        max_items: int = 3, min_share: float = MIN_SHARE,
    ) -> None:
        self.artifact = artifact
        self.state = state
        self.attribution = attribution
        self.split = split
        self.consent = consent
        self.templates = templates or Templates.default()
        self.max_items = max_items
        self._ctx: ExplainContext = context(artifact)
        self._history = self._ctx.history
        self._exact: list[bool] = split.exact.tolist()
        self._speaker_cache: dict[int, tuple[list[str], list[list[int]]]] = {}
        self._texts: dict[tuple, str] = {}  # words formatted once per response
        self._same_for_every_offer: dict[tuple[int, str], str] = {}  # (j, direction) -> text
        self._history_texts: dict[bool, list[str | None]] = {}  # per direction, per offer
        self._past_offer_cache: dict[bool, tuple[list, list]] = {}
        self._compact: dict[int, list[list[dict]]] = {}
        used = attribution.used
        self._used: list[int] = [g for g, u in enumerate(used.tolist()) if u]
        # (n, 1 + used) relative contributions: popularity first, then the used categories
        parts = np.empty((len(attribution), 1 + len(self._used)))
        np.subtract(attribution.base, attribution.mean_base, out=parts[:, 0])  # relative_base
        np.subtract(attribution.contributions[:, used], attribution.mean_contributions[used],
                    out=parts[:, 1:])  # Attribution.relative
        magnitude = np.abs(parts)
        # all-zero rows (nothing moved the offer) have shares 0, not 0/0
        shares = magnitude / np.maximum(magnitude.sum(axis=1, keepdims=True), _TINY)
        # raised first, largest first; then lowered, largest first
        order = np.lexsort((-magnitude, parts <= 0), axis=-1)
        self._keys = [_POPULARITY, *self._used]
        self._categories = [POPULARITY, *(attribution.categories[g] for g in self._used)]
        self._parts, self._shares = parts.tolist(), shares.tolist()
        worded = np.take_along_axis(shares >= min_share, order, axis=1).tolist()
        self._order = [[j for j, w in zip(row, keep, strict=True) if w]
                       for row, keep in zip(order.tolist(), worded, strict=True)]
        self._minor = [[j for j, w in zip(row, keep, strict=True) if not w]
                       for row, keep in zip(order.tolist(), worded, strict=True)]
        self.min_share = min_share

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
        """The worded criteria of the i-th offer (share >= min_share), in order."""
        return [self._criterion(i, j) for j in self._order[i]]

    def minor(self, i: int) -> dict | None:
        """The i-th offer's criteria under min_share, together: not worded one by one."""
        small = self._minor[i]
        if not small:
            return None
        names = [self.templates.name(self._categories[j]) for j in small]
        share = sum(self._shares[i][j] for j in small)
        text = self.templates.message("minor").format(
            threshold=f"{self.min_share:.0%}", share=f"{share:.1%}", names=self.templates.join(names))
        return {"text": text, "share": share, "parts": [
            {"category": self._categories[j], "contribution": self._parts[i][j],
             "share": self._shares[i][j]} for j in small]}

    def compact(self, i: int, top: int = 2) -> list[dict]:
        """The first `top` criteria of the i-th offer, for the offers list (worded, without data)."""
        rows = self._compact.get(top)
        if rows is None:
            rows = self._compact[top] = self._compact_rows(top)
        return list(rows[i])

    def _compact_rows(self, top: int) -> list[list[dict]]:
        """compact for every offer at once: a response lists all of them."""
        categories, keys, history = self._categories, self._keys, self._history
        by_past_offer = self._by_past_offer
        out = []
        for i, (parts, shares, order) in enumerate(zip(self._parts, self._shares, self._order,
                                                       strict=True)):
            row = []
            for j in order[:top]:
                value = parts[j]
                direction = "positive" if value > 0 else "negative" if value < 0 else "neutral"
                if keys[j] == history and by_past_offer and direction != "neutral":
                    text = self._history_words(i, value < 0)
                else:
                    text = self._words(i, j, direction)
                row.append({"category": categories[j], "text": text, "share": shares[j],
                            "direction": direction})
            out.append(row)
        return out

    def _criterion(self, i: int, j: int) -> Criterion:
        value = self._parts[i][j]
        direction = direction_of(value)
        key = self._keys[j]
        data: dict = {}
        note = None
        if key == self._history:
            data["past_offer_count"] = len(self.state.history)
            if self._by_past_offer:
                past, learned = self._history_parts
                data["past_offers_total"] = past[i]
                if learned is not None:
                    data["learned_profile"] = learned[i]
            if self._by_past_offer and direction != "neutral":
                if self._names_past_offers(i, direction == "negative"):
                    offers, values = self._top_past_offers(i, direction)
                    data["past_offers"] = [
                        {"offer_id": o, "title": self._ctx.title(o), "contribution": v}
                        for o, v in zip(offers, values, strict=True)
                    ]
            elif direction != "neutral":
                note = self.templates.note(
                    "learned_profile" if self._ctx.history_mode == "identity" else "unsplit")
        elif key != _POPULARITY and self._exact[key]:
            # values only when they provably are what entered the score (the split adds up)
            data = dict(self._values[key])
        return Criterion(self._categories[j], self._words(i, j, direction), value,
                         self._shares[i][j], direction, data, note)

    def _words(self, i: int, j: int, direction: str) -> str:
        """The criterion's text; what does not depend on the offer is formatted once per response."""
        text = self._same_for_every_offer.get((j, direction))
        if text is not None:
            return text
        key = self._keys[j]
        speaker = None
        if key == self._history:
            if direction != "neutral" and self._by_past_offer:
                return self._history_words(i, direction == "negative")
            variant = "_unsplit"
        else:
            variant = ""
            if key != _POPULARITY and direction != "neutral" and self._exact[key]:
                attributes, best = self._speakers(key)
                speaker = attributes[best[direction == "negative"][i]]
        cache_key = (j, direction, speaker)
        text = self._texts.get(cache_key)
        if text is None:
            category = self._categories[j]
            values = self._values.get(key, {})
            shown = self.templates.join([", ".join(v) if isinstance(v, list) else v
                                         for v in values.values()])
            template = self.templates.criterion(category, direction, attribute=speaker,
                                                variant=variant)
            text = self._texts[cache_key] = template.format_map(
                {"name": self.templates.name(category), "items": "", "values": shown})
            if speaker is None or len(self._speakers(key)[0]) == 1:  # no other attribute speaks
                self._same_for_every_offer[(j, direction)] = text
        return text

    def _history_words(self, i: int, negative: bool) -> str:
        """The history criterion of the i-th offer, naming the past offers that weighed most, or,
        when they did not move it that way together, the learned profile that did."""
        if not self._names_past_offers(i, negative):
            key = ("learned", negative)
            text = self._texts.get(key)
            if text is None:
                text = self._texts[key] = self.templates.criterion(
                    HISTORY, "negative" if negative else "positive", variant="_learned")
            return text
        texts = self._history_texts.get(negative)
        if texts is None:
            texts = self._history_texts[negative] = [None] * len(self.attribution)
        text = texts[i]
        if text is None:
            titles = self._ctx.titles
            named = [titles.get(o, o) for o in self._past_offers(negative)[0][i]]
            template = self._texts.get((negative,))  # the template, one per direction
            if template is None:
                template = self._texts[(negative,)] = self.templates.criterion(
                    HISTORY, "negative" if negative else "positive")
            text = texts[i] = template.format_map(
                {"name": self._history_name, "values": "", "items": self.templates.join(named)})
        return text

    @cached_property
    def _history_name(self) -> str:
        return self.templates.name(HISTORY)

    def _names_past_offers(self, i: int, negative: bool) -> bool:
        """Whether the past offers, together, moved the i-th offer in the criterion's direction."""
        total = self._history_parts[0][i]
        return total < 0 if negative else total > 0

    @cached_property
    def _history_parts(self) -> tuple[list[float], list[float] | None]:
        """Per offer: the past offers' part of the history contribution, and the learned
        profile's (None without one); they add up to it."""
        block = self.split.of(self._history)
        learned = None
        if block.stop > block.start and self.split.learned[block.stop - 1]:
            learned = self.split.relative[:, block.stop - 1].tolist()
            block = slice(block.start, block.stop - 1)
        return self.split.relative[:, block].sum(axis=1).tolist(), learned

    @cached_property
    def _by_past_offer(self) -> bool:
        """Whether history is worded by past offer: items mode and a split that adds up."""
        return self._ctx.history_mode in ("items", "blend") and self._exact[self._history]

    def _top_past_offers(self, i: int, direction: str) -> tuple[list[str], list[float]]:
        """(offer ids, relative parts) of the past offers that pushed the i-th offer most in
        `direction` (at most max_items, and only those that pushed that way)."""
        offers, values = self._past_offers(direction == "negative")
        return offers[i], values[i]

    def _past_offers(self, negative: bool) -> tuple[list[list[str]], list[list[float]]]:
        """Per offer of the response, _top_past_offers in one direction, computed for all at once."""
        cached = self._past_offer_cache.get(negative)
        if cached is None:
            block = self.split.of(self._history)
            if block.stop > block.start and self.split.learned[block.stop - 1]:
                # "blend": the learned profile's share is no past offer (it comes last)
                block = slice(block.start, block.stop - 1)
            labels, parts = self.split.labels[block], self.split.relative[:, block]
            top = _largest(-parts if negative else parts, min(self.max_items, parts.shape[1]))
            values = parts[np.arange(len(parts))[:, None], top]
            offers = labels[top].tolist()
            pushed = (values < 0 if negative else values > 0).tolist()
            values = values.tolist()
            for row, keep in enumerate(pushed):
                if not all(keep):  # fewer past offers pushed this way than max_items
                    offers[row] = [o for o, k in zip(offers[row], keep, strict=True) if k]
                    values[row] = [v for v, k in zip(values[row], keep, strict=True) if k]
            cached = self._past_offer_cache[negative] = (offers, values)
        return cached

    # --- per customer, shared by every offer -----------------------------------------------------
    def _speakers(self, g: int) -> tuple[list[str], list[list[int]]]:
        """An attribute category's attributes, and per offer the one that moved it most up
        ([0][i]) and down ([1][i]): the attribute whose wording the criterion uses."""
        cached = self._speaker_cache.get(g)
        if cached is None:
            block = self.split.of(g)
            attributes = [str(label).split("=", 1)[0] for label in self.split.labels[block]]
            unique = list(dict.fromkeys(attributes))
            if len(unique) == 1:  # one attribute (several values of it, at most): it speaks
                best = [[0] * len(self), [0] * len(self)]
            else:
                totals = self.split.relative[:, block]  # (n, A) when each attribute has one value
                if len(unique) < len(attributes):
                    sums = np.zeros((len(attributes), len(unique)))
                    sums[np.arange(len(attributes)), [unique.index(a) for a in attributes]] = 1.0
                    totals = totals @ sums
                best = [totals.argmax(axis=1).tolist(), totals.argmin(axis=1).tolist()]
            cached = self._speaker_cache[g] = (unique, best)
        return cached

    @cached_property
    def _values(self) -> dict[int, dict[str, str | list[str]]]:
        """The attribute values behind each used attribute category (used categories only)."""
        values = self._ctx.attribute_features(self.state.attributes).values
        return {g: {name: list(v) if isinstance(v, tuple) else v
                    for name, v in values.get(g, {}).items()} for g in self._used}

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
        parts = self._parts[i]
        contributions = dict.fromkeys(a.categories, 0.0)  # zero: not used
        contributions.update(zip(self._categories[1:], parts[1:], strict=True))
        return {
            "offer_id": offer_id,
            "title": self._ctx.title(offer_id),
            "score": float(a.score[i]),
            "average_score": a.average_score,
            "criteria": [c.to_dict() for c in self.criteria(i)],
            "minor": self.minor(i),
            "not_used": [n.to_dict() for n in self.not_used],
            "categories_used": [a.categories[g] for g in self._used],
            "personal_data_used": self.personal_data_used,
            "message": None if self.personal_data_used else self.templates.message("no_personal_data"),
            "attribution": {
                "method": METHOD,
                "explains": EXPLAINS,
                "value": float(a.score[i]) - a.average_score,
                "base": parts[0],
                "contributions": contributions,
            },
        }


def explain_offers(
    artifact: Artifact, state: CustomerState, allowed: np.ndarray, offers: Sequence[int] | np.ndarray,
    *, consent: Consent | None = None, templates: Templates | None = None, max_items: int = 3,
    min_share: float = MIN_SHARE,
) -> OfferExplanations:
    """Explanations of the offer columns `offers` for one customer under the mask `allowed`
    (consent, when given, only words why a category was not used)."""
    attribution = attribute(artifact.model, state, allowed, np.asarray(offers, dtype=np.intp))
    split = split_features(artifact, state, attribution)
    return OfferExplanations(artifact, state, attribution, split, consent=consent,
                             templates=templates, max_items=max_items, min_share=min_share)


def why(
    artifact: Artifact, state: CustomerState, allowed: np.ndarray, offer_id: str, *,
    consent: Consent | None = None, templates: Templates | None = None, max_items: int = 3,
    min_share: float = MIN_SHARE,
) -> dict:
    """The full "Why do I see this?" payload of one offer."""
    column = artifact.offer_columns.get(str(offer_id))
    if column is None:
        raise KeyError(f"unknown offer {offer_id!r}")
    explanations = explain_offers(artifact, state, allowed, [column], consent=consent,
                                  templates=templates, max_items=max_items, min_share=min_share)
    return explanations.payload(0)
