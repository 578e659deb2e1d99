"""Similar offers ("customers who bought this also bought"): the next purchase given the last one.

    python -m benchmarks.similar                (make bench-similar; about 30 s on 2 cores)
    python -m benchmarks.similar --datasets ml-100k --seeds 1
    python -m benchmarks.similar --validation   (one step further back: what defaults are chosen on)

Protocol. Each customer's interactions are put in time order. Interactions at the same time (one
basket, or ratings saved in one second) have no order of their own, so they are ordered at random,
one draw per seed: ordering them by offer id, as recommender.split does, would make the query and
the target of the retail log (in one basket 95% of the time) neighbours in the catalogue's
numbering, whose neighbouring stock codes are often bought together: it raised item-kNN's NDCG@10
there from 0.065 to 0.088 (cosine) and from 0.070 to 0.108 (BM25). Every customer with at least
2 interactions gives their last one as the target and the one before it as the query; everything
else (customers with a single interaction included) is the training data every method is fitted
on. A target the customer had interacted with before (a
repeat purchase) is dropped and counted: the customer's past offers, the query among them, are
excluded from the candidates, as a storefront does not propose what the customer already has, so
it could never be hit. Each method ranks offers similar to the query alone; NDCG@10 is
1 / log2(rank + 1) of the target (0 when it is not among the 10), HR@10 whether it is among them,
coverage@10 the share of the catalog in at least one list, "length" the mean list length
(co-occurrence methods only propose offers someone bought with the query, so a list can be short).
`--validation` applies the protocol once more to the training data (the target: each customer's
second-to-last interaction) and measures there, never on the test targets.

Methods: `popularity` (customers per offer); `itemknn-cosine` and `itemknn-bm25`, the rows of the
repo's item-kNN similarity (recommender.models.implicit_models.knn_similarity with the defaults of
recommender.models.MODELS), used the same way; `als-vectors`, the cosine of implicit ALS's offer
vectors (the kind of factors the stack's profile component learns; MODELS's ALS defaults, seeded);
`similar`, recommender.similar.SimilarOffers with its defaults, served through `similar()`; and
its ablations: `[+sequence]` (time order on top: sequence_weight 1, window 3, decay 0.5),
`[share of buyers]` (ranked by exactly the criterion's share, together / buyers) and
`[plain cosine]` (which reproduces itemknn-cosine).

Prints one table per data set (mean and sd over the seeds), then `similar` against item-kNN (the
ratio of mean NDCG@10, and on how many seeds it was ahead), and writes
benchmarks/results/similar.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommender.data import Dataset
from recommender.evaluation import NO_OFFER, format_table, top_k
from recommender.loaders import load_dataset
from recommender.models import MODELS
from recommender.models.implicit_models import als_factors, knn_similarity
from recommender.similar import SimilarOffers

ROOT = Path(__file__).resolve().parents[1]
K = 10


def _suite() -> dict:
    from benchmarks.quality import SUITE  # the same data sets, loaded the same way

    return SUITE


@dataclass(frozen=True)
class LeaveLastOut:
    """train: customers x offers binary CSR (float64); first_seen: the same pattern, the time each
    customer first interacted with each offer in the training part; customers, queries, targets:
    (n,) int64 aligned; repeats_dropped: targets dropped as repeat purchases. customer, offer,
    timestamp: the training rows in the protocol's order (for applying it again)."""

    train: sp.csr_matrix
    first_seen: sp.csr_matrix
    customers: np.ndarray
    queries: np.ndarray
    targets: np.ndarray
    repeats_dropped: int
    customer: np.ndarray
    offer: np.ndarray
    timestamp: np.ndarray


