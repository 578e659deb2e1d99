"""Redis loses everything (a restart without persistence): the service rebuilds it by itself from
the artifact store and the database, and meanwhile gives no personal answer it cannot stand by."""

from __future__ import annotations

import time

import test_api
from test_api import CUSTOMER, ids, key, offers, quiet_publish, renamed, small_artifact

from recommender.artifacts import save_artifact
from serving.redis_store import Keys

make_app = test_api.make_app  # the same fixture


def wipe(redis_client, prefix: str) -> None:
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


def healed(client, customer_id: str = CUSTOMER, timeout: float = 60) -> dict:
    """The first personal answer after the rebuild."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/customers/{customer_id}/offers", headers=key())
        if response.status_code == 200 and response.get_json()["personalization"] == "full":
            return response.get_json()
        time.sleep(0.2)
    raise AssertionError("the online store was not rebuilt")


def test_a_redis_that_lost_everything_rebuilds_itself(make_app, redis_client, redis_prefix,
                                                      audit_journal):
    save_artifact(small_artifact(), audit_journal.parent / "models")  # TRUSTREC_MODELS_DIR
    client = make_app().test_client()
    before = offers(client)
    assert before["personalization"] == "full"
    bought = ids(before)[0]
    assert client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(),
                       json={"offer_id": bought, "kind": "purchase"}).status_code == 201

    wipe(redis_client, redis_prefix)  # Redis restarted empty
    # the request that finds the store empty starts the rebuild and gets popular offers only
    during = client.get(f"/v1/customers/{CUSTOMER}/offers", headers=key())
    assert during.status_code == 200
    body = during.get_json()
    assert body["personalization"] == "none" and body["categories_used"] == []
    assert body["consent"]["available"] is False
    after = healed(client)
    assert after["model_version"] == before["model_version"]
    assert bought not in ids(after)  # the purchase recorded since training is back in history
    assert bought.encode() in redis_client.lrange(Keys(redis_prefix).history(CUSTOMER), 0, -1)


def test_a_rebuilt_store_restores_the_running_experiment(make_app, redis_client, redis_prefix,
                                                         audit_journal):
    """The experiment's version, share and start come back from the records database: each
    customer is in the same arm as before, and the outcomes are counted from the same start."""
    models = audit_journal.parent / "models"
    save_artifact(small_artifact(), models)
    challenger = renamed(small_artifact(1), "challenger-v1")
    save_artifact(challenger, models)
    app = make_app()
    client = app.test_client()
    quiet_publish(challenger, redis_client, redis_prefix, challenger=0.5,
                  records=app.extensions["trustrec"].engine)
    keys = Keys(redis_prefix)
    running = redis_client.get(keys.challenger)
    customers = [f"c{i:05d}" for i in range(20)]
    before = {c: offers(client, c)["arm"] for c in customers}
    assert set(before.values()) == {"champion", "challenger"}

    wipe(redis_client, redis_prefix)
    client.get(f"/v1/customers/{CUSTOMER}/offers", headers=key())  # finds it empty
    healed(client)
    deadline = time.monotonic() + 60
    while redis_client.get(keys.challenger) is None:  # the challenger comes after the champion
        assert time.monotonic() < deadline, "the experiment was not restored"
        time.sleep(0.2)
    assert redis_client.get(keys.challenger) == running  # version, share and start
    after = {}
    while len(after) < len(customers):  # once this worker has seen the challenger again
        assert time.monotonic() < deadline, after
        body = offers(client, customers[len(after)])
        if body["arm"] is not None:
            after[customers[len(after)]] = body["arm"]
    assert after == before


def test_a_worker_that_never_saw_a_model_answers_503_then_the_rebuilt_one(make_app, audit_journal):
    save_artifact(small_artifact(), audit_journal.parent / "models")
    client = make_app(published=None).test_client()
    first = client.get(f"/v1/customers/{CUSTOMER}/offers", headers=key())
    assert first.status_code == 503 and first.headers["Retry-After"]  # it starts the rebuild
    assert healed(client)["personalization"] == "full"


def test_while_redis_cannot_be_reached_offers_are_popular_ones(make_app):
    """Redis down (connections refused): the worker's model still answers, with nothing personal;
    personal answers come back with Redis."""
    import redis

    app = make_app()
    client = app.test_client()
    assert offers(client)["personalization"] == "full"
    store = app.extensions["trustrec"].store
    reachable = store.client
    store.client = redis.Redis(host="127.0.0.1", port=1)  # nothing there
    try:
        down = offers(client)
        assert down["personalization"] == "none" and down["consent"]["available"] is False
    finally:
        store.client = reachable
    assert offers(client)["personalization"] == "full"
