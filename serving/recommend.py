"""The serving hot path: one customer's offers, or one offer's "why", as JSON-ready dicts.

Per request: one round trip to Redis for the customer, their new history and their cached consent
(ModelCache.customer), the consent mask, ranking.rank (the computation notebooks and evaluation
share) and explain/ for the offers shown. Everything a version's requests share is built once per
version (serving.explaining.ServedVersion). No pandas and no per-offer numpy calls per request.

What every response carries (docs/architecture.md): the model version, the personalization level applied,
the categories used and those not used with the reason, a plain disclosure and a request id
(added by the API layer, which also hands the audit record to the audit hook).

Business rules (recommender.rules, the file TRUSTREC_RULES names) apply after ranking: the model's
best candidates are ranked, then the rules choose k of them. Every response carries the
rules_version in force (null: none); an offer a rule moved up, down or in carries a "business_rule"
note and criterion, and the audit record says which rule changed which offer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import numpy as np

from explain.criteria import MIN_SHARE, OfferExplanations
from explain.templates import Templates
from recommender.consent import FULL, NO_PERSONAL_DATA, NONE, SEGMENT, Consent, category_mask
from recommender.fairness.rerank import CalibratedReranker
from recommender.new_offers import Peers
from recommender.ranking import rank
from recommender.rules import CompiledRules, RulesFile, RulesOutcome
from recommender.taxonomy import HISTORY
from serving.consent_cache import ConsentCache, Decision
from serving.controls import (
    LEARNED_NOTE,
    SEE_LESS_ATTRIBUTE,
    SEE_LESS_FACTOR,
    Controls,
    ControlsCache,
)
from serving.controls import NONE as NO_CONTROLS
from serving.errors import ApiError, bad_parameter
from serving.explaining import ServedVersion, explain_offers, not_used_only, served
from serving.redis_store import CustomerView, ModelCache, state_from_record
from serving.served import ServedRecord

DISCLOSURE = (
    "These offers were selected by an automated system (a recommendation model), using only the "
    "kinds of personal data you allowed. Ask \"Why do I see this?\" for any offer, and change what "
    "may be used in your privacy settings."
)
POLICY_URL = "/v1/policy"
TOP_CRITERIA = 2  # criteria per offer in the offers list; the "why" endpoint gives them all
BUSINESS_RULE = "business_rule"  # the criterion category of a rule's effect
YOUR_CHOICE = "your_choice"  # the criterion category of what the customer asked for
NEW_OFFER = "new_offer"  # the criterion category of an offer added since training
BOUGHT_TOGETHER = "bought_together"  # the page's offer (context) was bought with this one
SEE_LESS_POOL = 100  # offers considered when a category is placed lower
_DIRECTION = {"boosted": "positive", "buried": "negative", "diversified": "neutral"}


@dataclass(frozen=True)
class OffersQuery:
    k: int = 10
    explain: bool = True
    exclude: tuple[str, ...] = ()
    exclude_purchased: bool = True
    filter: tuple[str, str] | None = None  # (offer attribute, value)
    filter_field: str = "filter"  # the query parameter it came from, for error messages
    attributes: Mapping[str, str] | None = None  # cold start: the customer's attribute values
    calibrate: float = 0.0  # strength of the calibrated re-rank (recommender.fairness), 0: off
    context: str | None = None  # the offer on the page: offers bought with it first


@dataclass
class Result:
    """A response body, and what the audit hook records about it."""

    body: dict
    audit: dict = field(default_factory=dict)

    def record(self, request_id: str, endpoint: str, actor: str, params: dict) -> ServedRecord:
        """What the audit trail keeps of this response (serving.served)."""
        audit = self.audit
        return ServedRecord(
            request_id=request_id, served_at=time.time(), endpoint=endpoint, actor=actor,
            customer_id=audit["customer_id"], model_version=audit["model_version"],
            personalization=audit["personalization"], consent=audit["consent"],
            consent_source=audit["consent_source"], categories_used=audit["categories_used"],
            offers=audit["offers"], params=params, reasons=self._reasons(),
            rules_version=audit.get("rules_version"), rule_changes=audit.get("rule_changes", []),
            arm=audit.get("arm"),
        )

    def _reasons(self) -> dict:
        """Offer id -> the top criteria as the customer saw them."""
        body = self.body
        if "offers" in body:
            return {o["offer_id"]: o.get("criteria", []) for o in body["offers"]}
        return {body.get("offer_id"): body.get("criteria", [])[:2]} if body.get("criteria") else {}


def applied_level(categories: tuple[str, ...], used: np.ndarray) -> str:
    """The personalization that actually happened, whatever was allowed: individual history means
    full, other personal data only means segment, none at all means none."""
    if used[categories.index(HISTORY)]:
        return FULL
    return SEGMENT if used.any() else NONE


class Recommender:
    def __init__(
        self, cache: ModelCache, consents: ConsentCache, *, templates: Templates | None = None,
        top_criteria: int = TOP_CRITERIA, rules: RulesFile | None = None,
        min_share: float = MIN_SHARE, controls: ControlsCache | None = None,
    ) -> None:
        self.cache, self.consents = cache, consents
        self.templates = templates or Templates.default()
        self.top_criteria = top_criteria
        self.min_share = min_share
        self.controls = controls
        self.rules = rules
        self._rerankers: dict[tuple[str, float], CalibratedReranker] = {}

    def compiled_rules(self, version: ServedVersion) -> CompiledRules | None:
        """The business rules in force, resolved for this version's catalog (None: no rules)."""
        if self.rules is None:
            return None
        return self.rules.compiled(version.catalog_key, version.offers, version.model.item_vectors)

    def _reranker(self, version: ServedVersion, strength: float) -> CalibratedReranker:
        """One re-ranker per version and strength: its offer-category matrix is built once."""
        key = (version.catalog_key, strength)
        reranker = self._rerankers.get(key)
        if reranker is None:
            if len(self._rerankers) > 16:
                self._rerankers.clear()
            reranker = self._rerankers[key] = CalibratedReranker(version, strength)
        return reranker

    def offers(self, customer_id: str, query: OffersQuery) -> Result:
        view, version, decision, allowed, controls = self._customer(customer_id, query.attributes)
        exclude = query.exclude + tuple(controls.not_relevant) + tuple(view.model.unavailable)
        if query.exclude_purchased and allowed[version.model.categories.index(HISTORY)]:
            exclude += tuple(controls.leave_out)  # not used, but bought all the same
        if query.filter is not None:
            exclude = exclude + _outside(version, *query.filter, query.filter_field)
        rules = self.compiled_rules(version)
        lower = _placed_lower(version, controls)
        pool = replace(query, k=query.k + SEE_LESS_POOL) if lower else query
        together = _bought_with(version, query.context) if query.context is not None else {}
        if together:
            columns, scores, outcome = self._ranked(version, view, allowed, pool, exclude, rules,
                                                    within=np.fromiter(together, dtype=np.int64))
            if len(columns) < pool.k:  # too few bought with it: the customer's best after them
                more = tuple(version.offer_ids[c] for c in columns.tolist())
                rest = self._ranked(version, view, allowed, replace(pool, k=pool.k - len(columns)),
                                    exclude + more, rules)
                columns, scores = np.concatenate([columns, rest[0]]), np.concatenate([scores, rest[1]])
                outcome = rest[2] if outcome is None else outcome
        else:
            columns, scores, outcome = self._ranked(version, view, allowed, pool, exclude, rules)
        if lower:
            columns, scores = _see_less(columns, scores, lower, query.k)
        if query.explain:
            explanations = explain_offers(version, view.state, allowed, columns,
                                          consent=decision.consent, templates=self.templates,
                                          min_share=self.min_share)
        else:
            explanations = not_used_only(version, view.state, allowed,
                                         consent=decision.consent, templates=self.templates)
        ids, titles, paths = version.offer_ids, version.titles, version.offer_paths
        base = f"/v1/customers/{quote(customer_id, safe='')}/offers/"
        shown = {c.offer_id: c.change for c in outcome.changes if c.change in _DIRECTION} \
            if outcome is not None else {}
        offers = []
        for i, (column, score) in enumerate(zip(columns.tolist(), scores.tolist(), strict=True)):
            offer = {"offer_id": ids[column], "title": titles[column], "score": score}
            change = shown.get(ids[column])
            if change is not None:
                offer["business_rule"] = {"change": change, "text": self.templates.business_rule(change)}
            if query.explain:
                criteria = explanations.compact(i, self.top_criteria)
                if column in lower:  # the customer's own request first: it moved the offer
                    criteria = [_see_less_criterion(lower[column]), *criteria]
                if change is not None:  # the shop's rule first: it is why the offer is here
                    criteria = [self._rule_criterion(change), *criteria]
                if column in together:  # the page's offer first: it is why the offer is here
                    criteria = [together[column], *criteria]
                if ids[column] in version.loaded.added:
                    criteria = [new_offer_criterion(version.loaded.added[ids[column]]), *criteria]
                offer["criteria"] = criteria
            offer["why"] = f"{base}{paths[column]}/why"
            offers.append(offer)
        body = _envelope(customer_id, version, decision, explanations, rules, view.arm) | {
            "offers": offers}
        audit = _audit(customer_id, version, decision, body) | {
            "offers": [(o["offer_id"], o["score"]) for o in offers],
            "rule_changes": [c.to_dict() for c in outcome.changes] if outcome is not None else [],
        }
        return Result(body, audit)

    def _ranked(
        self, version: ServedVersion, view: CustomerView, allowed: np.ndarray, query: OffersQuery,
        exclude: tuple[str, ...], rules: CompiledRules | None, within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, RulesOutcome | None]:
        """(offer columns, model scores, what the rules changed) of the k offers served."""
        active = rules is not None and rules.active
        k = rules.candidates_needed(query.k) if active else query.k
        if query.calibrate > 0:
            if active:  # the calibrated order is the rules' starting point: fewer, costlier steps
                k = min(k, 2 * query.k + rules.n_excluded)
            reranker = self._reranker(version, query.calibrate)
            columns, scores = reranker.rank(view.state, allowed, k, exclude=exclude,
                                            exclude_history=query.exclude_purchased)
            order = np.arange(len(columns), 0, -1, dtype=float)  # calibrated position as score
        else:
            columns, scores = rank(version, view.state, allowed, k, exclude=exclude,
                                   exclude_history=query.exclude_purchased, within=within)
            order = scores
        if not active:
            return columns, scores, None
        outcome = rules.apply(columns, order, query.k, ordered=True)  # best first, as rank() gives
        return outcome.columns, scores[outcome.positions], outcome

    def _rule_criterion(self, change: str) -> dict:
        """A business rule's effect, worded like the model's criteria; it is no part of the
        model's score, so it takes no share of the explanation."""
        return {"category": BUSINESS_RULE, "text": self.templates.business_rule(change), "share": 0.0,
                "direction": _DIRECTION[change]}

    def why(
        self, customer_id: str, offer_id: str, attributes: Mapping[str, str] | None = None,
    ) -> Result:
        view, version, decision, allowed, controls = self._customer(customer_id, attributes)
        column = version.offer_columns.get(offer_id)
        if column is None:
            raise ApiError(404, "unknown_offer", f"no offer {offer_id!r} in the current catalog",
                           "offer_id")
        explanations = explain_offers(
            version, view.state, allowed, [column], consent=decision.consent,
            templates=self.templates, min_share=self.min_share)
        payload = explanations.payload(0)
        del payload["not_used"], payload["categories_used"]  # in the envelope, named as elsewhere
        your_choices = _your_choices(version, controls, offer_id, column)
        if your_choices:
            payload["your_choices"] = your_choices
        rules = self.compiled_rules(version)
        effects = rules.effects(column) if rules is not None else []
        body = _envelope(customer_id, version, decision, explanations, rules, view.arm) | payload | {
            "business_rules": [{"change": e, "text": self.templates.business_rule(f"why_{e}")}
                               for e in effects],
            "change_consent": {
                "href": _consent_link(customer_id), "method": "PUT",
                "text": "Choose which kinds of personal data may be used, and how personal "
                        "your offers are, in your privacy settings.",
            },
        }
        audit = _audit(customer_id, version, decision, body) | {
            "offers": [(offer_id, payload["score"])],
        }
        return Result(body, audit)

    def _customer(
        self, customer_id: str, attributes: Mapping[str, str] | None,
    ) -> tuple[CustomerView, ServedVersion, Decision, np.ndarray, Controls]:
        view = self.cache.customer(customer_id, attributes=attributes)
        controls = (self.controls.get(customer_id, view.controls_json)
                    if self.controls is not None and not view.degraded else NO_CONTROLS)
        unknown = controls is None  # unreadable: nothing personal, as for consent
        controls = controls or NO_CONTROLS
        # "don't use this purchase", and attribute values the customer corrected: the state is
        # rebuilt from features without the one and with the others
        if controls.leave_out & set(view.state.history) or controls.corrections:
            view = replace(view, state=state_from_record(
                view.model, customer_id, view.record, view.new_history,
                attributes=controls.corrected(view.state.attributes),
                leave_out=controls.leave_out))
        version = served(view.model)
        if attributes:
            # the deployment's attributes; one the model was not trained with carries no signal
            known = self.consents.store.taxonomy.attributes
            for name in attributes:
                if name not in known:
                    raise bad_parameter(
                        f"attr.{name}",
                        f"unknown customer attribute {name!r}; known: {', '.join(sorted(known))}")
        if view.degraded or unknown:  # the store is healing, or the controls unreadable
            decision = Decision(NO_PERSONAL_DATA, "unavailable")
        else:
            decision = self.consents.decide(customer_id, view.consent_json)
        allowed = category_mask(decision.consent, version.model.categories)
        return view, version, decision, allowed, controls


