"""The consent cache in Redis: the database owns consent, Redis only saves the request path a query.

A request reads the cache key in the same round trip as the customer (ModelCache.customer). On a
miss it reads the database and fills the key, but only if the key still holds what the request
saw: a consent change replaces the key with a fresh tombstone (`invalidate`, the ConsentStore's
on_change hook), so a request that read the old record just before the change can never write it
back after. Without that, "delete on change" loses to such a request, and the next request would
see the old consent until the entry expires. A change is therefore visible on the very next request.

When the database cannot be read, the request gets no personal data at all (fail closed) and
nothing is cached, so the customer's own consent applies again as soon as the database is back.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from functools import lru_cache

import redis

from recommender.consent import NO_PERSONAL_DATA, Consent
from serving.records.consent import ConsentStore
from serving.redis_store import Keys

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600  # bounds memory, and staleness should an invalidation ever be lost
_TOMBSTONE = "!"

# SET the key only if it still holds ARGV[1] ("" meaning absent): compare-and-set in one step.
_FILL = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


@dataclass(frozen=True)
class Decision:
    consent: Consent
    source: str  # "cache", "store", or "unavailable" (fail closed)


class ConsentCache:
    def __init__(
        self, client: redis.Redis, keys: Keys, store: ConsentStore,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.client, self.keys, self.store, self.ttl_seconds = client, keys, store, ttl_seconds
        self._fill = client.register_script(_FILL)

    def decide(self, customer_id: str, cached: str | None) -> Decision:
        """The consent that applies to this request. `cached`: the key's value as read with the
        customer (None: absent). Never raises: any failure means no personal data."""
        consent = _decode(cached)
        if consent is not None:
            return Decision(consent, "cache")
        consent = self.store.read(customer_id)
        if consent is None:  # failed closed (the store logged why): nothing to cache
            return Decision(NO_PERSONAL_DATA, "unavailable")
        try:
            value = json.dumps(consent.to_dict(), separators=(",", ":"))
            self._fill(keys=[self.keys.consent(customer_id)],
                       args=[cached or "", value, self.ttl_seconds])
        except redis.RedisError as exc:  # the answer stands; only the next request pays again
            log.warning("consent cache of customer %r not filled: %s", customer_id, exc)
        return Decision(consent, "store")

    def invalidate(self, customer_id: str) -> None:
        """The ConsentStore's on_change hook: a fresh tombstone, so no request that read the
        database before the change can fill the cache with what it read."""
        tombstone = _TOMBSTONE + uuid.uuid4().hex
        self.client.set(self.keys.consent(customer_id), tombstone, ex=self.ttl_seconds)


@lru_cache(maxsize=4096)  # few distinct values: every request would parse the same JSON again
def _decode(cached: str | None) -> Consent | None:
    if not cached or cached.startswith(_TOMBSTONE):
        return None
    try:
        return Consent.from_dict(json.loads(cached))
    except (ValueError, TypeError):  # unreadable entry: ask the database instead
        return None
