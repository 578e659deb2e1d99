"""Rate limits on writes, per caller: each customer (whatever token they use) and each API key has
its own budget, so one customer's browser cannot flood the service and a storefront cannot starve
the others. The budget is looked up before the view runs: a refused write costs the credential's
signature check and one Redis call; a request without valid credentials spends none and gets its
401.

Flask-Limiter counts in the same Redis as the model (fixed windows); past the budget a write is a
429 with Retry-After, in the API's JSON error form (serving.errors)."""

from __future__ import annotations

from collections.abc import Iterable

import redis
from flask import Flask, current_app, g, request
from flask_limiter import Limiter

from serving.auth import CUSTOMER, Principal

# The API's writes (blueprint.view), limited; reads are cached or cheap, and stay unlimited.
WRITES = ("consent.put_consent", "interactions.record", "tokens.issue",
          "accountability.feedback", "accountability.update_case", "accountability.erase",
          "controls.add", "controls.undo", "controls.correct", "accountability.contact")


def limit_writes(app: Flask, client: redis.Redis, prefix: str, *, customer: str, key: str,
                 endpoints: Iterable[str] = WRITES) -> Limiter:
    """Limit `endpoints` of `app`, together, to `customer` writes per customer (their tokens) and `key`
    per API key (limits as Flask-Limiter reads them: "30/minute")."""

    def budget() -> str:
        principal = _caller_principal()  # None: exempt (a 401), whatever this says
        return customer if principal is not None and principal.role == CUSTOMER else key

    limiter = Limiter(
        _caller, app=app, storage_uri="redis://",
        storage_options={"connection_pool": client.connection_pool},
        key_prefix=f"{prefix}ratelimit", strategy="fixed-window", headers_enabled=True,
    )
    # one budget across every write; a request without valid credentials spends none: a 401
    writes = limiter.shared_limit(budget, scope="writes", exempt_when=_unauthenticated)
    for endpoint in endpoints:
        app.view_functions[endpoint] = writes(app.view_functions[endpoint])
    return limiter


def _caller_principal() -> Principal | None:
    """Who the credentials say is calling, checked without reading any record (the revocation
    check comes with the view): a refused write costs a signature check and one Redis call."""
    principal = g.get("rate_principal", False)
    if principal is False:
        authenticator = current_app.extensions["trustrec"].auth
        principal = g.rate_principal = authenticator.authenticate(request.headers,
                                                                  revocation=False)
    return principal


def _unauthenticated() -> bool:
    """No valid credentials: no budget is spent, the view answers 401."""
    return _caller_principal() is None


def _caller() -> str:
    """Whose budget a request spends: its customer token's customer, or its API key."""
    principal = _caller_principal()
    if principal is None:
        return "unauthenticated"  # exempt: spends nothing
    return f"customer:{principal.customer_id}" if principal.role == CUSTOMER else principal.actor
