"""Alembic's environment for TrustRec's records: run by serving.records.database.upgrade (and
`trustrec db upgrade`), always on a connection it is handed, never from an alembic.ini."""

from __future__ import annotations

from alembic import context

from serving.records.database import metadata, table_modules

table_modules()  # every table declared, so autogenerate compares against all of them
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
