"""Versioned model artifacts: a folder with manifest.json, arrays.npz and the tables serving needs.

Written atomically (a temporary folder renamed into place), checked on load against the checksums
in the manifest, so a truncated, foreign or newer-format artifact is refused, never half-loaded.

A feature model's customer partials (G x d numbers per customer, most of an artifact) follow from
its feature space and each customer's attributes and history, which the artifact keeps anyway:
they are written only when rebuilding them from those does not give the same bits (checked when
saving; manifest "partials": "stored" or "rebuilt"), and rebuilt on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.additive import AdditiveModel, FeatureSpace, Identity, partials
from recommender.data import Dataset
from recommender.errors import ArtifactError
from recommender.features import user_feature_matrix
from recommender.offer_index import OfferIndex
from recommender.taxonomy import Taxonomy

KIND = "trustrec-artifact"
FORMAT_VERSION = 2  # 2: a feature model's partials may be left to rebuild (manifest "partials")
TABLES = ("customers", "offers", "history")
_PARTIALS = ("partial_vectors", "partial_bias", "has_data")
_MODEL_ARRAYS = ("item_vectors", "item_bias", *_PARTIALS, "mean_vectors", "mean_bias")


class ManifestView:
    """What a trained model and a served version of it derive alike from `manifest` and `offers`."""

    manifest: dict
    offers: pd.DataFrame

    @cached_property
    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_dict(self.manifest["taxonomy"])

    @property
    def history_mode(self) -> str | None:
        """"items", "identity", "blend" or None (models that cannot place unseen customers)."""
        return self.manifest.get("history_mode")

    @cached_property
    def offer_columns(self) -> dict[str, int]:
        return {str(o): col for col, o in enumerate(self.offers.index)}


@dataclass(eq=False)
class Artifact(ManifestView):
    """A trained model with what serving and explanation need to use it without LightFM.

    customers: attributes by customer_id (the model's rows, in order); offers: title and attributes
    by offer_id (the model's columns); history: customer_id, offer_id, timestamp of the
    interactions the model learned from (for "because you bought X" and exclusion of past offers).
    """

    manifest: dict
    model: AdditiveModel
    customers: pd.DataFrame
    offers: pd.DataFrame
    history: pd.DataFrame

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def offer_index(self) -> OfferIndex | None:
        """An artifact ranks exactly over every offer; a published version of a large catalog
        carries an index (serving.redis_store.LoadedModel)."""
        return None

    @cached_property
    def customer_rows(self) -> dict[str, int]:
        return {str(c): row for row, c in enumerate(self.customers.index)}

    @cached_property
    def histories(self) -> dict[str, tuple[str, ...]]:
        """Distinct past offers of every customer, oldest first (customers in the order of their
        first interaction). With array operations: a million customers take seconds, where a
        pandas group per customer took minutes."""
        ordered = self.history
        if not ordered["timestamp"].is_monotonic_increasing:  # a training history already is
            ordered = ordered.sort_values("timestamp", kind="stable")
        customer, customers = pd.factorize(ordered["customer_id"])  # first seen first
        offer, offers = pd.factorize(ordered["offer_id"].astype(str))
        known = customer >= 0
        customer, offer = customer[known].astype(np.int64), offer[known].astype(np.int64)
        # each customer's first interaction with an offer, then by customer, oldest first
        _, first = np.unique(customer * max(len(offers), 1) + offer, return_index=True)
        first = np.sort(first)
        first = first[np.argsort(customer[first], kind="stable")]
        names = np.asarray(offers, dtype=object)[offer[first]]
        bounds = np.searchsorted(customer[first], np.arange(len(customers) + 1))
        return {str(c): tuple(names[a:b])
                for c, a, b in zip(customers, bounds[:-1], bounds[1:], strict=True)}

    def customer_attributes(self, customer_id: str) -> dict[str, object]:
        """Known attribute values of a customer the model was trained on (unknown ones left out)."""
        row = self.customers.loc[customer_id]
        return {a: v for a, v in row.items() if not pd.isna(v)}

    def customer_identity(self, customer_id: str) -> Identity | None:
        """The customer's identity feature where the feature space does not hold it: never here
        (an artifact's feature space holds every customer's; the online store's does not)."""
        return None


def new_version(model_name: str, created_at: datetime) -> str:
    return f"{model_name}-{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def make_manifest(
    *, model_name: str, params: dict, taxonomy: Taxonomy, history_mode: str | None,
    data_fingerprint: str, counts: dict, metrics: dict, created_at: datetime | None = None,
    selection: list[dict] | None = None,
) -> dict:
    """selection: the candidates compared on validation (the validation table), if any."""
    created_at = created_at or datetime.now(UTC)
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "version": new_version(model_name, created_at),
        "created_at": created_at.isoformat(timespec="seconds"),
        "model": model_name,
        "hyperparameters": params,
        "taxonomy": taxonomy.to_dict(),
        "history_mode": history_mode,
        "data_fingerprint": data_fingerprint,
        "counts": counts,
        "metrics": metrics,
    } | ({"selection": selection} if selection is not None else {})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(artifact: Artifact, out_dir: str | Path) -> Path:
    """Write under out_dir/<version>/ atomically and return that path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / artifact.version
    if final.exists():
        raise ArtifactError(f"artifact {final} already exists")
    staging = out_dir / f".staging-{artifact.version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        model = artifact.model
        rebuilt = _rebuilds_partials(artifact)
        arrays = {name: getattr(model, name) for name in _MODEL_ARRAYS
                  if not (rebuilt and name in _PARTIALS)}
        arrays["categories"] = np.array(model.categories, dtype=str)
        if model.features is not None:
            arrays |= model.features.to_arrays()
        np.savez(staging / "arrays.npz", **arrays)
        for table in TABLES:
            getattr(artifact, table).to_parquet(staging / f"{table}.parquet")
        files = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        manifest = dict(artifact.manifest, files=files, format_version=FORMAT_VERSION,
                        partials="rebuilt" if rebuilt else "stored")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float))
        for path in staging.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def load_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a TrustRec artifact: no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ArtifactError(f"{path} is not a TrustRec artifact (kind is not {KIND!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {version!r}; this TrustRec reads up to {FORMAT_VERSION}: "
            "upgrade TrustRec to load it"
        )
    for name, checksum in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file() or _sha256(file) != checksum:
            raise ArtifactError(f"{file} is missing or does not match its checksum (truncated?)")
    if set(manifest.get("files", {})) != {"arrays.npz", *(f"{t}.parquet" for t in TABLES)}:
        raise ArtifactError(f"{path}: manifest does not list the artifact's files")
    with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
        features = FeatureSpace.from_arrays(arrays)
        categories = tuple(str(c) for c in arrays["categories"])
        stored = {name: arrays[name] for name in _MODEL_ARRAYS if name in arrays}
    tables = {t: pd.read_parquet(path / f"{t}.parquet") for t in TABLES}
    if manifest.get("partials") == "rebuilt":
        if features is None or not manifest.get("history_mode"):
            raise ArtifactError(f"{path}: its partials cannot be rebuilt (no feature space)")
        stored |= dict(zip(_PARTIALS, _rebuilt_partials(
            features, len(categories), Taxonomy.from_dict(manifest["taxonomy"]),
            manifest["history_mode"], **tables), strict=True))
    missing = [name for name in _MODEL_ARRAYS if name not in stored]
    if missing:
        raise ArtifactError(f"{path}: arrays.npz lacks {missing[0]}")
    model = AdditiveModel(categories=categories, features=features, **stored)
    return Artifact(manifest=manifest, model=model, **tables)


def _rebuilds_partials(artifact: Artifact, block: int = 32_768) -> bool:
    """Whether the model's partials are rebuilt bit for bit from its feature space and the
    artifact's customers and history (a feature model trained on them). Compared a block of
    customers at a time, so that checking holds one block's partials beside the model's, not a
    second copy of them all."""
    model = artifact.model
    if model.features is None or artifact.history_mode is None:
        return False
    weights = _customer_weights(model.features, artifact.taxonomy, artifact.history_mode,
                                artifact.customers, artifact.offers, artifact.history)
    for start in range(0, weights.shape[0], block):
        rebuilt = partials(weights[start:start + block], model.features, len(model.categories))
        stored = (model.partial_vectors[:, start:start + block],
                  model.partial_bias[:, start:start + block], model.has_data[:, start:start + block])
        if not all(np.array_equal(a, b) for a, b in zip(rebuilt, stored, strict=True)):
            return False
    return True


def _rebuilt_partials(features: FeatureSpace, n_categories: int, taxonomy: Taxonomy,
                      history_mode: str, customers: pd.DataFrame, offers: pd.DataFrame,
                      history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The customers' partials as training computed them (recommender.additive.partials: a block
    of customers gets the same bits as all of them at once)."""
    weights = _customer_weights(features, taxonomy, history_mode, customers, offers, history)
    return partials(weights, features, n_categories)


def _customer_weights(features: FeatureSpace, taxonomy: Taxonomy, history_mode: str,
                      customers: pd.DataFrame, offers: pd.DataFrame,
                      history: pd.DataFrame) -> sp.csr_matrix:
    """The customers' feature weights from their attributes and distinct past offers
    (user_feature_matrix; interaction kinds and weights do not enter them), in the feature
    space's columns (a name it lacks carries no signal)."""
    interactions = history.assign(kind="purchase", weight=1.0)
    weights, names, _ = user_feature_matrix(Dataset(customers, offers, interactions, taxonomy),
                                            history_mode, taxonomy)
    index = features.index()
    columns = np.array([index.get(str(name), -1) for name in names], dtype=np.int64)
    entries = weights.tocoo()
    known = columns[entries.col] >= 0
    return sp.csr_matrix((entries.data[known], (entries.row[known], columns[entries.col[known]])),
                         shape=(weights.shape[0], len(features.names)))
