"""Fairness on MovieLens-100K: the audit of each served model variant, fairness through
unawareness, and the calibrated re-rank.

    python -m benchmarks.fairness --data ../shared/data/ml-100k        (make bench-fairness)

On the temporal split (recommender.split), every model is fitted on the training part and audited
on the test part (recommender.fairness.audit), per protected attribute (age band, gender):
1. served variants: the hybrid (history as past offers), hybrid-identity, each also under the
   consent levels segment and none, and the pure-history models (ALS, item-kNN, popularity);
2. unawareness: one configuration trained with and without age_band and gender
   (exclude_attributes), over several seeds: overall NDCG@10 and the NDCG gap between groups;
3. calibrated re-rank of the hybrid's top 100 at several strengths: NDCG@10, the calibration gap
   (KL of the genre mix, Steck 2018) and the gaps between groups; and its speed per request.
Hybrid epochs are chosen by early stopping on a validation split carved from the training part
(never the test part), unless given with --epochs NAME=N.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from recommender.catalog import history_distributions, offer_category_matrix
from recommender.data import Dataset
from recommender.fairness import (
    AuditReport,
    audit_model,
    calibrated_rerank,
    compare_unawareness,
    consent_scorer,
    fit_configuration,
    metric_names,
    reranked_scorer,
)
from recommender.loaders import load_movielens
from recommender.models import Recommender, make_model
from recommender.split import Split, temporal_split

HYBRIDS = ("hybrid", "hybrid-items", "hybrid-identity")
HISTORY_MODELS = ("als", "itemknn-bm25", "popularity")
LEVELS = (None, "segment", "none")
K = 10


def slug(label: str) -> str:
    """A folder name for an audit label: "hybrid [consent none]" -> "hybrid-consent-none"."""
    return re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")


def compact(report: AuditReport) -> dict:
    """What the results file keeps of an audit (the full one is in --out): overall metrics and,
    per attribute and metric, the group values, the gap with its intervals and the flag."""
    keep = ("by_group", "best", "worst", "difference", "difference_ci", "ratio", "ratio_ci",
            "flagged")
    full = report.to_json()
    return {
        "customers": full["customers"], "overall": full["overall"],
        "attributes": {
            a: {"sizes": audit["sizes"],
                "metrics": {m: {key: c[key] for key in keep} for m, c in audit["metrics"].items()}}
            for a, audit in full["attributes"].items()
        },
    }


def choose_epochs(split: Split, name: str, seed: int) -> int:
    """Early stopping on validation carved from the training part (as train_and_evaluate does)."""
    inner = temporal_split(split.train)
    model = make_model(name, random_state=seed, show_progress=False)
    return int(model.fit(inner.train, validation=inner.test).epochs_)


def gap_cell(report: AuditReport, attribute: str, metric: str) -> str:
    c = report.comparison(attribute, metric)
    flag = " **flagged**" if c.flagged else ""
    return (f"{c.difference:.4f} [{c.difference_ci[0]:.4f}, {c.difference_ci[1]:.4f}] "
            f"({c.worst} < {c.best}){flag}" if c.higher_is_better else
            f"{c.difference:.4f} [{c.difference_ci[0]:.4f}, {c.difference_ci[1]:.4f}] "
            f"({c.worst} > {c.best}){flag}")


def variants_table(reports: dict[str, AuditReport], attributes: list[str]) -> str:
    names = metric_names(K)
    header = ["variant", names["ndcg"], names["calibration_gap"], names["coverage"]]
    header += [f"{a}: {names['ndcg']} gap [95% CI]" for a in attributes]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 3 + "---|" * len(attributes)]
    for label, r in reports.items():
        cells = [label, f"{r.overall[names['ndcg']]:.4f}",
                 f"{r.overall[names['calibration_gap']]:.3f}", f"{r.overall[names['coverage']]:.3f}"]
        cells += [gap_cell(r, a, names["ndcg"]) for a in attributes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rerank_table(reports: dict[float, AuditReport], attributes: list[str]) -> str:
    names = metric_names(K)
    header = ["strength", names["ndcg"], names["recall"], names["calibration_gap"],
              names["coverage"]]
    for a in attributes:
        header += [f"{a}: {names['ndcg']} gap", f"{a}: calibration gap difference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for strength, r in reports.items():
        cells = [f"{strength:g}"] + [f"{r.overall[names[m]]:.4f}"
                                     for m in ("ndcg", "recall", "calibration_gap", "coverage")]
        for a in attributes:
            cells += [gap_cell(r, a, names["ndcg"]), gap_cell(r, a, names["calibration_gap"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rerank_speed(model: Recommender, split: Split, offer_categories: np.ndarray,
                 targets: np.ndarray, strength: float, n_candidates: int, customers: int) -> float:
    """Median seconds of one calibrated_rerank call (candidates already scored)."""
    rows = np.arange(min(customers, split.train.n_customers))
    scores = model.score(rows)
    times = []
    for i, row in enumerate(rows):
        candidates = np.argsort(-scores[i])[:n_candidates]
        started = time.perf_counter()
        calibrated_rerank(candidates, scores[i, candidates], offer_categories, targets[row], K,
                          strength)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fairness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="MovieLens-100K folder")
    parser.add_argument("--seeds", type=int, default=3, help="unawareness: training seeds")
    parser.add_argument("--unaware-model", default="hybrid-identity",
                        help="configuration for the unawareness comparison (hybrid-identity: "
                             "~20 s per fit; hybrid: ~2 min per fit)")
    parser.add_argument("--epochs", action="append", default=[], metavar="NAME=N",
                        help="epochs of a hybrid instead of early stopping on validation")
    parser.add_argument("--strengths", default="0,0.3,0.5,0.7,0.9",
                        help="calibrated re-rank strengths (comma-separated)")
    parser.add_argument("--candidates", type=int, default=100, help="re-rank pool per customer")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fairness-audits"),
                        help="folder for every audit's JSON, markdown and plots")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fairness.json"))
    args = parser.parse_args(argv)
    if not (args.data / "u.data").is_file():
        parser.error(f"MovieLens-100K folder not found: {args.data}")
    started = time.perf_counter()
    dataset: Dataset = load_movielens(args.data, report=None)
    split = temporal_split(dataset)
    attributes = list(dataset.taxonomy.protected)
    names = metric_names(K)
    options = {"k": K, "n_boot": args.n_boot, "seed": 0}

    epochs = {name: int(n) for name, _, n in (e.partition("=") for e in args.epochs)}
    for name in HYBRIDS:
        if name not in epochs:
            epochs[name] = choose_epochs(split, name, seed=0)
            print(f"{name}: {epochs[name]} epochs (early stopping on validation)", file=sys.stderr)

    # 1. served variants -------------------------------------------------------------------------
    reports: dict[str, AuditReport] = {}
    fitted: dict[str, Recommender] = {}
    for name in (*HYBRIDS, *HISTORY_MODELS):
        params = ({"epochs": epochs[name], "random_state": 0, "show_progress": False}
                  if name in HYBRIDS else {})
        model = fitted[name] = fit_configuration(split, name, params)
        for level in LEVELS if name in HYBRIDS else (None,):
            label = name + (f" [consent {level}]" if level else "")
            reports[label] = audit_model(
                consent_scorer(model, level), split, dataset, label=label,
                notes=[f"{name} {params or '(defaults)'} fitted on the training part."], **options)
            print(f"audited {label}", file=sys.stderr)

    # 2. unawareness -----------------------------------------------------------------------------
    unaware_params = {"show_progress": False}
    if args.unaware_model in epochs:
        unaware_params["epochs"] = epochs[args.unaware_model]
    comparison = compare_unawareness(dataset, args.unaware_model, unaware_params,
                                     seeds=range(args.seeds), split=split, **options)
    print("unawareness compared", file=sys.stderr)

    # 3. calibrated re-rank of the served hybrid --------------------------------------------------
    offer_categories, _ = offer_category_matrix(dataset, "genre")
    targets = history_distributions(split.train, offer_categories)
    seen = split.train.interaction_matrix()
    strengths = [float(s) for s in args.strengths.split(",") if s]
    reranked: dict[float, AuditReport] = {}
    for strength in strengths:
        scorer = reranked_scorer(fitted["hybrid"].score, seen, offer_categories, targets, k=K,
                                 strength=strength, n_candidates=args.candidates)
        reranked[strength] = audit_model(scorer, split, dataset,
                                         label=f"hybrid, calibrated re-rank {strength:g}", **options)
    speed = rerank_speed(fitted["hybrid"], split, offer_categories, targets,
                         strength=max(strengths), n_candidates=args.candidates, customers=300)
    minutes = (time.perf_counter() - started) / 60

    # report ---------------------------------------------------------------------------------------
    for label, report in {**reports, **{r.label: r for r in reranked.values()}}.items():
        report.write(args.out / slug(label))
    print(f"\n{dataset.name}: {split.test.summary()['interactions']} test interactions, "
          f"{reports['hybrid'].customers} audited customers, k={K}, {args.n_boot} bootstrap "
          f"resamples; hybrid epochs {epochs}\n")
    print("### Served variants\n")
    print(variants_table(reports, attributes))
    print(f"\n### Fairness through unawareness ({args.unaware_model}, seeds 0..{args.seeds - 1})\n")
    print(comparison.to_markdown())
    print(f"### Calibrated re-rank of the hybrid's top {args.candidates} (genre mix)\n")
    print(rerank_table(reranked, attributes))
    print(f"\ncalibrated_rerank: median {speed * 1e6:,.0f} µs per request ({args.candidates} "
          f"candidates, k={K}, strength {max(strengths):g}); whole benchmark {minutes:.1f} min, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    summary = {
        "dataset": dataset.name, "k": K, "n_boot": args.n_boot, "epochs": epochs,
        "variants": {label: compact(r) for label, r in reports.items()},
        "unawareness": {
            "model": args.unaware_model, "seeds": args.seeds,
            "table": json.loads(comparison.table().to_json(orient="index")),
            "gap_change": {a: comparison.gap_change(a, names["ndcg"]) for a in attributes},
        },
        "rerank": {f"{s:g}": compact(r) for s, r in reranked.items()},
        "rerank_seconds_per_request": speed, "minutes": minutes,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, allow_nan=False))
    print(f"results: {args.json}; audits (JSON, markdown, plots): {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
