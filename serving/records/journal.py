"""The audit journal: every served response's audit row is appended to a local file before the
response leaves, and dropped from it once committed, so no process kill loses a row the client
received (the background writer batches commits for throughput; serving.records.audit).

Each process writes its own segment files (`<pid>-<ns>.jsonl`) and holds an exclusive lock on
each while it lives. A segment is deleted once every row in it is committed and a newer one has
taken over. A file nobody holds a lock on belongs to a process that died: the next writer to start
commits its rows (those not in the trail already) and deletes it. An append reaches the operating
system before the response is sent, which is enough for kill -9 of any process; it is not
fsynced, so a power cut may lose the last rows.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_ROWS = 10_000  # rows per segment before a new one is started


class Journal:
    def __init__(self, directory: str | Path, segment_rows: int = SEGMENT_ROWS) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_rows = segment_rows
        self._files: dict[str, int] = {}  # segment -> file descriptor
        self._open_rows: dict[str, int] = {}  # segment -> rows appended and not yet committed
        self._written = 0  # rows appended to the current segment
        self._current = self._start()

    def append(self, row: dict) -> str:
        """Append the row; the segment it went to, for `committed`. The caller serializes calls."""
        if self._written >= self.segment_rows:
            self._current, self._written = self._start(), 0
        line = json.dumps(_encoded(row), separators=(",", ":"), default=_plain) + "\n"
        os.write(self._files[self._current], line.encode())
        self._written += 1
        self._open_rows[self._current] += 1
        return self._current

    def committed(self, segment: str) -> None:
        """One row of `segment` is in the database: a finished segment with none left goes."""
        self._open_rows[segment] -= 1
        if self._open_rows[segment] == 0 and segment != self._current:
            self._remove(segment)

    def close(self) -> None:
        """At exit, after the writer committed everything: no segment is needed any more."""
        for segment in list(self._files):
            if self._open_rows[segment] == 0:
                self._remove(segment)
            else:
                os.close(self._files.pop(segment))  # kept for the next start to commit

    def _start(self) -> str:
        name = f"{os.getpid()}-{time.time_ns()}.jsonl"
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._files[name], self._open_rows[name] = fd, 0
        return name

    def _remove(self, segment: str) -> None:
        (self.directory / segment).unlink(missing_ok=True)
        os.close(self._files.pop(segment))
        del self._open_rows[segment]


def orphans(directory: str | Path) -> Iterator[tuple[Path, list[dict]]]:
    """(file, rows) of every segment whose process died, locked while the caller commits them;
    the caller deletes the file once they are committed."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its owner finished it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive, or being replayed by another process
            with open(fd, closefd=False, encoding="utf-8", errors="replace") as lines:
                rows = []
                for number, line in enumerate(lines, 1):
                    try:
                        rows.append(_decoded(json.loads(line)))
                    except (ValueError, KeyError, TypeError):  # cut short by the kill
                        log.error("audit journal %s: line %d unreadable, skipped", path, number)
            yield path, rows
        finally:
            os.close(fd)


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars as numbers


def _encoded(row: dict) -> dict:
    return row | {"served_at": row["served_at"].isoformat()}


def _decoded(row: dict) -> dict:
    return row | {"served_at": datetime.fromisoformat(row["served_at"])}
