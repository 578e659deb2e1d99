"""The calibrated re-rank as a serving option: `calibrate=` on the offers endpoint."""

from __future__ import annotations

import numpy as np
import pytest
from test_api import CUSTOMER, app, client, ids, key, make_app, offers, put_consent, small_artifact  # noqa: F401

from recommender.catalog import calibration_gap, list_distributions
from recommender.fairness.rerank import CalibratedReranker
from recommender.ranking import customer_state


def kl_to_history(artifact, customer_id, offer_ids):
    reranker = CalibratedReranker(artifact, 0.0)
    target = reranker.target(customer_state(artifact, customer_id))
    columns = np.array([[artifact.offer_columns[o] for o in offer_ids]])
    mix = list_distributions(columns, reranker.offer_categories)
    return float(calibration_gap(target[None], mix)[0])


def test_calibrate_moves_the_list_towards_the_customers_own_mix(client):  # noqa: F811
    plain = offers(client, query="?k=10")
    calibrated = offers(client, query="?k=10&calibrate=0.9")
    assert calibrated["model_version"] == plain["model_version"]
    assert ids(calibrated) != ids(plain)
    artifact = small_artifact()
    assert kl_to_history(artifact, CUSTOMER, ids(calibrated)) < kl_to_history(
        artifact, CUSTOMER, ids(plain))
    assert offers(client, query="?k=10&calibrate=0")["offers"] == plain["offers"]


def test_calibrate_uses_nothing_when_history_is_withheld(client):  # noqa: F811
    put_consent(client, ["demographics", "location", "profile"], "full")
    plain = offers(client, query="?k=10")
    assert ids(offers(client, query="?k=10&calibrate=0.9")) == ids(plain)


@pytest.mark.parametrize("value", ["-0.1", "2", "abc", "nan"])
def test_calibrate_must_be_a_fraction(client, value):  # noqa: F811
    body = client.get(f"/v1/customers/{CUSTOMER}/offers?calibrate={value}", headers=key()).get_json()
    assert body["error"]["field"] == "calibrate"
