"""The customer's controls: "not relevant" and "see less like this" change the very next offers,
"don't use this purchase" takes a past offer out of the history part, each can be undone; the data
export holds every record the database has of the customer."""

from __future__ import annotations

import json

import sqlalchemy as sa
import test_api
from test_api import CUSTOMER, bearer, ids, key, offers, small_artifact, token_for

from recommender.taxonomy import HISTORY

make_app, app, client = test_api.make_app, test_api.app, test_api.client  # the same fixtures


def control(client, kind: str, value: str, headers=None, status=201) -> dict:
    response = client.post(f"/v1/customers/{CUSTOMER}/controls", headers=headers or key(),
                           json={"kind": kind, "value": value})
    assert response.status_code == status, response.get_json()
    return response.get_json()


def undo(client, kind: str, value: str) -> None:
    response = client.delete(f"/v1/customers/{CUSTOMER}/controls/{kind}/{value}", headers=key())
    assert response.status_code == 200, response.get_json()


def test_not_relevant_leaves_the_offer_out_until_undone(client):
    first = ids(offers(client, query="?k=5"))[0]
    body = offers(client, query="?k=5")
    feedback = client.post("/v1/feedback", headers=key(), json={
        "request_id": body["request_id"], "offer_id": first, "kind": "not_relevant",
        "customer_id": CUSTOMER})
    assert feedback.status_code == 201
    assert first not in ids(offers(client, query="?k=5"))  # the very next request
    listed = client.get(f"/v1/customers/{CUSTOMER}/controls", headers=key()).get_json()
    [item] = listed["controls"]
    assert (item["kind"], item["value"]) == ("not_relevant", first) and "left out" in item["text"]
    undo(client, "not_relevant", first)
    assert ids(offers(client, query="?k=5"))[0] == first
    assert client.delete(f"/v1/customers/{CUSTOMER}/controls/not_relevant/{first}",
                         headers=key()).status_code == 404


def test_see_less_places_a_category_lower_and_says_so(client):
    artifact = small_artifact()
    category = artifact.offers["category"]

    def share(body) -> float:
        return sum(category[o] == target for o in ids(body)) / len(ids(body))

    before = offers(client, query="?k=20")
    target = category[ids(before)[0]]
    control(client, "see_less", target)
    after = offers(client, query="?k=20")
    assert share(after) < share(before)
    for offer in after["offers"]:
        said = [c for c in offer["criteria"] if c["category"] == "your_choice"]
        if category[offer["offer_id"]] == target:
            assert said and said[0]["text"].startswith(f"You asked to see less of {target}")
        else:
            assert not said
    undo(client, "see_less", target)
    assert ids(offers(client, query="?k=20")) == ids(before)


def test_a_purchase_left_out_is_named_nowhere_and_counts_for_nothing(client):
    token = token_for(client, CUSTOMER)
    history = small_artifact().histories[CUSTOMER]
    body = offers(client, query="?k=5", headers=bearer(token))
    named = [p["offer_id"] for o in body["offers"] for c in o["criteria"]
             for p in c.get("data", {}).get("past_offers", [])]
    why = client.get(body["offers"][0]["why"], headers=bearer(token)).get_json()
    past = next(c for c in why["criteria"] if c["category"] == HISTORY)["data"]["past_offers"]
    gift = past[0]["offer_id"]
    assert gift in history and (named or past)
    listed = control(client, "leave_out", gift, headers=bearer(token))
    assert "no longer counts among your purchases" in listed["controls"][0]["text"]
    for offer in offers(client, query="?k=10", headers=bearer(token))["offers"]:
        assert offer["offer_id"] != gift  # still bought: not offered again
        why = client.get(offer["why"], headers=bearer(token)).get_json()
        for criterion in why["criteria"]:
            assert gift not in [p["offer_id"] for p in criterion["data"].get("past_offers", [])]
            if criterion["category"] == HISTORY:  # the history part counts one purchase fewer
                assert criterion["data"]["past_offer_count"] == len(history) - 1
    choices = why.get("your_choices", [])
    assert any(c.startswith("Not used, as you asked") for c in choices)
    if small_artifact().history_mode in ("identity", "blend"):  # honest about the learned taste
        assert any("until the model is trained again" in c for c in choices)
    not_bought = next(o for o in small_artifact().offers.index if o not in history)
    control(client, "leave_out", not_bought, headers=bearer(token), status=400)


def test_controls_refuse_what_does_not_exist(client):
    control(client, "not_relevant", "no-such-offer", status=400)
    control(client, "see_less", "spaceships", status=400)
    control(client, "leave_out", "no-such-offer", status=400)
    other = client.post(f"/v1/customers/{test_api.OTHER}/controls",
                        headers=bearer(token_for(client, CUSTOMER)),
                        json={"kind": "see_less", "value": "travel"})
    assert other.status_code == 403


