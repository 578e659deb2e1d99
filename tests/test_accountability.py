"""Transparency and accountability on the real app (real Redis, SQLite): the audit trail records
every served response (also under concurrent load and with a full queue), data usage, retention
purge, feedback and cases, policy and model card, public statistics recounted from the records,
and erasure leaving no trace of the customer."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import test_api
from test_api import CUSTOMER, OTHER, bearer, key, offers, put_consent, small_artifact, token_for

from serving.api.accountability import compute_stats
from serving.records.audit import (
    AuditWriter,
    cases_table,
    erased_ids,
    erasures_table,
    feedback_table,
    is_erased,
    purge,
    served_table,
    subject_hash,
)
from serving.records.database import create_schema, make_engine, metadata
from serving.served import ServedRecord
from trustrec import cli

make_app, app, client = test_api.make_app, test_api.app, test_api.client  # the same fixtures


def services(app):
    return app.extensions["trustrec"]


def rows(app, table) -> list:
    services(app).audit.flush()
    with services(app).engine.connect() as connection:
        return connection.execute(sa.select(table)).all()


def served(client, customer_id=CUSTOMER, k=3, headers=None) -> dict:
    return offers(client, customer_id, f"?k={k}", headers=headers)


def post_feedback(client, body, headers=None, status=201) -> dict:
    response = client.post("/v1/feedback", json=body, headers=headers or key())
    assert response.status_code == status, response.get_json()
    return response.get_json()


# --- the audit trail -----------------------------------------------------------------------------
def test_every_served_response_is_recorded_with_what_was_used(app, client):
    body = served(client)
    why = client.get(body["offers"][0]["why"], headers=key()).get_json()
    records = {r.request_id: r for r in rows(app, served_table)}
    assert set(records) == {body["request_id"], why["request_id"]}
    record = records[body["request_id"]]
    assert record.customer_id == CUSTOMER and record.endpoint == "offers"
    assert record.model_version == body["model_version"] == small_artifact().version
    assert json.loads(record.categories_used) == body["categories_used"]
    assert record.personalization == "full" and record.n_offers == 3
    assert record.latency_ms is not None and record.latency_ms > 0
    payload = dict(record._mapping)  # the audit fields are columns
    assert payload["consent"] == body["consent"]
    assert payload["offers"] == [[o["offer_id"], o["score"]] for o in body["offers"]]
    assert payload["reasons"] == {o["offer_id"]: o["criteria"] for o in body["offers"]}
    assert all(payload["reasons"].values())
    assert records[why["request_id"]].endpoint == "why"
    why_reasons = records[why["request_id"]].reasons
    assert why_reasons == {why["offer_id"]: why["criteria"][:2]}


def test_an_audit_record_exists_for_every_response_under_concurrent_load(app):
    threads, per_thread, seen, failures = 8, 15, [], []

    def work(n: int) -> None:
        local = app.test_client()
        for i in range(per_thread):
            customer = f"c{(n * per_thread + i) % 300:05d}"
            response = local.get(f"/v1/customers/{customer}/offers?k=2", headers=key())
            if response.status_code != 200:
                failures.append(response.status_code)
            else:
                seen.append(response.get_json()["request_id"])

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures
    recorded = [r.request_id for r in rows(app, served_table)]
    assert len(recorded) == len(seen) == threads * per_thread
    assert set(recorded) == set(seen)


def test_a_full_queue_blocks_briefly_then_writes_synchronously_and_says_so(make_app, caplog):
    app = make_app(TRUSTREC_AUDIT_QUEUE_SIZE=1, TRUSTREC_AUDIT_BLOCK_MS=1)
    client = app.test_client()
    writer = services(app).audit
    gate, original = threading.Event(), writer._write_retrying
    writer._write_retrying = lambda batch: (gate.wait(10), original(batch))  # a stalled writer
    seen = [served(client, k=1)["request_id"] for _ in range(4)]
    assert writer.queue_full_total >= 2
    assert "audit queue full" in caplog.text
    metrics = client.get("/metrics").get_data(as_text=True)
    line = next(x for x in metrics.splitlines() if x.startswith("trustrec_audit_queue_full_total"))
    assert float(line.split()[-1]) == writer.queue_full_total
    assert writer.flush(timeout=0.05) is False  # a stalled database does not hang readers
    gate.set()
    assert {r.request_id for r in rows(app, served_table)} == set(seen)  # none dropped


def test_the_writer_flushes_on_close_and_a_failed_sync_write_is_an_error(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    create_schema(engine)
    writer = AuditWriter(engine, queue_size=10)
    for i in range(5):
        writer.submit(_record(f"r{i}", "x", time.time()), 1.0)
    writer.close()
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(served_table)).scalar() == 5
    with pytest.raises(sa.exc.IntegrityError):  # closed: written in the caller, errors raise
        writer.submit(_record("r0", "x", time.time()), 1.0)


def test_the_writer_batches_what_arrives_while_it_lingers_and_a_flush_cuts_it_short(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    create_schema(engine)
    writer = AuditWriter(engine, linger_ms=10_000)
    batches, write = [], writer._write
    writer._write = lambda rows: (batches.append(len(rows)), write(rows))
    for i in range(5):
        writer.submit(_record(f"r{i}", "x", time.time()), 1.0)
    started = time.monotonic()
    assert writer.flush(timeout=5)
    assert time.monotonic() - started < 2  # not the 10 s linger
    assert batches == [5]  # one transaction
    writer.close()


def _record(request_id: str, customer_id: str, served_at: float) -> ServedRecord:
    return ServedRecord(
        request_id=request_id, served_at=served_at, endpoint="offers", actor="test",
        customer_id=customer_id, model_version="v1", personalization="full",
        consent={"level": "full", "allowed": ["profile"], "available": True},
        consent_source="store", categories_used=["profile"], offers=[("o1", 1.5)])


def test_retention_purge_and_its_command(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    create_schema(engine)
    writer = AuditWriter(engine)
    old, recent = time.time() - 40 * 86400, time.time() - 86400
    writer.submit(_record("old", "x", old))
    writer.submit(_record("recent", "x", recent))
    writer.close()
    assert purge(engine, 60) == {"served_responses": 0, "feedback": 0, "cases": 0}
    assert cli.main(["purge", "--database-url", url, "--days", "30"]) == 0
    assert "served_responses 1" in capsys.readouterr().out
    with engine.connect() as connection:
        assert connection.execute(sa.select(served_table.c.request_id)).scalars().all() == ["recent"]
    assert cli.main(["purge", "--database-url", url, "--days", "0"]) == 2


# --- data usage ----------------------------------------------------------------------------------
def test_data_usage_says_what_was_used_when_and_by_which_model(client):
    first = served(client)
    put_consent(client, ["profile", "location"], "segment")
    second = served(client)
    served(client, OTHER)
    token = token_for(client, CUSTOMER)
    response = client.get(f"/v1/customers/{CUSTOMER}/data-usage", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["responses"] == 2
    assert [r["request_id"] for r in body["records"]] == [second["request_id"],
                                                          first["request_id"]]
    assert body["records"][0]["categories_used"] == second["categories_used"]
    assert body["model_versions"] == [small_artifact().version]
    by_category = {c["category"]: c for c in body["categories"]}
    assert by_category["interaction_history"]["responses"] == 1
    assert by_category["profile"]["responses"] == 2
    assert "automated system" in body["summary"] and "2 times" in body["summary"]
    # a period without records, limits, and refusals
    later = int(time.time()) + 3600
    empty = client.get(f"/v1/customers/{CUSTOMER}/data-usage?since={later}&until={later + 60}",
                       headers=key()).get_json()
    assert empty["responses"] == 0 and "none of your data was used" in empty["summary"]
    limited = client.get(f"/v1/customers/{CUSTOMER}/data-usage?limit=1", headers=key())
    assert len(limited.get_json()["records"]) == 1 and limited.get_json()["truncated"]
    for query, field in (("?since=yesterday", "since"), ("?limit=0", "limit"),
                         ("?bogus=1", "bogus"), (f"?since={later}&until={later}", "since")):
        response = client.get(f"/v1/customers/{CUSTOMER}/data-usage{query}", headers=key())
        assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    other = client.get(f"/v1/customers/{OTHER}/data-usage", headers=bearer(token))
    assert other.status_code == 403
    assert client.get(f"/v1/customers/{CUSTOMER}/data-usage").status_code == 401


# --- feedback and cases ----------------------------------------------------------------------------
def test_feedback_is_recorded_and_reports_and_handoffs_open_cases(app, client):
    body = served(client)
    offer = body["offers"][0]["offer_id"]
    token = token_for(client, CUSTOMER)
    clicked = post_feedback(client, {"request_id": body["request_id"], "offer_id": offer,
                                     "kind": "clicked"}, bearer(token))
    assert clicked["case_id"] is None and clicked["feedback_for"] == body["request_id"]
    report = post_feedback(client, {"request_id": body["request_id"], "offer_id": offer,
                                    "kind": "report", "text": "offensive title",
                                    "customer_id": CUSTOMER})
    handoff = post_feedback(client, {"request_id": body["request_id"], "offer_id": offer,
                                     "kind": "talk_to_person"}, bearer(token))
    assert report["case_id"] and handoff["case_id"] and "person" in handoff["message"]
    assert len(rows(app, feedback_table)) == 3

    listed = client.get("/v1/admin/cases", headers=key("admin"))
    assert listed.status_code == 200
    cases = listed.get_json()["cases"]
    assert {c["case_id"] for c in cases} == {report["case_id"], handoff["case_id"]}
    assert {c["status"] for c in cases} == {"open"}
    assert next(c for c in cases if c["kind"] == "report")["text"] == "offensive title"
    path = f"/v1/admin/cases/{handoff['case_id']}"
    moved = client.patch(path, json={"status": "in_progress", "note": "called back"},
                         headers=key("admin"))
    assert moved.status_code == 200 and moved.get_json()["case"]["resolved_at"] is None
    done = client.patch(path, json={"status": "resolved"}, headers=key("admin")).get_json()
    assert done["case"]["status"] == "resolved" and done["case"]["resolved_at"]
    assert done["case"]["note"] == "called back"
    open_only = client.get("/v1/admin/cases?status=open", headers=key("admin")).get_json()
    assert [c["case_id"] for c in open_only["cases"]] == [report["case_id"]]
    # who may see and change cases, and what they may send
    assert client.get("/v1/admin/cases", headers=key()).status_code == 403
    assert client.get("/v1/admin/cases", headers=bearer(token)).status_code == 403
    assert client.patch(path, json={"status": "done"}, headers=key("admin")).status_code == 400
    assert client.patch("/v1/admin/cases/nope", json={"status": "closed"},
                        headers=key("admin")).status_code == 404
    assert client.get("/v1/admin/cases?status=x", headers=key("admin")).status_code == 400


def test_feedback_is_refused_for_unknown_or_other_customers_requests(client):
    mine = served(client)
    theirs = served(client, OTHER)
    offer = mine["offers"][0]["offer_id"]
    token = token_for(client, CUSTOMER)

    def refused(body, status, field, headers=None):
        error = post_feedback(client, body, headers or bearer(token), status)["error"]
        assert error["field"] == field, error

    refused({"request_id": "no-such-request", "offer_id": offer, "kind": "clicked"}, 404,
            "request_id")
    refused({"request_id": theirs["request_id"], "offer_id": theirs["offers"][0]["offer_id"],
             "kind": "clicked"}, 404, "request_id")
    refused({"request_id": theirs["request_id"], "offer_id": theirs["offers"][0]["offer_id"],
             "kind": "clicked", "customer_id": CUSTOMER}, 404, "request_id", key())
    refused({"request_id": mine["request_id"], "offer_id": offer, "kind": "clicked",
             "customer_id": OTHER}, 403, "customer_id")
    refused({"request_id": mine["request_id"], "offer_id": "not-served", "kind": "clicked"}, 400,
            "offer_id")
    refused({"request_id": mine["request_id"], "offer_id": offer, "kind": "loved"}, 400, "kind")
    refused({"request_id": mine["request_id"], "offer_id": offer, "kind": "report"}, 400, "text")
    refused({"request_id": mine["request_id"], "offer_id": offer, "kind": "clicked",
             "extra": 1}, 400, "extra")
    refused({"request_id": mine["request_id"], "offer_id": offer, "kind": "clicked"}, 400,
            "customer_id", key())
    assert client.post("/v1/feedback", json={"request_id": mine["request_id"]}).status_code == 401


def test_feedback_on_a_record_another_worker_is_still_writing_is_taken_at_once(make_app):
    """A signed request id proves whose response it is: the feedback is recorded at once, and the
    writer of the response's record later settles whether the offer named was served."""
    serving_worker, feedback_worker = make_app(), make_app(published=None)  # one DB, one Redis
    request_id = services(serving_worker).request_ids.mint(CUSTOMER)
    client = feedback_worker.test_client()
    for offer in ("o0001", "o0002"):
        response = client.post("/v1/feedback", headers=key(), json={
            "request_id": request_id, "offer_id": offer, "kind": "clicked",
            "customer_id": CUSTOMER})
        assert response.status_code == 201, response.get_json()
    assert [r.offer_served for r in rows(feedback_worker, feedback_table)] == [None, None]
    services(serving_worker).on_served(ServedRecord(
        request_id=request_id, served_at=time.time(), endpoint="offers", actor="storefront",
        customer_id=CUSTOMER, model_version="v", personalization="full", consent={},
        consent_source="record", categories_used=[], offers=[("o0001", 1.0)], params={},
        reasons={}))
    assert services(serving_worker).audit.flush()
    settled = {r.offer_id: r.offer_served for r in rows(feedback_worker, feedback_table)}
    assert settled == {"o0001": True, "o0002": False}
    stats = compute_stats(services(feedback_worker).engine, datetime.now(UTC))
    assert stats["windows"]["all"]["feedback"] == 1  # the offer never served counts for nothing


