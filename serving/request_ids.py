"""Request ids that prove whose response they name, so feedback needs no lookup to be refused.

An offers or why response's id is `<issued, hex>-<nonce>-<mac>`, the MAC an HMAC-SHA256 (the
serving secret) of the time, the nonce and the customer id, which the id itself does not carry.
Feedback checks it against the customer it claims in constant time: another customer's id and a
made-up one fail alike and at once, and no request waits for another worker's audit record to be
written. Other responses keep a random UUID.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_SALT = b"trustrec-request-id-v1"
_NONCE_HEX, _MAC_HEX = 12, 24


class RequestIds:
    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._key = hmac.new(secret.encode(), _SALT, hashlib.sha256).digest()
        self.max_age_seconds = max_age_seconds

    def mint(self, customer_id: str, now: float | None = None) -> str:
        issued = f"{int(time.time() if now is None else now):x}"
        nonce = secrets.token_hex(_NONCE_HEX // 2)
        return f"{issued}-{nonce}-{self._mac(issued, nonce, customer_id)}"

    def verify(self, request_id: str, customer_id: str, now: float | None = None) -> bool:
        """Whether `request_id` was minted for `customer_id` within max_age_seconds."""
        issued, nonce, mac = _parts(request_id)
        if not issued:
            return False
        expected = self._mac(issued, nonce, customer_id)
        if not hmac.compare_digest(mac, expected):
            return False
        age = (time.time() if now is None else now) - int(issued, 16)
        return -60 <= age <= self.max_age_seconds  # a minute of clock skew between workers

    @staticmethod
    def is_signed(request_id: str) -> bool:
        """Shaped like a minted id (ids served before they were signed are UUIDs)."""
        return _parts(request_id)[0] != ""

    def _mac(self, issued: str, nonce: str, customer_id: str) -> str:
        message = f"{issued}.{nonce}.{customer_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:_MAC_HEX]


def _parts(request_id: str) -> tuple[str, str, str]:
    """(issued, nonce, mac), or ("", "", "") when it is not shaped like a minted id."""
    issued, _, rest = request_id.partition("-")
    nonce, _, mac = rest.partition("-")
    hexdigits = "0123456789abcdef"
    if (0 < len(issued) <= 12 and len(nonce) == _NONCE_HEX and len(mac) == _MAC_HEX
            and all(ch in hexdigits for ch in issued + nonce + mac)):
        return issued, nonce, mac
    return "", "", ""
