"""Champion/challenger on the real app, Redis and database: a stable split within 1% of the
configured share, each response and audit record naming its arm and served by that arm's version,
per-arm outcomes with intervals recounted from the records, and promote / end in one call."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
import test_api
from test_api import key, offers, quiet_publish, renamed, small_artifact

from serving.arms import Challenger, arm_of, bucket
from serving.publish import end_challenger, promote
from serving.records.audit import feedback_table, served_table
from serving.records.challengers import experiments_table, running_experiment
from serving.records.experiment import newcombe, wilson
from serving.redis_store import Keys, ModelStoreError

make_app = test_api.make_app  # the same fixture


@pytest.mark.parametrize("share", [0.05, 0.3, 0.5])
def test_the_split_is_within_one_percent_of_the_share_over_10000_customers(share):
    ids = [f"customer-{i}" for i in range(10_000)]
    challenger = Challenger("v2", share, "2026-01-01T00:00:00+00:00")
    arms = [arm_of(challenger, c) for c in ids]
    assert abs(arms.count("challenger") / len(ids) - share) <= 0.01
    assert arms == [arm_of(challenger, c) for c in ids]  # stable
    # the next experiment draws afresh: its challengers overlap these only by chance
    other = [bucket("v3", c) < share for c in ids]
    overlap = np.mean([a == "challenger" and o for a, o in zip(arms, other, strict=True)])
    assert abs(overlap - share * share) < 0.01
    assert arm_of(None, "anyone") is None


def test_intervals_match_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 against 48/80
    d, low, high = newcombe((48, 80), (56, 70))
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    low, high = wilson(81, 263)  # Wilson (1927) score interval
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 0) is None and wilson(0, 10)[0] == 0.0


def test_each_arm_serves_its_version_and_its_outcomes_are_counted(make_app, redis_client,
                                                                  redis_prefix):
    app = make_app()
    client = app.test_client()
    champion = small_artifact().version
    challenger = renamed(small_artifact(1), "challenger-v1")
    quiet_publish(challenger, redis_client, redis_prefix, challenger=0.4,
                  records=app.extensions["trustrec"].engine)
    bodies = {}
    for i in range(60):
        customer = f"c{i:05d}"
        body = offers(client, customer, "?k=3")
        want = arm_of(Challenger("challenger-v1", 0.4, ""), customer)
        assert body["arm"] == want
        assert body["model_version"] == (champion if want == "champion" else "challenger-v1")
        why = client.get(body["offers"][0]["why"], headers=key()).get_json()
        assert (why["arm"], why["model_version"]) == (want, body["model_version"])
        bodies[customer] = body
    assert {b["arm"] for b in bodies.values()} == {"champion", "challenger"}
    for i, body in enumerate(list(bodies.values())[:30]):
        kind = ("clicked", "purchased", "not_relevant")[i % 3]
        response = client.post("/v1/feedback", headers=key(), json={
            "request_id": body["request_id"], "customer_id": body["customer_id"],
            "offer_id": body["offers"][0]["offer_id"], "kind": kind})
        assert response.status_code == 201, response.get_json()

    stats = client.get("/v1/stats").get_json()["experiment"]
    assert (stats["champion"], stats["challenger"], stats["share"]) == (
        champion, "challenger-v1", 0.4)
    services = app.extensions["trustrec"]
    services.audit.flush()
    with services.engine.connect() as connection:
        served = connection.execute(sa.select(served_table).where(
            served_table.c.endpoint == "offers")).all()
        feedback = connection.execute(sa.select(feedback_table)).all()
    arm_of_request = {r.request_id: r.arm for r in served}
    assert {r.arm for r in served} == {"champion", "challenger"}
    for arm in ("champion", "challenger"):
        figures = stats["arms"][arm]
        offers_served = sum(r.n_offers for r in served if r.arm == arm)
        assert figures["offers_served"] == offers_served
        assert figures["responses"] == sum(r.arm == arm for r in served)
        for kind in ("clicked", "purchased", "not_relevant"):
            count = len({(f.request_id, f.offer_id) for f in feedback
                         if f.kind == kind and arm_of_request[f.request_id] == arm})
            outcome = figures[kind]
            assert outcome["count"] == count and outcome["share"] == count / offers_served
            assert outcome["interval"][0] <= outcome["share"] <= outcome["interval"][1]
    difference = stats["challenger_minus_champion"]["clicked"]
    assert difference["difference"] == pytest.approx(
        stats["arms"]["challenger"]["clicked"]["share"]
        - stats["arms"]["champion"]["clicked"]["share"])


def test_promote_and_end_in_one_call_and_on_the_record(make_app, redis_client, redis_prefix):
    app = make_app()
    client, records = app.test_client(), app.extensions["trustrec"].engine
    with pytest.raises(ModelStoreError, match="no challenger"):
        promote(redis_client, redis_prefix, records=records)
    with pytest.raises(ValueError, match="records"):  # an experiment no rebuild could restore
        quiet_publish(renamed(small_artifact(1), "challenger-v2"), redis_client, redis_prefix,
                      challenger=0.5)
    quiet_publish(renamed(small_artifact(1), "challenger-v2"), redis_client, redis_prefix,
                  challenger=0.5, records=records)
    started = Challenger.from_json(redis_client.get(Keys(redis_prefix).challenger))
    assert running_experiment(records) == started
    with pytest.raises(ModelStoreError, match="between 0 and 1"):
        quiet_publish(renamed(small_artifact(1), "challenger-v3"), redis_client, redis_prefix,
                      challenger=1.0, records=records)
    assert end_challenger(redis_client, redis_prefix, records=records) == "challenger-v2"
    keys = Keys(redis_prefix)
    assert redis_client.get(keys.challenger) is None and running_experiment(records) is None
    assert not list(redis_client.scan_iter(match=keys.customer_pattern("challenger-v2")))
    assert {offers(client, f"c{i:05d}")["arm"] for i in range(20)} == {None}

    quiet_publish(renamed(small_artifact(1), "challenger-v4"), redis_client, redis_prefix,
                  challenger=0.5, records=records)
    assert promote(redis_client, redis_prefix, records=records) == "challenger-v4"
    bodies = [offers(client, f"c{i:05d}") for i in range(20)]
    assert {(b["arm"], b["model_version"]) for b in bodies} == {(None, "challenger-v4")}
    with records.connect() as connection:
        rows = connection.execute(sa.select(experiments_table.c.challenger,
                                            experiments_table.c.outcome)
                                  .order_by(experiments_table.c.id)).all()
    assert [tuple(r) for r in rows] == [("challenger-v2", "ended"), ("challenger-v4", "promoted")]


def test_every_wilson_interval_holds_its_share():
    for trials in range(1, 400):
        for successes in range(trials + 1):
            low, high = wilson(successes, trials)
            assert 0.0 <= low <= successes / trials <= high <= 1.0
