"""Similar offers (product page) and anonymous session offers through the real app: every offer
carries a criterion whose numbers are recounted from the training history, withdrawn offers never
appear, the visitor's views are not stored, and bad input names its field."""

from __future__ import annotations

import re

import sqlalchemy as sa
import test_api
from test_api import key, small_artifact

from serving.records.audit import served_table

make_app = test_api.make_app  # the same fixture
client = test_api.client
app = test_api.app


def _buyers(artifact) -> dict[str, set[str]]:
    pairs = artifact.history[["customer_id", "offer_id"]].astype(str).drop_duplicates()
    return pairs.groupby("offer_id")["customer_id"].agg(set).to_dict()


def test_similar_offers_carry_counts_recounted_from_the_history(client):
    artifact = small_artifact()
    buyers = _buyers(artifact)
    titles = artifact.offers["title"].astype(str).to_dict()
    offer_id = max(buyers, key=lambda o: len(buyers[o]))  # well bought: a full list
    response = client.get(f"/v1/offers/{offer_id}/similar?k=8", headers=key())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["personalization"] == "none" and body["categories_used"] == []
    assert body["title"] == titles[offer_id] and len(body["offers"]) == 8
    assert offer_id not in [o["offer_id"] for o in body["offers"]]
    scores = [o["score"] for o in body["offers"]]
    assert scores == sorted(scores, reverse=True)
    for offer in body["offers"]:
        (criterion,) = offer["criteria"]
        assert criterion["category"] == "bought_together"
        n, b = map(int, re.match(r"Bought by (\d+) of the (\d+) customers who bought ",
                                 criterion["text"]).groups())
        assert criterion["text"].endswith(titles[offer_id])
        assert n == len(buyers[offer_id] & buyers[offer["offer_id"]]) > 0
        assert b == len(buyers[offer_id])


def test_an_offer_nobody_bought_yet_gets_the_popular_ones_of_its_category(client):
    artifact = small_artifact()
    buyers = _buyers(artifact)
    category = str(artifact.offers["category"].iloc[0])
    assert client.post("/v1/admin/catalog/offers", headers=key("admin"), json={
        "offer_id": "new-1", "attributes": {"title": "New", "category": category}},
    ).status_code == 201
    body = client.get("/v1/offers/new-1/similar?k=4", headers=key()).get_json()
    same = artifact.offers.index[artifact.offers["category"] == category].astype(str)
    expected = sorted(same, key=lambda o: (-len(buyers.get(o, ())), list(same).index(o)))[:4]
    assert [o["offer_id"] for o in body["offers"]] == expected
    for offer in body["offers"]:
        (criterion,) = offer["criteria"]
        assert criterion["category"] == "popularity"
        assert criterion["text"] == (f"Popular in category {category}: bought by "
                                     f"{len(buyers.get(offer['offer_id'], ()))} customers")


def test_session_offers_name_the_views_behind_them_and_store_none(app, client):
    artifact = small_artifact()
    viewed = [str(o) for o in artifact.offers.index[:3]]
    response = client.get(f"/v1/session/offers?viewed={','.join(viewed)}&k=6", headers=key())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["personalization"] == "session" and len(body["offers"]) == 6
    titles = {str(artifact.offers.loc[o, "title"]) for o in viewed}
    for offer in body["offers"]:
        assert offer["offer_id"] not in viewed
        criteria = offer["criteria"]
        if criteria[0]["category"] == "viewed":
            assert any(t in criteria[0]["text"] for t in titles)
            assert sum(c["share"] for c in criteria) <= 1 + 1e-9
            shares = [c["share"] for c in criteria]
            assert shares == sorted(shares, reverse=True)
    services = app.extensions["trustrec"]
    services.audit.flush()
    with services.engine.connect() as connection:
        row = connection.execute(sa.select(served_table).where(
            served_table.c.endpoint == "session")).one()
    assert row.customer_id == "" and row.params == {"k": 6} and row.reasons == {}
    assert not any(v in str(tuple(row)) for v in viewed if v not in [
        o["offer_id"] for o in body["offers"]])


