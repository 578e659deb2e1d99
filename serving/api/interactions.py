"""POST /v1/customers/{id}/interactions: a purchase, click or rating made since the model was
trained. It is committed to the database first (serving.records.interactions: the next training run's
data), then joins the customer's history in Redis, so the next offers request excludes the offer
and, with history as item features, scores and explains with it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify

from serving.api import params
from serving.auth import ADMIN, STOREFRONT, require
from serving.errors import ApiError
from serving.records.interactions import record_interaction
from serving.schemas.requests import Interaction

bp = Blueprint("interactions", __name__, url_prefix="/v1/customers/<customer_id>")


@bp.post("/interactions")
@require(STOREFRONT, ADMIN)
def record(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.body(Interaction)
    services = current_app.extensions["trustrec"]
    offer_id, kind, weight, event_id = body.offer_id, body.kind, body.weight, body.event_id
    if offer_id not in services.cache.snapshot().offer_columns:
        raise ApiError(400, "unknown_offer", f"no offer {offer_id!r} in the current catalog",
                       "offer_id")
    timestamp = int(time.time()) if body.timestamp is None else body.timestamp
    earlier = record_interaction(
        services.engine, request_id=g.request_id, customer_id=customer_id, offer_id=offer_id,
        kind=kind, weight=weight, timestamp=timestamp, recorded_at=datetime.now(UTC),
        event_id=event_id)
    if earlier is not None and (earlier["customer_id"], earlier["offer_id"], earlier["kind"]) != (
            customer_id, offer_id, kind):
        raise ApiError(409, "conflict", f"event_id {event_id!r} was recorded for another "
                                        "interaction", "event_id")
    # a retry still reaches Redis: that may be what failed the first time
    kept = services.store.append_interaction(customer_id, offer_id, retry=earlier is not None)
    response = jsonify({
        "request_id": g.request_id, "customer_id": customer_id, "offer_id": offer_id,
        "kind": kind, "weight": weight, "timestamp": timestamp, "new_history_length": kept,
        "event_id": event_id, "duplicate": earlier is not None,
    })
    response.status_code = 200 if earlier is not None else 201
    return response

