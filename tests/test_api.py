"""The HTTP API on the real app, against a real Redis server and a SQLite consent database: what
every response carries, consent and interactions taking effect on the next request, hot reload
without mixing versions, every error status, and who may call what."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from functools import cache

import numpy as np
import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from trained import artifact_for

from recommender.artifacts import Artifact
from recommender.loaders.synthetic import load_synthetic
from recommender.ranking import customer_state, rank
from recommender.taxonomy import HISTORY
from serving import auth
from serving.app import close_app, create_app
from serving.auth import ConfigError, hash_key, parse_api_keys
from serving.publish import publish
from serving.records.interactions import interactions_table

KEYS = {"storefront": "trk_test_storefront_key", "admin": "trk_test_admin_key"}
SECRET = "test-secret-" + "x" * 40
CUSTOMER, OTHER = "c00000", "c00001"
ALL = ("interaction_history", "demographics", "location", "profile")


@cache
def small_dataset():
    return load_synthetic(0, n_customers=300, n_offers=60)


@cache
def small_artifact(seed: int = 0) -> Artifact:
    """A hybrid with history as item features; seeds give models that rank differently."""
    return artifact_for(small_dataset(), random_state=seed)


def renamed(artifact: Artifact, version: str) -> Artifact:
    """The same model under another version name."""
    return dataclasses.replace(artifact, manifest=dict(artifact.manifest, version=version))


def quiet_publish(artifact, redis_client, prefix, **options):
    options.setdefault("grace_seconds", 3600)
    return publish(artifact, redis_client, prefix, progress=False, **options)


@pytest.fixture
def make_app(redis_client, redis_prefix, tmp_path):
    """Builds apps on the test's Redis prefix and database; closes every one it built."""
    built = []

    def make(published: Artifact | str | None = "small", **config):
        if published == "small":
            published = small_artifact()
        if published is not None:
            quiet_publish(published, redis_client, redis_prefix)
        built.append(create_app({
            "TRUSTREC_REDIS_CLIENT": redis_client, "TRUSTREC_REDIS_PREFIX": redis_prefix,
            "TRUSTREC_DATABASE_URL": f"sqlite:///{tmp_path / 'consent.db'}",
            "TRUSTREC_API_KEYS": ",".join(f"{role}:{hash_key(key)}" for role, key in KEYS.items()),
            "TRUSTREC_SECRET_KEY": SECRET, "TRUSTREC_MODEL_CHECK_MS": 0, **config,
        }))
        return built[-1]

    yield make
    for app in built:
        close_app(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def key(role: str = "storefront") -> dict:
    return {"X-API-Key": KEYS[role]}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token_for(client, customer_id: str, **body) -> str:
    response = client.post(f"/v1/customers/{customer_id}/token", headers=key(), json=body or None)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def offers(client, customer_id: str = CUSTOMER, query: str = "", headers=None, status=200):
    response = client.get(f"/v1/customers/{customer_id}/offers{query}", headers=headers or key())
    assert response.status_code == status, response.get_json()
    return response.get_json()


def ids(body) -> list[str]:
    return [o["offer_id"] for o in body["offers"]]


def put_consent(client, allowed, level, customer_id=CUSTOMER, headers=None):
    return client.put(f"/v1/customers/{customer_id}/consent", headers=headers or key(),
                      json={"allowed": list(allowed), "level": level})


# --- what every response carries ----------------------------------------------------------------
def test_offers_carry_version_level_categories_disclosure_and_request_id(client):
    artifact = small_artifact()
    response = client.get(f"/v1/customers/{CUSTOMER}/offers?k=5", headers=key())
    assert response.status_code == 200
    body = response.get_json()
    assert response.headers["X-Request-Id"] == body["request_id"]
    request_ids = client.application.extensions["trustrec"].request_ids
    assert request_ids.verify(body["request_id"], CUSTOMER)  # signed for this customer
    assert not request_ids.verify(body["request_id"], OTHER)
    assert body["model_version"] == artifact.version
    assert body["personalization"] == "full"
    assert set(body["categories_used"]) == set(ALL) and body["categories_not_used"] == []
    assert body["consent"] == {"level": "full", "allowed": sorted(ALL), "available": True}
    assert "automated system" in body["disclosure"]["text"]
    assert body["disclosure"]["policy"] == "/v1/policy"
    assert body["links"]["consent"] == f"/v1/customers/{CUSTOMER}/consent"
    assert len(body["offers"]) == 5
    for offer in body["offers"]:
        assert offer["title"] == artifact.offers.loc[offer["offer_id"], "title"]
        assert 1 <= len(offer["criteria"]) <= 2
        assert {"category", "text", "share", "direction"} == set(offer["criteria"][0])
        assert offer["why"] == f"/v1/customers/{CUSTOMER}/offers/{offer['offer_id']}/why"
    # exactly what ranking.rank serves from the artifact itself, scores bit for bit
    state = customer_state(artifact, CUSTOMER)
    columns, scores = rank(artifact, state, np.ones(len(ALL), dtype=bool), 5)
    assert ids(body) == [str(artifact.offers.index[c]) for c in columns]
    assert [o["score"] for o in body["offers"]] == scores.tolist()
    assert response.headers["Cache-Control"] == "no-store"


def test_explain_false_leaves_criteria_out_but_not_the_categories(client):
    body = offers(client, query="?k=3&explain=false")
    assert len(body["offers"]) == 3 and all("criteria" not in o for o in body["offers"])
    assert set(body["categories_used"]) == set(ALL)


def test_purchased_offers_are_excluded_unless_asked_and_exclude_removes_more(client):
    history = set(small_artifact().histories[CUSTOMER])
    everything = offers(client, query="?k=60")
    assert not history & set(ids(everything))
    assert len(everything["offers"]) == 60 - len(history)
    assert history <= set(ids(offers(client, query="?k=60&exclude_purchased=false")))
    top = ids(offers(client, query="?k=3"))
    after = ids(offers(client, query=f"?k=3&exclude={top[0]},{top[1]},no-such-offer"))
    assert top[0] not in after and top[1] not in after and after[0] == top[2]


def test_category_and_attribute_filters(client):
    catalog = small_artifact().offers
    books = offers(client, query="?k=100&category=books&exclude_purchased=false")
    assert books["offers"] and all(catalog.loc[o, "category"] == "books" for o in ids(books))
    assert len(books["offers"]) == (catalog["category"] == "books").sum()
    low = offers(client, query="?k=5&filter=price_band:low")
    assert all(catalog.loc[o, "price_band"] == "low" for o in ids(low))


def test_an_unknown_customer_gets_popular_offers_and_is_told_so(client):
    body = offers(client, "someone-new", "?k=5")
    assert body["personalization"] == "none" and body["categories_used"] == []
    assert {n["reason"] for n in body["categories_not_used"]} == {"no_data"}
    assert all(c["category"] == "popularity" for o in body["offers"] for c in o["criteria"])
    artifact = small_artifact()
    base = artifact.model.base()
    assert ids(body) == [str(artifact.offers.index[c]) for c in np.argsort(-base, kind="stable")[:5]]


def test_cold_start_from_attributes_passed_with_the_request(client):
    body = offers(client, "someone-new", "?k=5&attr.age_band=25-34&attr.region=north")
    assert body["personalization"] == "segment"
    assert set(body["categories_used"]) == {"demographics", "location"}
    reasons = {n["category"]: n["reason"] for n in body["categories_not_used"]}
    assert reasons == {"interaction_history": "no_data", "profile": "no_data"}


def test_why_gives_base_every_contribution_past_offers_and_how_to_change_it(client):
    top = offers(client, query="?k=1")["offers"][0]
    response = client.get(top["why"], headers=key())
    assert response.status_code == 200
    why = response.get_json()
    assert why["offer_id"] == top["offer_id"] and why["request_id"] == response.headers["X-Request-Id"]
    attribution = why["attribution"]
    assert set(attribution["contributions"]) == set(ALL)
    assert attribution["base"] + sum(attribution["contributions"].values()) == pytest.approx(
        attribution["value"], abs=1e-9)
    assert attribution["value"] == pytest.approx(top["score"] - why["average_score"], abs=1e-9)
    history = [c for c in why["criteria"] if c["category"] == HISTORY]
    assert history and history[0]["data"]["past_offers"]  # split exactly by past offer
    past = set(small_artifact().histories[CUSTOMER])
    assert {p["offer_id"] for p in history[0]["data"]["past_offers"]} <= past
    assert why["change_consent"]["href"] == f"/v1/customers/{CUSTOMER}/consent"
    assert why["model_version"] == small_artifact().version and why["personalization"] == "full"

    put_consent(client, ALL, "segment")
    why = client.get(top["why"], headers=key()).get_json()
    assert why["categories_not_used"][0]["category"] == HISTORY
    assert why["categories_not_used"][0]["reason"] == "level"
    assert why["attribution"]["contributions"][HISTORY] == 0.0
    assert why["personalization"] == "segment"


def test_consent_change_is_visible_on_the_very_next_request(client):
    assert offers(client)["personalization"] == "full"  # fills the consent cache in Redis
    consent = client.get(f"/v1/customers/{CUSTOMER}/consent", headers=key()).get_json()
    assert consent["default"] is True and consent["version"] == 0 and consent["level"] == "full"

    response = put_consent(client, ["demographics", "location", "profile"], "full")
    assert response.status_code == 200 and response.get_json()["version"] == 1
    body = offers(client)
    assert body["personalization"] == "segment" and HISTORY not in body["categories_used"]
    assert {"category": HISTORY, "reason": "consent"}.items() <= body["categories_not_used"][0].items()
    # history may not be used, so it may not even decide what is excluded
    assert set(small_artifact().histories[CUSTOMER]) & set(ids(offers(client, query="?k=60")))

    put_consent(client, ALL, "none")
    body = offers(client, query="?k=5")
    assert body["personalization"] == "none" and body["consent"]["level"] == "none"
    assert ids(body) == ids(offers(client, "someone-new", "?k=5"))

    changes = client.get(f"/v1/customers/{CUSTOMER}/consent/history", headers=key()).get_json()
    assert [c["version"] for c in changes["history"]] == [1, 2]
    assert changes["history"][0]["old"] is None
    assert changes["history"][1]["new"] == {"allowed": sorted(ALL), "level": "none"}
    assert changes["history"][0]["source"] == "storefront"
    assert changes["history"][0]["actor"] == f"storefront-key:{hash_key(KEYS['storefront'])[:12]}"


def test_consent_updates_are_validated_and_versioned(client):
    url = f"/v1/customers/{CUSTOMER}/consent"
    for body, field in [
        ({"allowed": ["shoe_size"], "level": "full"}, "allowed"),
        ({"allowed": [], "level": "maximal"}, "level"),
        ({"allowed": "demographics", "level": "full"}, "allowed"),
        ({"level": "full"}, "allowed"),
        ({"allowed": [], "level": "none", "colour": "red"}, "colour"),
        ({"allowed": [], "level": "none", "expected_version": -1}, "expected_version"),
    ]:
        response = client.put(url, headers=key(), json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["field"] == field
    ok = client.put(url, headers=key(), json={"allowed": [], "level": "none", "expected_version": 0})
    assert ok.status_code == 200
    stale = client.put(url, headers=key(), json={"allowed": [], "level": "full", "expected_version": 0})
    assert stale.status_code == 409 and stale.get_json()["error"]["field"] == "expected_version"


def test_an_interaction_is_used_by_the_next_request(client):
    before = offers(client, query="?k=3")
    target = ids(before)[1]
    other = ids(before)[0]
    why_before = client.get(f"/v1/customers/{CUSTOMER}/offers/{other}/why", headers=key()).get_json()
    response = client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(),
                           json={"offer_id": target, "kind": "purchase", "weight": 1})
    assert response.status_code == 201
    recorded = response.get_json()
    assert recorded["new_history_length"] == 1 and recorded["offer_id"] == target
    with client.application.extensions["trustrec"].engine.connect() as connection:
        kept = connection.execute(sa.select(interactions_table)).all()  # durable, not only in Redis
    assert [(r.customer_id, r.offer_id, r.kind) for r in kept] == [(CUSTOMER, target, "purchase")]
    assert target not in ids(offers(client, query="?k=3"))  # excluded as purchased
    why_after = client.get(f"/v1/customers/{CUSTOMER}/offers/{other}/why", headers=key()).get_json()
    # history as item features: the history partial now includes the new offer
    contribution = why_after["attribution"]["contributions"][HISTORY]
    assert contribution != why_before["attribution"]["contributions"][HISTORY]
    history = next(c for c in why_after["criteria"] if c["category"] == HISTORY)
    assert history["data"]["past_offer_count"] == len(small_artifact().histories[CUSTOMER]) + 1


@pytest.mark.parametrize(("body", "field"), [
    ({"offer_id": "no-such-offer", "kind": "purchase"}, "offer_id"),
    ({"offer_id": "o0001", "kind": "wishlist"}, "kind"),
    ({"offer_id": "o0001", "kind": "rating", "weight": 0}, "weight"),
    ({"offer_id": "o0001", "kind": "rating", "weight": "5"}, "weight"),
    ({"offer_id": "o0001", "kind": "click", "timestamp": "yesterday"}, "timestamp"),
    ({"offer_id": "o0001", "kind": "click", "timestamp": 2**63}, "timestamp"),
    ({"offer_id": "o0001", "kind": "click", "timestamp": -1}, "timestamp"),
    ({"offer_id": "o0001", "kind": "click", "channel": "app"}, "channel"),
    ({"kind": "click"}, "offer_id"),
])
def test_interactions_are_validated(client, body, field):
    response = client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(), json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


# --- operations -----------------------------------------------------------------------------------
def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["model"] == {"ok": True, "version": small_artifact().version}
    assert checks["redis"]["ok"] and checks["consent_store"]["ok"]
    offers(client)
    client.get("/v1/customers/x/offers?k=0", headers=key())
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.content_type.startswith("text/plain")
    text = metrics.get_data(as_text=True)
    assert ('trustrec_http_requests_total{endpoint="/v1/customers/<customer_id>/offers",'
            'method="GET",status="200"} 1.0') in text
    assert 'status="400"} 1.0' in text
    assert f'trustrec_model_info{{version="{small_artifact().version}"}} 1.0' in text
    assert 'trustrec_http_request_duration_seconds_count{endpoint="/readyz"} 1.0' in text
    assert 'trustrec_offers_responses_total{personalization="full"} 1.0' in text


def test_not_ready_until_a_model_is_published(make_app, redis_client, redis_prefix):
    client = make_app(published=None).test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get(f"/v1/customers/{CUSTOMER}/offers", headers=key())
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "not_ready"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["model"]["ok"] is False
    quiet_publish(small_artifact(), redis_client, redis_prefix)
    assert client.get("/readyz").status_code == 200
    assert offers(client)["model_version"] == small_artifact().version


# --- model versions -----------------------------------------------------------------------------
def test_a_new_version_is_served_on_the_next_request_without_restart(client, redis_client,
                                                                     redis_prefix):
    first = small_artifact()
    assert offers(client)["model_version"] == first.version
    second = renamed(first, first.version + "-b")
    quiet_publish(second, redis_client, redis_prefix)
    assert offers(client)["model_version"] == second.version
    quiet_publish(first, redis_client, redis_prefix)  # rollback: only `current` moves
    assert offers(client)["model_version"] == first.version


def test_no_response_mixes_two_versions_while_they_flip(make_app, redis_client, redis_prefix):
    artifacts = [small_artifact(0), renamed(small_artifact(1), small_artifact(1).version + "-s1")]
    app = make_app(published=artifacts[1])
    quiet_publish(artifacts[0], redis_client, redis_prefix)
    customers = [CUSTOMER, OTHER, "c00002", "c00003"]
    allowed = np.ones(len(ALL), dtype=bool)
    expected = {}
    for artifact in artifacts:  # what each version serves each customer, computed in process
        for customer in customers:
            columns, scores = rank(artifact, customer_state(artifact, customer), allowed, 5)
            expected[artifact.version, customer] = (
                [str(artifact.offers.index[c]) for c in columns], scores.tolist())
    assert expected[artifacts[0].version, CUSTOMER] != expected[artifacts[1].version, CUSTOMER]

    stop, results, failures = threading.Event(), [], []

    def reader(customer: str) -> None:
        client = app.test_client()
        while not stop.is_set():
            response = client.get(f"/v1/customers/{customer}/offers?k=5", headers=key())
            if response.status_code != 200:
                failures.append(response.get_json())
                continue
            body = response.get_json()
            served = (ids(body), [o["score"] for o in body["offers"]])
            results.append(body["model_version"])
            if served != expected[body["model_version"], customer]:
                failures.append((body["model_version"], customer, served))

    threads = [threading.Thread(target=reader, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    try:
        for flip in range(30):
            quiet_publish(artifacts[flip % 2], redis_client, redis_prefix)
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    assert {a.version for a in artifacts} == set(results) and len(results) > 20


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "status", "code", "field"), [
    ("GET", "/v1/customers/c00000/offers?k=0", 400, "bad_parameter", "k"),
    ("GET", "/v1/customers/c00000/offers?k=abc", 400, "bad_parameter", "k"),
    ("GET", "/v1/customers/c00000/offers?k=-3", 400, "bad_parameter", "k"),
    ("GET", "/v1/customers/c00000/offers?k=101", 400, "bad_parameter", "k"),
    ("GET", "/v1/customers/c00000/offers?k=1.5", 400, "bad_parameter", "k"),
    ("GET", "/v1/customers/c00000/offers?explain=maybe", 400, "bad_parameter", "explain"),
    ("GET", "/v1/customers/c00000/offers?category=spaceships", 400, "bad_parameter", "category"),
    ("GET", "/v1/customers/c00000/offers?filter=colour:red", 400, "bad_parameter", "filter"),
    ("GET", "/v1/customers/c00000/offers?filter=category", 400, "bad_parameter", "filter"),
    ("GET", "/v1/customers/c00000/offers?categroy=books", 400, "bad_parameter", "categroy"),
    ("GET", "/v1/customers/c00000/offers?attr.shoe_size=42", 400, "bad_parameter",
     "attr.shoe_size"),
    ("GET", "/v1/customers/c00000/offers/no-such-offer/why", 404, "unknown_offer", "offer_id"),
    ("GET", "/v1/customers/c00000/nothing-here", 404, "not_found", None),
    ("DELETE", "/v1/customers/c00000/consent", 405, "method_not_allowed", None),
    ("GET", "/v1/customers/c00000/interactions", 405, "method_not_allowed", None),
])
def test_error_statuses_are_json_with_code_message_and_field(client, method, path, status, code,
                                                             field):
    response = client.open(path, method=method, headers=key())
    assert response.status_code == status
    assert response.content_type == "application/json"
    error = response.get_json()["error"]
    assert set(response.get_json()) == {"error"} and set(error) == {"code", "message", "field"}
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"] and "Traceback" not in error["message"]
    assert response.headers["X-Request-Id"]


def test_max_k_comes_from_configuration(make_app):
    client = make_app(TRUSTREC_MAX_K=5).test_client()
    assert len(offers(client, query="?k=5")["offers"]) == 5
    error = offers(client, query="?k=6", status=400)["error"]
    assert error["field"] == "k" and "at most 5" in error["message"]


def test_oversized_and_non_json_bodies(make_app):
    client = make_app(TRUSTREC_MAX_BODY_BYTES=1024).test_client()
    url = f"/v1/customers/{CUSTOMER}/consent"
    big = client.put(url, headers=key(), data='{"allowed": [' + '"x",' * 400 + '"x"]}',
                     content_type="application/json")
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "payload_too_large"
    form = client.put(url, headers=key(), data="allowed=demographics&level=full",
                      content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415 and form.get_json()["error"]["field"] == "Content-Type"
    broken = client.put(url, headers=key(), data="{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"]["code"] == "invalid_json"
    listed = client.put(url, headers=key(), json=["demographics"])
    assert listed.status_code == 400 and listed.get_json()["error"]["field"] == "body"
    post = client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(), data="offer_id=o1")
    assert post.status_code == 415


def test_hostile_bodies_and_paths_are_4xx_json_naming_the_field(make_app):
    client = make_app(TRUSTREC_MAX_BODY_BYTES=100_000).test_client()
    url = f"/v1/customers/{CUSTOMER}/consent"

    def sent(data: bytes | str, **options):
        response = client.put(url, headers=key(), data=data, content_type="application/json",
                              **options)
        assert response.content_type == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        return response.status_code, response.get_json()["error"]

    status, error = sent("[" * 8000 + "]" * 8000)  # Python's parser would recurse past its limit
    assert (status, error["code"], error["field"]) == (400, "invalid_json", "body")
    status, error = sent('{"allowed": [], "level": "full", "level": "none"}')
    assert (status, error["field"]) == (400, "level") and "more than once" in error["message"]
    status, error = sent('{"allowed": [], "level": "none", "expected_version": NaN}')
    assert (status, error["code"]) == (400, "invalid_json")
    status, error = sent(b'{"allowed": ["\xff"], "level": "none"}')
    assert (status, error["code"]) == (400, "invalid_json")
    # a body without Content-Length (chunked) past the limit is a 413, like any other
    chunked = {"headers": {**key(), "Transfer-Encoding": "chunked"},
               "environ_base": {"wsgi.input_terminated": True}, "content_type": "application/json"}
    big = io.BytesIO(b'{"allowed": [' + b'"x",' * 30_000 + b'"x"]}')
    response = client.put(url, input_stream=big, **chunked)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "body"
    small = io.BytesIO(b'{"allowed": [], "level": "none"}')
    assert client.put(url, input_stream=small, **chunked).status_code == 200
    # a path that is not UTF-8 is not an id the client sent
    response = client.get("/v1/customers/%FF/offers", headers=key())
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "customer_id"


def test_an_unexpected_failure_is_a_json_500_without_details(make_app):
    def broken_audit(record):
        raise RuntimeError("secret internals")

    client = make_app(TRUSTREC_ON_SERVED=broken_audit).test_client()
    response = client.get(f"/v1/customers/{CUSTOMER}/offers", headers=key())
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "internal error",
                                             "field": None}}
    assert b"secret internals" not in response.data and b"<html" not in response.data.lower()


