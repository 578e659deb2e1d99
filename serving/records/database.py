"""The SQL database that owns TrustRec's records (consent, the audit trail, posted interactions).

A SQLite file by default, so a demo needs no server; PostgreSQL by URL (docs/architecture.md).
Modules declare their tables on `metadata`; the schema is built and changed by Alembic migrations
(serving/records/migrations/versions/), which `upgrade` (and `trustrec db upgrade`) applies. A
database made before migrations existed (tables, no alembic_version) is adopted at the first
revision, whose tables it already has, then upgraded.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

URL_ENV = "TRUSTREC_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("trustrec.db")
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 2  # an unreachable database answers 503 in this long, at most

# Modules that declare tables on `metadata`; create_schema imports them so that no table is
# missed just because its module was not imported yet (a missing table would make every consent
# read fail closed, silently).
TABLE_MODULES = ("serving.records.consent", "serving.records.audit", "serving.records.interactions",
                 "serving.records.controls", "serving.records.catalog",
                 "serving.records.challengers")

metadata = sa.MetaData()

_WRITE = "trustrec_write"  # execution option marking a transaction that will write


def default_url() -> str:
    """The settings' database (TRUSTREC_DATABASE_URL), else a SQLite file ./trustrec.db."""
    from serving.config import load

    return load(serving=False).database_url or f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (None: `default_url()`), set up for safe concurrent writers."""
    parsed = sa.make_url(url or default_url())
    # hide_parameters: error messages end up in logs, and parameters carry customer data.
    # JSON columns hold what a served response carried; a value JSON cannot encode is kept as text
    json_options = {"json_serializer": _to_json}
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, hide_parameters=True, **json_options)
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; TrustRec ships psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    connect_args = {}
    libpq = parsed.get_driver_name() in ("psycopg2", "psycopg")
    if libpq and "connect_timeout" not in parsed.query:
        # An unreachable server must fail fast: requests fall back to non-personalized offers.
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return sa.create_engine(
        parsed, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args, **json_options
    )


def _to_json(value: object) -> str:
    return json.dumps(value, default=str)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take BEGIN over from the sqlite3 module, which begins lazily and never IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")  # wait, don't fail
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous = FULL")  # a commit is on disk when acknowledged
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads and then writes; commits on normal exit, rolls back on error.

    On SQLite it takes the write lock at BEGIN, so what it read is still current when it writes
    (a deferred transaction would fail instead, once another writer commits in between).
    """
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


def ping(engine: Engine) -> None:
    """Raise unless the database answers a query."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the revision whose tables databases made before migrations already have
_POSTGRES_LOCK = 7_356_301  # an advisory lock id: workers starting together upgrade one at a time


def table_modules() -> None:
    """Import every module that declares tables on `metadata`."""
    for module in TABLE_MODULES:
        importlib.import_module(module)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to `revision` (default: the newest); harmless to call again. Returns
    the revision it is at."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    table_modules()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _POSTGRES_LOCK})
        config.attributes["connection"] = connection
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None and sa.inspect(connection).has_table("consent"):
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(engine: Engine) -> None:
    """The newest schema (`upgrade` to head): what the app and the commands call."""
    upgrade(engine)
