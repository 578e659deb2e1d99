"""The online model store in Redis: what every serving worker needs, keyed by model version.

Key layout under a prefix (default "trustrec:"), all named by `Keys`, nowhere else; `{m}` and
`{c:<id>}` are Redis Cluster hash tags (keys used together share a slot):

    {m}:current                          the live version (a string), flipped by one atomic SET
    {m}:versions                         sorted set: version -> time it last became current
    {m}:pending                          sorted set: versions with keys but no complete marker
                                         (being written, or left over by a publish that died)
    {m}:publish-lock, {m}:heal-lock      held by the one publish (or rebuild) running
    {m}:challenger                       champion/challenger: {"version", "share", "since"} of
                                         the version serving a share of customers (serving.arms)
    {m}:model:{version}:manifest         the artifact's manifest (JSON)
    {m}:model:{version}:items:{part}     the item side (npz bytes: vectors, biases, averages,
                                         shared feature space, popularity, offers as parquet)
    {m}:model:{version}:offer-index:{part}  an index over the offers, for large catalogs only
                                         (recommender.offer_index); both in parts of at most
                                         PART_BYTES (Redis refuses values over 512 MB)
    {m}:model:{version}:complete         the gate: set together with `current` once all is written
    {m}:catalog, {m}:catalog-serial      the live catalog (serving.catalog): offers withdrawn or
                                         added since training, and the newest change's serial
    {c:<id>}:model:{version}             one customer's training history, attributes and identity
                                         feature (partials, for models without features)
    {c:<id>}:history                     offers posted since training (list; outlives versions)
    {c:<id>}:consent                     the consent cache (owned by the consent module)
    {c:<id>}:controls                    the customer's controls cache (serving.controls)
    revoked:{subject hash}               tokens issued before this time are void (an erasure;
                                         named by the erasure's HMAC of the id, not the id)

Workers load the item side once per version (`ModelCache`); per request they read only what is
customer specific, in one atomic round trip (`RedisModelStore.fetch_customer`). A request takes one
`LoadedModel` at its start and uses it throughout, and every customer read names that model's
version, so one response never mixes two versions. Writing versions is serving/publish.py's job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import redis
import scipy.sparse as sp
from redis.cluster import RedisCluster

from recommender import ranking
from recommender.additive import AdditiveModel, FeatureSpace, Identity
from recommender.artifacts import Artifact, ManifestView
from recommender.errors import TrustRecError
from recommender.new_offers import Peers
from recommender.offer_index import OfferIndex
from recommender.similar import SimilarOffers
from serving.arms import CHALLENGER, Challenger, arm_of

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "trustrec:"
PART_BYTES = 256 * 1024 * 1024  # large values are written in parts: Redis refuses over 512 MB
MAX_NEW_HISTORY = 1000  # offers kept per customer since training: bounds memory and request cost
_VERSION = re.compile(r"[\w.+-]+")  # no ':' (keys would collide) and nothing glob-special


class ModelStoreError(TrustRecError):
    """The online store cannot give what was asked: unreachable, empty, or a version gone."""


class NoModelPublished(ModelStoreError):
    def __init__(self, prefix: str) -> None:
        super().__init__(f"no model is published under {prefix!r}: run `trustrec publish` first")


class VersionGone(ModelStoreError):
    """The version is not (or no longer) complete in Redis: re-read `current` and start over."""

    def __init__(self, version: str) -> None:
        self.version = version
        super().__init__(f"model version {version!r} is not (or no longer) in the online store")


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ModelStoreError(
            f"model version {version!r} cannot name Redis keys: use letters, digits, . _ + -"
        )
    return version


CLUSTER_SCHEME = "redis+cluster://"


def client_from_url(url: str, **options: object) -> redis.Redis:
    """A client for `url`: redis://, rediss:// or unix:// (one server), or
    redis+cluster://HOST:PORT (any node of a Redis Cluster; the others are discovered)."""
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url("redis://" + url[len(CLUSTER_SCHEME):], **options)
    return redis.Redis.from_url(url, **options)


