"""Applying business rules to one customer's scored candidates, after scoring.

Relevance. Scores of the served models can be negative and live on model-specific scales, so a
factor cannot multiply them directly. The candidates' scores are min-max scaled within the request
(as recommender.fairness.rerank does): relevance 1 for the best candidate, 0 for the last of the
pool (the model's top N_CANDIDATES after the request's own exclusions). A boost by f multiplies an
offer's relevance by f, a bury by f divides it; several matching rules multiply. So boost 2 lets an
offer halfway down the pool tie the model's best, and factor 1 changes nothing. Ties keep the
order without rules (score, then offer column, as evaluation.top_k).

Then, in this order: excluded offers leave the pool; offers are taken by adjusted relevance; a cap
skips an offer while one of its categories already holds ceil(share * k) places (an offer without
a category is never capped); diversity picks
greedily by maximal marginal relevance, (1 - strength) * relevance / max relevance - strength *
(highest cosine similarity to an offer already picked), over the offers' category mix or the model's
offer vectors. Strength 0 is the plain order.

Every offer the rules changed is reported with its rank without rules: excluded, boosted, buried,
capped (left out by a cap), diversified (brought in or left out for variety) and displaced (pushed
out of the top k by offers that a rule moved up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from recommender.catalog import offer_category_matrix
from recommender.errors import DataError
from recommender.rules import select
from recommender.rules.spec import BusinessRules, category_attribute, check_catalog

N_CANDIDATES = 100  # offers the rules choose from, besides those they exclude
CHANGES = ("excluded", "boosted", "buried", "capped", "diversified", "displaced")


class RuleChange(NamedTuple):  # a tuple: made for every changed offer of every request
    offer_id: str
    change: str  # one of CHANGES
    rules: tuple[str, ...]  # labels of the rules responsible (none for "displaced")
    rank_without_rules: int  # 1-based, among the candidates
    rank: int | None  # 1-based in the list served, None when left out

    def to_dict(self) -> dict:
        return self._asdict() | {"rules": list(self.rules)}


@dataclass(frozen=True)
class RulesOutcome:
    columns: np.ndarray  # the k offer columns served, best first
    positions: np.ndarray  # where each came from in the candidates given (to look up scores)
    changes: list[RuleChange]

    def change_of(self, rank: int) -> RuleChange | None:
        """The change of the offer at 1-based `rank` of the list, if a rule moved it there."""
        return next((c for c in self.changes if c.rank == rank), None)


class CompiledRules:
    """Rules resolved against one catalog: per-offer exclusion and factor, category lists and
    similarity rows, so that applying them per request is a few array operations.

    strict: refuse offers and categories the catalog lacks (a new rule file); otherwise they match
    nothing and are listed in `unknown` (a file accepted before, under a new model version)."""

    def __init__(self, rules: BusinessRules, offers: pd.DataFrame,
                 item_vectors: np.ndarray | None = None, *, strict: bool = True,
                 n_candidates: int = N_CANDIDATES) -> None:
        if strict:
            check_catalog(rules, offers)
        self.rules, self.version, self.n_candidates = rules, rules.version, n_candidates
        self.offer_ids = [str(o) for o in offers.index]
        n = len(self.offer_ids)
        column = {o: i for i, o in enumerate(self.offer_ids)}
        attribute = category_attribute(rules, offers)
        self.categories: list[str] = []
        mix = np.zeros((n, 0))
        if attribute is not None and attribute in offers.columns:
            mix, self.categories = offer_category_matrix(offers, attribute)
        members = self.members = mix > 0
        category_index = {c: j for j, c in enumerate(self.categories)}
        self.unknown: list[str] = []

        def matching(offer_ids: tuple[str, ...], categories: tuple[str, ...]) -> np.ndarray:
            hit = np.zeros(n, dtype=bool)
            for o in offer_ids:
                if o in column:
                    hit[column[o]] = True
                else:
                    self.unknown.append(o)
            for c in categories:
                if c in category_index:
                    hit |= members[:, category_index[c]]
                else:
                    self.unknown.append(c)
            return hit

        self.excluded = np.zeros(n, dtype=bool)
        self.matched: dict[int, list[str]] = {}  # offer column -> labels of the rules naming it
        for field, hit in (("exclude.offers", matching(rules.exclude_offers, ())),
                           ("exclude.categories", matching((), rules.exclude_categories))):
            self.excluded |= hit
            for i in np.flatnonzero(hit):
                self.matched.setdefault(int(i), []).append(field)
        self.n_excluded = int(self.excluded.sum())
        self.factor = np.ones(n)
        for adjustment in rules.adjustments:
            hit = matching(adjustment.offers, adjustment.categories)
            self.factor[hit] *= adjustment.multiplier
            for i in np.flatnonzero(hit):
                self.matched.setdefault(int(i), []).append(adjustment.label)
        self.adjusts = bool((self.factor != 1).any())
        self._factors, self._excluded = self.factor.tolist(), self.excluded.tolist()
        # caps: the tightest share per category, and the rule it comes from
        self.offer_categories = [tuple(np.flatnonzero(row).tolist()) for row in members]
        self.cap_share = [math.inf] * len(self.categories)
        self.cap_label = [""] * len(self.categories)
        for cap in rules.caps:
            targets = range(len(self.categories)) if cap.category is None else \
                [category_index[cap.category]] if cap.category in category_index else []
            if cap.category is not None and cap.category not in category_index:
                self.unknown.append(cap.category)
            for j in targets:
                if cap.share < self.cap_share[j]:
                    self.cap_share[j], self.cap_label[j] = cap.share, cap.label
        self.caps = any(s < math.inf for s in self.cap_share)
        self.single_category = bool((members.sum(axis=1) <= 1).all())
        self._limit_cache: dict[int, list[int]] = {}
        self.diversity = rules.diversity if rules.diversity and rules.diversity.strength > 0 else None
        self.similarity_rows = None
        # category similarity with one category per offer is 1 or 0: MMR sorts in one step
        self.one_hot_similarity = bool(self.diversity is not None and self.diversity.by == "category"
                                       and self.single_category)
        if self.diversity is not None and self.diversity.by == "vectors" and item_vectors is None:
            raise DataError("diversity by vectors needs the model's offer vectors (item_vectors)",
                            file=rules.source, field="diversity.by")
        if self.diversity is not None:
            rows = mix if self.diversity.by == "category" else np.asarray(item_vectors, dtype=float)
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            self.similarity_rows = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
        self.active = bool(self.n_excluded or self.adjusts or self.caps or self.diversity)

    def candidates_needed(self, k: int) -> int:
        """How many of the model's best offers to rank before applying the rules to get k."""
        return max(k, self.n_candidates) + self.n_excluded

    def effects(self, column: int) -> list[str]:
        """What the rules do to an offer whatever the list: "excluded", "boosted", "buried"."""
        if self.excluded[column]:
            return ["excluded"]
        factor = self.factor[column]
        return ["boosted"] if factor > 1 else ["buried"] if factor < 1 else []

    def apply(self, candidates: np.ndarray, scores: np.ndarray, k: int, *,
              ordered: bool = False) -> RulesOutcome:
        """The k offers served from `candidates` (offer columns) with `scores` (aligned; more
        candidates than k, see candidates_needed), and what the rules changed. ordered: the
        candidates are already best first, ties by column (as ranking.rank returns them)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        scores = np.asarray(scores, dtype=float)
        if ordered:
            baseline, columns, best_first = np.arange(len(candidates)), candidates, scores
        else:
            baseline = np.lexsort((candidates, -scores))  # the order without rules
            columns, best_first = candidates[baseline], scores[baseline]
        n = len(columns)
        if not self.active or not n or k < 1:
            return RulesOutcome(columns[:k], baseline[:k], [])
        spread = best_first[0] - best_first[-1]
        relevance = (best_first - best_first[-1]) / spread if spread > 0 else np.ones(n)
        adjusted = relevance * self.factor[columns] if self.adjusts else relevance
        order = np.flatnonzero(~self.excluded[columns])  # positions in the baseline, best first
        if self.adjusts:
            order = order[np.argsort(-adjusted[order], kind="stable")]
        by_relevance = capped_list = order[:k].tolist()
        held: set[int] = set()  # positions a cap left out
        if self.diversity is None:
            if self.caps:
                capped_list, held = self._walk(columns, order.tolist(), k)
            final = capped_list
        else:  # offers moved in or out here count as diversified, cap replacements included
            final, held = self._diversify(columns, order, adjusted[order], k)
        changes = self._changes(columns, k, by_relevance, capped_list, final, held)
        return RulesOutcome(columns[final], baseline[final], changes)

    def _diversify(self, columns: np.ndarray, order: np.ndarray, adjusted: np.ndarray, k: int,
                   ) -> tuple[list[int], set[int]]:
        strength = self.diversity.strength
        top = adjusted[0] if len(adjusted) else 0.0
        gain = (1 - strength) * (adjusted / top if top > 0 else np.ones(len(order)))
        cols = columns[order]
        if self.one_hot_similarity:
            diverse = select.one_category_mmr_order(order, gain, self.members[cols], strength).tolist()
            return self._walk(columns, diverse, k) if self.caps else (diverse[:k], set())
        capped = self.caps
        return select.mmr(
            order, gain, self.similarity_rows[cols], strength, k,
            self.members[cols] if capped else None, self._limits(k) if capped else None,
            [self.offer_categories[c] for c in cols.tolist()] if capped else None)

    def _limits(self, k: int) -> list[int]:
        """Places per category in a list of k; uncapped categories get k. (The epsilon keeps
        0.3 * 10 = 3.0000000000000004 at 3.)"""
        limits = self._limit_cache.get(k)
        if limits is None:
            limits = self._limit_cache[k] = [
                min(k, max(1, math.ceil(share * k - 1e-9))) if share <= 1 else k
                for share in self.cap_share]
        return limits

    def _walk(self, columns: np.ndarray, order: list[int], k: int) -> tuple[list[int], set[int]]:
        return select.cap_walk(order, columns.tolist(), self.offer_categories, self._limits(k), k)

    def _changes(self, columns: np.ndarray, k: int, by_relevance: list[int], capped_list: list[int],
                 final: list[int], held: set[int]) -> list[RuleChange]:
        """Which offers the rules changed, by position in the order without rules (plain Python
        over the few positions involved: cheaper than a dozen array passes over the pool)."""
        rank = {p: r for r, p in enumerate(final, 1)}
        in_relevance, in_capped = set(by_relevance), set(capped_list)
        held_back = held & in_relevance
        involved = sorted({*range(min(k, len(columns))), *in_relevance, *in_capped, *rank})
        factors, excluded, listed = self._factors, self._excluded, columns.tolist()
        changes = []
        for position in involved:
            column = listed[position]
            before, now, factor = position + 1, rank.get(position), factors[column]
            if excluded[column]:
                change = "excluded" if before <= k else None
            elif now is not None:
                change = ("boosted" if factor > 1 and now < before else
                          "buried" if factor < 1 and now > before else
                          "diversified" if position not in in_capped else None)
            elif factor < 1 and before <= k:
                change = "buried"
            elif position in held_back:
                change = "capped"
            elif position in in_capped:
                change = "diversified"  # left out for variety
            else:
                change = "displaced" if before <= k else None  # pushed out by offers moved up
            if change is None:
                continue
            if change == "capped":
                rules = tuple(dict.fromkeys(self.cap_label[j] for j in self.offer_categories[column]
                                            if self.cap_label[j]))
            elif change == "diversified":
                rules = (self.diversity.label,)
            elif change == "displaced":
                rules = ()
            else:
                rules = tuple(self.matched.get(column, ()))
            changes.append(RuleChange(self.offer_ids[column], change, rules, before, now))
        return changes
