"""The rule file serving reads, re-read when it changes; and publishing one atomically.

Publishing writes a temporary file beside the target and renames it over the target (os.replace),
so a reader sees either the old file or the new one, never half of one. A serving worker checks the
file's identity (inode, modification time, size) at most once per interval; a changed file is
parsed and validated against the served catalog, and only then replaces the rules in force. A bad
new file is refused and logged, and the previous rules stay in force.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.errors import DataError
from recommender.rules.engine import CompiledRules
from recommender.rules.spec import BusinessRules, load_rules

log = logging.getLogger(__name__)


def publish_rules(rules: BusinessRules, target: str | Path) -> Path:
    """Write `rules` (its file text, unchanged) to `target` atomically; returns the target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(rules.text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class RulesFile:
    """The rules in force for a worker, from one file.

    The constructor reads the file (DataError if it is missing or malformed: refuse to start).
    `compiled(version, offers, item_vectors)` returns the rules resolved for that catalog, or None
    when no valid rules are in force. A file is held against the catalog strictly the first time
    it is seen (an unknown offer refuses it); when only the model version changes, offers the new
    catalog lacks match nothing and are logged. A file refused by one catalog is held to the next
    model version's catalog again, which may have the offers it names.
    """

    def __init__(self, path: str | Path, check_interval_ms: float = 1000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.check_interval_ms, self.clock = Path(path), check_interval_ms, clock
        self._signature = _signature(self.path)
        self._pending: BusinessRules | None = load_rules(self.path)  # not yet held to a catalog
        self._rules: BusinessRules | None = None
        self._refused: tuple[BusinessRules, str] | None = None  # a file and the version refusing it
        self._compiled: dict[str, CompiledRules] = {}
        self._checked_at = clock()
        self._lock = threading.Lock()

    @property
    def version(self) -> str | None:
        return self._rules.version if self._rules is not None else None

    def compiled(self, version: str, offers: pd.DataFrame,
                 item_vectors: np.ndarray | None = None) -> CompiledRules | None:
        # a file read but not yet held to this catalog
        waiting = self._pending is not None or (
            self._refused is not None and self._refused[1] != version)
        if (waiting or (self.clock() - self._checked_at) * 1000 >= self.check_interval_ms) \
                and self._lock.acquire(blocking=waiting):
            try:  # one thread checks the file; the others go on with the rules in force
                self._check(version, offers, item_vectors)
            finally:
                self._lock.release()
        compiled = self._compiled.get(version)
        if compiled is None and self._rules is not None:
            compiled = CompiledRules(self._rules, offers, item_vectors, strict=False)
            if compiled.unknown:
                log.warning("rules %s: not in model version %s, so matching nothing: %s",
                            self._rules.version, version, ", ".join(compiled.unknown))
            if len(self._compiled) > 4:
                self._compiled.clear()
            self._compiled[version] = compiled
        return compiled

    def _check(self, version: str, offers: pd.DataFrame, item_vectors: np.ndarray | None) -> None:
        self._checked_at = self.clock()
        signature = _signature(self.path)
        if signature != self._signature:
            self._signature, self._refused = signature, None
            try:
                self._pending = load_rules(self.path)
            except DataError as exc:
                self._pending = None
                log.error("rule file refused, rules %s stay in force: %s", self.version, exc)
        if self._pending is None and self._refused is not None and self._refused[1] != version:
            self._pending = self._refused[0]  # a new model version: its catalog may have them
        if self._pending is None:
            return
        rules, self._pending = self._pending, None
        try:
            compiled = CompiledRules(rules, offers, item_vectors, strict=True)
        except DataError as exc:
            self._refused = (rules, version)
            log.error("rule file refused, rules %s stay in force: %s", self.version, exc)
            return
        self._rules, self._compiled, self._refused = rules, {version: compiled}, None
        log.info("business rules %s in force (%s)", rules.version, rules.source)
