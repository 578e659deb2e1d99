"""The OpenAPI 3.1 document of the API, in one place (served at /v1/openapi.json).

tests/test_api_openapi.py holds it to the app: every Flask route is documented with its methods
and nothing else is, the document validates, and real responses validate against its schemas.
"""

from __future__ import annotations

from typing import Any

from recommender.consent import LEVELS
from serving.api.interactions import KINDS

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
        404: "Unknown resource", 409: "Consent changed since expected_version",
        413: "Body too large", 415: "Body is not application/json",
        503: "Not ready: no model published, or Redis or the consent store unavailable",
    }
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


_AUTHENTICATED = [{"apiKey": []}, {"bearer": []}]
_STOREFRONT_ONLY = "Storefront or admin API key; a customer token gets 403."
_OWN_CUSTOMER = "Storefront or admin API key, or a customer token for this customer only."

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
            "category": {"type": "string", "description": "A data category, or popularity."},
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
        },
    },
    "Offers": {"allOf": [_ref("Envelope"), {
        "type": "object", "required": ["offers"],
        "properties": {"offers": {"type": "array", "items": _ref("Offer")}},
    }]},
    "Why": {"allOf": [_ref("Envelope"), {
        "type": "object",
        "required": ["offer_id", "title", "score", "average_score", "criteria",
                     "personal_data_used", "message", "attribution", "change_consent"],
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
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object", "required": ["status", "checks"],
        "properties": {"status": {"const": "ready"}, "checks": {"type": "object"}},
    },
}

_OFFERS_PARAMETERS = [
    _CUSTOMER,
    {"name": "k", "in": "query", "description": "How many offers (at most TRUSTREC_MAX_K).",
     "schema": {"type": "integer", "minimum": 1, "default": 10}},
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
    _ATTRIBUTES,
]


def _op(summary: str, responses: dict, *, security: str | None = None, parameters=(),
        body: dict | None = None, tag: str = "offers", description: str | None = None) -> dict:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
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
        security=_OWN_CUSTOMER, parameters=_OFFERS_PARAMETERS,
        description="Offers under the customer's consent. A customer the model does not know "
                    "gets popular offers (personalization none), or offers for the attributes "
                    "passed as attr.NAME.")},
    "/v1/customers/{customer_id}/offers/{offer_id}/why": {"get": _op(
        "Why this offer: the full explanation", {
            "200": _json(_ref("Why"), "Base value, every category's contribution, criteria "
                                      "with past offers, categories not used and why"),
            **_errors(400, 401, 403, 404, 503)},
        security=_OWN_CUSTOMER, parameters=[_CUSTOMER, _OFFER, _ATTRIBUTES])},
    "/v1/customers/{customer_id}/consent": {
        "get": _op("The customer's consent", {
            "200": _json(_ref("Consent"), "Current consent (the default when no record)"),
            **_errors(400, 401, 403, 503)},
            security=_OWN_CUSTOMER, parameters=[_CUSTOMER], tag="consent"),
        "put": _op("Change the customer's consent", {
            "200": _json(_ref("Consent"), "The consent now in force (from the next request on)"),
            **_errors(400, 401, 403, 409, 413, 415, 503)},
            security=_OWN_CUSTOMER, parameters=[_CUSTOMER], tag="consent",
            body={"required": True,
                  "content": {"application/json": {"schema": _ref("ConsentUpdate")}}}),
    },
    "/v1/customers/{customer_id}/consent/history": {"get": _op(
        "Every change of the customer's consent", {
            "200": _json(_ref("ConsentHistory"), "Oldest first"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, parameters=[_CUSTOMER], tag="consent")},
    "/v1/customers/{customer_id}/interactions": {"post": _op(
        "Record a purchase, click or rating", {
            "201": _json(_ref("InteractionRecorded"), "Recorded: the next request uses it"),
            **_errors(400, 401, 403, 413, 415, 503)},
        security=_STOREFRONT_ONLY, parameters=[_CUSTOMER], tag="interactions",
        body={"required": True, "content": {"application/json": {"schema": _ref("Interaction")}}})},
    "/v1/customers/{customer_id}/token": {"post": _op(
        "Issue a customer token", {
            "201": _json(_ref("Token"), "A signed token for this customer only"),
            **_errors(400, 401, 403, 413, 415)},
        security=_STOREFRONT_ONLY, parameters=[_CUSTOMER], tag="auth",
        body={"required": False,
              "content": {"application/json": {"schema": _ref("TokenRequest")}}})},
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
