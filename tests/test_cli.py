"""The command line as a user meets it: real subprocesses, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_cluster import url_of

from recommender.artifacts import load_artifact
from trustrec import cli


def trustrec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trustrec.cli", *args], capture_output=True, text=True,
        cwd=cwd, timeout=300,
    )


def test_train_writes_a_loadable_artifact(tmp_path):
    result = trustrec("train", "--format", "synthetic", "--model", "popularity",
                      "--out", str(tmp_path / "models"))
    assert result.returncode == 0, result.stderr
    [path] = (tmp_path / "models").iterdir()
    artifact = load_artifact(path)
    assert artifact.manifest["model"] == "popularity"
    assert "artifact written" in result.stdout
    assert artifact.manifest["counts"]["interactions_excluded"] == 0


@pytest.mark.slow
def test_train_builds_the_served_model_by_default_and_shows_each_stage(tmp_path):
    result = trustrec("train", "--format", "synthetic", "--out", str(tmp_path / "models"),
                      "--time-budget", "120")
    assert result.returncode == 0, result.stderr
    for stage in ("split:", "choosing settings on validation", "measuring on test once",
                  "fitting the served model on all the data", "writing the artifact"):
        assert stage in result.stdout
    assert "components" in result.stderr and "weights" in result.stderr  # the search's bars
    [path] = (tmp_path / "models").iterdir()
    manifest = load_artifact(path).manifest
    assert manifest["model"] == "stack" and manifest["history_mode"] in ("blend", "items")
    assert manifest["hyperparameters"]["time_budget"] == 120
    stages = {row["stage"] for row in manifest["selection"]}
    assert {"history_ease", "history_knn", "profile", "weights"} <= stages


def test_evaluate_tunes_baselines_on_validation_when_asked():
    result = trustrec("evaluate", "--model", "itemknn-cosine", "--tune")
    assert result.returncode == 0, result.stderr
    assert "baselines tuned on validation" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--model", "nope"], "unknown model 'nope'"),
    (["train", "--model", "als", "--param", "factors"], "NAME=VALUE"),
    (["train", "--model", "als", "--param", "colour=blue"], "has no parameter 'colour'"),
    (["train", "--model", "hybrid", "--param", "loss=hinge"], "loss must be one of"),
    (["evaluate", "--format", "movielens", "--data", "/no/such/folder"], "not found"),
    (["evaluate", "--format", "excel", "--data", "x.xlsx"], "unknown format 'excel'"),
    (["evaluate", "--model", "als", "--seeds", "0"], "--seeds must be at least 1"),
    (["tune", "--model", "als", "--grid", "factors"], "NAME=V1,V2"),
    (["train", "--model", "als", "--time-budget", "60"], "model 'als' has no search to bound"),
    (["train", "--time-budget", "0"], "--time-budget must be positive"),
])
def test_bad_input_is_a_message_and_exit_2(args, message):
    result = trustrec(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "out" / "quality.json"
    result = trustrec("evaluate", "--model", "popularity,itemknn-cosine", "--json", str(out))
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1]
    for column in ("ndcg@10", "recall@10", "precision@10", "map@10", "coverage@10",
                   "train seconds"):
        assert column in header
    models = json.loads(out.read_text())["models"]
    assert set(models) == {"popularity", "itemknn-cosine"}
    assert models["itemknn-cosine"]["ndcg@10"] > models["popularity"]["ndcg@10"]


def test_train_leaves_out_erased_customers_and_withdrawn_history(tmp_path):
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from recommender.consent import Consent
    from recommender.loaders import load_synthetic
    from recommender.taxonomy import Taxonomy
    from serving.records.audit import erasures_table, subject_hash
    from serving.records.consent import ConsentStore
    from serving.records.controls import record_control
    from serving.records.database import create_schema, make_engine

    url = f"sqlite:///{tmp_path / 'trustrec.db'}"
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(erasures_table).values(
            subject_hash=subject_hash("c00001", "s" * 32), erased_at=datetime.now(UTC), counts="{}"))
    ConsentStore(engine, Taxonomy.default()).set(
        "c00002", Consent(frozenset({"demographics"}), "full"), actor="c00002", source="customer")
    gift = str(load_synthetic().interactions.query("customer_id == 'c00003'")["offer_id"].iloc[0])
    record_control(engine, "c00003", "leave_out", gift, datetime.now(UTC))
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "trustrec.cli", "train", "--model", "popularity",
         "--consent-db", url, "--out", str(tmp_path / "models")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TRUSTREC_SECRET_KEY": "s" * 32},
    )
    assert result.returncode == 0, result.stderr
    [path] = (tmp_path / "models").iterdir()
    artifact = load_artifact(path)
    assert artifact.manifest["counts"]["customers_erased"] == 1
    assert "c00001" not in artifact.customer_rows
    assert artifact.manifest["counts"]["customers_history_excluded"] == 1
    assert "c00002" not in set(artifact.history["customer_id"])
    # the purchase c00003 asked not to use is not among their positives
    assert artifact.manifest["counts"]["interactions_left_out_by_customers"] >= 1
    assert gift not in artifact.histories["c00003"]


def test_train_adds_the_interactions_posted_to_the_api(tmp_path):
    from datetime import UTC, datetime

    from recommender.loaders import load_synthetic
    from serving.records.database import create_schema, make_engine
    from serving.records.interactions import record_interaction

    dataset = load_synthetic()
    history = set(dataset.interactions.loc[dataset.interactions["customer_id"] == "c00003", "offer_id"])
    new_offer = next(o for o in dataset.offers.index if o not in history)
    url = f"sqlite:///{tmp_path / 'trustrec.db'}"
    engine = make_engine(url)
    create_schema(engine)
    now = datetime.now(UTC)
    later = int(dataset.interactions["timestamp"].max()) + 1
    for request_id, customer in (("r1", "c00003"), ("r2", "nobody-known")):
        record_interaction(engine, request_id=request_id, customer_id=customer, offer_id=new_offer,
                           kind="purchase", weight=1.0, timestamp=later, recorded_at=now)
    engine.dispose()

    result = trustrec("train", "--model", "popularity", "--consent-db", url,
                      "--recorded-interactions", "--out", str(tmp_path / "models"))
    assert result.returncode == 0, result.stderr
    assert "recorded interactions: 1 added, 1 skipped" in result.stdout
    [path] = (tmp_path / "models").iterdir()
    trained = load_artifact(path).history
    assert new_offer in set(trained.loc[trained["customer_id"] == "c00003", "offer_id"])

    without_db = trustrec("train", "--model", "popularity", "--recorded-interactions",
                          "--out", str(tmp_path / "other"))
    assert without_db.returncode == 2 and "--consent-db" in without_db.stderr


def test_publish_leaves_out_customers_erased_since_training(tmp_path, redis_client, redis_prefix,
                                                           monkeypatch):
    """A republish or rollback of an artifact trained before an erasure writes nobody erased."""
    from datetime import UTC, datetime

    from test_api import small_artifact

    from recommender.artifacts import save_artifact
    from serving.records.database import create_schema, make_engine
    from serving.records.erasure import erase_records
    from serving.redis_store import Keys

    artifact = small_artifact()
    path = save_artifact(artifact, tmp_path / "models")
    url = f"sqlite:///{tmp_path / 'trustrec.db'}"
    engine = make_engine(url)
    create_schema(engine)
    erase_records(engine, "c00001", "s" * 32, datetime.now(UTC), {})
    engine.dispose()
    monkeypatch.setenv("TRUSTREC_DATABASE_URL", url)
    redis_url = url_of(redis_client)
    monkeypatch.delenv("TRUSTREC_SECRET_KEY", raising=False)
    assert cli.main(["publish", str(path), "--redis", redis_url, "--prefix", redis_prefix]) == 2
    monkeypatch.setenv("TRUSTREC_SECRET_KEY", "s" * 32)
    assert cli.main(["publish", str(path), "--redis", redis_url, "--prefix", redis_prefix]) == 0
    keys = Keys(redis_prefix)
    assert redis_client.exists(keys.customer(artifact.version, "c00002"))
    assert not redis_client.exists(keys.customer(artifact.version, "c00001"))


def test_an_experiment_from_the_command_line_is_on_the_record(tmp_path, redis_client,
                                                              redis_prefix, monkeypatch, capsys):
    """publish --challenger, then experiment end: Redis and the records database agree."""
    from test_api import renamed, small_artifact

    from recommender.artifacts import save_artifact
    from serving.records.challengers import running_experiment
    from serving.records.database import make_engine
    from serving.redis_store import Keys

    champion = save_artifact(small_artifact(), tmp_path / "models")
    challenger = save_artifact(renamed(small_artifact(1), "challenger-cli"), tmp_path / "models")
    url = f"sqlite:///{tmp_path / 'trustrec.db'}"
    monkeypatch.setenv("TRUSTREC_DATABASE_URL", url)
    monkeypatch.setenv("TRUSTREC_SECRET_KEY", "s" * 32)
    common = ["--redis", url_of(redis_client), "--prefix", redis_prefix]
    assert cli.main(["publish", str(champion), *common]) == 0
    assert cli.main(["publish", str(challenger), *common, "--challenger", "0.2"]) == 0
    engine = make_engine(url)
    try:
        running = running_experiment(engine)
        assert (running.version, running.share) == ("challenger-cli", 0.2)
        assert redis_client.get(Keys(redis_prefix).challenger).decode() == running.to_json()
        assert cli.main(["experiment", *common, "end"]) == 0
        assert running_experiment(engine) is None
        assert cli.main(["experiment", *common, "promote"]) == 2  # nothing runs
    finally:
        engine.dispose()
    assert "no challenger to promote" in capsys.readouterr().err
