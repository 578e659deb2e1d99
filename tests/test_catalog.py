"""The live catalog through the real app, Redis and database: an offer marked unavailable is gone
from the next response of every worker, an added offer is served at once and scored exactly like
its peers, the change survives the loss of Redis, and every change is recorded."""

from __future__ import annotations

import numpy as np
import test_api
from test_api import CUSTOMER, ids, key, offers, small_artifact, token_for

from serving.redis_store import Keys

ADMIN = key("admin")
make_app = test_api.make_app  # the same fixture


def _availability(client, offer_id, available, headers=ADMIN):
    return client.put(f"/v1/admin/catalog/offers/{offer_id}/availability", headers=headers,
                      json={"available": available})


def test_an_unavailable_offer_leaves_every_worker_on_the_next_request(make_app):
    first, second = make_app().test_client(), make_app(published=None).test_client()
    best = ids(offers(first, query="?k=5"))
    assert ids(offers(second, query="?k=5")) == best
    response = _availability(first, best[0], False)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["offer"] == {"offer_id": best[0], "available": False, "added": False}
    for worker in (first, second):  # the other app learns it from Redis, not from its own write
        for customer in (CUSTOMER, "c00007", "someone-new"):
            assert best[0] not in ids(offers(worker, customer, "?k=59"))
    assert ids(offers(second, query="?k=5"))[:4] == best[1:]
    again = _availability(second, best[0], False).get_json()
    assert again["changed"] is False  # as it was: nothing recorded
    assert _availability(second, best[0], True).get_json()["changed"] is True
    assert ids(offers(first, query="?k=5")) == best


def test_an_added_offer_is_served_at_once_and_scored_as_its_peers_mean(make_app):
    app = make_app()
    client = app.test_client()
    artifact = small_artifact()
    category = str(artifact.offers["category"].iloc[0])
    response = client.post("/v1/admin/catalog/offers", headers=ADMIN, json={
        "offer_id": "new-1", "attributes": {"title": "Brand new thing", "category": category}})
    assert response.status_code == 201, response.get_json()
    offer = response.get_json()["offer"]
    assert offer["added"] and offer["available"]
    peers = [str(o) for o in artifact.offers.index[artifact.offers["category"] == category]]
    assert offer["scored_like"] == f"the {len(peers)} offers of category {category}"

    body = offers(client, query=f"?k=61&exclude_purchased=false&category={category}")
    served = {o["offer_id"]: o for o in body["offers"]}
    assert "new-1" in served and served["new-1"]["title"] == "Brand new thing"
    assert served["new-1"]["criteria"][0]["category"] == "new_offer"
    assert "until customers have bought it" in served["new-1"]["criteria"][0]["text"]
    # the score is linear in the offer's vector and bias: the peers' mean score, exactly
    mean = np.mean([served[o]["score"] for o in peers])
    assert abs(served["new-1"]["score"] - mean) < 1e-9
    # and it is explained like any other offer
    why = client.get(f"/v1/customers/{CUSTOMER}/offers/new-1/why", headers=key())
    assert why.status_code == 200, why.get_json()
    assert abs(why.get_json()["score"] - served["new-1"]["score"]) < 1e-12

    assert client.post("/v1/admin/catalog/offers", headers=ADMIN, json={
        "offer_id": "new-1", "attributes": {}}).status_code == 409
    trained = str(artifact.offers.index[0])
    assert client.post("/v1/admin/catalog/offers", headers=ADMIN, json={
        "offer_id": trained, "attributes": {}}).status_code == 409
    # withdrawn like any other
    assert _availability(client, "new-1", False).status_code == 200
    assert "new-1" not in ids(offers(client, query=f"?k=61&category={category}"))


def test_the_catalog_outlives_redis_and_every_change_is_recorded(make_app, redis_client,
                                                                 redis_prefix):
    client = make_app().test_client()
    best = ids(offers(client, query="?k=3"))[0]
    assert _availability(client, best, False).status_code == 200
    keys = Keys(redis_prefix)
    redis_client.delete(keys.catalog, keys.catalog_serial)  # Redis lost its copy
    fresh = make_app(published=None).test_client()  # a worker that never saw the change
    assert best not in ids(offers(fresh, query="?k=59"))  # re-seeded from the records
    assert redis_client.get(keys.catalog_serial) is not None
    listing = fresh.get("/v1/admin/catalog", headers=ADMIN).get_json()
    assert listing["unavailable"] == [best]
    assert [(c["offer_id"], c["change"]) for c in listing["changes"]] == [(best, "unavailable")]
    assert listing["changes"][0]["actor"].startswith("admin")


def test_catalog_changes_are_for_admins_and_bad_input_names_the_field(make_app):
    client = make_app().test_client()
    assert _availability(client, "o0001", False, headers=key()).status_code == 403
    token = token_for(client, CUSTOMER)
    assert client.get("/v1/admin/catalog", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 403
    response = _availability(client, "no-such-offer", False)
    assert response.status_code == 404 and response.get_json()["error"]["field"] == "offer_id"
    response = client.post("/v1/admin/catalog/offers", headers=ADMIN,
                           json={"offer_id": "x", "attributes": {"colour": "red"}})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "attributes.colour"
    response = client.put("/v1/admin/catalog/offers/o0001/availability", headers=ADMIN,
                          json={"available": "no"})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "available"


def test_a_catalog_that_cannot_be_reseeded_is_not_retried_on_every_request(redis_client,
                                                                           redis_prefix):
    from serving.catalog import RESEED_BACKOFF_SECONDS, LiveCatalog
    from serving.records.catalog import CatalogState

    now, calls = [100.0], []

    def unreachable() -> CatalogState:
        calls.append(now[0])
        raise OSError("database down")

    catalog = LiveCatalog(redis_client, Keys(redis_prefix), load=unreachable,
                          clock=lambda: now[0])
    assert catalog.follow(None) == CatalogState()  # the copy held (none yet) stays in force
    for step in (0.5, 1.5, RESEED_BACKOFF_SECONDS - 1):
        now[0] = 100.0 + step
        catalog.follow(None)
    assert calls == [100.0]
    now[0] = 100.0 + RESEED_BACKOFF_SECONDS
    catalog.load = lambda: CatalogState(7, frozenset({"o1"}))
    assert catalog.follow(None).unavailable == {"o1"}
    assert int(redis_client.get(Keys(redis_prefix).catalog_serial)) == 7