def check_client(client: redis.Redis) -> redis.Redis:
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the model store needs a Redis client with decode_responses=False")
    return client


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


@dataclass(frozen=True)
class Keys:
    """Every Redis key TrustRec uses: nobody formats one by hand.

    Keys used together share a hash tag, so that in a Redis Cluster they live in one slot and one
    transaction or script may touch them: `{m}` for the version pointers and every version's item
    side (the publish flip), `{c:<id>}` for everything of one customer (the per-request read, an
    erasure). Customer records of all versions are spread over the cluster by customer."""

    prefix: str = DEFAULT_PREFIX

    @property
    def _meta(self) -> str:
        return f"{self.prefix}{{m}}:"

    def _customer(self, customer_id: str) -> str:
        return f"{self.prefix}{{c:{customer_id}}}:"

    @property
    def current(self) -> str:
        return f"{self._meta}current"

    @property
    def versions(self) -> str:
        return f"{self._meta}versions"

    @property
    def pending(self) -> str:
        return f"{self._meta}pending"

    @property
    def publish_lock(self) -> str:
        return f"{self._meta}publish-lock"

    @property
    def heal_lock(self) -> str:
        return f"{self._meta}heal-lock"

    def model(self, version: str) -> str:
        """The prefix of the version's own keys (its customers' records are the customers')."""
        return f"{self._meta}model:{version}:"

    def customer_pattern(self, version: str) -> str:
        """SCAN MATCH pattern of every customer record of one version."""
        return _glob_escape(self.prefix) + "{c:*}:model:" + _glob_escape(version)

    def manifest(self, version: str) -> str:
        return self.model(version) + "manifest"

    def items(self, version: str, part: int = 0) -> str:
        """One part of the item side (a value holds at most 512 MB: large catalogs take several)."""
        return self.model(version) + f"items:{part}"

    def offer_index(self, version: str, part: int = 0) -> str:
        return self.model(version) + f"offer-index:{part}"

    def complete(self, version: str) -> str:
        return self.model(version) + "complete"

    def version_pattern(self, version: str) -> str:
        """SCAN MATCH pattern of the version's own keys, its customers' records aside."""
        return _glob_escape(self.model(version)) + "*"

    @property
    def challenger(self) -> str:
        return f"{self._meta}challenger"

    @property
    def catalog(self) -> str:
        return f"{self._meta}catalog"

    @property
    def catalog_serial(self) -> str:
        return f"{self._meta}catalog-serial"

    def customer(self, version: str, customer_id: str) -> str:
        return self._customer(customer_id) + f"model:{version}"

    def history(self, customer_id: str) -> str:
        return self._customer(customer_id) + "history"

    def consent(self, customer_id: str) -> str:
        return self._customer(customer_id) + "consent"

    def controls(self, customer_id: str) -> str:
        return self._customer(customer_id) + "controls"

    def tokens_revoked(self, subject: str) -> str:
        return f"{self.prefix}revoked:{subject}"


# --- one customer: training history, attributes, and what the shared features cannot rebuild ---
_MAGIC = b"TRC2"
_HEADER_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, eq=False)
class CustomerRecord:
    """What the model stored for one customer it was trained on (one Redis value).

    A model with a feature space rebuilds a customer's partials from their features on each
    request (bit for bit the trained ones), so the record holds only what the shared features
    lack: the customer's identity feature, if any. A model without one (implicit's) stores the
    partials of the categories the customer has data in."""

    customer_id: str
    version: str
    history: tuple[str, ...]  # distinct past offers, oldest first
    attributes: Mapping[str, object]  # known values only
    identity: Identity | None = None
    partials: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (p (G, d), c, has_data)


def _json_default(value: object) -> object:
    # str() for the rest matches what features.attribute_values does with a value.
    return value.item() if isinstance(value, np.generic) else str(value)


def _narrow(values: np.ndarray) -> np.ndarray:
    """float32 where that keeps every bit (implicit's factors, LightFM's embeddings), else float64:
    scores from Redis equal scores from the artifact."""
    values = np.asarray(values, dtype=np.float64)
    narrow = values.astype("<f4")
    return narrow if np.array_equal(narrow, values) else values.astype("<f8")


