"""The OpenAPI 3.1 document of the API, in one place (served at /v1/openapi.json).

tests/test_api_openapi.py holds it to the app: every Flask route is documented with its methods
and nothing else is, the document validates, and real responses validate against its schemas.
"""

from __future__ import annotations

from typing import Any

from recommender.consent import LEVELS
from serving.api.interactions import KINDS
from serving.config import Settings
from serving.records.audit import CASE_STATUSES, FEEDBACK_KINDS

VERSION = "1.0.0"

_CUSTOMER = {"name": "customer_id", "in": "path", "required": True,
             "description": "The storefront's customer id (1 to 128 characters).",
             "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_OFFER = {"name": "offer_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ATTRIBUTES = {
    "name": "attr.NAME", "in": "query", "required": False,
    "description": "Cold start: the customer's value of attribute NAME (e.g. attr.age_band=25-34, "
                   "attr.region=north), used instead of what the model stored, and for customers "
                   "the model does not know. Unknown attribute names are a 400. Only categories the "
                   "customer allowed enter the score.",
    "schema": {"type": "string"},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    meaning = {
        400: "Bad parameter or body (the field is named)", 401: "Missing or invalid credentials",
        403: "These credentials may not do this (e.g. a customer token for another customer)",
        404: "Unknown resource (for feedback: an unknown request id, or another customer's)",
        409: "Conflict: consent changed since expected_version, or an event_id already recorded "
             "for another interaction",
        413: "Body too large", 415: "Body is not application/json",
        503: "Not ready: no model published, or Redis or the consent store unavailable",
    }
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


_AUTHENTICATED = [{"apiKey": []}, {"bearer": []}]
_STOREFRONT_ONLY = "Storefront or admin API key; a customer token gets 403."
_OWN_CUSTOMER = "Storefront or admin API key, or a customer token for this customer only."
_STOREFRONT_ROLES = ("storefront", "admin")
_OWN_CUSTOMER_ROLES = ("storefront", "admin", "customer")

_nullable_string = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "field"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "examples": ["bad_parameter"]},
                "message": {"type": "string"},
                "field": {**_nullable_string,
                          "description": "The parameter, body field or header at fault."},
            },
        }},
    },
    "CompactCriterion": {
        "type": "object", "required": ["category", "text", "share", "direction"],
        "properties": {
            "category": {"type": "string", "description": "A data category, popularity, or "
                         "business_rule (a rule of the shop moved the offer: not part of the "
                         "model's score, so its share is 0)."},
            "text": {"type": "string"},
            "share": {"type": "number", "minimum": 0, "maximum": 1},
            "direction": {"enum": ["positive", "negative", "neutral"]},
        },
    },
    "Criterion": {
        "type": "object", "required": ["category", "text", "contribution", "share", "direction",
                                       "data"],
        "properties": {
            "category": {"type": "string"}, "text": {"type": "string"},
            "contribution": {"type": "number",
                             "description": "Exact SHAP value, relative to the catalog mean."},
            "share": {"type": "number", "minimum": 0, "maximum": 1},
            "direction": {"enum": ["positive", "negative", "neutral"]},
            "data": {"type": "object", "description": "The data behind it: attribute values, "
                                                      "or past offers with their contributions."},
            "note": {"type": "string"},
        },
    },
    "NotUsed": {
        "type": "object", "required": ["category", "name", "reason", "text"],
        "properties": {
            "category": {"type": "string"}, "name": {"type": "string"},
            "reason": {"enum": ["consent", "level", "no_data", "not_in_model"]},
            "text": {"type": "string"},
        },
    },
    "AppliedConsent": {
        "type": "object", "required": ["level", "allowed", "available"],
        "properties": {
            "level": {"enum": list(LEVELS)},
            "allowed": {"type": "array", "items": {"type": "string"}},
            "available": {"type": "boolean", "description": "False: the consent record could "
                          "not be read, and no personal data was used."},
        },
    },
    "Disclosure": {
        "type": "object", "required": ["text", "policy", "automated"],
        "properties": {"text": {"type": "string"}, "policy": {"type": "string"},
                       "automated": {"const": True}},
    },
    "Envelope": {
        "type": "object",
        "required": ["request_id", "customer_id", "model_version", "personalization", "consent",
                     "categories_used", "categories_not_used", "disclosure", "links"],
        "properties": {
            "request_id": {"type": "string", "format": "uuid",
                           "description": "Also in the X-Request-Id header; feedback and audit "
                                          "refer to it."},
            "customer_id": {"type": "string"},
            "model_version": {"type": "string"},
            "personalization": {"enum": list(LEVELS), "description":
                                "The level applied: full (individual history used), segment "
                                "(other personal data only) or none."},
            "consent": _ref("AppliedConsent"),
            "categories_used": {"type": "array", "items": {"type": "string"}},
            "categories_not_used": {"type": "array", "items": _ref("NotUsed")},
            "disclosure": _ref("Disclosure"),
            "links": {"type": "object", "properties": {"consent": {"type": "string"},
                                                       "policy": {"type": "string"}}},
            "rules_version": {**_nullable_string, "description": "The version of the business "
                              "rules applied after ranking (TRUSTREC_RULES); null: none."},
        },
    },
    "RuleChange": {
        "type": "object", "required": ["offer_id", "change", "rules", "rank_without_rules", "rank"],
        "properties": {
            "offer_id": {"type": "string"},
            "change": {"enum": ["excluded", "boosted", "buried", "capped", "diversified",
                                "displaced"]},
            "rules": {"type": "array", "items": {"type": "string"},
                      "description": "The rules responsible, as the rule file names them."},
            "rank_without_rules": {"type": "integer", "minimum": 1},
            "rank": {"type": ["integer", "null"], "minimum": 1,
                     "description": "Rank served; null when the offer was left out."},
        },
    },
    "Offer": {
        "type": "object", "required": ["offer_id", "title", "score", "why"],
        "properties": {
            "offer_id": {"type": "string"}, "title": {"type": "string"},
            "score": {"type": "number"},
            "criteria": {"type": "array", "items": _ref("CompactCriterion"),
                         "description": "The top criteria; absent with explain=false."},
            "why": {"type": "string", "description": "Path of the full explanation."},
            "business_rule": {
                "type": "object", "required": ["change", "text"],
                "description": "Present when a business rule of the shop moved this offer: "
                               "boosted (\"Promoted offer\"), buried or diversified.",
                "properties": {"change": {"enum": ["boosted", "buried", "diversified"]},
                               "text": {"type": "string"}}},
        },
    },
    "Offers": {"allOf": [_ref("Envelope"), {
        "type": "object", "required": ["offers"],
        "properties": {"offers": {"type": "array", "items": _ref("Offer")}},
    }]},
    "Why": {"allOf": [_ref("Envelope"), {
        "type": "object",
        "required": ["offer_id", "title", "score", "average_score", "criteria",
                     "personal_data_used", "message", "attribution", "change_consent",
                     "business_rules"],
        "properties": {
            "offer_id": {"type": "string"}, "title": {"type": "string"},
            "score": {"type": "number"}, "average_score": {"type": "number"},
            "criteria": {"type": "array", "items": _ref("Criterion")},
            "personal_data_used": {"type": "boolean"},
            "message": _nullable_string,
            "attribution": {
                "type": "object", "required": ["method", "base", "contributions"],
                "properties": {
                    "method": {"type": "string"},
                    "base": {"type": "number", "description": "The average customer's score."},
                    "contributions": {"type": "object",
                                      "additionalProperties": {"type": "number"},
                                      "description": "Every category's exact contribution; "
                                                     "zero when not used."},
                },
            },
            "change_consent": {"type": "object", "properties": {
                "href": {"type": "string"}, "method": {"type": "string"},
                "text": {"type": "string"}}},
            "business_rules": {"type": "array", "description": "What the shop's business rules do "
                               "to this offer in any list (empty: nothing).", "items": {
                                   "type": "object", "required": ["change", "text"],
                                   "properties": {
                                       "change": {"enum": ["boosted", "buried", "excluded"]},
                                       "text": {"type": "string"}}}},
        },
    }]},
    "ConsentUpdate": {
        "type": "object", "required": ["allowed", "level"], "additionalProperties": False,
        "properties": {
            "allowed": {"type": "array", "items": {"type": "string"},
                        "description": "Data categories that may be used."},
            "level": {"enum": list(LEVELS)},
            "expected_version": {"type": "integer", "minimum": 0, "description":
                                 "Apply only if the record is still at this version (0: no "
                                 "record yet); otherwise 409."},
        },
    },
    "Consent": {
        "type": "object",
        "required": ["request_id", "customer_id", "allowed", "level", "version", "updated_at",
                     "default", "regime", "categories", "levels"],
        "properties": {
            "request_id": {"type": "string"}, "customer_id": {"type": "string"},
            "allowed": {"type": "array", "items": {"type": "string"}},
            "level": {"enum": list(LEVELS)},
            "version": {"type": "integer", "minimum": 0},
            "updated_at": _nullable_string,
            "default": {"type": "boolean",
                        "description": "True: no record, the deployment's default applies."},
            "regime": {"enum": ["opt_in", "opt_out"]},
            "categories": {"type": "array", "items": {
                "type": "object", "required": ["category", "name", "purpose", "allowed", "used"],
                "properties": {
                    "category": {"type": "string"}, "name": {"type": "string"},
                    "purpose": {"type": "string"}, "allowed": {"type": "boolean"},
                    "used": {"type": "boolean",
                             "description": "Allowed and not excluded by the level."},
                },
            }},
            "levels": {"type": "array", "items": {"enum": list(LEVELS)}},
        },
    },
    "ConsentHistory": {
        "type": "object", "required": ["request_id", "customer_id", "history"],
        "properties": {
            "request_id": {"type": "string"}, "customer_id": {"type": "string"},
            "history": {"type": "array", "items": {
                "type": "object",
                "required": ["version", "changed_at", "actor", "source", "old", "new"],
                "properties": {
                    "version": {"type": "integer"}, "changed_at": {"type": "string"},
                    "actor": {"type": "string"},
                    "source": {"enum": ["customer", "storefront", "admin"]},
                    "old": {"type": ["object", "null"]}, "new": {"type": "object"},
                },
            }},
        },
    },
    "Interaction": {
        "type": "object", "required": ["offer_id", "kind"], "additionalProperties": False,
        "properties": {
            "offer_id": {"type": "string", "description": "An offer of the current catalog."},
            "kind": {"enum": list(KINDS)},
            "weight": {"type": "number", "exclusiveMinimum": 0, "default": 1},
            "timestamp": {"oneOf": [{"type": "integer", "minimum": 0},
                                    {"type": "string", "format": "date-time"}],
                          "description": "Unix seconds or ISO 8601 with a zone; default now."},
            "event_id": {"type": "string", "minLength": 1, "maxLength": 128,
                         "description": "The client's id for this event: a retry with the same "
                                        "id is recorded once (200, duplicate: true)."},
        },
    },
    "InteractionRecorded": {
        "type": "object",
        "required": ["request_id", "customer_id", "offer_id", "kind", "weight", "timestamp",
                     "new_history_length"],
        "properties": {
            "request_id": {"type": "string"}, "customer_id": {"type": "string"},
            "offer_id": {"type": "string"}, "kind": {"enum": list(KINDS)},
            "weight": {"type": "number"}, "timestamp": {"type": "integer"},
            "new_history_length": {"type": "integer",
                                   "description": "Offers recorded since the model was trained."},
            "event_id": {"type": ["string", "null"]},
            "duplicate": {"type": "boolean",
                          "description": "true: this event_id was recorded before; nothing new "
                                         "was written."},
        },
    },
    "TokenRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"ttl_seconds": {"type": "integer", "minimum": 1, "default": 3600}},
    },
    "Token": {
        "type": "object",
        "required": ["request_id", "customer_id", "token", "token_type", "expires_in",
                     "expires_at"],
        "properties": {
            "request_id": {"type": "string"}, "customer_id": {"type": "string"},
            "token": {"type": "string"}, "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer"}, "expires_at": {"type": "integer"},
        },
    },
    "AuditRecord": {
        "type": "object",
        "required": ["request_id", "served_at", "endpoint", "model_version", "personalization",
                     "consent", "consent_source", "categories_used", "offers", "latency_ms"],
        "properties": {
            "request_id": {"type": "string"}, "served_at": {"type": "string"},
            "endpoint": {"enum": ["offers", "why"]}, "model_version": {"type": "string"},
            "personalization": {"enum": list(LEVELS)},
            "consent": {"type": ["object", "null"]}, "consent_source": {"type": "string"},
            "categories_used": {"type": "array", "items": {"type": "string"}},
            "offers": {"type": "array", "items": {
                "type": "object", "required": ["offer_id", "score"],
                "properties": {"offer_id": {"type": "string"}, "score": {"type": "number"}}}},
            "reasons": {"type": "object"},
            "rules_version": {**_nullable_string, "description": "Business rules in force."},
            "rule_changes": {"type": "array", "items": _ref("RuleChange"),
                             "description": "Which rule changed which offer."},
            "latency_ms": {"type": ["number", "null"]},
        },
    },
    "DataUsage": {
        "type": "object",
        "required": ["request_id", "customer_id", "since", "until", "responses",
                     "model_versions", "summary", "categories", "records", "truncated"],
        "properties": {
            "request_id": {"type": "string"}, "customer_id": {"type": "string"},
            "since": {"type": "string"}, "until": {"type": "string"},
            "responses": {"type": "integer"},
            "model_versions": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string", "description": "In plain language."},
            "categories": {"type": "array", "items": {
                "type": "object",
                "required": ["category", "name", "purpose", "responses", "first_used",
                             "last_used", "model_versions"],
                "properties": {
                    "category": {"type": "string"}, "name": {"type": "string"},
                    "purpose": {"type": "string"}, "responses": {"type": "integer"},
                    "first_used": _nullable_string, "last_used": _nullable_string,
                    "model_versions": {"type": "array", "items": {"type": "string"}},
                },
            }},
            "records": {"type": "array", "items": _ref("AuditRecord"),
                        "description": "Newest first, at most `limit`."},
            "truncated": {"type": "boolean"},
        },
    },
    "Feedback": {
        "type": "object", "required": ["request_id", "offer_id", "kind"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "description": "The served response's request id."},
            "offer_id": {"type": "string", "description": "An offer of that response."},
            "kind": {"enum": list(FEEDBACK_KINDS)},
            "text": {"type": "string", "maxLength": 2000,
                     "description": "Required for report: what is wrong with the offer."},
            "customer_id": {"type": "string", "description": "Required with an API key; with a "
                            "customer token, the token's customer."},
        },
    },
    "FeedbackRecorded": {
        "type": "object",
        "required": ["request_id", "feedback_for", "offer_id", "kind", "recorded_at", "case_id"],
        "properties": {
            "request_id": {"type": "string"}, "feedback_for": {"type": "string"},
            "offer_id": {"type": "string"}, "kind": {"enum": list(FEEDBACK_KINDS)},
            "recorded_at": {"type": "string"},
            "case_id": {**_nullable_string,
                        "description": "For report and talk_to_person: the case staff handle."},
            "message": {"type": "string"},
        },
    },
    "Case": {
        "type": "object",
        "required": ["case_id", "customer_id", "request_id", "offer_id", "kind", "text",
                     "status", "opened_at", "updated_at", "resolved_at", "note"],
        "properties": {
            "case_id": {"type": "string"}, "customer_id": {"type": "string"},
            "request_id": {"type": "string"}, "offer_id": {"type": "string"},
            "kind": {"enum": ["report", "talk_to_person"]}, "text": _nullable_string,
            "status": {"enum": list(CASE_STATUSES)}, "opened_at": {"type": "string"},
            "updated_at": {"type": "string"}, "resolved_at": _nullable_string,
            "note": _nullable_string,
        },
    },
    "Cases": {
        "type": "object", "required": ["request_id", "cases"],
        "properties": {"request_id": {"type": "string"},
                       "cases": {"type": "array", "items": _ref("Case")}},
    },
    "CaseUpdate": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "properties": {"status": {"enum": list(CASE_STATUSES)},
                       "note": {"type": "string", "maxLength": 2000}},
    },
    "CaseUpdated": {
        "type": "object", "required": ["request_id", "case"],
        "properties": {"request_id": {"type": "string"}, "case": _ref("Case")},
    },
    "Policy": {
        "type": "object",
        "required": ["request_id", "automated", "disclosure", "categories", "levels", "default",
                     "retention", "opt_out", "erasure", "contact", "model_card"],
        "properties": {
            "request_id": {"type": "string"}, "automated": {"const": True},
            "disclosure": {"type": "string"},
            "categories": {"type": "array", "items": {
                "type": "object", "required": ["category", "name", "purpose", "attributes"],
                "properties": {"category": {"type": "string"}, "name": {"type": "string"},
                               "purpose": {"type": "string"},
                               "attributes": {"type": "array", "items": {"type": "string"}}}}},
            "levels": {"type": "array", "items": {
                "type": "object", "required": ["level", "text"],
                "properties": {"level": {"enum": list(LEVELS)}, "text": {"type": "string"}}}},
            "default": {"type": "object"}, "retention": {"type": "object"},
            "opt_out": {"type": "object"}, "erasure": {"type": "object"},
            "contact": {"type": "object"},
            "model_card": {"oneOf": [{"type": "null"}, {
                "type": "object",
                "required": ["version", "model", "trained_at", "data", "metrics",
                             "does_not_use", "fairness_audit"],
                "properties": {
                    "version": {"type": "string"}, "model": _nullable_string,
                    "trained_at": _nullable_string, "data": {"type": "object"},
                    "metrics": {"type": "object"}, "hyperparameters": {"type": "object"},
                    "history_mode": _nullable_string,
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "does_not_use": {"type": "object"},
                    "fairness_audit": {**_nullable_string, "description":
                                       "The latest fairness audit's summary (markdown); null "
                                       "when this version was never audited."},
                },
            }]},
        },
    },
    "StatsWindow": {
        "type": "object",
        "required": ["since", "offer_responses", "explanations", "offers_served",
                     "clicked_share", "purchased_share", "feedback", "positive_feedback_share",
                     "reports", "handoffs", "latency_ms"],
        "properties": {
            "since": _nullable_string, "offer_responses": {"type": "integer"},
            "explanations": {"type": "integer"}, "offers_served": {"type": "integer"},
            "clicked_share": {"type": ["number", "null"]},
            "purchased_share": {"type": ["number", "null"]},
            "feedback": {"type": "integer"},
            "positive_feedback_share": {"type": ["number", "null"]},
            "reports": {"type": "object"}, "handoffs": {"type": "object"},
            "latency_ms": {"type": "object", "properties": {
                "median": {"type": ["number", "null"]}, "p95": {"type": ["number", "null"]}}},
        },
    },
    "Stats": {
        "type": "object", "required": ["request_id", "computed_at", "windows"],
        "properties": {
            "request_id": {"type": "string"}, "computed_at": {"type": "string"},
            "windows": {"type": "object", "required": ["day", "week", "all"],
                        "additionalProperties": _ref("StatsWindow")},
        },
    },
    "ErasureReceipt": {
        "type": "object",
        "required": ["request_id", "receipt_id", "erased_at", "subject_hash", "removed",
                     "excluded_from_training", "text"],
        "properties": {
            "request_id": {"type": "string"}, "receipt_id": {"type": "integer"},
            "erased_at": {"type": "string"}, "subject_hash": {"type": "string"},
            "removed": {"type": "object", "additionalProperties": {"type": "integer"}},
            "excluded_from_training": {"const": True}, "text": {"type": "string"},
        },
    },
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object", "required": ["status", "checks"],
        "properties": {"status": {"const": "ready"}, "checks": {"type": "object"}},
    },
}

