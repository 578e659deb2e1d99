"""The live catalog, for the shop's staff: GET /v1/admin/catalog, POST /v1/admin/catalog/offers
(a new offer, served at once) and PUT /v1/admin/catalog/offers/{offer_id}/availability."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify

from serving.api import params
from serving.auth import ADMIN, current_principal, require
from serving.catalog import CatalogNotLive, make_live, offer_summary
from serving.errors import ApiError, bad_parameter
from serving.records.catalog import OfferExists, add_offer, catalog_changes, set_available
from serving.schemas.requests import Availability, NewOffer

bp = Blueprint("catalog", __name__, url_prefix="/v1/admin/catalog")


def _services():
    return current_app.extensions["trustrec"]


@bp.get("")
@require(ADMIN)
def show():
    args = params.Query().only(("limit",))
    limit = args.positive_int("limit", params.DEFAULT_LIMIT, params.MAX_LIMIT)
    services = _services()
    loaded = services.cache.live()
    state = services.cache.catalog.state
    return jsonify({
        "request_id": g.request_id, "serial": state.serial,
        "unavailable": sorted(state.unavailable),
        "added": [offer_summary(state, o, loaded) for o in sorted(state.added)],
        "changes": catalog_changes(services.engine, limit),
    })


@bp.post("/offers")
@require(ADMIN)
def add():
    params.no_query()
    body = params.body(NewOffer)
    services = _services()
    loaded = services.cache.live()
    known = set(loaded.offers.columns)
    for name in body.attributes:
        if name not in known:
            raise bad_parameter(f"attributes.{name}", f"offers have no attribute {name!r} "
                                f"(they have: {', '.join(sorted(known)) or 'none'})")
    try:
        state = add_offer(services.engine, body.offer_id, body.attributes,
                          current_principal().actor, datetime.now(UTC),
                          trained=loaded.offer_columns)
    except OfferExists:
        raise ApiError(409, "offer_exists", f"offer {body.offer_id!r} is in the catalog already",
                       "offer_id") from None
    _live(services, state)
    loaded = services.cache.live()
    response = jsonify({"request_id": g.request_id, "serial": state.serial, "changed": True,
                        "offer": offer_summary(state, body.offer_id, loaded)})
    return response, 201


@bp.put("/offers/<offer_id>/availability")
@require(ADMIN)
def availability(offer_id: str):
    params.no_query()
    body = params.body(Availability)
    services = _services()
    loaded = services.cache.live()
    if offer_id not in loaded.offer_columns:
        raise ApiError(404, "unknown_offer", f"no offer {offer_id!r} in the catalog", "offer_id")
    state, changed = set_available(services.engine, [offer_id], body.available,
                                   current_principal().actor, datetime.now(UTC))
    _live(services, state)
    return jsonify({"request_id": g.request_id, "serial": state.serial, "changed": bool(changed),
                    "offer": offer_summary(state, offer_id, services.cache.live())})


def _live(services, state) -> None:
    try:
        make_live(services.redis, services.store.keys, state)
    except CatalogNotLive:
        raise ApiError(503, "not_live", "the change is recorded but Redis could not be updated: "
                       "send the same request again to make it live", "redis") from None
