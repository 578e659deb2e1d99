"""Redis is a cache that rebuilds itself: when it has lost the live model (a restart without
persistence, a flush), a worker republishes the artifact from the artifact store and adds back
the interactions recorded since it was trained, with no one at the keyboard; then the running
champion/challenger experiment, as the records database has it (serving.records.challengers),
with its version, share and start. Until the challenger is back its customers get the champion
(and their responses are recorded with the champion's arm).

One worker at a time rebuilds (a Redis lock, held while it works); the others see `current` come
back. Meanwhile requests get the model's popular offers with personalization `none` from the
model a worker still holds (serving.redis_store.ModelCache), never an answer built on a guess, and
a worker that holds none answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from recommender.artifacts import load_artifact
from serving.publish import publish
from serving.records.challengers import running_experiment
from serving.records.erasure import erased_among
from serving.records.interactions import recorded_since
from serving.redis_store import RedisModelStore

log = logging.getLogger(__name__)

LOCK_SECONDS = 600  # longer than any rebuild; a worker that died holding it frees it then


class Healer:
    def __init__(self, store: RedisModelStore, engine: Engine, models_dir: str | Path,
                 secret: str | None) -> None:
        self.store, self.engine, self.secret = store, engine, secret
        self.models_dir = Path(models_dir)
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._warned = False

    @property
    def healing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, version: str | None) -> None:
        """Rebuild in the background from `version`'s artifact (None: the newest), unless this
        process is at it already."""
        with self._guard:
            if self.healing:
                return
            if not self.models_dir.is_dir():
                if not self._warned:
                    log.error("the online store has no model and there is no artifact store at "
                              "%s to rebuild it from (TRUSTREC_MODELS_DIR)", self.models_dir)
                    self._warned = True
                return
            self._thread = threading.Thread(target=self._run, args=(version,), daemon=True,
                                            name="trustrec-heal")
            self._thread.start()

    def _run(self, version: str | None) -> None:
        lock = self.store.keys.heal_lock
        client = self.store.client
        try:
            while self.store.current_version() is None:
                if client.set(lock, b"1", nx=True, ex=LOCK_SECONDS):
                    try:
                        self.rebuild(version)
                    finally:
                        client.delete(lock)
                    return
                time.sleep(1)  # another worker is rebuilding
        except Exception:  # logged: the next request that finds nothing starts again
            log.exception("rebuilding the online store failed")

    def rebuild(self, version: str | None) -> str:
        """Add back what was recorded since the artifact was trained, then publish it (in this
        order: the first personal answer after the flip already excludes those purchases).
        Returns the version published."""
        path = self._artifact_path(version)
        log.warning("online store lost its model: republishing %s", path)
        artifact = load_artifact(path)
        erased = erased_among(self.engine, artifact.customer_rows, self.secret)
        trained_at = datetime.fromisoformat(artifact.manifest["created_at"])
        added = 0
        for customer_id, offer_id in recorded_since(self.engine, trained_at):
            if customer_id not in erased:
                self.store.append_interaction(customer_id, offer_id, retry=True)
                added += 1
        published = publish(artifact, self.store.client, self.store.keys.prefix, progress=False,
                            exclude=erased)
        log.warning("online store rebuilt: %s published, %d interactions added back", published,
                    added)
        self._restore_experiment(published)
        return published

    def _restore_experiment(self, champion: str) -> None:
        """Publish the recorded running experiment's challenger again, unless it is the champion
        (promoted by a publish without the record) or not in the artifact store."""
        running = running_experiment(self.engine)
        if running is None or running.version == champion:
            return
        path = self.models_dir / running.version
        if not (path / "manifest.json").is_file():
            log.error("the running experiment's challenger %s is not in the artifact store %s: the "
                      "champion serves everyone until it is published again", running.version,
                      self.models_dir)
            return
        artifact = load_artifact(path)
        erased = erased_among(self.engine, artifact.customer_rows, self.secret)
        publish(artifact, self.store.client, self.store.keys.prefix, progress=False,
                exclude=erased, challenger=running.share, since=running.since,
                records=self.engine)
        log.warning("experiment restored: challenger %s for %.1f%% of customers since %s",
                    running.version, 100 * running.share, running.since)

    def _artifact_path(self, version: str | None) -> Path:
        if version is not None and (self.models_dir / version / "manifest.json").is_file():
            return self.models_dir / version
        found = sorted((p for p in self.models_dir.glob("*/manifest.json")),
                       key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"no artifact in {self.models_dir} to rebuild from")
        return found[-1].parent