def test_withdrawn_offers_appear_in_no_related_list(client):
    artifact = small_artifact()
    buyers = _buyers(artifact)
    offer_id = max(buyers, key=lambda o: len(buyers[o]))
    first = client.get(f"/v1/offers/{offer_id}/similar?k=3", headers=key()).get_json()
    gone = first["offers"][0]["offer_id"]
    assert client.put(f"/v1/admin/catalog/offers/{gone}/availability", headers=key("admin"),
                      json={"available": False}).status_code == 200
    again = client.get(f"/v1/offers/{offer_id}/similar?k=59", headers=key()).get_json()
    assert gone not in [o["offer_id"] for o in again["offers"]]
    session = client.get(f"/v1/session/offers?viewed={offer_id}&k=59", headers=key()).get_json()
    assert gone not in [o["offer_id"] for o in session["offers"]]


def test_related_offers_bad_input_names_the_field(client):
    response = client.get("/v1/offers/no-such-offer/similar", headers=key())
    assert response.status_code == 404 and response.get_json()["error"]["field"] == "offer_id"
    response = client.get("/v1/session/offers?viewed=no-such-offer", headers=key())
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "viewed"
    response = client.get("/v1/offers/o0001/similar?k=0", headers=key())
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "k"
    assert client.get("/v1/offers/o0001/similar").status_code == 401


def test_a_product_page_puts_offers_bought_with_it_first_ranked_for_the_customer(client):
    artifact = small_artifact()
    buyers = _buyers(artifact)
    page = max(buyers, key=lambda o: len(buyers[o]))
    plain = client.get("/v1/customers/c00003/offers?k=59&exclude_purchased=false",
                       headers=key()).get_json()
    personal = {o["offer_id"]: o["score"] for o in plain["offers"]}
    response = client.get(f"/v1/customers/c00003/offers?k=5&context={page}", headers=key())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    together = [o for o in body["offers"] if o["criteria"][0]["category"] == "bought_together"]
    assert len(together) == 5
    # the customer's own order among the offers bought with the page's, scores exact
    assert [o["score"] for o in together] == sorted((o["score"] for o in together), reverse=True)
    for offer in together:
        assert offer["score"] == personal[offer["offer_id"]]
        n = int(re.match(r"Bought by (\d+) of", offer["criteria"][0]["text"])[1])
        assert n == len(buyers[page] & buyers[offer["offer_id"]])
        assert offer["criteria"][0]["share"] == 0.0  # the personal score ranks, not the count
    assert body["personalization"] == "full"
    # consent applies as everywhere: without history, nothing personal
    client.put("/v1/customers/c00003/consent", headers=key(),
               json={"allowed": [], "level": "none"})
    body = client.get(f"/v1/customers/c00003/offers?k=5&context={page}", headers=key()).get_json()
    assert body["personalization"] == "none" and body["categories_used"] == []
    assert body["offers"][0]["criteria"][0]["category"] == "bought_together"
    for bad in ("no-such-offer", ""):
        response = client.get(f"/v1/customers/c00003/offers?context={bad}", headers=key())
        assert response.status_code == 400 and response.get_json()["error"]["field"] == "context"
    response = client.get(f"/v1/customers/c00003/offers?context={page}&calibrate=0.5",
                          headers=key())
    assert response.status_code == 400


def test_the_shops_exclusion_rules_hold_on_related_lists(make_app, tmp_path):
    artifact = small_artifact()
    buyers = _buyers(artifact)
    page = max(buyers, key=lambda o: len(buyers[o]))
    first = make_app().test_client().get(f"/v1/offers/{page}/similar?k=3", headers=key())
    excluded = first.get_json()["offers"][0]["offer_id"]
    rules = tmp_path / "rules.toml"
    rules.write_text(f'version = "no-{excluded}"\n[exclude]\noffers = ["{excluded}"]\n')
    client = make_app(published=None, TRUSTREC_RULES=str(rules)).test_client()
    similar = client.get(f"/v1/offers/{page}/similar?k=59", headers=key()).get_json()
    assert similar["rules_version"] == f"no-{excluded}"
    assert excluded not in [o["offer_id"] for o in similar["offers"]]
    session = client.get(f"/v1/session/offers?viewed={page}&k=59", headers=key()).get_json()
    assert excluded not in [o["offer_id"] for o in session["offers"]]
