"""GET /v1/customers/{id}/offers and GET /v1/customers/{id}/offers/{offer_id}/why."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from serving.api import params
from serving.auth import ADMIN, STOREFRONT, current_principal, require
from serving.errors import bad_parameter
from serving.recommend import OffersQuery, Result

bp = Blueprint("offers", __name__, url_prefix="/v1/customers/<customer_id>")

OFFERS_PARAMS = ("k", "explain", "exclude", "exclude_purchased", "category", "filter", "calibrate",
                 "context")
ATTRIBUTE_PREFIX = "attr."
DEFAULT_K = 10


@bp.get("/offers")
@require(STOREFRONT, ADMIN, own_customer=True)
def offers(customer_id: str):
    customer_id = params.customer_id(customer_id)
    services = current_app.extensions["trustrec"]
    g.request_id = services.request_ids.mint(customer_id)  # feedback can tell whose it is
    args = params.Query().only(OFFERS_PARAMS, (ATTRIBUTE_PREFIX,))
    spec = _filter(args)
    query = OffersQuery(
        k=args.positive_int("k", DEFAULT_K, services.settings.max_k),
        explain=args.boolean("explain", True),
        exclude=args.id_list("exclude"),
        exclude_purchased=args.boolean("exclude_purchased", True),
        filter=spec[:2] if spec else None,
        filter_field=spec[2] if spec else "filter",
        attributes=args.prefixed(ATTRIBUTE_PREFIX),
        calibrate=args.fraction("calibrate", 0.0),
        context=args.single("context"),
    )
    if query.context is not None and query.calibrate > 0:
        raise bad_parameter("context", "give either context or calibrate, not both")
    if query.context == "":
        raise bad_parameter("context", "context needs an offer id")
    result = services.recommender.offers(customer_id, query)
    return _respond(services, "offers", result, {
        "k": query.k, "explain": query.explain, "exclude": list(query.exclude),
        "exclude_purchased": query.exclude_purchased,
        "filter": None if query.filter is None else ":".join(query.filter),
        "attributes": dict(query.attributes or {}), "calibrate": query.calibrate,
        "context": query.context,
    })


@bp.get("/offers/<offer_id>/why")
@require(STOREFRONT, ADMIN, own_customer=True)
def why(customer_id: str, offer_id: str):
    customer_id = params.customer_id(customer_id)
    services = current_app.extensions["trustrec"]
    g.request_id = services.request_ids.mint(customer_id)
    attributes = params.Query().only((), (ATTRIBUTE_PREFIX,)).prefixed(ATTRIBUTE_PREFIX)
    result = services.recommender.why(customer_id, offer_id, attributes)
    return _respond(services, "why", result, {"offer_id": offer_id, "attributes": dict(attributes or {})})


def _filter(args: params.Query) -> tuple[str, str, str] | None:
    """(attribute, value, parameter): `category=VALUE` is short for `filter=category:VALUE`."""
    category, spec = args.single("category"), args.single("filter")
    if category is not None and spec is not None:
        raise bad_parameter("filter", "give either category or filter, not both")
    if category is not None:
        if not category:
            raise bad_parameter("category", "category needs a value")
        return ("category", category, "category")
    if spec is None:
        return None
    attribute, sep, value = spec.partition(":")
    if not sep or not attribute or not value:
        raise bad_parameter("filter", f"filter must be ATTRIBUTE:VALUE, not {spec!r}")
    return (attribute, value, "filter")


def _respond(services, endpoint: str, result: Result, request_params: dict):
    request_id = g.request_id
    body = {"request_id": request_id} | result.body
    audit = result.audit
    services.on_served(result.record(request_id, endpoint, current_principal().actor,
                                     request_params))
    services.metrics.serving(audit["model_version"])
    if endpoint == "offers":
        services.metrics.served.labels(audit["personalization"]).inc()
    if audit["consent_source"] == "unavailable":
        services.metrics.fail_closed.inc()
    return jsonify(body)