_OFFERS_PARAMETERS = [
    _CUSTOMER,
    {"name": "k", "in": "query", "description": "How many offers (at most TRUSTREC_MAX_K, "
     "whose default this maximum is).",
     "schema": {"type": "integer", "minimum": 1, "maximum": Settings.model_fields["max_k"].default,
                "default": 10}},
    {"name": "explain", "in": "query", "description": "Include each offer's top criteria.",
     "schema": {"type": "boolean", "default": True}},
    {"name": "exclude", "in": "query", "description": "Offer ids to leave out, comma separated.",
     "schema": {"type": "string"}},
    {"name": "exclude_purchased", "in": "query", "description":
     "Leave out offers the customer already had (only when interaction history may be used: "
     "excluding them is itself a use of it).", "schema": {"type": "boolean", "default": True}},
    {"name": "category", "in": "query", "description": "Only offers of this category (short "
     "for filter=category:VALUE); an unknown value is a 400.", "schema": {"type": "string"}},
    {"name": "filter", "in": "query", "description": "Only offers whose attribute holds a "
     "value: ATTRIBUTE:VALUE (e.g. genre:Comedy); unknown attribute or value is a 400.",
     "schema": {"type": "string", "pattern": "^[^:]+:.+$"}},
    {"name": "calibrate", "in": "query", "description": "Re-rank the top 100 towards the category "
     "mix of the customer's own history with this strength (0: off; Steck's calibrated "
     "recommendations). Needs interaction history to be allowed; otherwise the plain order.",
     "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0}},
    _ATTRIBUTES,
]


def _op(summary: str, responses: dict, *, security: str | None = None, parameters=(),
        body: dict | None = None, tag: str = "offers", description: str | None = None,
        roles: tuple[str, ...] = ()) -> dict:
    """roles: who may call it (storefront, admin, customer: a customer token for its own
    customer), as x-roles; tests/test_api_openapi.py holds it against each view's decorator."""
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                                 "x-roles": sorted(roles)}
    if description or security:
        operation["description"] = " ".join(p for p in (description, security) if p)
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    operation["security"] = _AUTHENTICATED if security else []
    return operation