def time_order(dataset: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, offer, timestamp) of every interaction, by customer, then time; interactions
    of one customer at one time in a random order drawn from `seed`."""
    customer = dataset.customer_codes.astype(np.int64)
    offer = dataset.offer_codes.astype(np.int64)
    timestamp = dataset.interactions["timestamp"].to_numpy(np.int64)
    shuffle = np.random.default_rng(seed).permutation(len(customer))
    order = np.lexsort((shuffle, timestamp, customer))
    return customer[order], offer[order], timestamp[order]


def leave_last_out(customer: np.ndarray, offer: np.ndarray, timestamp: np.ndarray,
                   n_customers: int, n_offers: int) -> LeaveLastOut:
    """The protocol (module docstring) on rows already in time_order."""
    counts = np.bincount(customer, minlength=n_customers)
    eligible = np.flatnonzero(counts >= 2)
    last = np.cumsum(counts)[eligible] - 1
    kept = np.ones(len(customer), dtype=bool)
    kept[last] = False
    c, o, t = customer[kept], offer[kept], timestamp[kept]
    # the first time of each (customer, offer) pair: rows are in time order, so the first row
    first = np.unique(c * n_offers + o, return_index=True)[1]
    first_seen = sp.csr_matrix((t[first], (c[first], o[first])), shape=(n_customers, n_offers))
    train = sp.csr_matrix((np.ones(len(first)), (c[first], o[first])),
                          shape=(n_customers, n_offers))
    first_seen.sort_indices()
    train.sort_indices()
    queries, targets = offer[last - 1], offer[last]
    repeat = np.asarray(train[eligible, targets]).ravel() > 0
    return LeaveLastOut(train, first_seen, eligible[~repeat], queries[~repeat], targets[~repeat],
                        int(repeat.sum()), c, o, t)


def protocol(dataset: Dataset, seed: int, validation: bool = False) -> LeaveLastOut:
    """The test protocol, or with `validation` the same applied to its training part."""
    part = leave_last_out(*time_order(dataset, seed), dataset.n_customers, dataset.n_offers)
    if validation:
        part = leave_last_out(part.customer, part.offer, part.timestamp, dataset.n_customers,
                              dataset.n_offers)
    return part


# A method fits on a LeaveLastOut and returns (fit seconds, lists): (n_queries, K) offers,
# NO_OFFER padded, never the customer's training offers.
Method = Callable[[LeaveLastOut, int], tuple[float, np.ndarray]]


def ranked(part: LeaveLastOut, scores: np.ndarray) -> np.ndarray:
    """Top-K of (n_queries, n_offers) scores; offers scoring 0 or less are not candidates."""
    scores = np.where(scores > 0, scores, -np.inf)
    return top_k(scores, part.train[part.customers], K)


def popularity(part: LeaveLastOut, seed: int) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    buyers = np.diff(part.train.tocsc().indptr).astype(np.float64)
    seconds = time.perf_counter() - started
    return seconds, ranked(part, np.tile(buyers, (len(part.queries), 1)))


def itemknn(name: str) -> Method:
    """The rows of the repo's item-kNN similarity, with the model's registered defaults."""
    defaults = MODELS[name][1]

    def method(part: LeaveLastOut, seed: int) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        _, similarity = knn_similarity(
            part.train.astype(np.float32), defaults["weighting"], defaults["neighbours"],
            K1=defaults.get("K1", 1.2), B=defaults.get("B", 0.75))
        seconds = time.perf_counter() - started
        return seconds, ranked(part, similarity[part.queries].toarray())

    return method


def als_vectors(part: LeaveLastOut, seed: int) -> tuple[float, np.ndarray]:
    """Cosine of ALS's offer vectors (no co-occurrence needed: every offer is a candidate)."""
    params = MODELS["als"][1]
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        _, _, items = als_factors(part.train.astype(np.float32), iterations=15, random_state=seed,
                                  num_threads=2, **params)
    seconds = time.perf_counter() - started
    items = np.asarray(items, dtype=np.float64)
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    cosine = unit[part.queries] @ unit.T
    cosine[np.arange(len(part.queries)), part.queries] = -np.inf
    # shifted so that every offer but the query stays a candidate (ranked drops scores <= 0)
    return seconds, ranked(part, cosine + 2.0)


def similar_offers(**params: object) -> Method:
    """SimilarOffers served through similar(): the query's neighbours less the customer's past."""

    def method(part: LeaveLastOut, seed: int) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        model = SimilarOffers(**params).fit(part.train, part.first_seen)
        seconds = time.perf_counter() - started
        lists = np.full((len(part.queries), K), NO_OFFER, dtype=np.int64)
        history = part.train[part.customers]
        for row, query in enumerate(part.queries):
            past = history.indices[history.indptr[row]:history.indptr[row + 1]]
            offers, _ = model.similar(int(query), K, exclude=past)
            lists[row, : len(offers)] = offers
        return seconds, lists

    return method


METHODS: dict[str, Method] = {
    "popularity": popularity,
    "itemknn-cosine": itemknn("itemknn-cosine"),
    "itemknn-bm25": itemknn("itemknn-bm25"),
    "als-vectors": als_vectors,
    "similar": similar_offers(),
    # ablations: time order on top, ranking by the criterion's own share, plain cosine
    "similar [+sequence]": similar_offers(sequence_weight=1.0, sequence_window=3,
                                          sequence_decay=0.5),
    "similar [share of buyers]": similar_offers(customer_exponent=0.0, popularity_exponent=0.0,
                                                shrinkage=0.0),
    "similar [plain cosine]": similar_offers(customer_exponent=0.0, popularity_exponent=0.5,
                                             shrinkage=0.0),
}
SEEDED = {"als-vectors"}  # methods with randomness of their own (the protocol's ties aside)