def _bought_with(version: ServedVersion, offer_id: str) -> dict[int, dict]:
    """Offer column -> its "bought together" criterion, for the offers bought with `offer_id`."""
    column = version.offer_columns.get(offer_id)
    if column is None:
        raise bad_parameter("context", f"no offer {offer_id!r} in the catalog")
    table = version.loaded.similar
    if table is None or column >= len(table.buyers_):
        return {}
    found, _ = table.similar(column, table.neighbours_.shape[1])
    counts = table.together_with(column, found).tolist()
    buyers, title = int(table.buyers_[column]), version.titles[column]
    return {other: {"category": BOUGHT_TOGETHER, "share": 0.0, "direction": "positive",
                    "text": f"Bought by {n} of the {buyers} customers who bought {title}"}
            for other, n in zip(found.tolist(), counts, strict=True)}


def new_offer_criterion(peers: Peers) -> dict:
    """An offer added after training is scored as its peers' mean: said first, and honestly."""
    return {"category": NEW_OFFER, "share": 0.0, "direction": "neutral",
            "text": f"New in the catalog: scored like {peers.describe()}, until customers have "
                    "bought it"}


def _placed_lower(version: ServedVersion, controls: Controls) -> dict[int, str]:
    """Offer column -> the category the customer asked to see less of, for offers in one."""
    lower: dict[int, str] = {}
    if not controls.see_less or SEE_LESS_ATTRIBUTE not in version.offer_attributes:
        return lower
    columns = version.offer_columns
    for category in sorted(controls.see_less):
        outside = version.outside(SEE_LESS_ATTRIBUTE, category)
        if outside is None:
            continue  # no offer of it in this catalog
        outside = set(outside)
        lower.update({columns[o]: category for o in version.offer_ids if o not in outside})
    return lower


