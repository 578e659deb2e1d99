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
disk and the seconds to save it (its partials checked to rebuild alike) and to load it (they are
rebuilt), publish s, Redis bytes per customer (MEMORY USAGE of a customer's record, key and overhead
included, averaged over up to 2,000 customers), the item side and index MB (what every worker
loads), compute ms (ranking and explaining, the customer's record already read), request ms (the
whole call with its Redis round trip) in process and over HTTP (medians), index recall@10 and
ranking ms with the index and without.

Each stage prints its name, seconds and memory as it ends, and the size's row so far is written to
--out after each one ("complete": false until the size is done; "stage s" holds every stage's
seconds, "redis used MB" the server's whole memory), so that a run stopped at a time limit still
tells how far it got. --skip leaves out parts a size can be measured without (ALS alone, writing
the artifact to disk, the HTTP requests). The storefront is drawn by
recommender.loaders.synthetic's sampler ("auto": dense up to DENSE_MAX_CELLS customers x offers,
sparse beyond, where the dense one would take hours).

    python -m benchmarks.scale [--sizes 10000x1000,30000x3000,100000x10000] [--requests 300]
        [--sampler auto|dense|sparse] [--interactions 5-40] [--skip als,artifact,http]
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.faults import RedisServer
from benchmarks.serve import HOST, ROOT, free_port, in_process, start_gunicorn, stop, wait_ready
from recommender.offer_index import MIN_OFFERS

