"""Artifacts: an exact round trip, atomic writes, and clear refusals of anything else."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from trained import synthetic_artifact

from recommender import artifacts
from recommender.artifacts import FORMAT_VERSION, Artifact, load_artifact, save_artifact
from recommender.errors import ArtifactError
from recommender.ranking import customer_state, rank


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    artifact = synthetic_artifact()
    return artifact, save_artifact(artifact, tmp_path_factory.mktemp("models"))


def test_round_trip_scores_exactly_alike(saved):
    artifact, path = saved
    loaded = load_artifact(path)
    customers = np.arange(artifact.model.n_customers)
    assert loaded.model.score(customers).tobytes() == artifact.model.score(customers).tobytes()
    assert loaded.version == artifact.version
    assert loaded.manifest["taxonomy"] == artifact.manifest["taxonomy"]
    customer_id = next(iter(loaded.customer_rows))
    allowed = np.ones(len(loaded.model.categories), dtype=bool)
    before = rank(artifact, customer_state(artifact, customer_id), allowed, 10)
    after = rank(loaded, customer_state(loaded, customer_id), allowed, 10)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after, strict=True))
    assert loaded.histories == artifact.histories


def test_manifest_describes_the_run(saved):
    manifest = load_artifact(saved[1]).manifest
    for key in ("version", "created_at", "data_fingerprint", "taxonomy", "hyperparameters",
                "metrics", "counts"):
        assert key in manifest
    assert manifest["counts"]["interactions"] > 0
    assert "ndcg@10" in manifest["metrics"]["test"]


def test_truncated_artifact_is_refused(saved, tmp_path):
    artifact, _ = saved
    path = save_artifact(artifact_copy(artifact), tmp_path)
    data = (path / "arrays.npz").read_bytes()
    (path / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(path)


def test_foreign_and_newer_artifacts_are_refused(saved, tmp_path):
    with pytest.raises(ArtifactError, match="no manifest"):
        load_artifact(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(ArtifactError, match="not a TrustRec artifact"):
        load_artifact(tmp_path)
    path = save_artifact(artifact_copy(saved[0]), tmp_path / "models")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version"):
        load_artifact(path)


def test_a_failed_write_leaves_nothing_that_loads(saved, tmp_path):
    artifact = artifact_copy(saved[0])
    broken = replace(artifact, history=artifact.history.assign(bad=object()))
    with pytest.raises(Exception):  # noqa: B017 - whatever parquet raises, nothing may remain
        save_artifact(broken, tmp_path)
    assert list(tmp_path.iterdir()) == []


def artifact_copy(artifact: Artifact) -> Artifact:
    """The same model under a fresh version id (versions are unique per folder)."""
    manifest = dict(artifact.manifest, version=artifact.manifest["version"] + "-copy")
    return replace(artifact, manifest=manifest)


def test_a_feature_models_partials_are_rebuilt_not_stored(saved):
    """The served model's partials follow from its features and the customers' data: left out of
    arrays.npz (most of an artifact) and rebuilt on load to the same bits."""
    artifact, path = saved
    loaded = load_artifact(path)
    assert loaded.manifest["partials"] == "rebuilt"
    with np.load(path / "arrays.npz") as arrays:
        assert "partial_vectors" not in arrays
    model = artifact.model
    assert (path / "arrays.npz").stat().st_size < model.partial_vectors.nbytes
    for name in ("partial_vectors", "partial_bias", "has_data", "mean_vectors", "mean_bias"):
        assert getattr(loaded.model, name).tobytes() == getattr(model, name).tobytes(), name
    # checked a block of customers at a time: a block gets the same bits as all at once
    assert artifacts._rebuilds_partials(artifact, block=97)


@pytest.mark.parametrize("kind", ["no feature space", "data changed since training"])
def test_partials_that_would_not_rebuild_alike_are_stored(saved, tmp_path, kind):
    artifact = artifact_copy(saved[0])
    if kind == "no feature space":
        artifact = replace(artifact, model=replace(artifact.model, features=None),
                           manifest=dict(artifact.manifest, history_mode=None))
    else:  # a history the model did not learn from: its partials are not that history's
        artifact = replace(artifact, history=artifact.history.iloc[: len(artifact.history) // 2])
    path = save_artifact(artifact, tmp_path)
    loaded = load_artifact(path)
    assert loaded.manifest["partials"] == "stored"
    assert loaded.model.partial_vectors.tobytes() == artifact.model.partial_vectors.tobytes()
    # an artifact written before partials could be left out (format 1) loads as it was
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["partials"]
    (path / "manifest.json").write_text(json.dumps(manifest | {"format_version": 1}))
    assert load_artifact(path).model.partial_bias.tobytes() == artifact.model.partial_bias.tobytes()