def test_request_ids_are_refused_for_other_customers_when_tampered_or_too_old(app):
    ids = services(app).request_ids
    minted = ids.mint(CUSTOMER)
    assert ids.is_signed(minted) and ids.verify(minted, CUSTOMER)
    assert not ids.verify(minted, OTHER)
    tampered = minted[:-1] + ("0" if minted[-1] != "0" else "1")
    assert not ids.verify(tampered, CUSTOMER)
    old = ids.mint(CUSTOMER, now=time.time() - ids.max_age_seconds - 3600)
    assert not ids.verify(old, CUSTOMER)
    assert not ids.is_signed(str(uuid.uuid4())) and not ids.verify(str(uuid.uuid4()), CUSTOMER)


# --- policy and model card -------------------------------------------------------------------------
def test_policy_and_model_card_are_public(make_app, tmp_path):
    artifact = small_artifact()
    audits = tmp_path / "audits"
    (audits / artifact.version).mkdir(parents=True)
    (audits / artifact.version / "audit.md").write_text("# Fairness audit\nno large gaps")
    client = make_app(TRUSTREC_AUDITS_DIR=str(audits), TRUSTREC_AUDIT_RETENTION_DAYS=90,
                      TRUSTREC_CONTACT="Call 0800 123 456").test_client()
    response = client.get("/v1/policy")
    assert response.status_code == 200 and "public" in response.headers["Cache-Control"]
    body = response.get_json()
    assert [c["category"] for c in body["categories"]] == list(test_api.ALL)
    assert all(c["purpose"] for c in body["categories"])
    assert [level["level"] for level in body["levels"]] == ["full", "segment", "none"]
    assert body["retention"]["audit_days"] == 90 and "90 days" in body["retention"]["text"]
    assert body["contact"]["text"] == "Call 0800 123 456"
    assert body["opt_out"]["method"] == "PUT" and body["automated"] is True
    card = body["model_card"]
    assert card["version"] == artifact.version
    assert card["trained_at"] == artifact.manifest["created_at"]
    assert card["data"] == artifact.manifest["counts"]
    assert card["metrics"]["test"] == artifact.manifest["metrics"]["test"]
    assert card["fairness_audit"].startswith("# Fairness audit")
    assert "does_not_use" in card
    # the main parameters, with their importance in the live model (computed at publish)
    parameters = {p["parameter"]: p for p in body["main_parameters"]}
    assert list(parameters) == ["popularity", *artifact.model.categories, "business_rules",
                                "calibration"]
    scored = [p["importance"] for p in body["main_parameters"][:-2]]
    assert sum(scored) == pytest.approx(1.0) and all(0 <= s <= 1 for s in scored)
    assert parameters["business_rules"]["importance"] is None
    assert parameters["business_rules"]["in_force"] is False
    assert all(p["text"] for p in body["main_parameters"])


