"""Response bodies, for the OpenAPI document: the views build plain dicts on the hot path, and
tests/test_api_openapi.py validates real responses against the schemas generated from these.

A field declared `X | None` is sent as null when it has no value; one declared with `absent()` is
left out instead."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from recommender.consent import LEVELS
from serving.records.audit import CASE_KINDS, CASE_STATUSES, FEEDBACK_KINDS
from serving.schemas import absent
from serving.schemas.requests import CONTROL_KINDS, INTERACTION_KINDS

DIRECTIONS = ("positive", "negative", "neutral")
RULE_CHANGES = ("excluded", "boosted", "buried", "capped", "diversified", "displaced")


class Body(BaseModel):
    pass


class ErrorDetail(Body):
    model_config = {"extra": "forbid"}
    code: str = Field(examples=["bad_parameter"])
    message: str
    field: str | None = Field(description="The parameter, body field or header at fault.")


class Error(Body):
    model_config = {"extra": "forbid"}
    error: ErrorDetail


class CompactCriterion(Body):
    category: str = Field(description="A data category, popularity, business_rule (a rule of "
                          "the shop moved the offer: not part of the model's score, so its share "
                          "is 0), your_choice, new_offer (added to the catalog since training, "
                          "scored like its peers; share 0) or bought_together / viewed (similar "
                          "offers: exact co-occurrence counts; share 0).")
    text: str
    share: float = Field(ge=0, le=1)
    direction: Literal[DIRECTIONS]


class Criterion(Body):
    category: str
    text: str
    contribution: float = Field(description="Exact SHAP value, relative to the catalog mean.")
    share: float = Field(ge=0, le=1)
    direction: Literal[DIRECTIONS]
    data: dict[str, Any] = Field(description="The data behind it: attribute values, or past "
                                             "offers with their contributions.")
    note: str = absent()


class NotUsed(Body):
    category: str
    name: str
    reason: Literal["consent", "level", "no_data", "not_in_model"]
    text: str


class AppliedConsent(Body):
    level: Literal[LEVELS]
    allowed: list[str]
    available: bool = Field(description="False: the consent record could not be read, and no "
                                        "personal data was used.")


class Disclosure(Body):
    text: str
    policy: str
    automated: Literal[True]


class Links(Body):
    consent: str = absent()
    policy: str = absent()


class Envelope(Body):
    """What every offers and why response carries."""
    request_id: str = Field(description=(
        "Also in the X-Request-Id header; feedback and audit refer to it. Signed for this "
        "customer (issued time, nonce, HMAC), so feedback on it is checked at once."))
    customer_id: str
    model_version: str
    personalization: Literal[LEVELS] = Field(description=(
        "The level applied: full (individual history used), segment (other personal data only) "
        "or none."))
    consent: AppliedConsent
    categories_used: list[str]
    categories_not_used: list[NotUsed]
    disclosure: Disclosure
    links: Links
    rules_version: str | None = absent("The version of the business rules applied after "
                                       "ranking (TRUSTREC_RULES); null: none.")
    arm: Literal["champion", "challenger"] | None = Field(description=(
        "Champion/challenger: the arm this customer is in (a stable hash of their id); null "
        "when one version serves everyone."))


class RuleChange(Body):
    offer_id: str
    change: Literal[RULE_CHANGES]
    rules: list[str] = Field(description="The rules responsible, as the rule file names them.")
    rank_without_rules: int = Field(ge=1)
    rank: int | None = Field(ge=1, description="Rank served; null when the offer was left out.")


class OfferRuleNote(Body):
    change: Literal["boosted", "buried", "diversified"]
    text: str


class Offer(Body):
    offer_id: str
    title: str
    score: float
    criteria: list[CompactCriterion] = absent("The top criteria; absent with explain=false.")
    why: str = Field(description="Path of the full explanation.")
    business_rule: OfferRuleNote = absent(
        "Present when a business rule of the shop moved this offer: boosted (\"Promoted "
        "offer\"), buried or diversified.")


class Offers(Envelope):
    offers: list[Offer]


class Attribution(Body):
    """One exact Shapley decomposition of the offer's advantage; the criteria's words, directions
    and shares come from these numbers."""
    method: str
    explains: str = Field(description="What value is, in words.")
    value: float = Field(description="How far this offer's score stands above the customer's "
                                     "average score over the catalog (score - average_score).")
    base: float = Field(description="That advantage for the average customer: the popularity "
                                    "criterion's contribution.")
    contributions: dict[str, float] = Field(description="Every category's exact part of value; "
                                                        "zero when not used. base + their sum "
                                                        "== value.")


class MinorPart(Body):
    category: str
    contribution: float
    share: float = Field(ge=0, le=1)


class Minor(Body):
    """Criteria too small to word one by one (under TRUSTREC_MIN_SHARE each)."""
    text: str
    share: float = Field(ge=0, le=1)
    parts: list[MinorPart]


class Link(Body):
    href: str
    method: str
    text: str = absent()


class RuleNote(Body):
    change: Literal["boosted", "buried", "excluded"]
    text: str


class Why(Envelope):
    offer_id: str
    title: str
    score: float
    average_score: float
    criteria: list[Criterion] = Field(description="Each at least TRUSTREC_MIN_SHARE of the "
                                                  "explanation; the others are in minor.")
    minor: Minor | None
    personal_data_used: bool
    message: str | None
    attribution: Attribution
    change_consent: Link
    business_rules: list[RuleNote] = Field(description="What the shop's business rules do to "
                                                       "this offer in any list (empty: nothing).")
    your_choices: list[str] = absent("What the customer asked (not relevant, see less, a "
                                     "purchase not used) that bears on this explanation.")


class ConsentCategory(Body):
    category: str
    name: str
    purpose: str
    allowed: bool
    used: bool = Field(description="Allowed and not excluded by the level.")


class Consent(Body):
    request_id: str
    customer_id: str
    allowed: list[str]
    level: Literal[LEVELS]
    version: int = Field(ge=0)
    updated_at: str | None
    default: bool = Field(description="True: no record, the deployment's default applies.")
    regime: Literal["opt_in", "opt_out"]
    categories: list[ConsentCategory]
    levels: list[Literal[LEVELS]]


class ConsentChange(Body):
    version: int
    changed_at: str
    actor: str
    source: Literal["customer", "storefront", "admin"]
    old: dict[str, Any] | None
    new: dict[str, Any]


class ConsentHistory(Body):
    request_id: str
    customer_id: str
    history: list[ConsentChange]


class InteractionRecorded(Body):
    request_id: str
    customer_id: str
    offer_id: str
    kind: Literal[INTERACTION_KINDS]
    weight: float
    timestamp: int
    new_history_length: int = Field(description="Offers recorded since the model was trained.")
    event_id: str | None = absent()
    duplicate: bool = absent("true: this event_id was recorded before; nothing new was written.")


class Token(Body):
    request_id: str
    customer_id: str
    token: str
    token_type: Literal["Bearer"]
    expires_in: int
    expires_at: int


class ServedOffer(Body):
    offer_id: str
    score: float


class AuditRecord(Body):
    request_id: str
    served_at: str
    endpoint: Literal["offers", "why", "batch"]
    model_version: str
    personalization: Literal[LEVELS]
    consent: dict[str, Any] | None
    consent_source: str
    categories_used: list[str]
    offers: list[ServedOffer]
    reasons: dict[str, Any] = absent()
    rules_version: str | None = absent("Business rules in force.")
    rule_changes: list[RuleChange] = absent("Which rule changed which offer.")
    latency_ms: float | None
    arm: Literal["champion", "challenger"] | None = absent(
        "Champion/challenger: the arm that served it; null when one version was live.")


class CategoryUsage(Body):
    category: str
    name: str
    purpose: str
    responses: int
    first_used: str | None
    last_used: str | None
    model_versions: list[str]


class DataUsage(Body):
    request_id: str
    customer_id: str
    since: str
    until: str
    responses: int
    model_versions: list[str]
    summary: str = Field(description="In plain language.")
    categories: list[CategoryUsage]
    records: list[AuditRecord] = Field(description="Newest first, at most `limit`.")
    truncated: bool


class FeedbackRecorded(Body):
    request_id: str
    feedback_for: str
    offer_id: str
    kind: Literal[FEEDBACK_KINDS]
    recorded_at: str
    case_id: str | None = Field(description="For report and talk_to_person: the case staff "
                                            "handle.")
    message: str = absent()


class Case(Body):
    case_id: str
    customer_id: str
    request_id: str | None = Field(description="null: asked without naming an offer")
    offer_id: str | None
    kind: Literal[CASE_KINDS]
    text: str | None
    status: Literal[CASE_STATUSES]
    opened_at: str
    updated_at: str
    resolved_at: str | None
    note: str | None


class Cases(Body):
    request_id: str
    cases: list[Case]


class CustomerCase(Body):
    """A case as its customer follows it (staff notes stay with staff)."""
    case_id: str
    kind: Literal[CASE_KINDS]
    offer_id: str | None
    text: str | None
    status: Literal[CASE_STATUSES]
    opened_at: str
    updated_at: str
    resolved_at: str | None


class CustomerCases(Body):
    request_id: str
    customer_id: str
    cases: list[CustomerCase]


class CaseUpdated(Body):
    request_id: str
    case: Case


class PolicyCategory(Body):
    category: str
    name: str
    purpose: str
    attributes: list[str]


class PolicyLevel(Body):
    level: Literal[LEVELS]
    text: str


class ModelCard(Body):
    version: str
    model: str | None
    trained_at: str | None
    data: dict[str, Any]
    metrics: dict[str, Any]
    hyperparameters: dict[str, Any] = absent()
    history_mode: str | None = absent()
    categories: list[str] = absent()
    does_not_use: dict[str, Any]
    fairness_audit: str | None = Field(description="The latest fairness audit's summary "
                                                   "(markdown); null when this version was "
                                                   "never audited.")


class MainParameter(Body):
    """A parameter that decides offers (DSA Art. 27): a data category, popularity, the shop's
    rules or calibration."""
    parameter: str
    name: str
    importance: float | None = Field(ge=0, le=1, description=(
        "Its share of what sets offers apart in the live model (see method); null for what is "
        "applied after scoring, not part of the score."))
    method: str | None
    text: str
    in_force: bool = absent("For business rules: whether the shop has rules in force.")


class Policy(Body):
    request_id: str
    automated: Literal[True]
    disclosure: str
    categories: list[PolicyCategory]
    levels: list[PolicyLevel]
    default: dict[str, Any]
    retention: dict[str, Any]
    opt_out: dict[str, Any]
    erasure: dict[str, Any]
    contact: dict[str, Any]
    main_parameters: list[MainParameter] | None = Field(description=(
        "Every parameter that decides offers with its relative importance; null without a "
        "model."))
    model_card: ModelCard | None


class Latency(Body):
    median: float | None = absent()
    p95: float | None = absent()


class StatsWindow(Body):
    since: str | None
    offer_responses: int
    explanations: int
    offers_served: int
    clicked_share: float | None
    purchased_share: float | None
    feedback: int
    positive_feedback_share: float | None
    reports: dict[str, Any]
    handoffs: dict[str, Any]
    latency_ms: Latency


class StatsWindows(Body):
    day: StatsWindow
    week: StatsWindow
    all: StatsWindow


class ArmOutcome(Body):
    count: int = Field(description="Distinct (response, offer) pairs with this feedback.")
    share: float | None = Field(description="count / offers served in the arm.")
    interval: list[float] | None = Field(description="95% Wilson interval of the share.")


class ArmFigures(Body):
    responses: int
    customers: int
    offers_served: int
    clicked: ArmOutcome
    purchased: ArmOutcome
    not_relevant: ArmOutcome
    reports: int


class ArmDifference(Body):
    difference: float = Field(description="Challenger's share minus the champion's.")
    interval: list[float] = Field(description="95% interval (Newcombe's hybrid score method).")


class Experiment(Body):
    champion: str = Field(description="The champion's model version (current).")
    challenger: str = Field(description="The challenger's model version.")
    share: float = Field(description="Share of customers the challenger serves.")
    since: str
    arms: dict[str, ArmFigures] = Field(description="champion and challenger, from the audit "
                                                    "trail since the experiment began.")
    challenger_minus_champion: dict[str, ArmDifference | None]


class Stats(Body):
    request_id: str
    computed_at: str
    windows: StatsWindows
    experiment: Experiment | None = Field(description=(
        "Champion/challenger while one runs (trustrec publish --challenger): outcomes per arm "
        "with intervals; null otherwise."))


class ErasureReceipt(Body):
    request_id: str
    receipt_id: int
    erased_at: str
    subject_hash: str
    removed: dict[str, int]
    excluded_from_training: Literal[True]
    text: str


class ControlItem(Body):
    kind: Literal[CONTROL_KINDS]
    value: str
    name: str = Field(description="The offer's title, or the category.")
    created_at: str
    text: str = Field(description="What it does, in plain words (and, for a purchase left out "
                                  "while a learned profile still carries it, that it does).")
    undo: Link


class Controls(Body):
    request_id: str
    customer_id: str
    controls: list[ControlItem]


class AttributeHeld(Body):
    attribute: str
    category: str
    category_name: str
    value: str | None = Field(description="The value in use (null: none).")
    held_by_model: str | None = Field(description="The value the model was trained with.")
    source: Literal["model", "corrected", "cleared", "none"]


class AttributeChange(Body):
    attribute: str
    old: str | None
    new: str | None
    cleared: bool
    changed_at: str
    actor: str


class Attributes(Body):
    request_id: str
    customer_id: str
    attributes: list[AttributeHeld]
    history: list[AttributeChange] = Field(description="Every correction, oldest first.")


class ModelHolds(Body):
    version: str
    known: bool = Field(description="Whether the model was trained with this customer.")
    attributes: dict[str, str] = Field(description="The attribute values the model holds.")
    history: list[str] = Field(description="Past offers the model uses, oldest first.")


class DataExport(Body):
    request_id: str
    customer_id: str
    exported_at: str
    model: ModelHolds
    records: dict[str, list[dict[str, Any]]] = Field(description=(
        "Every row the records database holds for the customer, by table: consent and its "
        "history, controls, interactions, feedback, cases, the responses served and why."))


class Health(Body):
    status: Literal["ok"]


class Ready(Body):
    status: Literal["ready"]
    checks: dict[str, Any]


class RelatedOffer(Body):
    offer_id: str
    title: str
    score: float = Field(description="How strongly it is bought together with the page's (or "
                                     "the viewed) offers; 0 for a popular offer filling the list.")
    criteria: list[CompactCriterion] = Field(description=(
        "bought_together: 'Bought by n of the m customers who bought X' (exact counts from the "
        "training history); viewed: which viewed offer put it here, with its exact share of the "
        "score; popularity: a popular offer of the same category filling a short list."))


class AnonymousEnvelope(Body):
    """What every answer about no one carries (similar offers, an anonymous session)."""
    request_id: str
    model_version: str
    categories_used: list[str] = Field(max_length=0)
    rules_version: str | None = Field(description=(
        "The business rules in force (null: none); their exclusions hold here too."))
    disclosure: Disclosure
    links: Links


class SimilarOffers(AnonymousEnvelope):
    offer_id: str
    title: str
    personalization: Literal["none"] = Field(description="No personal data is involved.")
    offers: list[RelatedOffer]


class SessionOffers(AnonymousEnvelope):
    personalization: Literal["session", "none"] = Field(description=(
        "session: from the offers viewed in this session, passed in the request and stored "
        "nowhere; none: no views given, the most bought offers."))
    offers: list[RelatedOffer]


class CatalogOffer(Body):
    offer_id: str
    available: bool
    added: bool = Field(description="Added after training (scored like its peers).")
    attributes: dict[str, str] = absent("The attributes it was added with.")
    scored_like: str = absent("The trained offers it is scored like, in words.")


class CatalogChange(Body):
    serial: int
    offer_id: str
    change: Literal["unavailable", "available", "added"]
    attributes: dict[str, str] | None
    actor: str
    changed_at: str


class Catalog(Body):
    request_id: str
    serial: int = Field(description="The newest change; 0: the catalog as trained.")
    unavailable: list[str]
    added: list[CatalogOffer]
    changes: list[CatalogChange] = Field(description="The newest first.")


class CatalogUpdated(Body):
    request_id: str
    serial: int
    offer: CatalogOffer
    changed: bool = Field(description="false: the offer was so already; nothing recorded.")


MODELS = (Error, Offers, Why, Consent, ConsentHistory, InteractionRecorded, Token, DataUsage,
          FeedbackRecorded, Cases, CaseUpdated, Policy, Stats, ErasureReceipt, Health, Ready,
          Controls, DataExport, Attributes, CustomerCases, Catalog, CatalogUpdated, SimilarOffers,
          SessionOffers)
