"""POST /v1/customers/{id}/interactions: a purchase, click or rating made since the model was
trained. It is committed to the database first (serving.records.interactions: the next training run's
data), then joins the customer's history in Redis, so the next offers request excludes the offer
and, with history as item features, scores and explains with it."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify

from serving.api import params
from serving.auth import ADMIN, STOREFRONT, require
from serving.errors import ApiError, bad_parameter
from serving.records.interactions import record_interaction

bp = Blueprint("interactions", __name__, url_prefix="/v1/customers/<customer_id>")

KINDS = ("purchase", "click", "rating")
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z: beyond it, not a time but a mistake
FIELDS = ("offer_id", "kind", "weight", "timestamp", "event_id")
MAX_EVENT_ID = 128


@bp.post("/interactions")
@require(STOREFRONT, ADMIN)
def record(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.json_body()
    for name in body:
        if name not in FIELDS:
            raise bad_parameter(name, f"unknown field {name!r}; expected: {', '.join(FIELDS)}")
    services = current_app.extensions["trustrec"]
    offer_id = body.get("offer_id")
    if not isinstance(offer_id, str) or not offer_id:
        raise bad_parameter("offer_id", "offer_id must be a non-empty string")
    if offer_id not in services.cache.snapshot().offer_columns:
        raise ApiError(400, "unknown_offer", f"no offer {offer_id!r} in the current catalog",
                       "offer_id")
    kind = body.get("kind")
    if kind not in KINDS:
        raise bad_parameter("kind", f"kind must be one of {', '.join(KINDS)}")
    weight = body.get("weight", 1.0)
    if (isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight)
            or weight <= 0):
        raise bad_parameter("weight", "weight must be a positive number")
    timestamp = _timestamp(body.get("timestamp"))
    event_id = body.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id
                                 or len(event_id) > MAX_EVENT_ID):
        raise bad_parameter("event_id", f"event_id must be a string of 1 to {MAX_EVENT_ID} characters")
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


def _timestamp(raw: object) -> int:
    """Unix seconds, from seconds or an ISO 8601 time with a zone; now when absent."""
    if raw is None:
        return int(time.time())
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= LATEST_TIMESTAMP:
        return raw
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None and 0 <= moment.timestamp() <= LATEST_TIMESTAMP:
                return int(moment.timestamp())
    raise bad_parameter("timestamp", "timestamp must be unix seconds or an ISO 8601 time with a zone, "
                              "between 1970 and 9999")