def test_policy_without_a_model_still_answers(make_app):
    body = make_app(None).test_client().get("/v1/policy").get_json()
    assert body["model_card"] is None and body["main_parameters"] is None and body["categories"]


# --- public statistics -----------------------------------------------------------------------------
def test_statistics_agree_with_a_recount_from_the_records(app, client):
    bodies = [served(client, f"c{i:05d}", k=4) for i in range(6)]
    client.get(bodies[0]["offers"][0]["why"], headers=key())
    for i, kind in enumerate(("clicked", "clicked", "purchased", "dismissed", "not_relevant")):
        body = bodies[i]
        post_feedback(client, {"request_id": body["request_id"], "customer_id": body["customer_id"],
                               "offer_id": body["offers"][0]["offer_id"], "kind": kind})
    post_feedback(client, {"request_id": bodies[0]["request_id"], "customer_id": "c00000",
                           "offer_id": bodies[0]["offers"][0]["offer_id"], "kind": "clicked"})
    case = post_feedback(client, {"request_id": bodies[5]["request_id"], "customer_id": "c00005",
                                  "offer_id": bodies[5]["offers"][1]["offer_id"],
                                  "kind": "talk_to_person"})["case_id"]
    post_feedback(client, {"request_id": bodies[5]["request_id"], "customer_id": "c00005",
                           "offer_id": bodies[5]["offers"][1]["offer_id"], "kind": "report",
                           "text": "wrong"})
    client.patch(f"/v1/admin/cases/{case}", json={"status": "resolved"}, headers=key("admin"))

    response = client.get("/v1/stats")
    assert response.status_code == 200 and "public" in response.headers["Cache-Control"]
    stats = response.get_json()
    # the recount, straight from the tables
    served_rows, feedback_rows, case_rows = (rows(app, t) for t in
                                             (served_table, feedback_table, cases_table))
    offers_served = sum(r.n_offers for r in served_rows if r.endpoint == "offers")
    clicked = {(r.request_id, r.offer_id) for r in feedback_rows if r.kind == "clicked"}
    purchased = {(r.request_id, r.offer_id) for r in feedback_rows if r.kind == "purchased"}
    positive = sum(r.kind in ("clicked", "purchased") for r in feedback_rows)
    latencies = sorted(r.latency_ms for r in served_rows)
    for window in ("day", "week", "all"):
        figures = stats["windows"][window]
        assert figures["offer_responses"] == 6 and figures["explanations"] == 1
        assert figures["offers_served"] == offers_served == 24
        assert figures["clicked_share"] == len(clicked) / offers_served == 2 / 24
        assert figures["purchased_share"] == len(purchased) / offers_served
        assert figures["feedback"] == len(feedback_rows) == 8
        assert figures["positive_feedback_share"] == positive / len(feedback_rows) == 4 / 8
        assert figures["handoffs"] == {"opened": 1, "resolved": 1}
        assert figures["reports"] == {"opened": 1, "resolved": 0}
        assert figures["latency_ms"]["median"] == pytest.approx(
            (latencies[3] + latencies[4]) / 2 if len(latencies) == 8 else latencies[3])
        assert figures["latency_ms"]["p95"] == latencies[-1]
    assert len(case_rows) == 2
    # cached: more traffic does not change the answer until the cache expires
    served(client)
    assert client.get("/v1/stats").get_json()["computed_at"] == stats["computed_at"]
    # the windows: records older than a day count for the week and since launch only
    engine = services(app).engine
    services(app).audit.flush()
    later = compute_stats(engine, datetime.now(UTC) + timedelta(days=2))["windows"]
    assert later["day"]["offer_responses"] == 0
    assert later["week"]["offer_responses"] == later["all"]["offer_responses"] == 7