def _span(vector: np.ndarray) -> tuple[int, int]:
    """[start, stop) of the non-zero entries (a stacked model's categories own blocks of dims)."""
    nonzero = np.flatnonzero(vector)
    return (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)


def encode_customer(record: CustomerRecord) -> bytes:
    """MAGIC, header length, JSON header, then the arrays it lists as raw little-endian bytes:
    non-zero spans only, each in float32 where that is exact."""
    header: dict = {"customer_id": record.customer_id, "version": record.version,
                    "history": list(record.history), "attributes": dict(record.attributes)}
    arrays: list[np.ndarray] = []

    def add(values: np.ndarray) -> dict:
        start, stop = _span(values)
        narrow = _narrow(values[start:stop])
        arrays.append(narrow)
        return {"start": start, "stop": stop, "dtype": narrow.dtype.str}

    if record.identity is not None:
        identity = record.identity
        header["identity"] = {"name": identity.name, "category": identity.category,
                              "d": len(identity.vector), "bias": float(identity.bias),
                              **add(identity.vector)}
    if record.partials is not None:
        p, c, has_data = record.partials
        header["partials"] = {"shape": list(p.shape), "categories": [
            {"g": g, "c": float(c[g]), **add(p[g])} for g in np.flatnonzero(has_data)]}
    blob = json.dumps(header, default=_json_default, separators=(",", ":")).encode()
    return b"".join((_MAGIC, _HEADER_LENGTH.pack(len(blob)), blob,
                     *(a.tobytes() for a in arrays)))


def decode_customer(blob: bytes) -> CustomerRecord:
    if not blob.startswith(_MAGIC):
        raise ModelStoreError("a customer record in Redis has an unknown format")
    start = len(_MAGIC) + _HEADER_LENGTH.size
    (length,) = _HEADER_LENGTH.unpack_from(blob, len(_MAGIC))
    header = json.loads(blob[start:start + length])
    offset = start + length

    def read(span: dict, d: int, out: np.ndarray | None = None) -> np.ndarray:
        nonlocal offset
        values = np.frombuffer(blob, span["dtype"], span["stop"] - span["start"], offset)
        offset += values.nbytes
        out = np.zeros(d) if out is None else out
        out[span["start"]:span["stop"]] = values
        return out

    identity = partials = None
    if "identity" in header:
        found = header["identity"]
        identity = Identity(found["name"], found["category"], read(found, found["d"]),
                            found["bias"])
    if "partials" in header:
        n_categories, d = header["partials"]["shape"]
        p, c = np.zeros((n_categories, d)), np.zeros(n_categories)
        has_data = np.zeros(n_categories, dtype=bool)
        for found in header["partials"]["categories"]:
            read(found, d, p[found["g"]])
            c[found["g"]], has_data[found["g"]] = found["c"], True
        partials = (p, c, has_data)
    return CustomerRecord(header["customer_id"], header["version"], tuple(header["history"]),
                          header["attributes"], identity, partials)


def customer_records(artifact: Artifact, start: int, stop: int) -> list[CustomerRecord]:
    """Records of the artifact's customers in rows start:stop (the publisher's batches)."""
    model = artifact.model
    features = model.features if artifact.history_mode is not None else None
    if features is None:
        # One transposed copy per batch: contiguous (G, d) slices without copying the whole model.
        p = np.ascontiguousarray(model.partial_vectors[:, start:stop].transpose(1, 0, 2))
        c = np.ascontiguousarray(model.partial_bias[:, start:stop].T)
        has_data = np.ascontiguousarray(model.has_data[:, start:stop].T)
    customers = artifact.customers.iloc[start:stop]
    histories = artifact.histories
    records = []
    for k, (customer_id, row) in enumerate(zip(customers.index, customers.to_dict("records"),
                                               strict=True)):
        customer_id = str(customer_id)
        records.append(CustomerRecord(
            customer_id, artifact.version, histories.get(customer_id, ()),
            # the same known values as Artifact.customer_attributes
            {a: v for a, v in row.items() if not pd.isna(v)},
            identity=features.identity(customer_id) if features is not None else None,
            partials=None if features is not None else (p[k], c[k], has_data[k]),
        ))
    return records


