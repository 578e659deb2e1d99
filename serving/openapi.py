"""The OpenAPI 3.1 document of the API, in one place (served at /v1/openapi.json): the paths,
parameters and roles are written here; the bodies' schemas are generated from the pydantic models
the views validate with (serving.schemas).

tests/test_api_openapi.py holds it to the app: every Flask route is documented with its methods
and nothing else is, the document validates, and real responses validate against its schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import models_json_schema

from recommender.taxonomy import Taxonomy
from serving.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_VALUE_LENGTH
from serving.auth import ADMIN, CUSTOMER, STOREFRONT
from serving.config import Settings
from serving.records.audit import CASE_STATUSES
from serving.records.consent import MAX_ID_LENGTH
from serving.records.controls import KINDS as CONTROL_KINDS
from serving.related import MAX_VIEWED
from serving.schemas import requests, responses
from serving.schemas.requests import PRINTABLE

VERSION = "1.0.0"

# in a path, U+FFFD is what bytes that are not UTF-8 decode to: refused as they are
_CUSTOMER = {"name": "customer_id", "in": "path", "required": True,
             "description": "The storefront's customer id (1 to 128 characters).",
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
                        "pattern": PRINTABLE.replace("]", "\\ufffd]")}}
_OFFER = {"name": "offer_id", "in": "path", "required": True, "schema": {"type": "string"}}
# where the customer attributes of the deployment's taxonomy go: one attr.NAME each (document())
_ATTRIBUTES = {"name": "attr.NAME", "in": "query"}


def _attribute_parameters(taxonomy: Taxonomy) -> list[dict]:
    return [{
        "name": f"attr.{attribute}", "in": "query", "required": False,
        "description": f"Cold start: the customer's {attribute} ({category}), used instead of "
                       "what the model stored, and for customers the model does not know. Only "
                       "categories the customer allowed enter the score.",
        "schema": {"type": "string", "maxLength": MAX_VALUE_LENGTH},
    } for attribute, category in taxonomy.attributes.items()]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    meaning = {
        400: "Bad parameter or body (the field is named)", 401: "Missing or invalid credentials",
        403: "These credentials may not do this (e.g. a customer token for another customer)",
        404: "Unknown resource (for feedback: an unknown request id, or another customer's)",
        409: "Conflict: consent changed since expected_version, an event_id already recorded "
             "for another interaction, or an offer already in the catalog",
        413: "Body too large", 415: "Body is not application/json",
        429: "Too many writes by this caller (TRUSTREC_RATE_LIMIT_*); Retry-After says when",
        503: "Not ready: no model published, or Redis or the consent store unavailable",
    }
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


_AUTHENTICATED = [{"apiKey": []}, {"bearer": []}]
_STOREFRONT_ONLY = "Storefront or admin API key; a customer token gets 403."
_OWN_CUSTOMER = "Storefront or admin API key, or a customer token for this customer only."
_STOREFRONT_ROLES = (STOREFRONT, ADMIN)
_OWN_CUSTOMER_ROLES = (STOREFRONT, ADMIN, CUSTOMER)

def _untitled(schema: Any) -> Any:
    """pydantic titles every schema after its class or field name: noise in a reference."""
    if isinstance(schema, dict):
        return {key: _untitled(value) for key, value in schema.items()
                if not (key == "title" and isinstance(value, str))}
    if isinstance(schema, list):
        return [_untitled(value) for value in schema]
    return schema


def _components() -> dict[str, Any]:
    models = [(model, "validation") for model in (*requests.MODELS, *responses.MODELS)]
    _, document = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return _untitled(dict(sorted(document["$defs"].items())))


SCHEMAS: dict[str, Any] = _components()

_MAX_K = -1  # the deployment's TRUSTREC_MAX_K: document() fills it in
# unix seconds, or an ISO 8601 time with a zone (RFC 3339)
_MOMENT = {"anyOf": [{"type": "string", "pattern": r"^\d{1,11}$"},
                     {"type": "string", "format": "date-time"}]}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}

_OFFERS_PARAMETERS = [
    _CUSTOMER,
    {"name": "k", "in": "query", "description": "How many offers (at most TRUSTREC_MAX_K, "
     "whose default this maximum is).",
     "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_K,
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
    {"name": "context", "in": "query", "description": "The offer on the page (a product or "
     "cart page): offers bought together with it come first, ranked for this customer under "
     "their consent, each with a bought_together criterion (exact counts); then the customer's "
     "best others. Not with calibrate. An unknown offer is a 400.",
     "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": PRINTABLE}},
    _ATTRIBUTES,
]


_RELATED_K = {"name": "k", "in": "query", "description": "How many offers (at most "
              "TRUSTREC_MAX_K).", "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_K,
                                             "default": 10}}
_RELATED_EXCLUDE = {"name": "exclude", "in": "query",
                    "description": "Offer ids to leave out, comma separated.",
                    "schema": {"type": "string"}}


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
            **_errors(400, 401, 403, 409, 413, 415, 503, 429)},
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
            **_errors(400, 401, 403, 409, 413, 415, 503, 429)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, parameters=[_CUSTOMER], tag="interactions",
        body={"required": True, "content": {"application/json": {"schema": _ref("Interaction")}}})},
    "/v1/customers/{customer_id}/token": {"post": _op(
        "Issue a customer token", {
            "201": _json(_ref("Token"), "A signed token for this customer only"),
            **_errors(400, 401, 403, 413, 415, 429)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, parameters=[_CUSTOMER], tag="auth",
        body={"required": False,
              "content": {"application/json": {"schema": _ref("TokenRequest")}}})},
    "/v1/customers/{customer_id}/data-usage": {"get": _op(
        "What of the customer's data was used, when, by which model", {
            "200": _json(_ref("DataUsage"), "A plain-language summary and the audit records"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, tag="accountability", parameters=[
            _CUSTOMER,
            {"name": "since", "in": "query", "schema": _MOMENT, "description":
             "Start (unix seconds or ISO 8601 with a zone); default: the retention period."},
            {"name": "until", "in": "query", "schema": _MOMENT,
             "description": "End, exclusive; default now."},
            {"name": "limit", "in": "query", "description": "Records listed, newest first.",
             "schema": _LIMIT},
        ])},
    "/v1/customers/{customer_id}": {"delete": _op(
        "Erase the customer", {
            "200": _json(_ref("ErasureReceipt"), "Erased; the receipt says what was removed"),
            **_errors(400, 401, 403, 503, 429)},
        security="Admin API key, or a customer token for this customer only.",
        roles=(ADMIN, CUSTOMER),
        parameters=[_CUSTOMER], tag="accountability",
        description="Removes consent, interactions, stored vectors and audit records; keeps an "
                    "anonymous tombstone; the next training run excludes the customer.")},
    "/v1/customers/{customer_id}/controls": {
        "get": _op("What the customer asked of their offers", {
            "200": _json(_ref("Controls"), "Oldest first, each with how to undo it"),
            **_errors(400, 401, 403, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="controls"),
        "post": _op("Not relevant, see less of a category, or don't use a purchase", {
            "201": _json(_ref("Controls"), "Recorded: the next offers follow it"),
            "200": _json(_ref("Controls"), "Recorded already"),
            **_errors(400, 401, 403, 413, 415, 429, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="controls", description="not_relevant leaves the offer out; see_less divides "
            "the relevance of the category's offers by 4 among the best 100 and says so in their "
            "criteria; leave_out takes a past purchase out of the customer's history part. Each "
            "applies from the next request and is left out of the next training's positives.",
            body={"required": True,
                  "content": {"application/json": {"schema": _ref("Control")}}}),
    },
    "/v1/customers/{customer_id}/controls/{kind}/{value}": {"delete": _op(
        "Undo a control", {
            "200": _json(_ref("Controls"), "Undone: the next offers no longer follow it"),
            **_errors(400, 401, 403, 404, 429, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, tag="controls", parameters=[
            _CUSTOMER,
            {"name": "kind", "in": "path", "required": True,
             "schema": {"enum": list(CONTROL_KINDS)}},
            {"name": "value", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1}}])},
    "/v1/customers/{customer_id}/attributes": {
        "get": _op("The customer's attribute values: in use, held by the model, and why", {
            "200": _json(_ref("Attributes"), "Every attribute of the deployment's taxonomy"),
            **_errors(400, 401, 403, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="controls"),
        "put": _op("Correct or clear attribute values", {
            "200": _json(_ref("Attributes"), "The values now in use (from the next request)"),
            **_errors(400, 401, 403, 413, 415, 429, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="controls", description="A corrected value is used instead of the one the model "
            "holds from the next request (the customer is placed from their attributes, as a new "
            "one is), and by the next training; a cleared one is not used at all.",
            body={"required": True,
                  "content": {"application/json": {"schema": _ref("AttributesUpdate")}}}),
    },
    "/v1/customers/{customer_id}/data-export": {"get": _op(
        "Download everything held about the customer", {
            "200": _json(_ref("DataExport"), "One JSON document (Content-Disposition: attachment)"),
            **_errors(400, 401, 403, 503)},
        security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
        tag="controls")},
    "/v1/feedback": {"post": _op(
        "Feedback on a served offer; report and talk_to_person open a case", {
            "201": _json(_ref("FeedbackRecorded"), "Recorded"),
            **_errors(400, 401, 403, 404, 413, 415, 503, 429)},
        security=_OWN_CUSTOMER.replace("this customer", "the customer of the request"),
        roles=_OWN_CUSTOMER_ROLES,
        tag="accountability",
        body={"required": True, "content": {"application/json": {"schema": _ref("Feedback")}}})},
    "/v1/customers/{customer_id}/cases": {
        "get": _op("The customer's own cases and their status", {
            "200": _json(_ref("CustomerCases"), "Newest first"),
            **_errors(400, 401, 403, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="accountability"),
        "post": _op("Ask to talk to a person, about no offer in particular", {
            "201": _json(_ref("CustomerCases"), "The case is open; it is first in the list"),
            **_errors(400, 401, 403, 413, 415, 429, 503)},
            security=_OWN_CUSTOMER, roles=_OWN_CUSTOMER_ROLES, parameters=[_CUSTOMER],
            tag="accountability",
            body={"required": True,
                  "content": {"application/json": {"schema": _ref("Contact")}}}),
    },
    "/v1/admin/cases": {"get": _op(
        "Cases opened by reports and requests to talk to a person", {
            "200": _json(_ref("Cases"), "Oldest first"), **_errors(400, 401, 403, 503)},
        security="Admin API key only.", roles=(ADMIN,), tag="accountability", parameters=[
            {"name": "status", "in": "query", "schema": {"enum": list(CASE_STATUSES)}},
            {"name": "limit", "in": "query",
             "schema": _LIMIT},
        ])},
    "/v1/admin/cases/{case_id}": {"patch": _op(
        "Change a case's status", {
            "200": _json(_ref("CaseUpdated"), "The case now"),
            **_errors(400, 401, 403, 404, 413, 415, 503, 429)},
        security="Admin API key only.", roles=(ADMIN,), tag="accountability",
        parameters=[{"name": "case_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}],
        body={"required": True, "content": {"application/json": {"schema": _ref("CaseUpdate")}}})},
    "/v1/offers/{offer_id}/similar": {"get": _op(
        "Offers bought together with this one (a product page): no personal data", {
            "200": _json(_ref("SimilarOffers"), "Best first, each with its exact criterion"),
            **_errors(400, 401, 403, 404, 503)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, tag="related",
        description="From the co-purchases of the training history: each offer says how many of "
                    "the customers who bought this one bought it too. A short list is filled "
                    "with the most bought offers of the same category, and says so. Offers "
                    "marked unavailable never appear.",
        parameters=[_OFFER, _RELATED_K, _RELATED_EXCLUDE])},
    "/v1/session/offers": {"get": _op(
        "Offers for an anonymous visitor, from what they viewed in this session", {
            "200": _json(_ref("SessionOffers"), "Best first, each naming the views behind it"),
            **_errors(400, 401, 403, 503)},
        security=_STOREFRONT_ONLY, roles=_STOREFRONT_ROLES, tag="related",
        description="An offer's score is the sum over the viewed offers of how strongly it is "
                    "bought together with each; its criteria name the viewed offers behind it "
                    "with their exact shares (\"Because you looked at X\"). The views are used "
                    "for this answer only: the audit trail records the offers served, not what "
                    "was viewed.",
        parameters=[
            {"name": "viewed", "in": "query",
             "description": "Offer ids the visitor viewed, oldest first, comma separated (the "
                            f"latest {MAX_VIEWED} count); an unknown id is a 400. Without it: "
                            "the most bought offers (personalization none).",
             "schema": {"type": "string", "minLength": 1, "pattern": PRINTABLE}},
            _RELATED_K, _RELATED_EXCLUDE])},
    "/v1/admin/catalog": {"get": _op(
        "The live catalog: offers withdrawn and added since training, and its changes", {
            "200": _json(_ref("Catalog"), "The catalog every worker serves now"),
            **_errors(400, 401, 403, 503)},
        security="Admin API key only.", roles=(ADMIN,), tag="catalog",
        parameters=[{"name": "limit", "in": "query", "description": "Changes listed.",
                     "schema": _LIMIT}])},
    "/v1/admin/catalog/offers": {"post": _op(
        "Add an offer the model was not trained with: served from the next request on", {
            "201": _json(_ref("CatalogUpdated"), "Added, and live in every worker"),
            **_errors(400, 401, 403, 409, 413, 415, 429, 503)},
        security="Admin API key only.", roles=(ADMIN,), tag="catalog",
        description="Scored like the trained offers that share its attribute values (the mean "
                    "of their vectors), and said so in its criteria (new_offer), until a model "
                    "is trained with it. Recorded with who and when.",
        body={"required": True, "content": {"application/json": {"schema": _ref("NewOffer")}}})},
    "/v1/admin/catalog/offers/{offer_id}/availability": {"put": _op(
        "Mark an offer unavailable (never shown anywhere) or available again", {
            "200": _json(_ref("CatalogUpdated"), "Live in every worker from the next request"),
            **_errors(400, 401, 403, 404, 413, 415, 429, 503)},
        security="Admin API key only.", roles=(ADMIN,), tag="catalog", parameters=[_OFFER],
        body={"required": True,
              "content": {"application/json": {"schema": _ref("Availability")}}})},
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

_TEMPLATE: dict[str, Any] = {
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


def document(taxonomy: Taxonomy, *, max_k: int = Settings.model_fields["max_k"].default,
             token_max_seconds: int = Settings.model_fields["token_max_seconds"].default
             ) -> dict[str, Any]:
    """The document of a deployment: its taxonomy's customer attributes are the attr.NAME query
    parameters and attribute corrections it accepts, and its categories what consent may allow;
    its largest k and longest token life are the bounds."""
    spec = copy.deepcopy(_TEMPLATE)
    schemas = spec["components"]["schemas"]
    schemas["ConsentUpdate"]["properties"]["allowed"]["items"]["enum"] = list(taxonomy.categories)
    schemas["TokenRequest"]["properties"]["ttl_seconds"]["maximum"] = token_max_seconds
    schemas["AttributesUpdate"]["properties"]["values"]["propertyNames"] = {
        "enum": list(taxonomy.attributes)}
    # pydantic puts a dict key's pattern in patternProperties, which leaves other keys free
    attributes = schemas["NewOffer"]["properties"]["attributes"]
    attributes["propertyNames"]["pattern"] = PRINTABLE
    attributes["additionalProperties"] = False
    for item in spec["paths"].values():
        for operation in item.values():
            for p in operation.get("parameters", ()):
                if p.get("name") == "k" and p["schema"].get("maximum") == _MAX_K:
                    p["schema"]["maximum"] = max_k
    for item in spec["paths"].values():
        for operation in item.values():
            if "parameters" in operation:
                operation["parameters"] = [
                    q for p in operation["parameters"]
                    for q in (_attribute_parameters(taxonomy) if p == _ATTRIBUTES else [p])]
    return spec


SPEC: dict[str, Any] = document(Taxonomy.default())  # the built-in taxonomy's (docs/api.md)