def test_the_export_holds_every_record_of_the_customer(app, client):
    body = offers(client)
    client.post("/v1/feedback", headers=key(), json={
        "request_id": body["request_id"], "offer_id": ids(body)[0], "kind": "see_less",
        "customer_id": CUSTOMER})
    test_api.put_consent(client, test_api.ALL, "full")
    client.post(f"/v1/customers/{CUSTOMER}/interactions", headers=key(),
                json={"offer_id": ids(body)[1], "kind": "click"})
    response = client.get(f"/v1/customers/{CUSTOMER}/data-export", headers=key())
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    export = response.get_json()
    services = app.extensions["trustrec"]
    services.audit.flush()
    # an independent dump: every table of the database with a customer_id column, by raw SQL
    engine = services.engine
    dumped = {}
    with engine.connect() as connection:
        for table in sa.inspect(engine).get_table_names():
            columns = [c["name"] for c in sa.inspect(engine).get_columns(table)]
            if "customer_id" in columns:
                dumped[table] = connection.execute(sa.text(
                    f'SELECT count(*) FROM "{table}" WHERE customer_id = :c'), {"c": CUSTOMER}
                ).scalar()
    assert {table: len(rows) for table, rows in export["records"].items()} == dumped
    assert all(dumped[t] for t in ("consent", "customer_controls", "feedback", "interactions",
                                   "served_responses"))
    assert export["model"]["attributes"] == {k: str(v) for k, v in
                                            small_artifact().customer_attributes(CUSTOMER).items()}


def test_a_corrected_attribute_changes_the_next_offers_and_is_the_value_shown(client):
    held = small_artifact().customer_attributes(CUSTOMER)
    before = offers(client, query="?k=10")
    listed = client.get(f"/v1/customers/{CUSTOMER}/attributes", headers=key()).get_json()
    region = next(a for a in listed["attributes"] if a["attribute"] == "region")
    assert region["value"] == held["region"] and region["source"] == "model"
    corrected = "capital" if held["region"] != "capital" else "north"
    token = token_for(client, CUSTOMER)
    response = client.put(f"/v1/customers/{CUSTOMER}/attributes", headers=bearer(token),
                          json={"values": {"region": corrected, "occupation": None}})
    assert response.status_code == 200, response.get_json()
    rows = {a["attribute"]: a for a in response.get_json()["attributes"]}
    assert (rows["region"]["value"], rows["region"]["source"]) == (corrected, "corrected")
    assert rows["region"]["held_by_model"] == held["region"]
    assert (rows["occupation"]["value"], rows["occupation"]["source"]) == (None, "cleared")
    assert [h["attribute"] for h in response.get_json()["history"]] == ["region", "occupation"]
    after = offers(client, query="?k=10")
    assert ids(after) != ids(before) or [o["score"] for o in after["offers"]] != \
        [o["score"] for o in before["offers"]]
    located = []
    for offer in after["offers"]:
        why = client.get(offer["why"], headers=key()).get_json()
        located += [c["data"] for c in why["criteria"] if c["category"] == "location"]
        assert f'"occupation": "{held["occupation"]}"' not in json.dumps(why)  # cleared: unused
    assert located and all(data == {"region": corrected} for data in located)
    bad = client.put(f"/v1/customers/{CUSTOMER}/attributes", headers=key(),
                     json={"values": {"shoe_size": "42"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "values.shoe_size"


def test_a_customer_asks_for_a_person_without_an_offer_and_follows_the_case(client):
    token = token_for(client, CUSTOMER)
    url = f"/v1/customers/{CUSTOMER}/cases"
    opened = client.post(url, headers=bearer(token), json={"text": "Why so many suitcases?"})
    assert opened.status_code == 201
    [case] = opened.get_json()["cases"]
    assert (case["kind"], case["offer_id"], case["status"]) == ("talk_to_person", None, "open")
    staff = client.patch(f"/v1/admin/cases/{case['case_id']}", headers=key("admin"),
                         json={"status": "in_progress", "note": "internal: call back"})
    assert staff.status_code == 200
    followed = client.get(url, headers=bearer(token)).get_json()["cases"]
    assert followed[0]["status"] == "in_progress" and "note" not in followed[0]
    assert client.post(url, headers=bearer(token), json={"text": ""}).status_code == 400
    other = client.get(f"/v1/customers/{test_api.OTHER}/cases", headers=bearer(token))
    assert other.status_code == 403