def test_every_response_is_handed_to_the_audit_hook_with_its_request_id(make_app):
    records = []
    client = make_app(TRUSTREC_ON_SERVED=records.append).test_client()
    body = offers(client, query="?k=2")
    why = client.get(body["offers"][0]["why"], headers=key()).get_json()
    offers_record, why_record = records
    assert offers_record.request_id == body["request_id"] and offers_record.endpoint == "offers"
    assert offers_record.offers == [(o["offer_id"], o["score"]) for o in body["offers"]]
    assert offers_record.model_version == body["model_version"]
    assert offers_record.categories_used == body["categories_used"]
    assert offers_record.actor.startswith("storefront-key:") and offers_record.params["k"] == 2
    assert why_record.request_id == why["request_id"] and why_record.endpoint == "why"


# --- auth -----------------------------------------------------------------------------------------
def test_credentials_are_required(client):
    url = f"/v1/customers/{CUSTOMER}/offers"
    for headers in ({}, {"X-API-Key": "trk_wrong"}, bearer("not-a-token"),
                    {"Authorization": f"Basic {KEYS['storefront']}"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(url, headers=bearer(KEYS["admin"])).status_code == 200  # a key as Bearer


def test_a_customer_token_reaches_its_own_customer_and_nothing_else(client):
    token = token_for(client, CUSTOMER)
    mine = bearer(token)
    body = offers(client, headers=mine)
    why = client.get(body["offers"][0]["why"], headers=mine)
    assert why.status_code == 200
    assert client.get(f"/v1/customers/{CUSTOMER}/consent", headers=mine).status_code == 200
    response = put_consent(client, ["demographics"], "segment", headers=mine)
    assert response.status_code == 200
    history = client.get(f"/v1/customers/{CUSTOMER}/consent/history", headers=mine).get_json()
    assert history["history"][0]["source"] == "customer"
    assert history["history"][0]["actor"] == CUSTOMER

    for method, path, body in [
        ("GET", f"/v1/customers/{OTHER}/offers", None),
        ("GET", f"/v1/customers/{OTHER}/offers/o0001/why", None),
        ("GET", f"/v1/customers/{OTHER}/consent", None),
        ("PUT", f"/v1/customers/{OTHER}/consent", {"allowed": [], "level": "full"}),
        ("GET", f"/v1/customers/{OTHER}/consent/history", None),
        ("POST", f"/v1/customers/{CUSTOMER}/interactions", {"offer_id": "o0001", "kind": "click"}),
        ("POST", f"/v1/customers/{CUSTOMER}/token", None),
        ("POST", f"/v1/customers/{OTHER}/token", None),
    ]:
        response = client.open(path, method=method, headers=mine, json=body)
        assert response.status_code == 403, (method, path)
        assert response.get_json()["error"]["code"] == "forbidden"


def test_tokens_expire_and_cannot_be_forged(client):
    def signed(secret: str, payload: dict, age: int) -> str:
        class IssuedEarlier(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(time.time()) - age

        return URLSafeTimedSerializer(secret, salt=auth._TOKEN_SALT,
                                      signer=IssuedEarlier).dumps(payload)

    url = f"/v1/customers/{CUSTOMER}/offers"
    fresh = signed(SECRET, {"sub": CUSTOMER, "ttl": 600}, age=5)
    assert client.get(url, headers=bearer(fresh)).status_code == 200
    for token in (
        signed(SECRET, {"sub": CUSTOMER, "ttl": 60}, age=120),  # expired
        signed("another-secret" * 4, {"sub": CUSTOMER, "ttl": 600}, age=0),  # forged
        fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB"),  # tampered
    ):
        assert client.get(url, headers=bearer(token)).status_code == 401
    assert client.post(f"/v1/customers/{CUSTOMER}/token", headers=key(),
                       json={"ttl_seconds": 0}).status_code == 400
    issued = client.post(f"/v1/customers/{CUSTOMER}/token", headers=key("admin"),
                         json={"ttl_seconds": 60}).get_json()
    assert issued["expires_in"] == 60 and issued["token_type"] == "Bearer"


def test_keys_are_configured_hashed_and_production_refuses_to_start_without_them(
        make_app, redis_client, redis_prefix, tmp_path):
    app = make_app()
    stored = app.extensions["trustrec"].auth.keys
    assert {k.digest for k in stored} == {hash_key(k) for k in KEYS.values()}
    assert not any(plain in repr(stored) for plain in KEYS.values())
    with pytest.raises(ConfigError, match="SHA-256"):
        parse_api_keys(f"storefront:{KEYS['storefront']}")  # a plain key is refused
    with pytest.raises(ConfigError, match="ROLE"):
        parse_api_keys(f"root:{hash_key('x')}")
    listed = tmp_path / "keys"
    listed.write_text(f"# the shop\nstorefront:{hash_key('a')}\nadmin:{hash_key('b')}\n")
    assert [k.role for k in parse_api_keys(f"@{listed}")] == ["storefront", "admin"]

    production = {"TRUSTREC_ENV": "production", "TRUSTREC_REDIS_CLIENT": redis_client,
                  "TRUSTREC_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    for missing, message in [
        ({"TRUSTREC_API_KEYS": "", "TRUSTREC_SECRET_KEY": SECRET}, "TRUSTREC_API_KEYS"),
        ({"TRUSTREC_API_KEYS": f"admin:{hash_key('a')}", "TRUSTREC_SECRET_KEY": ""},
         "TRUSTREC_SECRET_KEY"),
    ]:
        with pytest.raises(ConfigError, match=message):
            create_app(production | missing)
    app = create_app(production | {"TRUSTREC_API_KEYS": f"admin:{hash_key('a')}",
                                   "TRUSTREC_SECRET_KEY": SECRET})
    assert app
    close_app(app)



def test_an_interaction_the_database_cannot_keep_is_refused_and_not_applied(client):
    services = client.application.extensions["trustrec"]
    target = ids(offers(client, query="?k=3"))[0]
    interactions_table.drop(services.engine)  # the database refuses the write
    try:
        response = client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(),
                               json={"offer_id": target, "kind": "purchase"})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "not_ready"
        assert target in ids(offers(client, query="?k=3"))  # Redis did not take it either
    finally:
        interactions_table.create(services.engine)


def test_a_retried_interaction_with_its_event_id_is_recorded_once(client):
    target = ids(offers(client, query="?k=3"))[1]
    body = {"offer_id": target, "kind": "purchase", "event_id": "order-17/line-1"}
    url = f"/v1/customers/{CUSTOMER}/interactions"
    first = client.post(url, headers=key(), json=body)
    again = client.post(url, headers=key(), json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["duplicate"] is False and again.get_json()["duplicate"] is True
    with client.application.extensions["trustrec"].engine.connect() as connection:
        kept = connection.execute(sa.select(interactions_table)).all()
    assert [(r.offer_id, r.event_id) for r in kept] == [(target, "order-17/line-1")]
    assert again.get_json()["new_history_length"] == 1
    other = client.post(url, headers=key(), json=body | {"kind": "click"})
    assert other.status_code == 409 and other.get_json()["error"]["field"] == "event_id"
