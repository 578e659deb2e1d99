"""GET and PUT /v1/customers/{id}/consent, GET /v1/customers/{id}/consent/history.

The database owns consent (serving.records.consent); a change invalidates the Redis cache entry
before the response is sent, so the very next offers request runs under the new consent.
"""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, g, jsonify

from explain.templates import Templates
from recommender.consent import LEVELS, Consent, effective_categories
from serving.api import params
from serving.auth import ADMIN, STOREFRONT, current_principal, require
from serving.errors import ApiError
from serving.records.consent import ConsentConflict, ConsentRecord
from serving.schemas.requests import ConsentUpdate

log = logging.getLogger(__name__)

bp = Blueprint("consent", __name__, url_prefix="/v1/customers/<customer_id>/consent")


@bp.get("")
@require(STOREFRONT, ADMIN, own_customer=True)
def get_consent(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    store = current_app.extensions["trustrec"].consents
    return jsonify(_body(customer_id, store.get_record(customer_id)))


@bp.put("")
@require(STOREFRONT, ADMIN, own_customer=True)
def put_consent(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.body(ConsentUpdate)
    expected = body.expected_version
    services = current_app.extensions["trustrec"]
    store = services.consents
    consent = Consent(frozenset(body.allowed), body.level).validate(store.taxonomy)
    principal = current_principal()
    try:
        store.set(customer_id, consent, actor=principal.actor, source=principal.role,
                  expected_version=expected)
    except ConsentConflict as exc:
        raise ApiError(409, "conflict", str(exc), "expected_version") from None
    except redis.RedisError:
        # committed, but the cache could not be told: the caller must retry (which stores the
        # same choice again and invalidates again) rather than believe it is in force
        log.error("consent of %r saved but the cache was not invalidated", customer_id)
        raise ApiError(503, "not_ready", "the consent was saved but could not be applied yet; "
                       "send it again") from None
    record = store.get_record(customer_id)
    return jsonify(_body(customer_id, record))


@bp.get("/history")
@require(STOREFRONT, ADMIN, own_customer=True)
def history(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    store = current_app.extensions["trustrec"].consents
    return jsonify({"request_id": g.request_id, "customer_id": customer_id,
                    "history": store.history(customer_id)})


def _body(customer_id: str, record: ConsentRecord | None) -> dict:
    store = current_app.extensions["trustrec"].consents
    consent = store.default_for(customer_id) if record is None else record.consent
    taxonomy = store.taxonomy
    usable = effective_categories(consent, taxonomy)
    templates = Templates.default()
    return {
        "request_id": g.request_id,
        "customer_id": customer_id,
        "allowed": sorted(consent.allowed),
        "level": consent.level,
        "version": 0 if record is None else record.version,
        "updated_at": None if record is None else record.updated_at.isoformat(),
        "default": record is None,
        "regime": store.regime,
        "categories": [
            {"category": c, "name": templates.name(c), "purpose": taxonomy.purposes.get(c, ""),
             "allowed": c in consent.allowed, "used": c in usable}
            for c in taxonomy.categories
        ],
        "levels": list(LEVELS),
    }
