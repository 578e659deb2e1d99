"""Schema migrations (Alembic), on SQLite and PostgreSQL: the migrations build exactly the tables
the code declares, a database made before migrations is adopted, and `trustrec db upgrade` works."""

from __future__ import annotations

import json
import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serving.records.audit import served_record, served_table
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
        # the schema as the code made it before migrations: the baseline's tables, no version
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE alembic_version"))
            connection.execute(sa.text(
                "INSERT INTO consent (customer_id, allowed, level, version, updated_at) "
                "VALUES ('c1', '[]', 'none', 1, CURRENT_TIMESTAMP)"))
            connection.execute(sa.text(
                "INSERT INTO served_responses (request_id, served_at, customer_id, endpoint, "
                "model_version, personalization, consent_source, categories_used, n_offers, "
                "latency_ms, payload) VALUES ('r1', CURRENT_TIMESTAMP, 'c1', 'offers', 'v1', "
                "'full', 'record', '[]', 2, 1.5, :payload)"),
                {"payload": json.dumps({"actor": "storefront", "consent": {"level": "full"},
                                        "offers": [["o1", 0.5], ["o2", 0.25]], "params": {"k": 2},
                                        "reasons": {"o1": ["popular"]}, "rules_version": None,
                                        "rule_changes": []})})
        revision = upgrade(engine)
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == revision
            assert connection.execute(sa.text("SELECT count(*) FROM consent")).scalar() == 1
        # the packed audit fields of old rows are unpacked into their columns
        served = served_record(engine, "r1")
        assert served == {"customer_id": "c1", "offers": ["o1", "o2"]}
        with engine.connect() as connection:
            row = connection.execute(sa.select(served_table)).one()
        assert (row.actor, row.params, row.reasons) == ("storefront", {"k": 2}, {"o1": ["popular"]})
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
