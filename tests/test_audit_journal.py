"""The audit journal: no served response loses its audit row to a killed process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from serving.records.audit import AuditWriter, served_table
from serving.records.database import create_schema, make_engine
from serving.served import ServedRecord

ROOT = Path(__file__).resolve().parents[1]


def record(request_id: str) -> ServedRecord:
    return ServedRecord(
        request_id=request_id, served_at=time.time(), endpoint="offers", actor="test",
        customer_id="c1", model_version="v1", personalization="full",
        consent={"level": "full", "allowed": ["profile"], "available": True},
        consent_source="store", categories_used=["profile"], offers=[("o1", 1.5), ("o2", 0.5)])


def count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(served_table)).scalar()


KILLED = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from serving.records.audit import AuditWriter
from serving.records.database import make_engine
from test_audit_journal import record
# lingering ten minutes: nothing reaches the database before the kill
writer = AuditWriter(make_engine({url!r}), linger_ms=600_000, journal={journal!r})
for i in range({n}):
    writer.submit(record(f"r{{i}}"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_rows_of_a_killed_process_are_committed_by_the_next_writer(tmp_path, database_url):
    journal = tmp_path / "journal"
    engine = make_engine(database_url)
    create_schema(engine)
    script = KILLED.format(root=str(ROOT), tests=str(ROOT / "tests"), url=database_url,
                           journal=str(journal), n=40)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert count(engine) == 0 and len(list(journal.glob("*.jsonl"))) == 1
    writer = AuditWriter(engine, journal=journal)  # the next worker to start
    assert count(engine) == 40
    assert list(journal.glob("*.jsonl")) == [journal / writer._journal._current]
    with engine.connect() as connection:
        offers = connection.execute(sa.select(served_table.c.offers).where(
            served_table.c.request_id == "r3")).scalar_one()
    assert offers == [["o1", 1.5], ["o2", 0.5]]
    writer.close()
    assert not list(journal.glob("*.jsonl"))  # everything committed: nothing left to replay
    engine.dispose()


def test_a_live_writers_journal_is_not_replayed_and_segments_go_once_committed(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    create_schema(engine)
    journal = tmp_path / "journal"
    live = AuditWriter(engine, linger_ms=600_000, journal=journal)
    live._journal.segment_rows = 3
    for i in range(7):
        live.submit(record(f"r{i}"))
    assert len(list(journal.glob("*.jsonl"))) == 3  # 3 + 3 + 1 rows
    other = AuditWriter(engine, journal=journal)  # another worker starting meanwhile
    assert count(engine) == 0  # the live writer's rows are its own to write
    assert live.flush(timeout=5)
    assert count(engine) == 7
    assert len(list(journal.glob("*.jsonl"))) == 2  # the live writer's current segment, and other's
    other.close()
    live.close()
    assert not list(journal.glob("*.jsonl"))
    engine.dispose()
