"""Rate limits on writes, per caller: each customer token and each API key has its own budget, so
one customer's browser cannot flood the service and a storefront cannot starve the others. The
budget is looked up before anything else is done for the request: a refused write costs a hash
and one Redis call.

Flask-Limiter counts in the same Redis as the model (fixed windows); past the budget a write is a
429 with Retry-After, in the API's JSON error form (serving.errors)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import redis
from flask import Flask, request
from flask_limiter import Limiter

from serving.auth import KEY_PREFIX

# The API's writes (blueprint.view), limited; reads are cached or cheap, and stay unlimited.
WRITES = ("consent.put_consent", "interactions.record", "tokens.issue",
          "accountability.feedback", "accountability.update_case", "accountability.erase",
          "controls.add", "controls.undo", "controls.correct", "accountability.contact")


def limit_writes(app: Flask, client: redis.Redis, prefix: str, *, customer: str, key: str,
                 endpoints: Iterable[str] = WRITES) -> Limiter:
    """Limit `endpoints` of `app`, together, to `customer` writes per customer token and `key`
    per API key (limits as Flask-Limiter reads them: "30/minute")."""

    def budget() -> str:
        return customer if _caller().startswith("token:") else key

    limiter = Limiter(
        _caller, app=app, storage_uri="redis://",
        storage_options={"connection_pool": client.connection_pool},
        key_prefix=f"{prefix}ratelimit", strategy="fixed-window", headers_enabled=True,
    )
    # one budget across every write; a request without credentials spends none: it is a 401
    writes = limiter.shared_limit(budget, scope="writes", exempt_when=lambda: not _presented())
    for endpoint in endpoints:
        app.view_functions[endpoint] = writes(app.view_functions[endpoint])
    return limiter


def _presented() -> str:
    """The credential a request presents: an API key, or a Bearer token or key ("" if none)."""
    return (request.headers.get("X-API-Key")
            or request.headers.get("Authorization", "").partition(" ")[2].strip())


def _caller() -> str:
    """Whose budget a request spends: the credential it presents, told from its form alone (an
    API key starts with trk_), so that a flood is refused before any signature is checked or
    record read. A credential that is not valid spends its own budget, then gets its 401."""
    presented = _presented()
    kind = "key" if request.headers.get("X-API-Key") or presented.startswith(KEY_PREFIX) else "token"
    return f"{kind}:{_digest(presented)}"


def _digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:24]