# --- the item side: everything a worker holds in memory per version ---------------------------
def popularity(artifact: Artifact) -> np.ndarray:
    """Distinct customers per offer in the training history, in offer column order."""
    pairs = artifact.history[["customer_id", "offer_id"]].astype(str).drop_duplicates()
    counts = pairs["offer_id"].value_counts()
    return counts.reindex([str(o) for o in artifact.offers.index], fill_value=0).to_numpy(np.float64)


_SIMILAR = ("neighbours", "scores", "together", "buyers")


def fit_similar(artifact: Artifact) -> SimilarOffers:
    """Similar offers ("bought together") from the artifact's training history."""
    columns = artifact.offer_columns
    history = artifact.history
    customers = pd.factorize(history["customer_id"].astype(str))[0]
    offers = history["offer_id"].astype(str).map(columns).to_numpy()
    known = ~pd.isna(offers)
    matrix = sp.csr_matrix(
        (np.ones(int(known.sum())), (customers[known], offers[known].astype(np.int64))),
        shape=(int(customers.max(initial=-1)) + 1, len(columns)))
    return SimilarOffers().fit(matrix)


def similar_arrays(similar: SimilarOffers) -> dict[str, np.ndarray]:
    return {f"similar_{name}": getattr(similar, f"{name}_") for name in _SIMILAR}


def similar_from_arrays(arrays: Mapping[str, np.ndarray]) -> SimilarOffers | None:
    """The fitted SimilarOffers of an item side (None: published before they were)."""
    if "similar_neighbours" not in arrays:
        return None
    similar = SimilarOffers(neighbours=arrays["similar_neighbours"].shape[1])
    for name in _SIMILAR:
        setattr(similar, f"{name}_", arrays[f"similar_{name}"])
    return similar