def _see_less(columns: np.ndarray, scores: np.ndarray, lower: dict[int, str], k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """The k best after dividing the relevance (scores scaled to 0..1 over the pool) of offers
    placed lower by SEE_LESS_FACTOR; ties keep the model's order."""
    if len(columns) == 0:
        return columns, scores
    low, high = float(scores.min()), float(scores.max())
    relevance = (scores - low) / (high - low) if high > low else np.ones(len(scores))
    buried = np.array([c in lower for c in columns.tolist()])
    relevance = np.where(buried, relevance / SEE_LESS_FACTOR, relevance)
    order = np.argsort(-relevance, kind="stable")[:k]
    return columns[order], scores[order]


def _your_choices(version: ServedVersion, controls: Controls, offer_id: str, column: int
                  ) -> list[str]:
    """What the customer asked that bears on this explanation, in words, honest about what the
    model still carries until it is trained again."""
    out = []
    if offer_id in controls.not_relevant:
        out.append("You marked this offer not relevant: it is left out of your offers.")
    lower = _placed_lower(version, controls)
    if column in lower:
        out.append(f"You asked to see less of {lower[column]}: offers of it are placed lower.")
    if controls.leave_out:
        titles = dict(zip(version.offer_ids, version.titles, strict=True))
        named = ", ".join(sorted(titles.get(o, o) for o in controls.leave_out))
        text = f"Not used, as you asked: {named}."
        if version.history_mode in ("identity", "blend"):
            text += " " + LEARNED_NOTE
        out.append(text)
    return out


def _see_less_criterion(category: str) -> dict:
    return {"category": YOUR_CHOICE, "text": f"You asked to see less of {category}: placed lower",
            "share": 0.0, "direction": "negative"}


def _outside(version: ServedVersion, attribute: str, value: str, field: str) -> tuple[str, ...]:
    if attribute not in version.offer_attributes:
        known = ", ".join(version.offer_attributes) or "none"
        raise bad_parameter(field, f"offers have no attribute {attribute!r} (they have: {known})")
    outside = version.outside(attribute, value)
    if outside is None:
        raise bad_parameter(field, f"no offer has {attribute} {value!r}")
    return outside


def _envelope(
    customer_id: str, version: ServedVersion, decision: Decision, explanations: OfferExplanations,
    rules: CompiledRules | None = None, arm: str | None = None,
) -> dict:
    attribution = explanations.attribution
    categories = attribution.categories
    used = attribution.used
    return {
        "customer_id": customer_id,
        "model_version": version.version,
        "personalization": applied_level(categories, used),
        "consent": _consent(decision.consent, decision.source),
        "categories_used": [c for c, u in zip(categories, used.tolist(), strict=True) if u],
        "categories_not_used": [n.to_dict() for n in explanations.not_used],
        "disclosure": {"text": DISCLOSURE, "policy": POLICY_URL, "automated": True},
        "links": {"consent": _consent_link(customer_id), "policy": POLICY_URL},
        "rules_version": rules.version if rules is not None else None,
        "arm": arm,
    }


def _consent_link(customer_id: str) -> str:
    return f"/v1/customers/{quote(customer_id, safe='')}/consent"


def _consent(consent: Consent, source: str) -> dict:
    """The consent the request ran under; `unavailable` means the record could not be read and
    no personal data was used (fail closed)."""
    return {"level": consent.level, "allowed": sorted(consent.allowed),
            "available": source != "unavailable"}


def _audit(customer_id: str, version: ServedVersion, decision: Decision, body: dict) -> dict:
    return {
        "customer_id": customer_id, "model_version": version.version,
        "personalization": body["personalization"], "consent": body["consent"],
        "consent_source": decision.source, "categories_used": body["categories_used"],
        "rules_version": body["rules_version"], "arm": body["arm"],
    }