DEFAULT_SIZES = "10000x1000,30000x3000,100000x10000"
COLUMNS = ("customers", "offers", "interactions", "generate s", "train s", "als train s",
           "peak RSS MB", "artifact MB", "save s", "load s", "publish s", "redis B/customer", "item side MB",
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


SKIPPABLE = ("als", "artifact", "http")  # --skip: parts a size can be measured without


@dataclass(frozen=True)
class Options:
    """What every size is measured with (the command line's options)."""

    requests: int = 300
    threads: int = 1
    index_min_offers: int = MIN_OFFERS
    sampler: str = "auto"
    interactions: tuple[int, int] = (5, 40)
    skip: frozenset[str] = frozenset()
    out: Path | None = None  # where the row so far is written after each stage
    earlier: tuple[dict, ...] = ()  # rows of the sizes measured before, written with it
    seed: int = 0


class _Progress:
    """Prints each stage as it ends (seconds, resident and peak memory) and writes the row so
    far to options.out: a run stopped at a time limit still tells how far it got."""

    def __init__(self, row: dict, options: Options) -> None:
        self.row, self.options = row, options
        self.row["stage s"] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.row["stage s"][name] = seconds
        self.row["peak RSS MB"] = _peak_rss_mb()
        print(f"  {name}: {seconds:.1f} s (RSS {_rss_mb():,.0f} MB, peak "
              f"{self.row['peak RSS MB']:,.0f} MB)", flush=True)
        if self.options.out is not None:
            write_rows(self.options.out, [*self.options.earlier, self.row | {"complete": False}])


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:  # Linux: resident pages, second field
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(customers: int, offers: int, options: Options) -> dict:
    """One size, end to end (runs in a process of its own)."""
    import numpy as np

    from recommender.artifacts import Artifact, load_artifact, make_manifest, save_artifact
    from recommender.loaders.synthetic import load_synthetic
    from recommender.models import SERVED, make_model
    from serving.publish import publish
    from serving.redis_store import Keys, ModelCache, RedisModelStore

    seed = options.seed
    row: dict = {"customers": customers, "offers": offers}
    progress = _Progress(row, options)
    started = time.perf_counter()
    with progress.stage("generate"):
        dataset = load_synthetic(seed, n_customers=customers, n_offers=offers,
                                 interactions_per_customer=options.interactions,
                                 sampler=options.sampler)
    row["generate s"] = time.perf_counter() - started
    row["interactions"] = len(dataset.interactions)

    started = time.perf_counter()
    with progress.stage("train"):
        model = make_model(SERVED, num_threads=options.threads, random_state=seed,
                           show_progress=False)
        model.fit(dataset)
    row["train s"] = time.perf_counter() - started
    if "als" not in options.skip:
        started = time.perf_counter()
        with progress.stage("als train"):
            make_model("als", num_threads=options.threads, random_state=seed,
                       show_progress=False).fit(dataset)
        row["als train s"] = time.perf_counter() - started

    workdir = Path(tempfile.mkdtemp(prefix="trustrec-scale-"))
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        with progress.stage("artifact"):
            manifest = make_manifest(
                model_name=SERVED, params={}, taxonomy=model.taxonomy_,
                history_mode=model.history_mode_, data_fingerprint=dataset.fingerprint(),
                counts=dataset.summary(), metrics={})
            history = dataset.interactions[["customer_id", "offer_id", "timestamp"]]
            artifact = Artifact(manifest, model.to_additive(), dataset.customers, dataset.offers,
                                history.reset_index(drop=True))
            del model, dataset  # what the rest needs is in the artifact
            if "artifact" not in options.skip:
                started = time.perf_counter()
                path = save_artifact(artifact, workdir / "models")
                row["save s"] = time.perf_counter() - started
                row["artifact MB"] = sum(f.stat().st_size for f in path.rglob("*")
                                         if f.is_file()) / 1e6
                started = time.perf_counter()
                load_artifact(path)
                row["load s"] = time.perf_counter() - started
                shutil.rmtree(path)  # its disk is not needed after (the version is published)

        import redis

        client = redis.Redis(host=HOST, port=server.port)
        started = time.perf_counter()
        with progress.stage("publish"):
            version = publish(artifact, client, "scale:", progress=False,
                              offer_index=offers >= options.index_min_offers,
                              on_batch=_publish_progress())
        row["publish s"] = time.perf_counter() - started
        with progress.stage("redis memory"):
            keys = Keys("scale:")
            marker = json.loads(client.get(keys.complete(version)))
            items = sum(client.strlen(keys.items(version, i))
                        for i in range(marker["items_parts"]))
            index = sum(client.strlen(keys.offer_index(version, i))
                        for i in range(marker["offer_index_parts"]))
            # what a customer's record costs Redis, key and overhead included, over a sample
            sample = np.random.default_rng(seed).choice(artifact.customers.index,
                                                        min(customers, 2000), replace=False)
            row["redis B/customer"] = float(np.mean([
                client.memory_usage(keys.customer(version, str(c)), samples=0) for c in sample]))
            row["item side MB"], row["index MB"] = items / 1e6, index / 1e6
            row["redis used MB"] = client.info("memory")["used_memory"] / 1e6

        ids = [str(c) for c in artifact.customers.index]
        with progress.stage("requests"):
            timings = in_process(client, "scale:", ids, f"sqlite:///{workdir / 'consent.db'}",
                                 options.requests, rules=False)
            row["compute ms"] = timings["compute"] * 1e3
            row["request ms"] = timings["with_redis"] * 1e3

        loaded = ModelCache(RedisModelStore(client, "scale:")).snapshot()
        if loaded.offer_index is not None:
            with progress.stage("recall"):
                row |= _recall(artifact, loaded, np.random.default_rng(seed),
                               min(options.requests, 300))
        del artifact, loaded
        if "http" not in options.skip:
            with progress.stage("http"):
                row["http ms"] = _http(server.port, workdir, ids, options.requests) * 1e3
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    row["peak RSS MB"] = _peak_rss_mb()
    return row


def _publish_progress() -> Callable[[int, int], None]:
    """publish's on_batch: when the customers start (what came before is the item side, the
    offer index and the policy's main parameters) and each tenth of them written, with seconds."""
    started, printed = time.perf_counter(), [-1]

    def on_batch(written: int, total: int) -> None:
        tenth = 10 * written // max(total, 1)
        if tenth == printed[0]:
            return
        if printed[0] < 0:
            print(f"    publish: customers start after {time.perf_counter() - started:.1f} s "
                  "(item side, index, policy)", flush=True)
        printed[0] = tenth
        print(f"    publish: {written:,} of {total:,} customers written "
              f"({time.perf_counter() - started:.1f} s)", flush=True)

    return on_batch


def _http(redis_port: int, workdir: Path, ids: list[str], requests: int) -> float:
    """Median seconds of an offers request over HTTP: gunicorn, one sync worker, one
    connection, sequential requests."""
    from serving.auth import hash_key, new_key

    key = new_key()
    env = os.environ | {
        "TRUSTREC_ENV": "production", "TRUSTREC_REDIS_URL": f"redis://{HOST}:{redis_port}/0",
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
    try:
        wait_ready(port, process, log, seconds=300)
        return _http_median(port, key, ids, requests)
    finally:
        stop(process)


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


def write_rows(out: Path, rows: list[dict]) -> None:
    """The table so far as JSON, replaced whole (a reader never sees half a file)."""
    partial = out.with_name(out.name + ".tmp")
    partial.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    partial.replace(out)


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


def parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    if not low.isdigit() or not high.isdigit() or not 1 <= int(low) <= int(high):
        raise SystemExit(f"--interactions: {text!r} is not LOW-HIGH (e.g. 5-40)")
    return int(low), int(high)


def parse_skip(text: str) -> frozenset[str]:
    parts = frozenset(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(parts - set(SKIPPABLE))
    if unknown:
        raise SystemExit(f"--skip: {unknown[0]!r} is not one of {', '.join(SKIPPABLE)}")
    return parts


def main(argv: list[str] | None = None) -> int:
    from recommender.loaders.synthetic import SAMPLERS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=os.environ.get("SIZE") or DEFAULT_SIZES,
                        help=f"CUSTOMERSxOFFERS,... (default {DEFAULT_SIZES}; or $SIZE)")
    parser.add_argument("--requests", type=int, default=300, help="requests timed per size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="training threads")
    parser.add_argument("--index-min-offers", type=int, default=MIN_OFFERS,
                        help=f"publish an offer index from this catalog size (default {MIN_OFFERS})")
    parser.add_argument("--sampler", choices=SAMPLERS, default="auto",
                        help="the storefront's sampler (default auto: sparse for large sizes)")
    parser.add_argument("--interactions", type=parse_range, default=(5, 40), metavar="LOW-HIGH",
                        help="distinct offers per customer, inclusive (default 5-40)")
    parser.add_argument("--skip", type=parse_skip, default=frozenset(), metavar="PART,...",
                        help=f"leave parts out: {', '.join(SKIPPABLE)} (their columns print -)")
    parser.add_argument("--skip-http", action="store_true", help="the same as --skip http")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    out = Path(args.out)
    options = Options(requests=args.requests, threads=args.threads,
                      index_min_offers=args.index_min_offers, sampler=args.sampler,
                      interactions=args.interactions,
                      skip=args.skip | ({"http"} if args.skip_http else set()), out=out)
    context = multiprocessing.get_context("spawn")
    rows: list[dict] = []
    for customers, offers in sizes:
        print(f"{customers:,} customers x {offers:,} offers ...", flush=True)
        queue = context.Queue()
        child = context.Process(target=_in_child, args=(
            queue, customers, offers, replace(options, earlier=tuple(rows))))
        child.start()
        while True:  # a size that fails (out of memory, say) is reported, not waited for
            try:
                rows.append(queue.get(timeout=5))
                break
            except Exception:  # queue.Empty
                if not child.is_alive():
                    raise SystemExit(f"{customers}x{offers} failed (exit {child.exitcode})") from None
        child.join()
        write_rows(out, rows)  # each size's row as soon as it is complete
    print()
    print_table(rows)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