def encode_items(artifact: Artifact) -> bytes:
    """The item side as npz bytes (np.save keeps dtype and memory order, hence exact scores)."""
    model = artifact.model
    arrays = {
        "item_vectors": model.item_vectors, "item_bias": model.item_bias,
        "mean_vectors": model.mean_vectors, "mean_bias": model.mean_bias,
        "categories": np.array(model.categories, dtype=str),
        "popularity": popularity(artifact),
        # which categories any customer had data in: workers hold no customer rows to tell
        # "the model does not use it" from "we have no such data about you"
        "in_model": model.has_data.any(axis=1),
    } | similar_arrays(fit_similar(artifact))
    if model.features is not None:
        # shared features only: each customer's identity travels in their own record
        arrays |= model.features.shared().to_arrays()
    offers = io.BytesIO()
    artifact.offers.to_parquet(offers)
    arrays["offers_parquet"] = np.frombuffer(offers.getvalue(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclass(eq=False)
class LoadedModel(ManifestView):
    """One version's item side, in memory: no per-customer partials (those stay in Redis).

    Has the two Artifact fields ranking.rank reads (model, offer_columns), so
    `ranking.rank(loaded, state, allowed, k)` runs the very code serving an artifact runs.
    """

    version: str
    manifest: dict
    model: AdditiveModel  # n_customers == 0
    offers: pd.DataFrame
    popularity: np.ndarray  # (n_offers,) distinct customers per offer in training
    in_model: np.ndarray | None = None  # (G,) bool: categories any trained customer had data in
    offer_index: OfferIndex | None = None  # large catalogs: ranking.rank searches it
    similar: SimilarOffers | None = None  # offers bought together, by trained offer column
    # the live catalog applied (serving.catalog): offers the shop withdrew, never shown; offers
    # it added after training, appended as columns scored like their peers
    unavailable: frozenset[str] = frozenset()
    added: Mapping[str, Peers] = dataclasses.field(default_factory=dict)
    catalog_serial: int = 0

    @cached_property
    def popular_columns(self) -> np.ndarray:
        """Offer columns, most popular first (ties: lower column first): the fallback order."""
        return np.argsort(-self.popularity, kind="stable")


def decode_items(version: str, manifest: dict, blob: bytes) -> LoadedModel:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        features = FeatureSpace.from_arrays(arrays)
        item_vectors = arrays["item_vectors"]
        categories = tuple(str(c) for c in arrays["categories"])
        n_categories, d = len(categories), item_vectors.shape[1]
        model = AdditiveModel(
            categories=categories, item_vectors=item_vectors, item_bias=arrays["item_bias"],
            partial_vectors=np.zeros((n_categories, 0, d)),
            partial_bias=np.zeros((n_categories, 0)),
            has_data=np.zeros((n_categories, 0), dtype=bool),
            mean_vectors=arrays["mean_vectors"], mean_bias=arrays["mean_bias"], features=features,
        )
        offers = pd.read_parquet(io.BytesIO(arrays["offers_parquet"].tobytes()))
        in_model = arrays.get("in_model")  # None in versions published before it was stored
        return LoadedModel(version, manifest, model, offers, arrays["popularity"], in_model,
                           similar=similar_from_arrays(arrays))


def items_checksum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


# --- customer state from what Redis holds ------------------------------------------------------
class _OneCustomer:
    """The Artifact fields ranking.customer_state reads, for one customer read from Redis: states
    from Redis and from an artifact come out of the same code, so they cannot drift apart."""

    def __init__(self, loaded: LoadedModel, customer_id: str, record: CustomerRecord | None) -> None:
        self.taxonomy = loaded.taxonomy
        self.history_mode = loaded.history_mode
        self.model, self.customer_rows, self.histories = loaded.model, {}, {}
        self._attributes: Mapping[str, object] = {}
        self._identity: Identity | None = None
        if record is None:
            return
        # known, with no stored row: customer_state builds the partials from the features
        self.customer_rows = {customer_id: None}
        self.histories = {customer_id: record.history}
        self._attributes = record.attributes
        self._identity = record.identity
        if record.partials is not None:  # a model without features: the customer is row 0
            p, c, has_data = record.partials
            self.model = dataclasses.replace(
                loaded.model, partial_vectors=p[:, None], partial_bias=c[:, None],
                has_data=has_data[:, None])
            self.customer_rows = {customer_id: 0}

    def customer_attributes(self, customer_id: str) -> dict[str, object]:
        return dict(self._attributes)

    def customer_identity(self, customer_id: str) -> Identity | None:
        return self._identity


def state_from_record(
    loaded: LoadedModel, customer_id: str, record: CustomerRecord | None,
    new_history: Iterable[str] = (), *, attributes: Mapping[str, object] | None = None,
    leave_out: Iterable[str] = (),
) -> ranking.CustomerState:
    """ranking.customer_state for a customer read from Redis: stored partials for a known customer,
    feature-based partials for an unknown one with attributes (cold start) or with new history
    (history_mode "items"), the average (popular offers) for one with nothing."""
    if record is not None and (record.version != loaded.version or record.customer_id != customer_id):
        raise ModelStoreError(
            f"customer record of {record.customer_id!r} in {record.version!r} read for "
            f"{customer_id!r} in {loaded.version!r}"
        )
    return ranking.customer_state(
        _OneCustomer(loaded, customer_id, record), customer_id, attributes=attributes,
        new_history=tuple(new_history), leave_out=leave_out,
    )


# --- the store --------------------------------------------------------------------------------
# KEYS: customer record, new history, consent cache, controls cache: one customer's, one slot. GET
# of a missing key gives false, which keeps its place in the reply (nil would cut the list short)
# and arrives as None.
_FETCH_CUSTOMER = """
return {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
        redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4])}
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisModelStore:
    """Reads model versions and customers from Redis; records new interactions; erases customers.

    `client` must return bytes (decode_responses=False): the values are binary.
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        check_client(client)
        self.client, self.keys = client, Keys(prefix)
        self._fetch = client.register_script(_FETCH_CUSTOMER)

    def current_version(self) -> str | None:
        return _text(self.client.get(self.keys.current))

    def challenger(self) -> Challenger | None:
        value = self.client.get(self.keys.challenger)
        return None if value is None else Challenger.from_json(value)

    def published_versions(self) -> list[tuple[str, float]]:
        """(version, unix time it last became current), oldest first."""
        return [
            (_text(v), score)
            for v, score in self.client.zrange(self.keys.versions, 0, -1, withscores=True)
        ]

    def load_model(self, version: str) -> LoadedModel:
        """The item side of a complete version (VersionGone if it is not complete, or was removed)."""
        keys = self.keys
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(keys.complete(version)).get(keys.manifest(version))
            complete, manifest = pipe.execute()
        if complete is None or manifest is None:
            raise VersionGone(version)
        marker = json.loads(complete)
        items = self._parts(version, keys.items, marker.get("items_parts", 1))
        if items_checksum(items) != marker["items_sha256"]:
            raise ModelStoreError(f"model version {version!r}: item side does not match its checksum")
        index = None
        if marker.get("offer_index_sha256") is not None:
            index = self._parts(version, keys.offer_index, marker["offer_index_parts"])
            if items_checksum(index) != marker["offer_index_sha256"]:
                raise ModelStoreError(f"model version {version!r}: offer index does not match its "
                                      "checksum")
        loaded = decode_items(version, json.loads(manifest), items)
        if index is not None:
            loaded.offer_index = OfferIndex.from_bytes(index)
        return loaded

    def _parts(self, version: str, key: Callable[[str, int], str], n: int) -> bytes:
        """A value written in n parts, whole (VersionGone if the version was removed meanwhile)."""
        parts = self.client.mget([key(version, i) for i in range(n)])
        if any(part is None for part in parts):
            raise VersionGone(version)
        return b"".join(parts)

    def fetch_customer(
        self, version: str, customer_id: str
    ) -> tuple[CustomerRecord | None, list[str], str | None, str | None]:
        """(stored record or None, offers posted since training oldest first, cached consent JSON
        or None, cached controls JSON or None), in one round trip; a second one only when there
        is no record, to tell a customer the version does not know from a version removed
        meanwhile (VersionGone). The customer's keys are read atomically (one script, one slot);
        removal drops the version's complete marker before any record, so a marker still there
        after a record was found missing means the customer was never in the version.
        (A script rather than MULTI: one command to send and one reply to parse, on every request.)"""
        reply, _ = self._fetch_customer(version, customer_id, with_serial=False)
        return reply

    def fetch_customer_and_catalog(
        self, version: str, customer_id: str
    ) -> tuple[tuple[CustomerRecord | None, list[str], str | None, str | None], int | None]:
        """fetch_customer, and the live catalog's serial (None: Redis holds no catalog), in the
        same round trip on one server (a pipeline; a cluster keeps them in different slots)."""
        return self._fetch_customer(version, customer_id, with_serial=True)

    def _fetch_customer(self, version: str, customer_id: str, *, with_serial: bool):
        keys = self.keys
        customer_keys = [keys.customer(version, customer_id), keys.history(customer_id),
                         keys.consent(customer_id), keys.controls(customer_id)]
        serial = None
        if not with_serial:
            reply = self._fetch(keys=customer_keys, client=self.client)
        elif isinstance(self.client, RedisCluster):
            reply = self._fetch(keys=customer_keys, client=self.client)
            serial = self.client.get(keys.catalog_serial)
        else:
            reply, serial = self._pipelined(customer_keys, keys.catalog_serial)
        blob, history, consent, controls = reply
        if blob is None and not self.client.exists(keys.complete(version)):
            raise VersionGone(version)
        record = None if blob is None else decode_customer(blob)
        return ((record, [_text(o) for o in history], _text(consent), _text(controls)),
                None if serial is None else int(serial))

    def _pipelined(self, customer_keys: list[str], serial_key: str) -> list:
        # EVALSHA by hand: a Script in a pipeline asks SCRIPT EXISTS on every execute
        for attempt in range(2):
            with self.client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._fetch.sha, len(customer_keys), *customer_keys)
                pipe.get(serial_key)
                try:
                    return pipe.execute()
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
                    self.client.script_load(_FETCH_CUSTOMER)  # a restarted Redis forgot it

    def append_interaction(self, customer_id: str, offer_id: str, *, retry: bool = False) -> int:
        """Record an interaction made since training; the customer's next state includes it.
        Returns how many such offers are kept (the oldest beyond MAX_NEW_HISTORY are dropped).
        retry: the same event again, appended only if the first attempt did not get here."""
        key = self.keys.history(customer_id)
        if retry and self.client.lpos(key, offer_id) is not None:
            return self.client.llen(key)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, offer_id).ltrim(key, -MAX_NEW_HISTORY, -1).llen(key)
            return pipe.execute()[-1]

    def delete_customer(self, customer_id: str, *, subject: str | None = None,
                        revoke_tokens_for: int = 0) -> int:
        """Erase a customer from the online store: their record in every version (published or
        being written), their new history and their consent cache; with `subject` (the erasure's
        HMAC of the id), void every customer token issued until now, for revoke_tokens_for
        seconds (the longest a token lives). Idempotent. Returns keys removed."""
        keys = self.keys
        if subject is not None:
            self.client.set(keys.tokens_revoked(subject), repr(time.time()),
                            ex=max(1, revoke_tokens_for))
        versions = {
            _text(v) for zset in (keys.versions, keys.pending)
            for v in self.client.zrange(zset, 0, -1)
        }
        doomed = [keys.customer(v, customer_id) for v in sorted(versions)]
        doomed += [keys.history(customer_id), keys.consent(customer_id),
                   keys.controls(customer_id)]
        return self.client.unlink(*doomed)

    def tokens_revoked_at(self, subject: str) -> float | None:
        """Tokens of the customer whose erasure HMAC is `subject`, issued at or before this time,
        are void (None: none revoked)."""
        value = self.client.get(self.keys.tokens_revoked(subject))
        return None if value is None else float(value)


