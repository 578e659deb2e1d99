"""A customer's controls on the request path: the database owns them (serving.records.controls),
Redis caches them beside the customer's record, read in the same round trip. A change writes the
new value over the cache after it is committed; a request that missed fills the cache only if
nothing is there (SET NX), so a fill from a read made before a change never hides the change."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.controls import (
    LEAVE_OUT,
    NOT_RELEVANT,
    SEE_LESS,
    controls_of,
    corrections_of,
)
from serving.redis_store import Keys

log = logging.getLogger(__name__)

SEE_LESS_FACTOR = 4.0  # an offer of a category to see less of keeps a quarter of its relevance
SEE_LESS_ATTRIBUTE = "category"  # the offer attribute "see less like this" names
# what a purchase left out still does where the served model learned a profile of the customer
LEARNED_NOTE = ("Your overall taste, learned when the model was last trained, still includes it "
                "until the model is trained again.")


@dataclass(frozen=True)
class Controls:
    not_relevant: frozenset[str] = frozenset()  # offers left out
    see_less: frozenset[str] = frozenset()  # categories placed lower
    leave_out: frozenset[str] = frozenset()  # past purchases not used
    corrections: tuple[tuple[str, str | None], ...] = ()  # (attribute, value; None: cleared)

    @classmethod
    def from_rows(cls, rows: list[dict], corrections: dict[str, str | None]) -> Controls:
        by_kind: dict[str, set[str]] = {NOT_RELEVANT: set(), SEE_LESS: set(), LEAVE_OUT: set()}
        for row in rows:
            by_kind.setdefault(row["kind"], set()).add(row["value"])
        return cls(frozenset(by_kind[NOT_RELEVANT]), frozenset(by_kind[SEE_LESS]),
                   frozenset(by_kind[LEAVE_OUT]), tuple(sorted(corrections.items())))

    def to_json(self) -> str:
        return json.dumps({NOT_RELEVANT: sorted(self.not_relevant),
                           SEE_LESS: sorted(self.see_less), LEAVE_OUT: sorted(self.leave_out),
                           "corrections": dict(self.corrections)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Controls:
        raw = json.loads(text)
        return cls(frozenset(raw[NOT_RELEVANT]), frozenset(raw[SEE_LESS]),
                   frozenset(raw[LEAVE_OUT]), tuple(sorted(raw["corrections"].items())))

    def corrected(self, attributes: dict[str, object]) -> dict[str, object]:
        """`attributes` with the customer's corrections applied (a cleared one removed)."""
        out = dict(attributes)
        for attribute, value in self.corrections:
            if value is None:
                out.pop(attribute, None)
            else:
                out[attribute] = value
        return out


NONE = Controls()


class ControlsCache:
    def __init__(self, client: redis.Redis, keys: Keys, engine: Engine,
                 ttl_seconds: int = 3600) -> None:
        self.client, self.keys, self.engine, self.ttl_seconds = client, keys, engine, ttl_seconds

    def get(self, customer_id: str, cached: str | None) -> Controls | None:
        """The customer's controls; `cached`: the cache entry read with the customer (None: a
        miss, filled from the database). None when they cannot be read (the database is down):
        the caller then uses no personal data, as when consent cannot be read."""
        if cached is not None:
            try:
                return Controls.from_json(cached)
            except (ValueError, KeyError, TypeError):
                pass  # unreadable: read the database instead
        try:
            controls = self._read(customer_id)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("controls of customer %r unreadable, serving without personal data: %s",
                        customer_id, exc)
            return None
        try:
            self.client.set(self.keys.controls(customer_id), controls.to_json(), nx=True,
                            ex=self.ttl_seconds)
        except redis.RedisError as exc:  # the answer stands; only the next request pays again
            log.warning("controls cache of customer %r not filled: %s", customer_id, exc)
        return controls

    def changed(self, customer_id: str) -> None:
        """After a committed change: the cache holds what the database now holds."""
        controls = self._read(customer_id)
        self.client.set(self.keys.controls(customer_id), controls.to_json(), ex=self.ttl_seconds)

    def _read(self, customer_id: str) -> Controls:
        return Controls.from_rows(controls_of(self.engine, customer_id),
                                  corrections_of(self.engine, customer_id))
