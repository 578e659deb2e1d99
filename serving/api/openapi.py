"""GET /v1/openapi.json: the API's OpenAPI document (serving/openapi.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from serving.openapi import document as build

bp = Blueprint("openapi", __name__)


@bp.get("/v1/openapi.json")
def document():
    cache = current_app.extensions.setdefault("trustrec_openapi", {})
    if "document" not in cache:  # this deployment's: its taxonomy's attributes
        services = current_app.extensions["trustrec"]
        cache["document"] = build(services.consents.taxonomy, max_k=services.settings.max_k,
                                  token_max_seconds=services.settings.token_max_seconds)
    response = jsonify(cache["document"])
    response.headers["Cache-Control"] = "public, max-age=300"  # no customer data in it
    return response