# --- erasure ---------------------------------------------------------------------------------------
def test_erasure_leaves_no_trace_of_the_customer(app, client, redis_client, redis_prefix):
    victim = "c00007"
    put_consent(client, test_api.ALL, "full", victim)
    assert client.post(f"/v1/customers/{victim}/interactions", headers=key(),
                       json={"offer_id": served(client, victim)["offers"][0]["offer_id"],
                             "kind": "purchase"}).status_code == 201
    body = served(client, victim)
    assert body["personalization"] == "full"
    post_feedback(client, {"request_id": body["request_id"], "offer_id":
                           body["offers"][0]["offer_id"], "kind": "talk_to_person",
                           "customer_id": victim})
    served(client, OTHER)
    token = token_for(client, victim)
    assert client.delete(f"/v1/customers/{victim}", headers=key()).status_code == 403
    assert client.delete(f"/v1/customers/{victim}",
                         headers=bearer(token_for(client, OTHER))).status_code == 403

    response = client.delete(f"/v1/customers/{victim}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    receipt = response.get_json()
    assert receipt["removed"]["served_responses"] == 2 and receipt["removed"]["cases"] == 1
    assert receipt["removed"]["interactions"] == 1
    assert receipt["removed"]["consent_rows"] == receipt["removed"]["consent_history_rows"] == 1
    assert receipt["removed"]["redis_keys"] >= 2
    assert receipt["excluded_from_training"] is True and victim not in json.dumps(receipt)

    # no key and no value in Redis names the customer
    for name in redis_client.scan_iter(match=f"{redis_prefix}*", count=1000):
        assert victim.encode() not in name
        if redis_client.type(name) == b"string" and b"items" not in name:
            assert victim.encode() not in redis_client.get(name)
    # no row of any table holds the id
    with services(app).engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(sa.select(table)).all():
                assert victim not in repr(tuple(row)), (table.name, row)
    # only the anonymous tombstone, which training checks against
    secret = services(app).settings.secret_key
    hashes = erased_ids(services(app).engine)
    assert hashes == {subject_hash(victim, secret)} == {receipt["subject_hash"]}
    assert is_erased([victim, OTHER], hashes, secret) == {victim}
    # afterwards: popular offers, and nothing personal is used until the customer chooses again,
    # although this deployment's default (opt_out) would allow everything
    after = served(client, victim)
    assert after["personalization"] == "none" and after["categories_used"] == []
    consent = client.get(f"/v1/customers/{victim}/consent", headers=key()).get_json()
    assert consent["default"] is True and consent["version"] == 0
    assert (consent["allowed"], consent["level"]) == ([], "none")
    assert services(app).consents.default_for(OTHER).level == "full"
    # the customer's tokens issued before the erasure are void
    assert client.get(f"/v1/customers/{victim}/offers", headers=bearer(token)).status_code == 401
    time.sleep(1.01)  # token times have one-second resolution
    fresh = token_for(client, victim)
    assert client.get(f"/v1/customers/{victim}/offers", headers=bearer(fresh)).status_code == 200
    assert redis_client.get(services(app).store.keys.customer(body["model_version"], victim)) is None
    # erasing again (an interrupted erasure finished, say) keeps one tombstone and its receipt
    again = client.delete(f"/v1/customers/{victim}", headers=bearer(token_for(client, victim)))
    assert again.status_code == 200 and again.get_json()["receipt_id"] == receipt["receipt_id"]
    assert len(rows(app, erasures_table)) == 1
    [tombstone] = rows(app, erasures_table)
    assert json.loads(tombstone.counts)["served_responses"] >= receipt["removed"]["served_responses"]


def test_rows_another_worker_still_holds_are_not_written_after_the_erasure(make_app):
    erasing, holding = make_app(), make_app(published=None)  # two workers: one DB, one Redis
    victim, client = "c00009", erasing.test_client()
    served_before = time.time()
    token = token_for(client, victim)
    assert client.delete(f"/v1/customers/{victim}", headers=bearer(token)).status_code == 200
    record = ServedRecord(  # served before the erasure, reaching the database only after it
        request_id=str(uuid.uuid4()), served_at=served_before, endpoint="offers",
        actor="storefront", customer_id=victim, model_version="v", personalization="full",
        consent={}, consent_source="record", categories_used=[], offers=[("o0001", 1.0)])
    services(holding).on_served(record)
    later = dataclasses.replace(record, request_id=str(uuid.uuid4()), served_at=time.time() + 1,
                                customer_id=victim)  # served after: the id is a new customer
    services(holding).on_served(later)
    assert [r.request_id for r in rows(holding, served_table)] == [later.request_id]


# --- rate limits -----------------------------------------------------------------------------------
def test_writes_are_rate_limited_per_customer_token_and_per_key(make_app):
    client = make_app(TRUSTREC_RATE_LIMIT_CUSTOMER="3/minute",
                      TRUSTREC_RATE_LIMIT_KEY="5/minute").test_client()
    body = served(client)
    offer = body["offers"][0]["offer_id"]
    token = token_for(client, CUSTOMER)  # a write of the storefront key's
    feedback = {"request_id": body["request_id"], "offer_id": offer, "kind": "clicked"}
    for _ in range(3):
        post_feedback(client, feedback, bearer(token))
    flooded = client.post("/v1/feedback", json=feedback, headers=bearer(token))
    assert flooded.status_code == 429 and flooded.content_type == "application/json"
    assert flooded.get_json()["error"]["code"] == "too_many_requests"
    assert int(flooded.headers["Retry-After"]) > 0
    # another customer's token has a budget of its own, and reads are not limited
    theirs = served(client, OTHER)
    post_feedback(client, {"request_id": theirs["request_id"], "kind": "clicked",
                           "offer_id": theirs["offers"][0]["offer_id"]},
                  bearer(token_for(client, OTHER)))
    assert client.get(f"/v1/customers/{CUSTOMER}/offers", headers=bearer(token)).status_code == 200
    # the storefront key: 5 writes in all (2 tokens issued, 3 more here), then 429
    for _ in range(3):
        post_feedback(client, feedback | {"customer_id": CUSTOMER})
    assert client.post("/v1/feedback", json=feedback | {"customer_id": CUSTOMER},
                       headers=key()).status_code == 429


def test_a_refused_credential_is_refused_before_flask_until_its_window_resets(make_app):
    """After the limiter's first refusal a worker answers that credential's writes itself (no
    signature check, no Redis): the same 429, the wait counted down, other callers and reads
    untouched, and the credential served again once the window resets."""
    app = make_app(TRUSTREC_RATE_LIMIT_CUSTOMER="2/2 seconds")
    client = app.test_client()
    body = served(client)
    token = token_for(client, CUSTOMER)
    feedback = {"request_id": body["request_id"], "offer_id": body["offers"][0]["offer_id"],
                "kind": "clicked"}
    # start at the beginning of a window, so the two writes and the refusals fall in one
    time.sleep(2 - time.time() % 2 + 0.05)
    for _ in range(2):
        post_feedback(client, feedback, bearer(token))
    by_limiter = client.post("/v1/feedback", json=feedback, headers=bearer(token))
    services = app.extensions["trustrec"]
    def redis_calls() -> dict:
        return {k: v for k, v in services.redis.info("commandstats").items() if k != "cmdstat_info"}

    before = redis_calls()
    by_worker = client.post("/v1/feedback", json=feedback, headers=bearer(token))
    other_write = client.put(f"/v1/customers/{CUSTOMER}/consent", headers=bearer(token),
                             json={"allowed": list(test_api.ALL)})
    assert redis_calls() == before  # answered without Redis
    for refused in (by_limiter, by_worker, other_write):
        assert refused.status_code == 429 and refused.get_json() == by_limiter.get_json()
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Reset"] == by_limiter.headers["X-RateLimit-Reset"]
        assert 1 <= int(refused.headers["Retry-After"]) <= int(by_limiter.headers["Retry-After"])
    # reads and another customer's writes are not refused
    assert client.get(f"/v1/customers/{CUSTOMER}/offers", headers=bearer(token)).status_code == 200
    theirs = served(client, OTHER)
    post_feedback(client, {"request_id": theirs["request_id"], "kind": "clicked",
                           "offer_id": theirs["offers"][0]["offer_id"]},
                  bearer(token_for(client, OTHER)))
    time.sleep(int(by_limiter.headers["X-RateLimit-Reset"]) + 0.05 - time.time())
    post_feedback(client, feedback, bearer(token))  # a new window: served again


def test_a_bad_rate_limit_setting_names_the_variable(make_app):
    from serving.config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTREC_RATE_LIMIT_CUSTOMER"):
        make_app(TRUSTREC_RATE_LIMIT_CUSTOMER="lots")


def test_requests_without_credentials_spend_no_budget(make_app):
    client = make_app(TRUSTREC_RATE_LIMIT_CUSTOMER="2/minute").test_client()
    for _ in range(5):  # a 401 each time, never a 429
        assert client.post("/v1/feedback", json={}).status_code == 401