PATHS: dict[str, Any] = {
    "/v1/customers/{customer_id}/offers": {"get": _op(
        "Ranked offers with their top criteria", {
            "200": _json(_ref("Offers"), "Offers, best first"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=_OFFERS_PARAMETERS,
        description="Offers under the customer's consent. A customer the model does not know "
                    "gets popular offers (personalization none), or offers for the attributes "
                    "passed as attr.NAME. When business rules are in force (TRUSTREC_RULES), "
                    "they choose the k offers among the model's best 100 (after calibrate, "
                    "when asked): exclusions, boosts and buries of offers or categories, caps "
                    "per category and diversity; rules_version names them.")},
    "/v1/customers/{customer_id}/offers/{offer_id}/why": {"get": _op(
        "Why this offer: the full explanation", {
            "200": _json(_ref("Why"), "Base value, every category's contribution, criteria "
                                      "with past offers, categories not used and why"),
            **_errors(400, 401, 403, 404, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER, _OFFER, _ATTRIBUTES])},
    "/v1/customers/{customer_id}/consent": {
        "get": _op("The customer's consent", {
            "200": _json(_ref("Consent"), "Current consent (the default when no record)"),
            **_errors(400, 401, 403, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER], tag="consent"),
        "put": _op("Change the customer's consent", {
            "200": _json(_ref("Consent"), "The consent now in force (from the next request on)"),
            **_errors(400, 401, 403, 409, 413, 415, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER], tag="consent",
            body={"required": True,
                  "content": {"application/json": {"schema": _ref("ConsentUpdate")}}}),
    },
    "/v1/customers/{customer_id}/consent/history": {"get": _op(
        "Every change of the customer's consent", {
            "200": _json(_ref("ConsentHistory"), "Oldest first"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER], tag="consent")},
    "/v1/customers/{customer_id}/interactions": {"post": _op(
        "Record a purchase, click or rating", {
            "201": _json(_ref("InteractionRecorded"), "Recorded: the next request uses it"),
            "200": _json(_ref("InteractionRecorded"), "A retry of an event_id already recorded"),
            **_errors(400, 401, 403, 409, 413, 415, 503)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, parameters=[_CUSTOMER], tag="interactions",
        body={"required": True, "content": {"application/json": {"schema": _ref("Interaction")}}})},
    "/v1/customers/{customer_id}/token": {"post": _op(
        "Issue a customer token", {
            "201": _json(_ref("Token"), "A signed token for this customer only"),
            **_errors(400, 401, 403, 413, 415)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, parameters=[_CUSTOMER], tag="auth",
        body={"required": False,
              "content": {"application/json": {"schema": _ref("TokenRequest")}}})},
    "/v1/customers/{customer_id}/data-usage": {"get": _op(
        "What of the customer's data was used, when, by which model", {
            "200": _json(_ref("DataUsage"), "A plain-language summary and the audit records"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, tag="accountability", parameters=[
            _CUSTOMER,
            {"name": "since", "in": "query", "schema": {"type": "string"}, "description":
             "Start (unix seconds or ISO 8601 with a zone); default: the retention period."},
            {"name": "until", "in": "query", "schema": {"type": "string"},
             "description": "End, exclusive; default now."},
            {"name": "limit", "in": "query", "description": "Records listed, newest first.",
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        ])},
    "/v1/customers/{customer_id}": {"delete": _op(
        "Erase the customer", {
            "200": _json(_ref("ErasureReceipt"), "Erased; the receipt says what was removed"),
            **_errors(400, 401, 403, 503)},
        security="Admin API key, or a customer token for this customer only.",
        roles=("admin", "customer"),
        parameters=[_CUSTOMER], tag="accountability",
        description="Removes consent, interactions, stored vectors and audit records; keeps an "
                    "anonymous tombstone; the next training run excludes the customer.")},
    "/v1/feedback": {"post": _op(
        "Feedback on a served offer; report and talk_to_person open a case", {
            "201": _json(_ref("FeedbackRecorded"), "Recorded"),
            **_errors(400, 401, 403, 404, 413, 415, 503)},
        security=_OWN_CUSTOMER.replace("this customer", "the customer of the request"),
        roles=_OWN_CUSTOMER_ROLES,
        tag="accountability",
        body={"required": True, "content": {"application/json": {"schema": _ref("Feedback")}}})},
    "/v1/admin/cases": {"get": _op(
        "Cases opened by reports and requests to talk to a person", {
            "200": _json(_ref("Cases"), "Oldest first"), **_errors(400, 401, 403, 503)},
        security="Admin API key only.", roles=("admin",), tag="accountability", parameters=[
            {"name": "status", "in": "query", "schema": {"enum": list(CASE_STATUSES)}},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        ])},
    "/v1/admin/cases/{case_id}": {"patch": _op(
        "Change a case's status", {
            "200": _json(_ref("CaseUpdated"), "The case now"),
            **_errors(400, 401, 403, 404, 413, 415, 503)},
        security="Admin API key only.", roles=("admin",), tag="accountability",
        parameters=[{"name": "case_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}],
        body={"required": True, "content": {"application/json": {"schema": _ref("CaseUpdate")}}})},
    "/v1/policy": {"get": _op(
        "Data categories and their use, personalization levels, retention, opting out, "
        "reaching a person, and the model card", {"200": _json(_ref("Policy"), "Public")},
        tag="accountability")},
    "/v1/stats": {"get": _op(
        "Public performance figures from the audit trail", {
            "200": _json(_ref("Stats"), "Last day, last week, since launch (cached)"),
            **_errors(503)}, tag="accountability")},
    "/healthz": {"get": _op("The process is up", {"200": _json(_ref("Health"), "Up")},
                            tag="operations")},
    "/readyz": {"get": _op("Ready to serve", {
        "200": _json(_ref("Ready"), "Redis reachable, model loaded, consent store reachable"),
        "503": _json(_ref("Error"), "Not ready; `checks` says what failed")}, tag="operations")},
    "/metrics": {"get": _op("Prometheus metrics", {"200": {
        "description": "Prometheus text format: request counts and latencies, model version",
        "content": {"text/plain": {"schema": {"type": "string"}}}}}, tag="operations")},
    "/v1/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"},
                                                                   "OpenAPI 3.1")},
                                    tag="operations")},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "TrustRec",
        "version": VERSION,
        "description": "Offer recommendations with exact explanations and enforced consent. "
                       "Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"}}. Every "
                       "response has an X-Request-Id header.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "A service API key (storefront or admin role)."},
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A customer token from POST /v1/customers/{id}/token, or "
                                      "a service API key."},
        },
    },
}
