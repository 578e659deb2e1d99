"""The Flask application factory.

Development: `trustrec serve`. Production (several worker processes, each building its own app):

    gunicorn -c python:serving.gunicorn_conf 'serving.app:create_app()'

Configuration comes from the environment (serving/config.py lists it); production refuses to
start without API keys, a token-signing secret and a Redis URL.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, g, request
from prometheus_client import Counter
from sqlalchemy.engine import Engine

from recommender.errors import DataError
from recommender.rules import RulesFile
from recommender.taxonomy import Taxonomy
from serving import config as configuration
from serving import errors
from serving.api import register_blueprints
from serving.auth import Authenticator
from serving.catalog import LiveCatalog
from serving.consent_cache import ConsentCache
from serving.controls import ControlsCache
from serving.healing import Healer
from serving.limits import limit_writes
from serving.metrics import Metrics
from serving.pages import bp as customer_pages
from serving.publish import connect
from serving.recommend import Recommender
from serving.records.audit import AuditWriter, subject_hash
from serving.records.catalog import catalog_state
from serving.records.consent import ConsentStore
from serving.records.database import create_schema, make_engine
from serving.records.erasure import is_tombstoned
from serving.redis_store import ModelCache, RedisModelStore, client_from_url
from serving.request_ids import RequestIds
from serving.served import OnServed, ServedRecord

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2  # a stalled Redis must fail requests quickly (503), not hang workers


@dataclass
class Services:
    """What the views use, built once per app (per worker process): app.extensions["trustrec"]."""

    settings: configuration.Settings
    redis: redis.Redis
    store: RedisModelStore
    cache: ModelCache
    engine: Engine
    consents: ConsentStore
    consent_cache: ConsentCache
    recommender: Recommender
    auth: Authenticator
    metrics: Metrics
    on_served: OnServed
    schema_ready: bool
    request_ids: RequestIds
    controls: ControlsCache
    audit: AuditWriter | None = None  # the audit trail's writer (serving.records.audit)
    secret: str = ""  # signs tokens and erasure hashes: TRUSTREC_SECRET_KEY, or made up (development)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app, configured from the environment and then `config` (same names)."""
    settings = configuration.load(config)
    app = Flask(__name__, static_folder=None)  # the customer pages serve their own static files
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the documented field order, and save the sorting
    app.json.compact = True
    services = _services(settings)
    app.extensions["trustrec"] = services

    @app.before_request
    def _start() -> None:
        g.request_id = str(uuid.uuid4())
        g.started = time.perf_counter()
        _check_path_is_utf8()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"  # JSON is never a script
        # personal data: never stored by a browser or shared cache
        response.headers.setdefault("Cache-Control", "no-store")
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started = g.get("started")
        if started is not None:
            services.metrics.observe(rule, request.method, response.status_code,
                                     time.perf_counter() - started)
        return response

    errors.register(app)
    register_blueprints(app)
    limit_writes(app, services.redis, settings.redis_prefix, customer=settings.rate_limit_customer,
                 key=settings.rate_limit_key, observe=services.metrics.observe,
                 refusal_delay=settings.refusal_delay_ms / 1000)
    app.register_blueprint(customer_pages)  # HTML for customers, over the API above
    if not settings.api_keys:
        log.warning("no API keys configured (TRUSTREC_API_KEYS): every authenticated request "
                    "will be refused")
    return app


def _check_path_is_utf8() -> None:
    """Werkzeug decodes a path that is not UTF-8 (%FF) with replacement characters: an id made
    up of them is not the one the client sent, so refuse it, naming the path parameter."""
    try:
        request.environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        field = next((name for name, value in (request.view_args or {}).items()
                      if "\ufffd" in str(value)), "path")
        raise errors.ApiError(400, "bad_parameter", f"{field} is not valid UTF-8",
                              field) from None


def close_app(app: Flask) -> None:
    """Write what the audit trail still holds, then release the database: what a worker does on
    exit (atexit), done now. Tests close every app they build, before its database goes away."""
    services: Services = app.extensions["trustrec"]
    if services.audit is not None:
        services.audit.close()
    services.engine.dispose()


def _services(settings: configuration.Settings) -> Services:
    client = settings.redis_client
    if client is None and settings.redis_url:
        client = client_from_url(
            settings.redis_url, socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S, health_check_interval=30,
        )
    elif client is None:
        client = connect(None)  # development: the embedded Redis the demo and publish use
    store = RedisModelStore(client, settings.redis_prefix)
    engine = make_engine(settings.database_url)
    # development without TRUSTREC_SECRET_KEY: a secret of this process (production requires one)
    secret = settings.secret_key or secrets.token_urlsafe(32)
    healer = Healer(store, engine, settings.models_dir, secret)
    catalog = LiveCatalog(client, store.keys, load=lambda: catalog_state(engine))
    cache = ModelCache(store, settings.model_check_ms, on_lost=healer.start, catalog=catalog)
    schema_ready = True
    try:
        create_schema(engine)
    except Exception as exc:  # the database may come up later: requests fail closed meanwhile
        log.error("consent store unavailable at start-up: %s", exc)
        schema_ready = False
    taxonomy = Taxonomy.load(settings.taxonomy_path) if settings.taxonomy_path else Taxonomy.default()
    consents = ConsentStore(engine, taxonomy, settings.consent_regime,
                            erased=lambda customer_id: is_tombstoned(engine, customer_id, secret))
    consent_cache = ConsentCache(client, store.keys, consents, settings.consent_cache_seconds)
    consents.on_change = consent_cache.invalidate
    controls = ControlsCache(client, store.keys, engine, settings.consent_cache_seconds)
    metrics = Metrics()
    queue_full = Counter(
        "trustrec_audit_queue_full", "Audit records written synchronously because the audit "
        "queue was full", registry=metrics._registry)
    writer = AuditWriter(engine, queue_size=settings.audit_queue_size,
                         block_ms=settings.audit_block_ms, on_full=queue_full.inc, secret=secret,
                         journal=settings.audit_journal or None)
    hook = _chain(writer, settings.on_served) if settings.on_served else writer
    return Services(
        settings=settings, redis=client, store=store, cache=cache, engine=engine,
        consents=consents, consent_cache=consent_cache,
        recommender=Recommender(cache, consent_cache, rules=_rules(settings),
                                min_share=settings.min_share, controls=controls),
        controls=controls,
        auth=Authenticator(settings.api_keys, secret, settings.token_max_seconds,
                           revoked_at=lambda customer_id: store.tokens_revoked_at(
                               subject_hash(customer_id, secret))),
        metrics=metrics, on_served=hook, schema_ready=schema_ready,
        request_ids=RequestIds(secret, settings.audit_retention_days * 86400), audit=writer,
        secret=secret,
    )


def _rules(settings: configuration.Settings) -> RulesFile | None:
    """The business rules file (TRUSTREC_RULES), read once now: a missing or malformed file
    refuses to start; later changes are picked up, or refused and logged, while serving."""
    if settings.rules_path is None:
        return None
    try:
        return RulesFile(settings.rules_path, settings.rules_check_ms)
    except DataError as exc:
        raise configuration.ConfigError(f"TRUSTREC_RULES: {exc}") from None


def _chain(*hooks: OnServed) -> OnServed:
    """The audit writer first, then a hook given in the configuration."""

    def served(record: ServedRecord) -> None:
        for hook in hooks:
            hook(record)

    return served
