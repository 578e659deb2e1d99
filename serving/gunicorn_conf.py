"""gunicorn settings for production:

    gunicorn -c python:serving.gunicorn_conf 'serving.app:create_app()'

Each worker builds its own app (no preload: Redis and database connections must not be shared
across a fork). Prometheus metrics are aggregated over the workers through files in
PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless set); a worker that exits is marked
dead so its live gauges disappear. Workers, worker class, threads and bind address come from the
settings (serving.config: TRUSTREC_WORKERS, TRUSTREC_WORKER_CLASS, TRUSTREC_THREADS, TRUSTREC_BIND)
or the command line, which wins.
"""

from __future__ import annotations

import os
import shutil
import tempfile

# One request is one small matrix product: BLAS and OpenMP threads only spin beside it (twice the
# CPU per request, measured). Set before anything below imports numpy, which reads them once:
# raw_env (further down) comes too late for libraries the master has already loaded.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

# Before anything imports prometheus_client: it picks its storage when first imported.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="trustrec-metrics-")
else:
    # values left by an earlier run would be added to this run's
    _folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(_folder, ignore_errors=True)
    os.makedirs(_folder, exist_ok=True)

import json  # noqa: E402

from gunicorn import util  # noqa: E402

from serving.config import load  # noqa: E402 (after the metrics folder is chosen)
from serving.errors import HTTP_CODES  # noqa: E402

# What gunicorn refuses before the app sees the request (a request line over 4094 bytes: 414, too
# many or too large headers: 431, a malformed request: 400) it answers with an HTML page, and it
# has no setting for that body: its writer is replaced by one answering in the API's JSON error
# form, naming the part of the request at fault. gunicorn looks the writer up on each error.
_FIELDS = {414: "path", 431: "headers"}


def _write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": {
        "code": HTTP_CODES.get(status_int, "bad_request"), "message": mesg or reason,
        "field": _FIELDS.get(status_int)}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = _write_json_error

settings = load()  # the same settings object as the app's: a bad value stops gunicorn here
bind = settings.bind
workers = settings.workers
# sync workers by default: one request at a time per process, each new connection taken by
# whichever worker is free. A request is ~2 ms of CPU under one GIL, so threads in a worker only
# interleave requests, and keep-alive pins a client's connections to one worker, which unbalances
# the two and lengthens the latency tail (compare: python -m benchmarks.serve
# --worker-class gthread|sync). gthread (TRUSTREC_WORKER_CLASS=gthread,
# TRUSTREC_THREADS) keeps connections alive, for clients that connect directly rather than through
# a proxy; sync workers expect a proxy in front that buffers slow clients (gunicorn's advice).
# sync is gunicorn's, answering writes from a credential already refused before the app
# (serving.gunicorn_worker): `-k sync` on the command line takes gunicorn's own instead.
worker_class = ("serving.gunicorn_worker.SyncWorker" if settings.worker_class == "sync"
                else settings.worker_class)
# gunicorn turns a sync worker with more than one thread into gthread: threads only for gthread
threads = settings.threads if settings.worker_class == "gthread" else 1
keepalive = 5  # gthread: idle keep-alive connections are closed after this many seconds
timeout = 30
graceful_timeout = 20
accesslog = None  # requests are counted in /metrics; an access log line costs each one
raw_env = ["OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1"]  # one request is one small matrix product


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
