"""POST /v1/customers/{id}/token: a storefront issues a signed, expiring token for one customer,
for that customer's browser to read its own offers, explanations and consent and change its own
consent (serving.auth)."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify

from serving.api import params
from serving.auth import ADMIN, DEFAULT_TOKEN_SECONDS, STOREFRONT, require
from serving.errors import bad_parameter
from serving.schemas.requests import TokenRequest

bp = Blueprint("tokens", __name__, url_prefix="/v1/customers/<customer_id>")


@bp.post("/token")
@require(STOREFRONT, ADMIN)
def issue(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    services = current_app.extensions["trustrec"]
    body = params.body(TokenRequest, optional=True)
    maximum = services.settings.token_max_seconds
    ttl = min(DEFAULT_TOKEN_SECONDS, maximum) if body.ttl_seconds is None else body.ttl_seconds
    if ttl > maximum:
        raise bad_parameter("ttl_seconds", f"ttl_seconds must be at most {maximum}")
    token = services.auth.issue(customer_id, ttl)
    response = jsonify({
        "request_id": g.request_id, "customer_id": customer_id, "token": token,
        "token_type": "Bearer", "expires_in": ttl, "expires_at": int(time.time()) + ttl,
    })
    response.status_code = 201
    return response
