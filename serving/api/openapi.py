"""GET /v1/openapi.json: the API's OpenAPI document (serving/openapi.py)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from serving.openapi import SPEC

bp = Blueprint("openapi", __name__)


@bp.get("/v1/openapi.json")
def document():
    response = jsonify(SPEC)
    response.headers["Cache-Control"] = "public, max-age=300"  # no customer data in it
    return response
