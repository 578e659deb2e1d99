"""The live catalog as workers serve it: offers the shop withdrew are never shown, offers it
added after training are served at once, each worker following every change on its next request.

The records database holds the catalog (serving.records.catalog); Redis holds a copy, `{m}:catalog`
(the state as JSON) and `{m}:catalog-serial` (its newest change), written only forward, so a late
writer never puts an older state back. Every request reads the serial with the customer
(RedisModelStore.fetch_customer_and_catalog); a worker whose copy is older reads the state again,
and one that finds no copy (a new or restarted Redis) re-seeds it from the database. A served model
version with the catalog applied is a LoadedModel of its own (`with_catalog`): the withdrawn ids
ride along to every ranking, the added offers are columns scored like their peers
(recommender.new_offers).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd
import redis

from recommender.new_offers import peer_vectors, peers
from serving.records.catalog import CatalogState
from serving.redis_store import Keys, LoadedModel

log = logging.getLogger(__name__)
RESEED_BACKOFF_SECONDS = 30.0

# KEYS: serial, state; ARGV: serial, state JSON. Forward only: an older state never replaces a newer.
_WRITE = """
local held = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > held or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def write_catalog(client: redis.Redis, keys: Keys, state: CatalogState) -> bool:
    """Copy the state into Redis unless a newer one is there. True: written."""
    return bool(client.eval(_WRITE, 2, keys.catalog_serial, keys.catalog, state.serial,
                            state.to_json()))


def with_catalog(loaded: LoadedModel, state: CatalogState) -> LoadedModel:
    """The version as the live catalog has it: `unavailable` set, added offers appended."""
    columns = loaded.offer_columns
    new = [o for o in state.added if o not in columns]  # trained since: its own vector wins
    if not new:
        return dataclasses.replace(loaded, unavailable=state.unavailable, added={},
                                   catalog_serial=state.serial)
    groups = [peers(loaded.offers, state.added[o]) for o in new]
    vectors, biases = peer_vectors(loaded.model, groups)
    model = dataclasses.replace(
        loaded.model, item_vectors=np.vstack([loaded.model.item_vectors, vectors]),
        item_bias=np.concatenate([loaded.model.item_bias, biases]))
    rows = pd.DataFrame([{c: state.added[o].get(c) for c in loaded.offers.columns} for o in new],
                        index=pd.Index(new, name=loaded.offers.index.name))
    if "title" in rows:
        rows["title"] = [state.added[o].get("title") or o for o in new]
    offers = pd.concat([loaded.offers, rows.astype(object)])
    return dataclasses.replace(
        loaded, model=model, offers=offers,
        popularity=np.concatenate([loaded.popularity, np.zeros(len(new))]),
        unavailable=state.unavailable, added=dict(zip(new, groups, strict=True)),
        catalog_serial=state.serial)


class LiveCatalog:
    """A worker's copy of the live catalog, and its versions with the catalog applied.

    load: reads the catalog from the database (None: Redis's copy is all there is); called when
    Redis has no copy, at most once every retry_seconds."""

    def __init__(self, client: redis.Redis, keys: Keys,
                 load: Callable[[], CatalogState] | None = None, *, retry_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.keys, self.load = client, keys, load
        self.retry_seconds, self.clock = retry_seconds, clock
        self.state = CatalogState()
        self._seeded_at = -np.inf
        self._applied: OrderedDict[tuple[int, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def follow(self, serial: int | None) -> CatalogState:
        """The state for a request that read `serial` from Redis (None: no copy there)."""
        if serial is not None and serial == self.state.serial:
            return self.state
        with self._lock:
            if serial is None:
                self._reseed()
            elif serial != self.state.serial:
                blob = self.client.get(self.keys.catalog)
                if blob is None:
                    self._reseed()
                else:
                    state = CatalogState.from_json(blob)
                    if state.serial >= self.state.serial:
                        self.state = state
            return self.state

    def _reseed(self) -> None:
        if self.load is None or self.clock() - self._seeded_at < self.retry_seconds:
            return
        self._seeded_at = self.clock()
        try:
            state = self.load()
            write_catalog(self.client, self.keys, state)
        except Exception as exc:  # the database or Redis down: the copy held stays in force
            log.warning("live catalog not re-seeded (next try in %.0f s): %s",
                        RESEED_BACKOFF_SECONDS, exc)
            # a database that does not answer costs its connect timeout: not on every request
            self._seeded_at = self.clock() + RESEED_BACKOFF_SECONDS - self.retry_seconds
            return
        self.state = state
        log.info("live catalog re-seeded from the records (serial %d)", state.serial)

    def apply(self, loaded: LoadedModel, state: CatalogState | None = None) -> LoadedModel:
        """`loaded` with the catalog applied (the state held when none is given)."""
        state = self.state if state is None else state
        if state.serial == 0:
            return loaded
        key = (id(loaded), state.serial)
        applied = self._applied.get(key)
        if applied is None or applied.version != loaded.version:
            applied = with_catalog(loaded, state)
            with self._lock:
                self._applied[key] = applied
                while len(self._applied) > 4:
                    self._applied.popitem(last=False)
        return applied


class CatalogNotLive(Exception):
    """The change is recorded, but Redis could not be told: workers do not follow it yet."""


def make_live(client: redis.Redis, keys: Keys, state: CatalogState, attempts: int = 3) -> None:
    """Copy a state just committed to the records into Redis (idempotent: the full state is
    written, so repeating the change, or any later one, makes it live)."""
    for attempt in range(attempts):
        try:
            write_catalog(client, keys, state)
            return
        except redis.RedisError as exc:
            if attempt == attempts - 1:
                raise CatalogNotLive(str(exc)) from exc
            time.sleep(0.05 * 2 ** attempt)


def offer_summary(state: CatalogState, offer_id: str, loaded: LoadedModel | None = None) -> dict:
    """One offer as the catalog endpoints show it."""
    out = {"offer_id": offer_id, "available": offer_id not in state.unavailable,
           "added": offer_id in state.added}
    if offer_id in state.added:
        out["attributes"] = dict(state.added[offer_id])
        if loaded is not None and offer_id in loaded.added:
            out["scored_like"] = loaded.added[offer_id].describe()
    return out
