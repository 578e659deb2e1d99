"""GET /healthz (the process answers), GET /readyz (it can serve: Redis reachable, a model loaded,
the consent store reachable), GET /metrics (Prometheus text format). No credentials: they carry
no customer data, and load balancers and Prometheus call them."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify

from serving.records.database import create_schema, ping

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    services = current_app.extensions["trustrec"]
    checks: dict[str, dict] = {}
    try:
        services.redis.ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:  # any failure is "not ready", with the reason
        checks["redis"] = {"ok": False, "error": _reason(exc)}
    try:
        model = services.cache.snapshot()
        checks["model"] = {"ok": True, "version": model.version}
    except Exception as exc:
        checks["model"] = {"ok": False, "error": _reason(exc)}
    try:
        ping(services.engine)
        if not services.schema_ready:
            create_schema(services.engine)  # a database that was down at start-up is back
            services.schema_ready = True
        checks["consent_store"] = {"ok": True}
    except Exception as exc:
        checks["consent_store"] = {"ok": False, "error": _reason(exc)}
    ready = all(check["ok"] for check in checks.values())
    if ready:
        return jsonify({"status": "ready", "checks": checks})
    failed = ", ".join(name for name, check in checks.items() if not check["ok"])
    response = jsonify({
        "error": {"code": "not_ready", "message": f"not ready: {failed}", "field": None},
        "checks": checks,
    })
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


@bp.get("/metrics")
def metrics():
    body, content_type = current_app.extensions["trustrec"].metrics.exposition()
    return Response(body, content_type=content_type)


def _reason(exc: Exception) -> str:
    # The endpoint is public: the exception's class only (no hosts, no URLs); the log has the rest.
    log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
    return type(exc).__name__

