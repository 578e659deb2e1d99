"""Serving pieces under the API: explanations served from Redis equal explain's own on the
artifact, the consent cache cannot be refilled with a stale record and fails closed, the command
line (publish, serve, keys), and the documented gunicorn command."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_cluster import url_of
from test_api import CUSTOMER, quiet_publish, small_artifact

from explain.criteria import why as explain_why
from recommender.artifacts import save_artifact
from recommender.consent import NO_PERSONAL_DATA, Consent, category_mask
from recommender.ranking import customer_state
from recommender.taxonomy import Taxonomy
from serving.auth import hash_key, parse_api_keys
from serving.consent_cache import ConsentCache
from serving.recommend import Recommender
from serving.records.consent import ConsentStore
from serving.records.database import create_schema, make_engine
from serving.redis_store import Keys, ModelCache, RedisModelStore
from trustrec import cli

ROOT = Path(__file__).resolve().parents[1]
ALL = ("interaction_history", "demographics", "location", "profile")


redis_url = url_of


@pytest.fixture
def consents(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'consent.db'}")
    create_schema(engine)
    return ConsentStore(engine, Taxonomy.default())


@pytest.fixture
def recommender(redis_client, redis_prefix, consents):
    quiet_publish(small_artifact(), redis_client, redis_prefix)
    store = RedisModelStore(redis_client, redis_prefix)
    cache = ConsentCache(redis_client, store.keys, consents)
    consents.on_change = cache.invalidate
    return Recommender(ModelCache(store, 0), cache)


# --- explanations ---------------------------------------------------------------------------------
ENVELOPE = {"request_id", "customer_id", "model_version", "personalization", "consent",
            "categories_used", "categories_not_used", "disclosure", "links", "change_consent",
            "rules_version", "business_rules", "arm"}  # serving's business rules, experiments


@pytest.mark.parametrize("level", ["full", "segment"])
@pytest.mark.parametrize("case", ["stored", "new history", "cold start"])
def test_served_explanations_equal_explains_own_on_the_artifact(recommender, consents, level,
                                                                  case):
    artifact = small_artifact()
    consents.set(CUSTOMER, Consent(frozenset(ALL), level), actor="test", source="admin")
    customer, attributes, new = CUSTOMER, None, ()
    if case == "new history":
        new = ("o0003", "o0007")
        for offer in new:
            recommender.cache.store.append_interaction(customer, offer)
    elif case == "cold start":
        customer, attributes = "someone-new", {"age_band": "25-34", "occupation": "teacher"}
    state = customer_state(artifact, customer, attributes=attributes, new_history=new)
    consent = consents.get(customer)
    allowed = category_mask(consent, artifact.model.categories)
    for offer_id in ("o0001", "o0010", "o0042"):
        served = recommender.why(customer, offer_id, attributes).body
        expected = explain_why(artifact, state, allowed, offer_id, consent=consent)
        assert {k: v for k, v in served.items() if k not in ENVELOPE} == {
            k: v for k, v in expected.items() if k not in ("not_used", "categories_used")}
        assert served["categories_not_used"] == expected["not_used"]
        assert served["categories_used"] == expected["categories_used"]
    if case != "cold start" and level == "full":
        history = next(c for c in served["criteria"] if c["category"] == "interaction_history")
        assert history["data"].get("past_offers"), "history must split exactly by past offer"


# --- the consent cache ------------------------------------------------------------------------------
def test_a_request_that_read_the_old_record_cannot_refill_the_cache(redis_client, redis_prefix,
                                                                    consents):
    keys = Keys(redis_prefix)
    cache = ConsentCache(redis_client, keys, consents)
    consents.on_change = cache.invalidate
    segment = Consent(frozenset(ALL), "segment")
    consents.set(CUSTOMER, segment, actor="test", source="admin")

    # A request reads the cache (a miss: the change left a tombstone) and the database (segment) ...
    seen = redis_client.get(keys.consent(CUSTOMER)).decode()
    assert seen.startswith("!")
    stale = ConsentCache(redis_client, keys, _Frozen(segment))
    # ... the customer changes their consent meanwhile ...
    consents.set(CUSTOMER, NO_PERSONAL_DATA, actor="test", source="customer")
    # ... and the request fills the cache with what it read: refused, for an absent key too.
    assert stale.decide(CUSTOMER, seen).consent == segment
    assert stale.decide(CUSTOMER, None).consent == segment
    assert redis_client.get(keys.consent(CUSTOMER)).decode() not in (seen, None)
    assert redis_client.get(keys.consent(CUSTOMER)).startswith(b"!")
    # the next request reads the new record and caches it
    tombstone = redis_client.get(keys.consent(CUSTOMER)).decode()
    assert cache.decide(CUSTOMER, tombstone).consent == NO_PERSONAL_DATA
    cached = redis_client.get(keys.consent(CUSTOMER)).decode()
    assert cache.decide(CUSTOMER, cached).source == "cache"
    assert cache.decide(CUSTOMER, cached).consent == NO_PERSONAL_DATA


class _Frozen:
    """A consent store that answers what was read before a change (the slow request's view)."""

    def __init__(self, consent: Consent) -> None:
        self.consent = consent

    def read(self, customer_id: str) -> Consent:
        return self.consent


def test_an_unreadable_consent_record_means_no_personal_data_and_nothing_cached(
        redis_client, redis_prefix, tmp_path):
    keys = Keys(redis_prefix)
    broken = ConsentStore(make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}"),
                          Taxonomy.default())
    decision = ConsentCache(redis_client, keys, broken).decide(CUSTOMER, None)
    assert decision.consent == NO_PERSONAL_DATA and decision.source == "unavailable"
    assert redis_client.get(keys.consent(CUSTOMER)) is None


