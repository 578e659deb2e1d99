"""The marketer's Python API: each notebook step in one or two calls, tables as pandas DataFrames.

    from trustrec import notebook as tr
    dataset = tr.load_data("synthetic")          # or ("movielens", "../../shared/data/ml-100k")
    tr.compare_models(dataset, ["served", "als", "popularity"], seeds=(0, 1), tune=True)
    run = tr.train(dataset)                       # the served stack: its own search on validation
    run.selection; tr.plot_component_weights(run); tr.evaluation_table(run)
    table = tr.tune(dataset, "als", {"factors": [32, 64]})    # any model, any grid
    tr.plot_validation_curves(table, "factors")
    model = tr.load_model(tr.save_model(dataset, run, "../models"))
    tr.explain_customer(model, "c00042"); shap.plots.waterfall(tr.offer_explanation(model, "c00042"))
    shap.plots.beeswarm(tr.category_importance(model))
    report = tr.audit(model, dataset); tr.audit_gaps(report); tr.audit_plots(report)

Thin on purpose: training, tuning, evaluation, explanations and the audit are the library's own
(recommender.training, recommender.tuning, explain, recommender.fairness), so a notebook shows
exactly what `trustrec` and the API compute. Progress bars are tqdm.auto: widgets in Jupyter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import shap
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from explain.context import context
from explain.criteria import explain_offers
from explain.population import population_explanations
from recommender import tuning
from recommender.artifacts import KIND, Artifact, load_artifact, save_artifact
from recommender.consent import FULL, Consent, category_mask
from recommender.data import Dataset
from recommender.errors import DataError
from recommender.fairness import AuditReport, UnawarenessComparison, compare_unawareness
from recommender.fairness import audit_artifact as audit
from recommender.fairness.audit import artifact_configuration
from recommender.fairness.plots import attribute_figure
from recommender.loaders import load_dataset
from recommender.models import SERVED, TUNING_GRIDS, make_model, model_name
from recommender.ranking import customer_state, rank
from recommender.taxonomy import HISTORY
from recommender.training import (
    TrainingRun,
    build_artifact,
    consent_levels,
    fit_served_model,
    train_and_evaluate,
)
from recommender.tuning import best_params
from trustrec.records import as_records_allow

__all__ = [
    "OUTPUT_ENV", "audit", "audit_gaps", "audit_groups", "audit_plots", "best_params",
    "plot_component_weights",
    "category_importance", "compare_models", "customer_profile", "evaluation_table", "explain_customer",
    "latest_model", "load_data", "load_model", "load_or_train", "offer_explanation",
    "output_dir", "plot_unawareness", "plot_validation_curves", "save_model", "train", "tune",
    "unawareness",
]

OUTPUT_ENV = "TRUSTREC_NOTEBOOK_OUT"  # where notebooks write models/ and audits/ (tests: a temp dir)
COMPARED = ("ndcg", "precision", "recall", "coverage")
load_model = load_artifact


# --- data and artifacts ---------------------------------------------------------------------------
def load_data(format: str = "synthetic", path: str | os.PathLike[str] | None = None,
              **options: object) -> Dataset:
    """A dataset: load_data("synthetic"), load_data("movielens", "../../shared/data/ml-100k"),
    load_data("csv", "shop/mapping.toml"). options go to the loader (e.g. seed=, n_customers=)."""
    return load_dataset(path, format, **options)


def output_dir(default: str | os.PathLike[str] = "..") -> Path:
    """Where a notebook writes models/ and audits/: $TRUSTREC_NOTEBOOK_OUT, else `default` (the
    repository root seen from notebooks/, whose models/ and audits/ git ignores)."""
    return Path(os.environ.get(OUTPUT_ENV) or default)


def save_model(
    dataset: Dataset, run: TrainingRun, folder: str | os.PathLike[str], *,
    consent_db: str | None = None, regime: str = "opt_out", recorded_interactions: bool = False,
) -> Path:
    """Fit the run's configuration on all the data the records allow (the served model, as
    `trustrec train` does) and write its artifact under folder/<version>/; returns that path.

    consent_db: the serving database (SQLAlchemy URL). With it, withdrawn history, withheld
    attributes and erased customers are left out, and with `recorded_interactions` the
    interactions posted to the API are added; without it, every customer is under the default
    consent of `regime`. Give it for a model you will publish."""
    from serving.config import load as load_settings

    dataset, kept_out = as_records_allow(dataset, consent_db, regime,
                                         recorded_interactions=recorded_interactions,
                                         secret=load_settings(serving=False).secret_key)
    served = fit_served_model(dataset, run)
    return save_artifact(build_artifact(dataset, run, served, kept_out), folder)


def latest_model(folder: str | os.PathLike[str], dataset: Dataset | None = None) -> Path | None:
    """The newest artifact in `folder` (trained on `dataset`'s exact data, when given), or None."""
    found = []
    for manifest_path in Path(folder).glob("*/manifest.json"):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue  # not an artifact we can read: load_artifact would refuse it too
        if manifest.get("kind") != KIND:
            continue
        if dataset is not None and manifest.get("data_fingerprint") != dataset.fingerprint():
            continue
        found.append((str(manifest.get("created_at", "")), manifest_path.parent.name,
                      manifest_path.parent))
    return max(found)[2] if found else None


def load_or_train(dataset: Dataset, folder: str | os.PathLike[str], model: str = SERVED,
                  params: dict | None = None, *, seed: int = 0) -> Artifact:
    """The newest artifact in `folder` trained on this data (e.g. saved by notebook 01); when
    there is none, train `model` with `params`, save it there and load it."""
    path = latest_model(folder, dataset)
    if path is None:
        print(f"no model for this data in {folder}: training {model} ...")
        path = save_model(dataset, train(dataset, model, params, seed=seed), folder)
    print(f"model: {path.name}")
    return load_artifact(path)


# --- training, comparing, tuning ------------------------------------------------------------------
def train(dataset: Dataset, model: str = SERVED, params: dict | None = None, *, seed: int = 0,
          k: int = 10) -> TrainingRun:
    """Choose on validation (the served stack's search, or early stopping), refit on the training
    part, test once (and, for models using attributes, the test under the consent levels segment
    and none): recommender.training.train_and_evaluate. run.selection lists the candidates."""
    make_model(model, **(params or {}))  # an unknown name or parameter fails before any work
    return train_and_evaluate(dataset, model, params, seed=seed, k=k, levels=consent_levels(model))


def evaluation_table(run: TrainingRun) -> pd.DataFrame:
    """One row per measured set (validation, test, test under each consent level), one column
    per metric."""
    rows = {"validation": run.validation_metrics, "test": run.test_metrics}
    rows |= {f"test [consent {level}]": m for level, m in run.level_metrics.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def compare_models(
    dataset: Dataset, models: Sequence[str] = (SERVED, "als", "itemknn-bm25", "popularity"), *,
    params: Mapping[str, dict] | None = None, seeds: Sequence[int] = (0, 1), k: int = 10,
    tune: bool = False,
) -> pd.DataFrame:
    """Test metrics of each model on the evaluation protocol: mean and standard deviation (ddof
    0, as `trustrec evaluate`) over `seeds` of NDCG, precision, recall and coverage at k, and the
    mean training seconds. Hybrids also get rows under the consent levels segment and none.
    Models without a random seed (item-kNN, popularity) train once: their spread is 0.

    params: per model name, hyperparameters overriding its defaults. tune: first tune each
    baseline on validation over its grid (recommender.models.TUNING_GRIDS), as `trustrec
    evaluate --tune` and `make bench-quality` do."""
    params = dict(params or {})
    if not seeds:
        raise DataError("give at least one seed", field="seeds")
    unknown = sorted(set(params) - set(models))
    if unknown:
        raise DataError(f"params name {unknown[0]!r}, which is not among the models compared",
                        field="params")
    jobs = []
    for name in models:
        model_params = make_model(name, **params.get(name, {})).get_params()
        quiet = {"show_progress": False} if "show_progress" in model_params else {}
        for seed in seeds if "random_state" in model_params else seeds[:1]:
            jobs.append((name, params.get(name, {}) | quiet, seed))
    rows = []
    for name, model_params, seed in tqdm(jobs, desc="compare", unit="run"):
        run = train_and_evaluate(dataset, name, model_params, seed=seed, k=k,
                                 levels=consent_levels(name), show_progress=False,
                                 tuning_grid=TUNING_GRIDS.get(model_name(name)) if tune else None)
        rows.append({"model": name, "seconds": run.train_seconds} | run.test_metrics)
        rows += [{"model": f"{name} [consent {level}]"} | m for level, m in run.level_metrics.items()]
    runs = pd.DataFrame(rows)
    columns = [f"{metric}@{k}" for metric in COMPARED]
    grouped = runs.groupby("model", sort=False)
    table = pd.DataFrame(index=pd.Index(grouped.size().index, name="model"))
    for column in columns:
        table[column] = grouped[column].mean()
        table[f"{column} sd"] = grouped[column].std(ddof=0)
    table["seconds"] = grouped["seconds"].mean()
    table["seeds"] = grouped.size()
    return table


def tune(dataset: Dataset, model: str, grid: Mapping[str, Sequence], *, params: dict | None = None,
         seed: int = 0, k: int = 10) -> pd.DataFrame:
    """Validation NDCG@k of every combination of the grid's values (fixed `params` apply to
    all), best first, one row per grid point; `epochs` is where early stopping stopped. Only the
    validation split is looked at (recommender.tuning.tune)."""
    empty = [name for name, values in grid.items() if len(values) == 0]
    if empty:
        raise DataError(f"the grid gives no value for {empty[0]!r}", field="grid")
    fixed = dict(params or {})
    candidates = [fixed | point for point in tuning.grid(**grid)]
    make_model(model, **candidates[0])  # an unknown name or parameter fails before any work
    table = tuning.tune(dataset, model, candidates, seed=seed, k=k)
    return table.drop(columns=[c for c in fixed if c not in grid and c != "epochs"])


def plot_validation_curves(table: pd.DataFrame, x: str, by: str | None = None,
                           metric: str | None = None) -> Figure:
    """Validation metric (default: tune's val_ndcg@k column) against the hyperparameter `x`,
    one line per value of `by` (and mean over any other grid column)."""
    metric = metric or next(c for c in table.columns if c.startswith("val_"))
    figure = Figure(figsize=(5.5, 3.5), layout="constrained")
    FigureCanvasAgg(figure)  # object API: no pyplot state, nothing drawn twice in a notebook
    ax = figure.subplots()
    groups = table.groupby(by) if by else [(None, table)]
    for value, part in groups:
        curve = part.groupby(x)[metric].mean().sort_index()
        label = None if by is None else f"{by}={value[0] if isinstance(value, tuple) else value}"
        ax.plot(curve.index, curve.to_numpy(), marker="o", label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{metric} (validation)")
    ax.grid(alpha=0.3)
    if by:
        ax.legend()
    return figure


def plot_component_weights(run: TrainingRun) -> Figure:
    """The served stack's chosen weights, one bar per component score (on one scale, so they
    compare): which kinds of data the model leans on for this data set."""
    weights = run.params.get("weights")
    if not weights:
        raise DataError(f"model {run.name!r} has no component weights (the served stack has)",
                        field="run")
    figure = Figure(figsize=(5.5, 0.35 * len(weights) + 1.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    names = list(weights)
    ax.barh(names, [weights[n] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("weight (scores on one scale; 0: left out)")
    ax.grid(axis="x", alpha=0.3)
    return figure


# --- explanations ---------------------------------------------------------------------------------
def _consent(artifact: Artifact, consent: Consent | str | None) -> Consent:
    """None: every category at level full; a level name: every category at that level."""
    if isinstance(consent, Consent):
        return consent
    return Consent(frozenset(artifact.model.categories), consent or FULL)


def _known(artifact: Artifact, customer_id: object) -> str:
    customer_id = str(customer_id)
    if customer_id not in artifact.customer_rows:
        example = next(iter(artifact.customer_rows), "")
        raise DataError(f"unknown customer {customer_id!r}: the model knows "
                        f"{len(artifact.customer_rows)} customers, such as {example!r}",
                        field="customer_id")
    return customer_id


def customer_profile(artifact: Artifact, customer_id: object, last: int = 5) -> pd.DataFrame:
    """What the model knows of a customer, one row per data category: attribute values, and the
    number of past offers with the latest `last` of them."""
    customer_id = _known(artifact, customer_id)
    rows: dict[str, list[str]] = {}
    for attribute, value in artifact.customer_attributes(customer_id).items():
        rows.setdefault(artifact.taxonomy.attributes[attribute], []).append(f"{attribute} {value}")
    history = artifact.histories.get(customer_id, ())
    latest = ", ".join(context(artifact).title(o) for o in reversed(history[-last:]))
    rows[HISTORY] = [f"{len(history)} past offers" + (f"; latest: {latest}" if history else "")]
    return pd.DataFrame({"data": ["; ".join(v) for v in rows.values()]},
                        index=pd.Index(list(rows), name="category"))


def explain_customer(artifact: Artifact, customer_id: object, k: int = 5, *,
                     consent: Consent | str | None = None, top_criteria: int = 2) -> pd.DataFrame:
    """A customer's top k offers as the API serves them, one row per offer: title, score and
    the top criteria in words (`why`), with the categories they come from. consent: a Consent, a
    level name ("full", "segment", "none") with every category allowed, or None (full).
    attrs["not_used"] says which categories were left out and why."""
    customer_id = _known(artifact, customer_id)
    consent = _consent(artifact, consent)
    allowed = category_mask(consent, artifact.model.categories)
    state = customer_state(artifact, customer_id)
    columns, scores = rank(artifact, state, allowed, k)
    explanations = explain_offers(artifact, state, allowed, columns, consent=consent)
    titles = context(artifact)
    rows = []
    for i, offer_id in enumerate(explanations.offer_ids):
        criteria = explanations.compact(i, top_criteria)
        rows.append({
            "offer_id": offer_id, "title": titles.title(offer_id), "score": float(scores[i]),
            "why": "; ".join(c["text"] for c in criteria),
            "from": ", ".join(f"{c['category']} {c['share']:.0%}" for c in criteria),
        })
    table = pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="rank"))
    table.attrs["not_used"] = [n.text for n in explanations.not_used]
    return table


def offer_explanation(artifact: Artifact, customer_id: object, offer_id: object = None, *,
                      consent: Consent | str | None = None) -> shap.Explanation:
    """One offer's exact SHAP values by data category, for shap.plots.waterfall: relative to
    the customer's typical offer, as the criteria are (base value: how much more the average
    customer likes this offer than a typical one). offer_id None: the customer's top offer."""
    customer_id = _known(artifact, customer_id)
    offers = None
    if offer_id is not None:
        if str(offer_id) not in artifact.offer_columns:
            raise DataError(f"unknown offer {offer_id!r}", field="offer_id")
        offers = [str(offer_id)]
    return population_explanations(artifact, [customer_id], offers, k=1,
                                   consent=_consent(artifact, consent))[0]


def category_importance(artifact: Artifact, customers: int | Sequence[str] = 300, *, k: int = 3,
                        seed: int = 0, consent: Consent | str | None = None) -> shap.Explanation:
    """The exact per-category SHAP values of each sampled customer's top k offers (relative to
    their typical offer), for shap.plots.beeswarm and shap.plots.bar. customers: how many to
    sample at random (seeded), or their ids."""
    if isinstance(customers, int):
        ids = np.asarray(list(artifact.customer_rows), dtype=object)
        chosen = np.random.default_rng(seed).choice(len(ids), min(customers, len(ids)),
                                                    replace=False)
        customers = [str(c) for c in ids[np.sort(chosen)]]
    else:
        customers = [_known(artifact, c) for c in customers]
    return population_explanations(artifact, customers, k=k,
                                   consent=_consent(artifact, consent))


# --- fairness -------------------------------------------------------------------------------------
def audit_gaps(report: AuditReport) -> pd.DataFrame:
    """One row per (attribute, metric): best and worst group, the difference with its interval,
    the ratio, and whether the gap is flagged (more than noise; None: descriptive only)."""
    rows = []
    for attribute, audited in report.attributes.items():
        for metric, c in audited.metrics.items():
            rows.append({
                "attribute": attribute, "metric": metric, "best": c.best, "worst": c.worst,
                "difference": c.difference, "ci low": c.difference_ci[0],
                "ci high": c.difference_ci[1], "ratio": c.ratio, "flagged": c.flagged,
            })
    return pd.DataFrame(rows).set_index(["attribute", "metric"])


def audit_groups(report: AuditReport) -> pd.DataFrame:
    """One row per (attribute, group): its number of customers and each metric's value."""
    rows = []
    for attribute, audited in report.attributes.items():
        for group, size in audited.sizes.items():
            rows.append({"attribute": attribute, "group": group, "customers": size} | {
                metric: c.by_group.get(group) for metric, c in audited.metrics.items()})
    return pd.DataFrame(rows).set_index(["attribute", "group"])


def audit_plots(report: AuditReport) -> dict[str, Figure]:
    """Per audited attribute, each metric by group with its interval (red: a flagged gap)."""
    return {attribute: attribute_figure(audited, f"{report.label}: {attribute}", report.confidence)
            for attribute, audited in report.attributes.items() if audited.metrics}


def unawareness(artifact: Artifact, dataset: Dataset, *, seeds: Sequence[int] = (0,),
                **options: object) -> UnawarenessComparison:
    """The artifact's configuration trained with and without the protected attributes, both
    audited on the same split (recommender.fairness.compare_unawareness); .table() is the frame."""
    name, params = artifact_configuration(artifact)
    return compare_unawareness(dataset, name, params, seeds=seeds, **options)


def plot_unawareness(comparison: UnawarenessComparison, metric: str | None = None) -> Figure:
    """Per protected attribute, the gap between best and worst group with and without the
    protected attributes in the model (mean over seeds, bootstrap interval)."""
    table = comparison.table(metric)
    figure = Figure(figsize=(4.2 * len(comparison.protected), 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(1, len(comparison.protected), squeeze=False)).ravel()
    for ax, attribute in zip(axes, comparison.protected, strict=True):
        gaps = table[f"{attribute} gap"].to_numpy()
        low, high = np.array(table[f"{attribute} gap CI"].tolist()).T
        positions = np.arange(len(table))
        ax.errorbar(gaps, positions, xerr=np.clip([gaps - low, high - gaps], 0, None), fmt="o",
                    capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(positions, ["with protected attributes", "without them"])
        ax.set_ylim(len(table) - 0.5, -0.5)
        ax.set_title(f"{attribute}: gap in {metric or table.columns[0]}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return figure


def __getattr__(name: str) -> object:
    # business rules live in recommender.rules (notebook 04); loaded on first use only
    if name == "preview_rules":
        from recommender.rules import preview

        return preview
    # champion/challenger (trustrec.experiments): they read the serving records
    if name in ("experiment_table", "plot_experiment"):
        from trustrec import experiments

        return getattr(experiments, name)
    if name == "batch_export":  # campaign export (trustrec.batch)
        from trustrec.batch import batch_export

        return batch_export
    raise AttributeError(f"module 'trustrec.notebook' has no attribute {name!r}")
