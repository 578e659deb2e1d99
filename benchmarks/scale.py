"""`make bench-scale`: how training, publishing and serving grow with the storefront, as a table.

For each size (customers x offers, 5-40 distinct offers per customer), in a fresh process of its
own (so that its peak memory is its own):
generate a synthetic storefront; fit the served model (the stack, its default weights: no search)
and implicit's ALS on all of it; save the served model's artifact; publish it into an empty Redis
server of its own (the offer index too when the catalog has recommender.offer_index.MIN_OFFERS
offers or more); then time requests for random customers, in process (one recommend + explain,
k=10, the whole Recommender.offers call with its Redis round trip) and over HTTP (gunicorn, one
sync worker, one connection, sequential requests); and, where an index is published, its recall@10
against exact ranking over customers under random consent states, and the time of each ranking.

Columns: train s (the stack; ALS beside it), peak RSS of the whole size's process, artifact MB on
disk, publish s, Redis bytes per customer (MEMORY USAGE of a customer's record, key and overhead
included, averaged over up to 2,000 customers), the item side and index MB (what every worker
loads), compute ms (ranking and explaining, the customer's record already read), request ms (the
whole call with its Redis round trip) in process and over HTTP (medians), index recall@10 and
ranking ms with the index and without.

    python -m benchmarks.scale [--sizes 10000x1000,30000x3000,100000x10000] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.faults import RedisServer
from benchmarks.serve import HOST, ROOT, free_port, in_process, start_gunicorn, stop, wait_ready
from recommender.offer_index import MIN_OFFERS

DEFAULT_SIZES = "10000x1000,30000x3000,100000x10000"
COLUMNS = ("customers", "offers", "interactions", "generate s", "train s", "als train s",
           "peak RSS MB", "artifact MB", "publish s", "redis B/customer", "item side MB",
           "index MB", "compute ms", "request ms", "http ms", "index recall@10", "index rank ms",
           "exact rank ms")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        customers, _, offers = part.strip().lower().partition("x")
        if not customers.isdigit() or not offers.isdigit():
            raise SystemExit(f"--sizes: {part!r} is not CUSTOMERSxOFFERS (e.g. 10000x1000)")
        sizes.append((int(customers), int(offers)))
    return sizes


def measure(customers: int, offers: int, requests: int, threads: int, index_min_offers: int,
            seed: int = 0) -> dict:
    """One size, end to end (runs in a process of its own)."""
    import numpy as np

    from recommender.artifacts import Artifact, make_manifest, save_artifact
    from recommender.loaders.synthetic import load_synthetic
    from recommender.models import SERVED, make_model
    from serving.auth import hash_key, new_key
    from serving.publish import publish
    from serving.redis_store import Keys, ModelCache, RedisModelStore

    row: dict = {"customers": customers, "offers": offers}
    started = time.perf_counter()
    dataset = load_synthetic(seed, n_customers=customers, n_offers=offers)
    row["generate s"] = time.perf_counter() - started
    row["interactions"] = len(dataset.interactions)

    started = time.perf_counter()
    model = make_model(SERVED, num_threads=threads, random_state=seed, show_progress=False)
    model.fit(dataset)
    row["train s"] = time.perf_counter() - started
    started = time.perf_counter()
    make_model("als", num_threads=threads, random_state=seed, show_progress=False).fit(dataset)
    row["als train s"] = time.perf_counter() - started

    workdir = Path(tempfile.mkdtemp(prefix="trustrec-scale-"))
    server = RedisServer(free_port(), workdir)
    server.start()
    process = None
    try:
        manifest = make_manifest(
            model_name=SERVED, params={}, taxonomy=model.taxonomy_,
            history_mode=model.history_mode_, data_fingerprint=dataset.fingerprint(),
            counts=dataset.summary(), metrics={})
        history = dataset.interactions[["customer_id", "offer_id", "timestamp"]]
        artifact = Artifact(manifest, model.to_additive(), dataset.customers, dataset.offers,
                            history.reset_index(drop=True))
        path = save_artifact(artifact, workdir / "models")
        row["artifact MB"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6

        import redis

        client = redis.Redis(host=HOST, port=server.port)
        started = time.perf_counter()
        version = publish(artifact, client, "scale:", progress=False,
                          offer_index=offers >= index_min_offers)
        row["publish s"] = time.perf_counter() - started
        keys = Keys("scale:")
        marker = json.loads(client.get(keys.complete(version)))
        items = sum(client.strlen(keys.items(version, i)) for i in range(marker["items_parts"]))
        index = sum(client.strlen(keys.offer_index(version, i))
                    for i in range(marker["offer_index_parts"]))
        # what a customer's record costs Redis, key and overhead included, over a sample
        sample = np.random.default_rng(seed).choice(dataset.customers.index,
                                                    min(customers, 2000), replace=False)
        row["redis B/customer"] = float(np.mean([
            client.memory_usage(keys.customer(version, str(c)), samples=0) for c in sample]))
        row["item side MB"], row["index MB"] = items / 1e6, index / 1e6

        ids = [str(c) for c in dataset.customers.index]
        timings = in_process(client, "scale:", ids, f"sqlite:///{workdir / 'consent.db'}",
                             requests, rules=False)
        row["compute ms"], row["request ms"] = timings["compute"] * 1e3, timings["with_redis"] * 1e3

        loaded = ModelCache(RedisModelStore(client, "scale:")).snapshot()
        if loaded.offer_index is not None:
            row |= _recall(artifact, loaded, np.random.default_rng(seed), min(requests, 300))

        key = new_key()
        env = os.environ | {
            "TRUSTREC_ENV": "production", "TRUSTREC_REDIS_URL": f"redis://{HOST}:{server.port}/0",
            "TRUSTREC_REDIS_PREFIX": "scale:",
            "TRUSTREC_DATABASE_URL": f"sqlite:///{workdir / 'consent.db'}",
            "TRUSTREC_API_KEYS": f"storefront:{hash_key(key)}",
            "TRUSTREC_SECRET_KEY": uuid.uuid4().hex * 2,
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "TRUSTREC_AUDIT_JOURNAL": str(workdir / "journal"),
        }
        port = free_port()
        log = workdir / "gunicorn.log"
        process = start_gunicorn(port, env, argparse.Namespace(
            workers=1, worker_class="sync", threads=1), log)
        wait_ready(port, process, log, seconds=300)
        row["http ms"] = _http_median(port, key, ids, requests) * 1e3
    finally:
        if process is not None:
            stop(process)
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    row["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _recall(artifact, loaded, rng, n: int) -> dict:
    """recall@10 of ranking through the published index against exact ranking, customers and
    consent states at random, and the median time of each."""
    import numpy as np

    from recommender.ranking import customer_state, rank

    found, with_index, exact = 0, [], []
    categories = artifact.model.categories
    for customer_id in rng.choice(artifact.customers.index, n, replace=False):
        state = customer_state(artifact, customer_id)
        allowed = rng.random(len(categories)) < 0.6
        started = time.perf_counter()
        columns, _ = rank(loaded, state, allowed, 10)
        with_index.append(time.perf_counter() - started)
        started = time.perf_counter()
        want, _ = rank(artifact, state, allowed, 10)
        exact.append(time.perf_counter() - started)
        found += len(np.intersect1d(columns, want))
    return {"index recall@10": found / (10 * n),
            "index rank ms": statistics.median(with_index) * 1e3,
            "exact rank ms": statistics.median(exact) * 1e3}


def _http_median(port: int, key: str, customers: list[str], requests: int) -> float:
    rng = random.Random(2)
    times = []
    for i in range(requests + 20):  # the first 20 warm the worker
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        started = time.perf_counter()
        connection.request("GET", f"/v1/customers/{rng.choice(customers)}/offers?k=10",
                           headers={"X-API-Key": key})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"offers answered {response.status}")
        if i >= 20:
            times.append(time.perf_counter() - started)
        connection.close()
    return statistics.median(times)


def _in_child(queue, *args) -> None:
    queue.put(measure(*args))


def print_table(rows: list[dict]) -> None:
    widths = [max(len(c), 9) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        cells = []
        for column, width in zip(COLUMNS, widths, strict=True):
            value = row.get(column)
            text = "-" if value is None else (
                f"{value:,}" if isinstance(value, int) else
                f"{value:.3f}" if column == "index recall@10" else
                f"{value:.2f}" if value < 100 else f"{value:,.0f}")
            cells.append(text.rjust(width))
        print("  ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=os.environ.get("SIZE") or DEFAULT_SIZES,
                        help=f"CUSTOMERSxOFFERS,... (default {DEFAULT_SIZES}; or $SIZE)")
    parser.add_argument("--requests", type=int, default=300, help="requests timed per size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="training threads")
    parser.add_argument("--index-min-offers", type=int, default=MIN_OFFERS,
                        help=f"publish an offer index from this catalog size (default {MIN_OFFERS})")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    context = multiprocessing.get_context("spawn")
    rows = []
    for customers, offers in sizes:
        print(f"{customers:,} customers x {offers:,} offers ...", flush=True)
        queue = context.Queue()
        child = context.Process(target=_in_child, args=(queue, customers, offers, args.requests,
                                                        args.threads, args.index_min_offers))
        child.start()
        while True:  # a size that fails (out of memory, say) is reported, not waited for
            try:
                rows.append(queue.get(timeout=5))
                break
            except Exception:  # queue.Empty
                if not child.is_alive():
                    raise SystemExit(f"{customers}x{offers} failed (exit {child.exitcode})") from None
        child.join()
    print()
    print_table(rows)
    Path(args.out).write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
