"""Who is calling: service API keys with roles, and customer tokens.

- API keys (header `X-API-Key`, or `Authorization: Bearer <key>`) belong to a role: `storefront`
  (the shop's back end) or `admin`. Configuration holds only their SHA-256 digests; a presented key
  is hashed and compared in constant time, so neither the configuration nor a timing reveals a key.
- Customer tokens (`Authorization: Bearer <token>`) are signed and expiring (itsdangerous), issued
  by a storefront key for one customer id, so that customer's browser can read its own offers,
  explanations and consent and change its own consent, and nothing of anyone else's.

Missing or invalid credentials: 401. Valid ones that may not do this: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from recommender.errors import TrustRecError
from serving.errors import ApiError

STOREFRONT, ADMIN, CUSTOMER = "storefront", "admin", "customer"
ROLES = (STOREFRONT, ADMIN)
KEY_PREFIX = "trk_"
DEFAULT_TOKEN_SECONDS = 3600
MAX_TOKEN_SECONDS = 7 * 24 * 3600
_TOKEN_SALT = "trustrec-customer-token-v1"  # a token is good for this purpose only
_HEX = frozenset("0123456789abcdef")


class ConfigError(TrustRecError, ValueError):
    """Configuration that the service cannot run with."""


@dataclass(frozen=True)
class ApiKey:
    role: str
    digest: str  # sha256 hex of the key

    @property
    def actor(self) -> str:
        """How consent history names a change made with this key: its role and the start of its
        digest, enough to tell keys apart without revealing one."""
        return f"{self.role}-key:{self.digest[:12]}"


@dataclass(frozen=True)
class Principal:
    role: str  # storefront, admin or customer
    actor: str
    customer_id: str | None = None  # for customer tokens: the one customer it may act for


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_api_keys(text: str | None) -> tuple[ApiKey, ...]:
    """`role:sha256hex` entries separated by commas or new lines, or `@path` / a path to a file
    holding them (lines starting with # are comments)."""
    if not text or not text.strip():
        return ()
    text = text.strip()
    if text.startswith("@") or (":" not in text and Path(text).is_file()):
        path = Path(text.removeprefix("@"))
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read API keys file {path}: {exc.strerror}") from None
    keys = []
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        role, sep, digest = entry.partition(":")
        role, digest = role.strip(), digest.strip().lower()
        if not sep or role not in ROLES:
            raise ConfigError(f"API key entry must be ROLE:SHA256HEX with ROLE one of "
                              f"{', '.join(ROLES)}; got role {role!r}")
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise ConfigError(f"API key entry for role {role!r}: the key's SHA-256 digest must be "
                              "64 hex digits (keys are configured hashed, never in plain text)")
        keys.append(ApiKey(role, digest))
    return tuple(keys)


class Authenticator:
    """revoked_at(customer_id): the time up to which that customer's tokens are void (an erasure
    revokes them), or None."""

    def __init__(self, keys: Iterable[ApiKey], secret: str,
                 token_max_seconds: int = MAX_TOKEN_SECONDS,
                 revoked_at: Callable[[str], float | None] | None = None) -> None:
        self.keys = tuple(keys)
        self.token_max_seconds = token_max_seconds
        self.revoked_at = revoked_at
        self._tokens = URLSafeTimedSerializer(secret, salt=_TOKEN_SALT)

    # --- API keys --------------------------------------------------------------------------------
    def key(self, presented: str) -> ApiKey | None:
        digest = hash_key(presented)
        found = None
        for key in self.keys:  # every key compared, so the time taken does not tell which matched
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    # --- customer tokens ---------------------------------------------------------------------------
    def issue(self, customer_id: str, seconds: int = DEFAULT_TOKEN_SECONDS) -> str:
        return self._tokens.dumps({"sub": customer_id, "ttl": int(seconds)})

    def customer(self, token: str, *, revocation: bool = True) -> str | None:
        """The customer id a valid, unexpired token was issued for, else None. revocation=False
        skips the revocation lookup (a Redis read): for deciding whose rate budget a request
        spends, never for letting it in."""
        try:
            payload, issued = self._tokens.loads(
                token, max_age=self.token_max_seconds, return_timestamp=True)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("sub"), str):
            return None
        ttl = payload.get("ttl")
        if not isinstance(ttl, int) or time.time() - issued.timestamp() > ttl:
            return None
        revoked = (self.revoked_at(payload["sub"]) if self.revoked_at is not None and revocation
                   else None)
        if revoked is not None and issued.timestamp() <= revoked:
            return None
        return payload["sub"]

    # --- a request ---------------------------------------------------------------------------------
    def authenticate(self, headers, *, revocation: bool = True) -> Principal | None:
        presented = headers.get("X-API-Key")
        if presented:
            key = self.key(presented)
            return None if key is None else Principal(key.role, key.actor)
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return None
        credential = credential.strip()
        key = self.key(credential)
        if key is not None:
            return Principal(key.role, key.actor)
        customer_id = self.customer(credential, revocation=revocation)
        if customer_id is None:
            return None
        return Principal(CUSTOMER, customer_id, customer_id)


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="trustrec"'}


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        authenticator: Authenticator = current_app.extensions["trustrec"].auth
        principal = authenticator.authenticate(request.headers)
        if principal is None:
            has_credentials = "X-API-Key" in request.headers or "Authorization" in request.headers
            message = ("invalid or expired credentials" if has_credentials else
                       "credentials required: an API key (X-API-Key) or a customer token "
                       "(Authorization: Bearer)")
            raise ApiError(401, "unauthorized", message, "Authorization", _CHALLENGE)
        g.principal = principal
    return principal


def require(*roles: str, own_customer: bool = False) -> Callable:
    """A view decorator: the caller must hold one of `roles`, or, with own_customer, be a customer
    token for the `customer_id` in the URL."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            principal = current_principal()
            if principal.role == CUSTOMER:
                if not own_customer:
                    raise ApiError(403, "forbidden", "a customer token cannot do this")
                if principal.customer_id != kwargs.get("customer_id"):
                    raise ApiError(403, "forbidden",
                                   "a customer token gives access to its own customer only")
            elif principal.role not in roles:
                raise ApiError(403, "forbidden", f"the {principal.role} role cannot do this")
            return view(*args, **kwargs)

        wrapped.required_roles = roles  # type: ignore[attr-defined]
        wrapped.own_customer = own_customer  # type: ignore[attr-defined]
        return wrapped

    return decorate
