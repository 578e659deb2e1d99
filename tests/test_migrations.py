"""Schema migrations (Alembic), on SQLite and PostgreSQL: the migrations build exactly the tables
the code declares, a database made before migrations is adopted, and `trustrec db upgrade` works."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serving.records.database import make_engine, metadata, table_modules, upgrade


def test_migrations_build_exactly_the_declared_tables(database_url):
    engine = make_engine(database_url)
    try:
        assert upgrade(engine) is not None
        table_modules()
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        # a table or column changed in code without a migration shows up here
        assert differences == [], differences
        assert upgrade(engine) == upgrade(engine)  # harmless to run again
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(database_url):
    engine = make_engine(database_url)
    try:
        table_modules()
        metadata.create_all(engine)  # how the schema was made before migrations
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO consent (customer_id, allowed, level, version, updated_at) "
                "VALUES ('c1', '[]', 'none', 1, CURRENT_TIMESTAMP)"))
        revision = upgrade(engine)
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == revision
            assert connection.execute(sa.text("SELECT count(*) FROM consent")).scalar() == 1
    finally:
        engine.dispose()


def test_db_upgrade_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'records.db'}"
    command = [sys.executable, "-m", "trustrec.cli", "db", "upgrade", "--database-url", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    result = subprocess.run([*command, "--revision", "nope"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "cannot upgrade to 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
