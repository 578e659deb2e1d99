"""The SQL database that owns TrustRec's records (consent, the audit trail, posted interactions).

A SQLite file by default, so a demo needs no server; PostgreSQL by URL (docs/architecture.md). Modules declare
their tables on `metadata`; `create_schema` creates whatever is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

URL_ENV = "TRUSTREC_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("trustrec.db")
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5

# Modules that declare tables on `metadata`; create_schema imports them so that no table is
# missed just because its module was not imported yet (a missing table would make every consent
# read fail closed, silently).
TABLE_MODULES = ("serving.records.consent", "serving.records.audit", "serving.records.interactions")

metadata = sa.MetaData()

_WRITE = "trustrec_write"  # execution option marking a transaction that will write


def default_url() -> str:
    """$TRUSTREC_DATABASE_URL, else a SQLite file ./trustrec.db."""
    return os.environ.get(URL_ENV) or f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (None: `default_url()`), set up for safe concurrent writers."""
    parsed = sa.make_url(url or default_url())
    # hide_parameters: error messages end up in logs, and parameters carry customer data.
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, hide_parameters=True)
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
        parsed, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
    )


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


def create_schema(engine: Engine) -> None:
    """Create the tables that do not exist yet; harmless to call again."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    metadata.create_all(engine)
