"""Champion/challenger: a second published version serves a stable share of customers.

`{m}:challenger` (serving.redis_store.Keys) names the challenger version, its share and since when;
`current` stays the champion. A customer's arm is a hash of the challenger's version and their
id: stable for the whole experiment (their offers and their "why" come from one version), drawn
afresh for the next experiment (the same customers are not always the ones experimented on), and
independent of anything about the customer. serving.publish writes and ends experiments; the
audit trail records each response's arm, and serving.records.stats compares the arms' outcomes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

CHAMPION, CHALLENGER = "champion", "challenger"
ARMS = (CHAMPION, CHALLENGER)


@dataclass(frozen=True)
class Challenger:
    version: str
    share: float  # of customers, 0 < share < 1
    since: str  # ISO 8601, UTC: when the experiment started

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Challenger:
        data = json.loads(text)
        return cls(str(data["version"]), float(data["share"]), str(data["since"]))


def bucket(version: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by the experiment's version and the customer."""
    digest = hashlib.sha256(f"{version}\0{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def arm_of(challenger: Challenger | None, customer_id: str) -> str | None:
    """The customer's arm; None when no experiment runs."""
    if challenger is None:
        return None
    return CHALLENGER if bucket(challenger.version, customer_id) < challenger.share else CHAMPION
