"""Ranking quality and training time of the served model against every baseline, on the suite.

    python -m benchmarks.quality                (make bench-quality)
    python -m benchmarks.quality --datasets ml-100k --seeds 1 --models served,als

The suite: MovieLens-100K, the UCI Online Retail log (loaded from its raw file through
examples/retail/mapping.toml) and the synthetic storefront; data sets that are missing are
skipped with a message. On each, every model is trained and tested with the evaluation protocol
(recommender.split, recommender.evaluation) over several seeds; each baseline is first tuned on the
validation split over its grid (recommender.models.TUNING_GRIDS), the served model runs its own
search on validation; the test split is looked at once per run. "train s" is all of it (tuning or
search, then the refit); "refit s" the final fit alone.

Prints one table per data set and a summary: the served model against the best baseline (mean
NDCG@10 over seeds, with the standard deviation) and its training time against ALS's. Writes
everything to benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from recommender.evaluation import format_table
from recommender.loaders import load_dataset
from recommender.models import SERVED, model_name
from recommender.training import compare

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SUITE = {
    "ml-100k": (SHARED / "ml-100k", "movielens", SHARED / "ml-100k" / "u.data"),
    "online-retail": (ROOT / "examples" / "retail" / "mapping.toml", "csv",
                      SHARED / "online-retail" / "online_retail_dec2010.csv"),
    "synthetic": (None, "synthetic", None),
}
# the baselines the served model must match (ease is measured too: it is the stack's main part)
BASELINES = ("als", "bpr", "itemknn-cosine", "itemknn-bm25", "lightfm-cf", "popularity")
MODELS = ("served", *BASELINES, "ease")
K = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(SUITE), help="comma-separated, of the suite")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "quality.json"))
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(model_name(n.strip()) for n in args.models.split(",")))
    chosen = [d.strip() for d in args.datasets.split(",")]
    unknown = [d for d in chosen if d not in SUITE]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; the suite: {', '.join(SUITE)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")

    results, summary = {}, {}
    for name in chosen:
        path, kind, needed = SUITE[name]
        if needed is not None and not needed.is_file():
            print(f"{name}: skipped, {needed} not found")
            continue
        dataset = load_dataset(path, kind)
        started = time.perf_counter()
        rows = compare(dataset, names, seeds=range(args.seeds), k=K, tune=True, show_progress=True)
        print(f"\n{name}: {dataset.summary()}, NDCG@{K} etc. on test, mean over {args.seeds} "
              f"seeds; baselines tuned on validation; {SERVED} is the served model "
              f"({time.perf_counter() - started:.0f} s)")
        print(format_table(rows, [f"ndcg@{K}", f"ndcg@{K} sd", f"recall@{K}", f"coverage@{K}",
                                  "train seconds", "refit seconds"]))
        results[name] = {"summary": dataset.summary(), "models": rows}
        summary[name] = verdict(rows)

    if summary:
        print(f"\nserved model ({SERVED}) against the best baseline ({', '.join(BASELINES)}), "
              f"NDCG@{K} mean +- sd over {args.seeds} seeds:")
        print(format_table(summary))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(
        {"seeds": args.seeds, "k": K, "served": SERVED, "machine": platform.machine(),
         "python": platform.python_version(), "datasets": results, "summary": summary},
        indent=2, default=float) + "\n")
    print(f"\nwritten: {args.json}")
    return 0


def verdict(rows: dict[str, dict[str, float]]) -> dict[str, object]:
    """The served model's row against the best baseline's, and its time against ALS's."""
    ndcg, sd = f"ndcg@{K}", f"ndcg@{K} sd"
    served = rows.get(SERVED)
    baselines = {n: rows[n] for n in BASELINES if n in rows}
    if served is None or not baselines:
        return {}
    best = max(baselines, key=lambda n: baselines[n][ndcg])
    out: dict[str, object] = {
        "served": served[ndcg], "served sd": served[sd], "best baseline": best,
        "baseline": baselines[best][ndcg], "baseline sd": baselines[best][sd],
        "served / best": served[ndcg] / baselines[best][ndcg],
    }
    if "als" in rows:
        out["train seconds"] = served["train seconds"]
        out["als train seconds"] = rows["als"]["train seconds"]
        out["time / als"] = served["train seconds"] / rows["als"]["train seconds"]
        out["refit / als refit"] = served["refit seconds"] / max(rows["als"]["refit seconds"], 1e-9)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