@dataclass(frozen=True, eq=False)
class CustomerView:
    """What one request knows of one customer, all from one model version."""

    model: LoadedModel
    state: ranking.CustomerState
    record: CustomerRecord | None
    consent_json: str | None
    controls_json: str | None = None
    new_history: tuple[str, ...] = ()  # offers posted since training
    degraded: bool = False  # the store lost the model: nothing of the customer could be read
    arm: str | None = None  # champion or challenger while an experiment runs (serving.arms)


class ModelCache:
    """A worker's models: the item side of each version loaded once, `current` checked at most
    every check_interval_ms (0: every request), a new version swapped in without restart.

    A request calls `snapshot()` (or `customer()`) once and uses that LoadedModel throughout: the
    swap replaces the cache's reference, never the model a request already holds.
    """

    def __init__(
        self, store: RedisModelStore, check_interval_ms: float = 1000, *, keep: int = 2,
        clock: Callable[[], float] = time.monotonic,
        on_lost: Callable[[str | None], None] | None = None, catalog: object | None = None,
    ) -> None:
        self.store, self.check_interval_ms, self.keep, self.clock = (
            store, check_interval_ms, keep, clock
        )
        # serving.catalog.LiveCatalog (passed in: it builds on this module): the live catalog,
        # followed on every request; None: the trained catalog as published
        self.catalog = catalog
        # on_lost(version): the store has no model (a Redis restart, say) where it had `version`
        # (None: this worker never saw one); serving.healing rebuilds it
        self.on_lost = on_lost
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()  # flipping back needs no reload
        self._current: LoadedModel | None = None
        self._challenger: tuple[Challenger, LoadedModel] | None = None
        self._last: LoadedModel | None = None  # the last model served, kept while the store heals
        self._degraded_logged = False
        self._checked_at = -np.inf
        self._lock = threading.Lock()

    def snapshot(self, *, wait: bool = False) -> LoadedModel:
        """The model for one request. wait: do not fall back on the model held while another
        thread checks `current` (after VersionGone, that model is of no use)."""
        current = self._current
        if current is not None and (self.clock() - self._checked_at) * 1000 < self.check_interval_ms:
            return current
        # One thread checks and loads; the others go on with the model they have meanwhile.
        if not self._lock.acquire(blocking=wait or current is None):
            return current
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> LoadedModel:
        now = self.clock()
        version, challenger = self.store.client.mget(self.store.keys.current,
                                                     self.store.keys.challenger)
        version = _text(version)
        if version is None:
            if self.on_lost is not None:
                self.on_lost(self._last.version if self._last is not None else None)
            raise NoModelPublished(self.store.keys.prefix)
        model = self._load(version)
        self._challenger = None
        if challenger is not None:
            challenger = Challenger.from_json(challenger)
            try:
                self._challenger = (challenger, self._load(challenger.version))
            except VersionGone:  # ended meanwhile: everyone is the champion's
                log.warning("challenger %s is not in the store: serving the champion only",
                            challenger.version)
        while len(self._models) > self.keep + (self._challenger is not None):
            self._models.popitem(last=False)
        self._current, self._checked_at, self._last = model, now, model
        return model

    def _load(self, version: str) -> LoadedModel:
        model = self._models.get(version)
        if model is None:
            model = self.store.load_model(version)
            log.info("loaded model version %s", version)
        self._models[version] = model
        self._models.move_to_end(version)
        return model

    def live(self) -> LoadedModel:
        """The model for a request about no customer, with the live catalog applied."""
        model = self.snapshot()
        if self.catalog is None:
            return model
        serial = self.store.client.get(self.store.keys.catalog_serial)
        return self.catalog.apply(model, self.catalog.follow(
            None if serial is None else int(serial)))

    def invalidate(self, version: str | None = None) -> None:
        """Forget `version` (all when None) and re-read `current` on the next snapshot."""
        with self._lock:
            if version is None:
                self._models.clear()
            else:
                self._models.pop(version, None)
            self._checked_at = -np.inf

    def customer(
        self, customer_id: str, *, attributes: Mapping[str, object] | None = None
    ) -> CustomerView:
        """The model snapshot and the customer's state under it, in one round trip to Redis
        (two when the version was removed since the last check: then on the new current)."""
        for attempt in range(2):
            try:
                model = self.snapshot(wait=attempt > 0)
                challenger, arm = self._challenger, None
                if challenger is not None:
                    arm = arm_of(challenger[0], customer_id)
                    if arm == CHALLENGER:
                        model = challenger[1]
                if self.catalog is None:
                    record, new_history, consent, controls = self.store.fetch_customer(
                        model.version, customer_id)
                else:
                    (record, new_history, consent, controls), serial = \
                        self.store.fetch_customer_and_catalog(model.version, customer_id)
                    model = self.catalog.apply(model, self.catalog.follow(serial))
            except VersionGone:
                self.invalidate(model.version)
                continue
            except (NoModelPublished, redis.RedisError) as exc:
                # the store lost the model, or cannot be reached: popular offers from the model
                # this worker holds, until it is back (serving.healing)
                if self._last is None or self.on_lost is None:
                    raise
                if not self._degraded_logged:  # once an outage, not once a request
                    log.warning("online store unavailable, serving without personal data: %s",
                                exc)
                    self._degraded_logged = True
                return self._degraded(customer_id)
            self._degraded_logged = False
            state = state_from_record(model, customer_id, record, new_history, attributes=attributes)
            return CustomerView(model, state, record, consent, controls, tuple(new_history),
                                arm=arm)
        raise VersionGone(model.version)

    def _degraded(self, customer_id: str) -> CustomerView:
        """While the store heals: the last model, and nothing of the customer (the average
        customer's state, no history, no consent read): the caller serves no personal data."""
        model = self._last
        if self.catalog is not None:  # as last known: what was withdrawn stays withdrawn
            model = self.catalog.apply(model)
        state = state_from_record(model, customer_id, None, (), attributes={})
        return CustomerView(model, state, None, None, degraded=True)
