"""Rate limits on writes, per caller: each customer (whatever token they use) and each API key has
its own budget, so one customer's browser cannot flood the service and a storefront cannot starve
the others. The budget is looked up before the view runs: a refused write costs the credential's
signature check and one Redis call; a request without valid credentials spends none and gets its
401.

Flask-Limiter counts in the same Redis as the model (fixed windows); past the budget a write is a
429 with Retry-After, in the API's JSON error form (serving.errors).

A fixed window refused stays refused until it resets, so each worker remembers a refused
credential until then (`RefusedCredentials`, in front of Flask): a flood from one token costs a
worker a dictionary lookup per request, not a signature check and two Redis calls, which keeps
the other callers' throughput (`make bench-faults`, the feedback flood row)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

import redis
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from redis.cluster import RedisCluster
from werkzeug.exceptions import HTTPException

from serving.auth import CUSTOMER, Principal

REFUSED = "429 TOO MANY REQUESTS"  # the status line's words, as Flask writes them

# The API's writes (blueprint.view), limited; reads are cached or cheap, and stay unlimited.
WRITES = ("consent.put_consent", "interactions.record", "tokens.issue",
          "accountability.feedback", "accountability.update_case", "accountability.erase",
          "controls.add", "controls.undo", "controls.correct", "accountability.contact")


def limit_writes(app: Flask, client: redis.Redis, prefix: str, *, customer: str, key: str,
                 endpoints: Iterable[str] = WRITES,
                 observe: Callable[[str, str, int, float], None] | None = None,
                 refusal_delay: float = 0.0) -> Limiter:
    """Limit `endpoints` of `app`, together, to `customer` writes per customer (their tokens) and `key`
    per API key (limits as Flask-Limiter reads them: "30/minute"). `observe(rule, method, status,
    seconds)` counts the refusals answered before Flask (the app's metrics); `refusal_delay`
    (seconds) is how long a server that can wait without holding a worker waits before answering
    a repeated refusal (RefusedCredentials.delay)."""

    def budget() -> str:
        principal = _caller_principal()  # None: exempt (a 401), whatever this says
        return customer if principal is not None and principal.role == CUSTOMER else key

    if isinstance(client, RedisCluster):  # limits builds its own cluster client from a node
        node = client.get_default_node()
        storage_uri, options = f"redis+cluster://{node.host}:{node.port}", {}
    else:
        storage_uri, options = "redis://", {"connection_pool": client.connection_pool}
    limiter = Limiter(
        _caller, app=app, storage_uri=storage_uri, storage_options=options,
        key_prefix=f"{prefix}ratelimit", strategy="fixed-window", headers_enabled=True,
    )
    # one budget across every write; a request without valid credentials spends none: a 401
    writes = limiter.shared_limit(budget, scope="writes", exempt_when=_unauthenticated)
    endpoints = tuple(endpoints)
    for endpoint in endpoints:
        app.view_functions[endpoint] = writes(app.view_functions[endpoint])
    refused = RefusedCredentials(app, endpoints, observe=observe, delay=refusal_delay)

    @app.after_request
    def _remember_refusal(response: Response) -> Response:
        limit = limiter.current_limit
        if response.status_code == 429 and limit is not None and limit.breached:
            refused.remember(request.environ, limit.reset_at, limit.limit.amount,
                             response.get_data())
        return response

    return limiter


class RefusedCredentials:
    """Answers a write from a credential already refused in this window with the same 429, before
    Flask runs: the window is fixed, so the answer cannot change until it resets. Wraps
    `app.wsgi_app` (WSGI middleware) and is `app.extensions["trustrec.refused"]`, where a server
    can ask it before it builds the WSGI request at all (`answer`; serving.gunicorn_worker);
    `remember` is called with each refusal the limiter makes."""

    MAX_REMEMBERED = 100_000  # credentials are signed, so only issued ones can fill it

    def __init__(self, app: Flask, endpoints: Iterable[str],
                 observe: Callable[[str, str, int, float], None] | None = None,
                 delay: float = 0.0) -> None:
        self.delay = delay  # seconds; the WSGI answer cannot wait without holding its worker
        self._wsgi_app = app.wsgi_app
        self._url_map = app.url_map
        self._endpoints = frozenset(endpoints)
        self._observe = observe
        # credential -> (window reset at, the limit, the refusal's body)
        self._refused: dict[str, tuple[float, int, bytes]] = {}
        app.wsgi_app = self
        app.extensions["trustrec.refused"] = self

    @staticmethod
    def _credential(environ: dict) -> str | None:
        return environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_API_KEY")

    def remember(self, environ: dict, reset_at: float, limit: int, body: bytes) -> None:
        credential = self._credential(environ)
        if credential is None:
            return
        if len(self._refused) >= self.MAX_REMEMBERED:
            now = time.time()
            self._refused = {c: v for c, v in self._refused.items() if v[0] > now}
            if len(self._refused) >= self.MAX_REMEMBERED:
                return
        self._refused[credential] = (reset_at, limit, body)

    def answer(self, credential: str | None, method: str,
               path: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """The 429's headers and body when `credential` is refused for this write (`path` as
        PATH_INFO, decoded), or None: the request goes on to the app. Counted in the metrics."""
        if credential is None or credential not in self._refused:
            return None
        started = time.perf_counter()
        reset_at, limit, body = self._refused[credential]
        wait = reset_at - time.time()
        if wait <= 0:
            self._refused.pop(credential, None)
            return None
        rule = self._write_rule(method, path)
        if rule is None:
            return None
        headers = [  # the limiter's own 429: its body and headers, the wait counted from now
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Retry-After", str(max(1, int(wait)))),  # as the limiter counts it
            ("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", str(int(reset_at))),
            ("X-Request-Id", str(uuid.uuid4())), ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store")]
        if self._observe is not None:
            self._observe(rule, method, 429, time.perf_counter() - started)
        return headers, body

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        credential = self._credential(environ)
        refusal = None
        if credential is not None and credential in self._refused:
            # PATH_INFO holds the path's bytes as latin-1 (PEP 3333); routing reads them as UTF-8
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
            refusal = self.answer(credential, environ["REQUEST_METHOD"], path)
        if refusal is None:
            return self._wsgi_app(environ, start_response)
        headers, body = refusal
        start_response(REFUSED, headers)
        return [body]

    def _write_rule(self, method: str, path: str) -> str | None:
        """The limited route this request is for, or None (not a limited write)."""
        try:
            rule, _ = self._url_map.bind("localhost").match(path, method, return_rule=True)
        except HTTPException:
            return None
        return rule.rule if rule.endpoint in self._endpoints else None


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
