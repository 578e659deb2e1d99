"""Campaign export on the real app, Redis and database: 10,000 customers with consent withdrawn
mid-way export what consent allowed when each was exported; every customer is in the audit trail
as a batch response; a stopped batch resumes where it stopped; withdrawn offers are never
exported; bad input is a message and exit status 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
import test_api
from test_api import ids, key, offers

from serving.records.audit import served_table
from trustrec.batch import batch_export
from trustrec.cli import main

make_app = test_api.make_app  # the same fixture
KNOWN = [f"c{i:05d}" for i in range(300)]


def _customers() -> list[str]:
    """10,000 ids: the 300 customers the model knows, one in every 33, among new visitors."""
    out, known = [], iter(KNOWN)
    for i in range(10_000):
        out.append(next(known, f"visitor-{i}") if i % 33 == 0 else f"visitor-{i}")
    return out


def test_consent_withdrawn_mid_batch_is_honoured_from_the_next_customer(make_app, tmp_path):
    app = make_app()
    services = app.extensions["trustrec"]
    customers = _customers()

    def withdraw_after_half(done: int, total: int) -> None:
        if done == 5000:
            for customer_id in KNOWN:
                services.consents.set(customer_id, {"allowed": [], "level": "none"},
                                      actor=customer_id, source="customer")

    result = batch_export(customers, tmp_path / "campaign.parquet", services=services,
                          progress=False, on_chunk=withdraw_after_half)
    assert result["customers"] == 10_000 and result["rows"] == 10_000 * 10
    table = pd.read_parquet(tmp_path / "campaign.parquet")
    assert len(table) == result["rows"] and table["batch_id"].nunique() == 1
    position = {c: i for i, c in enumerate(customers)}
    by_customer = table.groupby("customer_id")
    for customer_id in KNOWN:
        rows = by_customer.get_group(customer_id)
        if position[customer_id] < 5000:  # exported before the change: everything allowed
            assert set(rows["personalization"]) == {"full"}
        else:  # after: nothing personal, the popular offers everyone without data gets
            assert set(rows["personalization"]) == {"none"}
            assert set(rows["categories_used"]) == {"[]"}
            assert list(rows["offer_id"]) == list(by_customer.get_group("visitor-1")["offer_id"])
    assert json.loads(table["criteria"].iloc[0])  # each offer with its criteria
    assert list(table[table["customer_id"] == "c00000"]["rank"]) == list(range(1, 11))

    services.audit.flush()
    with services.engine.connect() as connection:
        recorded = connection.execute(sa.select(served_table.c.customer_id, served_table.c.actor)
                                      .where(served_table.c.endpoint == "batch")).all()
    assert sorted(c for c, _ in recorded) == sorted(customers)
    assert {a for _, a in recorded} == {f"batch:{result['batch_id']}"}


def test_a_stopped_batch_resumes_and_withdrawn_offers_are_never_exported(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    services = app.extensions["trustrec"]
    best = ids(offers(client, "c00000", "?k=1"))[0]
    response = client.put(f"/v1/admin/catalog/offers/{best}/availability",
                          headers=key("admin"), json={"available": False})
    assert response.status_code == 200
    out = tmp_path / "campaign.parquet"

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done == 100:
            raise Stop

    with pytest.raises(Stop):
        batch_export(KNOWN, out, services=services, chunk=50, progress=False,
                     on_chunk=stop_after_two)
    assert not out.exists()  # never half-written
    first = pd.read_parquet(out.with_name(out.name + ".parts") / "part-000000.parquet")
    result = batch_export(KNOWN, out, services=services, chunk=50, progress=False)
    table = pd.read_parquet(out)
    assert result["batch_id"] == first["batch_id"].iloc[0]
    assert sorted(table["customer_id"].unique()) == KNOWN
    # the chunks written before the stop are kept as they were, not exported again
    kept = table[table["customer_id"].isin(first["customer_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, first)
    assert best not in set(table["offer_id"])
    assert not out.with_name(out.name + ".parts").exists()


def test_bad_batch_input_is_a_message_and_exit_status_2(tmp_path, capsys):
    bad = tmp_path / "customers.txt"
    bad.write_text("c00000\nbad\x01id\n")
    assert main(["batch", "--customers", str(bad), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["batch", "--customers", str(tmp_path / "none.txt"), "--out",
                 str(tmp_path / "x.parquet")]) == 2
    table = tmp_path / "customers.csv"
    table.write_text("id\nc00000\n")
    assert main(["batch", "--customers", str(table), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "customer_id column" in capsys.readouterr().err
