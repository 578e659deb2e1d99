"""Every error the API returns, as JSON: {"error": {"code", "message", "field"}}, never HTML and
never a traceback. One registration covers errors raised by views, by Flask and Werkzeug (404, 405,
413, 415, ...), by the stores, and anything unexpected (500)."""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from recommender.errors import DataError
from serving.redis_store import ModelStoreError, NoModelPublished

log = logging.getLogger(__name__)

# Werkzeug's exceptions by status, as the codes clients match on.
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
    429: "too_many_requests", 431: "headers_too_large", 500: "internal_error", 503: "not_ready",
}


class ApiError(Exception):
    """An error response: HTTP status, a stable machine-readable code, a message for people, and
    the parameter, body field or header at fault when there is one."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def bad_parameter(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message, field)


def error_response(
    status: int, code: str, message: str, field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.field, error.headers)

    @app.errorhandler(DataError)
    def _data(error: DataError) -> Response:
        return error_response(400, "bad_request", error.message, error.field)

    @app.errorhandler(NoModelPublished)
    def _no_model(error: NoModelPublished) -> Response:
        return error_response(503, "not_ready", "no model is published yet", None,
                              {"Retry-After": "5"})

    @app.errorhandler(ModelStoreError)
    @app.errorhandler(redis.RedisError)
    def _store(error: Exception) -> Response:
        log.error("online store unavailable: %s", error)
        return error_response(503, "not_ready", "the online store is unavailable", None,
                              {"Retry-After": "5"})

    # Only an unreachable or failing database is "not ready"; other database errors are bugs (500).
    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    @app.errorhandler(sa.exc.TimeoutError)
    def _database(error: Exception) -> Response:
        # the records' owner is unreachable: the request was fine, nothing was half-written
        log.error("database unavailable: %s", error)
        return error_response(503, "not_ready", "the database is unavailable", None,
                              {"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {}
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(sorted(error.valid_methods))  # type: ignore[attr-defined]
        message = {
            404: "no such resource", 405: "method not allowed on this resource",
            413: f"request body too large (at most {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }.get(status, error.description or error.name)
        return error_response(status, HTTP_CODES.get(status, "error"), message, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # logged here with the traceback; the client gets neither the traceback nor the message
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