def metrics(part: LeaveLastOut, lists: np.ndarray) -> dict[str, float]:
    """NDCG@K, HR@K, coverage@K and mean list length of top-K lists against the targets."""
    hits = lists == part.targets[:, None]
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    listed = lists[lists != NO_OFFER]
    return {
        f"ndcg@{K}": float((hits @ discount).mean()),
        f"hr@{K}": float(hits.any(axis=1).mean()),
        f"coverage@{K}": len(np.unique(listed)) / part.train.shape[1],
        "length": float((lists != NO_OFFER).sum(axis=1).mean()),
    }


def run(dataset: Dataset, methods: list[str], seeds: int, validation: bool = False
        ) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """Per method: the mean and sd over seeds of each metric, and the mean fit seconds; and the
    protocol's counts (queries, repeats dropped)."""
    per_seed: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    facts: dict[str, object] = {}
    for seed in range(seeds):
        part = protocol(dataset, seed, validation)
        facts = {"queries": len(part.queries), "repeats dropped": part.repeats_dropped,
                 "train interactions": int(part.train.nnz)}
        for name in methods:
            seconds, lists = METHODS[name](part, seed)
            per_seed[name].append(metrics(part, lists) | {"fit seconds": seconds})
    rows = {}
    for name, results in per_seed.items():
        row: dict[str, float] = {}
        for key in results[0]:
            values = np.array([r[key] for r in results])
            row[key] = float(values.mean())
            if key == f"ndcg@{K}":
                row["per seed"] = values.tolist()
            if key in (f"ndcg@{K}", f"hr@{K}"):
                row[f"{key} sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows[name] = row
    return rows, facts


def verdict(rows: dict[str, dict]) -> dict[str, object]:
    """`similar` against each item-kNN: the ratio of mean NDCG@K and the seeds it was ahead on."""
    ours = rows.get("similar")
    out: dict[str, object] = {}
    for name in ("itemknn-cosine", "itemknn-bm25"):
        if ours is None or name not in rows:
            continue
        theirs = rows[name]
        out[f"/ {name}"] = ours[f"ndcg@{K}"] / theirs[f"ndcg@{K}"]
        ahead = sum(a > b for a, b in zip(ours["per seed"], theirs["per seed"], strict=True))
        out[f"ahead of {name}"] = ahead
    return out


def main(argv: list[str] | None = None) -> int:
    suite = _suite()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.similar", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(suite), help="comma-separated, of the suite")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--validation", action="store_true",
                        help="measure on the validation targets (second-to-last interactions)")
    parser.add_argument("--json", default=None,
                        help="default benchmarks/results/similar.json (similar-validation.json "
                             "with --validation)")
    args = parser.parse_args(argv)
    chosen = [d.strip() for d in args.datasets.split(",")]
    unknown = [d for d in chosen if d not in suite]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; the suite: {', '.join(suite)}")
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    default_json = "similar-validation.json" if args.validation else "similar.json"
    out = Path(args.json or ROOT / "benchmarks" / "results" / default_json)

    results, summary = {}, {}
    for name in chosen:
        path, kind, needed = suite[name]
        if needed is not None and not needed.is_file():
            print(f"{name}: skipped, {needed} not found")
            continue
        dataset = load_dataset(path, kind)
        started = time.perf_counter()
        rows, facts = run(dataset, methods, args.seeds, args.validation)
        target = "validation" if args.validation else "test"
        print(f"\n{name}: {dataset.summary()}, next purchase given the last one ({target}), "
              f"{facts['queries']} queries ({facts['repeats dropped']} repeat targets dropped), "
              f"mean over {args.seeds} seeds ({time.perf_counter() - started:.0f} s)")
        print(format_table(rows, [f"ndcg@{K}", f"ndcg@{K} sd", f"hr@{K}", f"hr@{K} sd",
                                  f"coverage@{K}", "length", "fit seconds"]))
        results[name] = {"summary": dataset.summary(), "protocol": facts, "methods": rows}
        summary[name] = verdict(rows)

    if any(summary.values()):
        print(f"\nsimilar against item-kNN, NDCG@{K}: ratio of the means, seeds ahead of "
              f"{args.seeds}:")
        print(format_table({n: v for n, v in summary.items() if v}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(
        {"seeds": args.seeds, "k": K, "validation": args.validation,
         "defaults": SimilarOffers().get_params(), "seeded": sorted(SEEDED),
         "machine": platform.machine(), "python": platform.python_version(),
         "datasets": results, "summary": summary}, indent=2, default=float) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