def test_offers_fail_closed_when_the_consent_store_is_down(redis_client, redis_prefix, tmp_path):
    from serving.app import close_app, create_app

    quiet_publish(small_artifact(), redis_client, redis_prefix)
    app = create_app({
        "TRUSTREC_REDIS_CLIENT": redis_client, "TRUSTREC_REDIS_PREFIX": redis_prefix,
        "TRUSTREC_DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'x.db'}",
        "TRUSTREC_API_KEYS": f"admin:{hash_key('k')}", "TRUSTREC_SECRET_KEY": "s" * 40,
    })
    client = app.test_client()
    body = client.get(f"/v1/customers/{CUSTOMER}/offers", headers={"X-API-Key": "k"}).get_json()
    assert body["personalization"] == "none" and body["categories_used"] == []
    assert body["consent"] == {"level": "none", "allowed": [], "available": False}
    assert client.get("/readyz").get_json()["checks"]["consent_store"]["ok"] is False
    response = client.get(f"/v1/customers/{CUSTOMER}/consent", headers={"X-API-Key": "k"})
    assert response.status_code == 503
    close_app(app)


# --- command line -----------------------------------------------------------------------------------
def trustrec(*args: str):
    return subprocess.run([sys.executable, "-m", "trustrec.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_publish_command(redis_client, redis_prefix, tmp_path):
    path = save_artifact(small_artifact(), tmp_path / "models")
    result = trustrec("publish", str(path), "--redis", redis_url(redis_client),
                      "--prefix", redis_prefix)
    assert result.returncode == 0, result.stderr
    assert small_artifact().version in result.stdout
    assert RedisModelStore(redis_client, redis_prefix).current_version() == small_artifact().version

    missing = trustrec("publish", str(tmp_path / "nothing"), "--redis", redis_url(redis_client),
                       "--prefix", redis_prefix)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("trustrec publish: error:")


def test_serve_refuses_production_and_points_to_gunicorn(monkeypatch, capsys):
    monkeypatch.setenv("TRUSTREC_ENV", "production")
    assert cli.main(["serve"]) == 2
    assert "gunicorn -c python:serving.gunicorn_conf 'serving.app:create_app()'" in (
        capsys.readouterr().err)


def test_keys_command_prints_a_key_and_its_hashed_entry(capsys):
    assert cli.main(["keys", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    key = out.split("it is not stored anywhere): ")[1].split()[0]
    entry = out.split("TRUSTREC_API_KEYS entry: ")[1].strip()
    [parsed] = parse_api_keys(entry)
    assert parsed.role == "admin" and parsed.digest == hash_key(key) and key not in entry
    assert key.startswith("trk_") and len(key) > 40


# --- production server ------------------------------------------------------------------------------
def test_the_documented_gunicorn_command_serves(redis_client, redis_prefix, tmp_path):
    quiet_publish(small_artifact(), redis_client, redis_prefix)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {
        "TRUSTREC_ENV": "production", "TRUSTREC_REDIS_URL": redis_url(redis_client),
        "TRUSTREC_REDIS_PREFIX": redis_prefix,
        "TRUSTREC_DATABASE_URL": f"sqlite:///{tmp_path / 'consent.db'}",
        "TRUSTREC_API_KEYS": f"storefront:{hash_key('k')}", "TRUSTREC_SECRET_KEY": "s" * 40,
        "TRUSTREC_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "TRUSTREC_RATE_LIMIT_CUSTOMER": "1/hour", "TRUSTREC_REFUSAL_DELAY_MS": "300",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "-c", "python:serving.gunicorn_conf", "serving.app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "gunicorn did not become ready"
            try:
                status, _ = get(port, "/readyz")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        for _ in range(4):  # both workers, most likely
            status, body = get(port, f"/v1/customers/{CUSTOMER}/offers?k=3", {"X-API-Key": "k"})
            assert status == 200 and len(json.loads(body)["offers"]) == 3
        status, metrics = get(port, "/metrics")
        # counted across the workers, whichever one answers the scrape
        assert ('trustrec_http_requests_total{endpoint="/v1/customers/<customer_id>/offers",'
                'method="GET",status="200"} 4.0') in metrics.decode()
        # what gunicorn refuses itself is answered in the API's JSON error form too
        for path, headers, status, field in (
                ("/v1/policy?q=" + "x" * 5000, {}, 414, "path"),
                ("/v1/policy", {f"X-Filler-{n}": "x" for n in range(120)}, 431, "headers")):
            got, body = get(port, path, headers)
            assert got == status and json.loads(body)["error"]["field"] == field, body
        # a customer's writes past the budget: 429 with Retry-After, whichever way each is refused
        _, token = post(port, f"/v1/customers/{CUSTOMER}/token", {}, {"X-API-Key": "k"})
        feedback = {"request_id": "r" * 32, "offer_id": "o0001", "kind": "clicked"}
        statuses = []
        for _ in range(4):  # the first spends the budget (an unknown request id: 404)
            status, body = post(port, "/v1/feedback", feedback,
                                {"Authorization": f"Bearer {json.loads(token)['token']}"})
            statuses.append(status)
            assert "error" in json.loads(body)
        assert statuses == [404, 429, 429, 429]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log = server.stdout.read().decode()
        server.stdout.close()
    assert "Using worker: serving.gunicorn_worker.SyncWorker" in log, log[-2000:]


def post(port: int, path: str, body: dict, headers: dict) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=json.dumps(body),
                           headers=headers | {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()

