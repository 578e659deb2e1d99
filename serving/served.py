"""What a served response leaves behind, and the one point where the audit trail plugs in: every
offers and "why" response is handed to `on_served` as a ServedRecord before it is sent
(docs/architecture.md: a record of what was served, why, and with which model).

create_app installs serving.records.audit.AuditWriter, which records every response in the database
(off the request path, through a bounded queue); a hook given as TRUSTREC_ON_SERVED in create_app's
config runs after it. Hooks run in the request: if one raises, the client gets a 500 and not the
offers, so nothing is served that could not be recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServedRecord:
    request_id: str
    served_at: float  # unix time
    endpoint: str  # "offers", "why", "similar", "session" or "batch"
    actor: str  # who asked: a key's actor name, or the customer id for a customer token
    customer_id: str
    model_version: str
    personalization: str  # the level applied
    consent: dict  # level, allowed, available
    consent_source: str  # cache, store, or unavailable (no personal data used)
    categories_used: list[str]
    offers: list[tuple[str, float]]  # (offer id, score), in the order served
    params: dict = field(default_factory=dict)  # the request's parameters that shaped the answer
    # offer id -> its top criteria as served (category, text, share, direction); recorded by
    # serving.records.audit when the API layer fills it in
    reasons: dict = field(default_factory=dict)
    rules_version: str | None = None  # the business rules in force (recommender.rules), if any
    # what the rules changed: offer_id, change, rules, rank_without_rules, rank (RuleChange.to_dict)
    rule_changes: list[dict] = field(default_factory=list)
    # champion/challenger: which arm served it ("champion", "challenger"); None: one version live
    arm: str | None = None


OnServed = Callable[[ServedRecord], None]


def on_served(record: ServedRecord) -> None:
    """A hook that records nothing (create_app uses serving.records.audit.AuditWriter)."""
