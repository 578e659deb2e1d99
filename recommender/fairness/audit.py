"""The fairness audit: what a model gives each group of customers on the evaluation split.

Per protected attribute (taxonomy.toml `[protected]`, age band and gender by default) and group:
NDCG@k, recall@k and hit rate (evaluation.per_customer_metrics, averaged over the group's
customers), the catalog coverage of the group's top-k lists, and the calibration gap (the mean
KL divergence between each customer's category mix in history and in their list, see
recommender.catalog). Groups are compared by recommender.fairness.groups.

Auditing an artifact honestly. A served artifact's model was fitted on all the data, test split
included, so scoring it on the test split would measure memory, not quality. `audit_artifact`
therefore audits the artifact's *configuration*: the model name and hyperparameters in its
manifest are refitted on the training part of the temporal split of the data given, and that model
is audited on the test part. LightFM trains with several threads without locks, so a refit differs
slightly from run to run unless the hyperparameters fix one thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.artifacts import Artifact, load_artifact
from recommender.catalog import (
    calibration_gap,
    default_category_attribute,
    history_distributions,
    list_distributions,
    offer_category_matrix,
)
from recommender.data import Dataset
from recommender.errors import DataError
from recommender.evaluation import NO_OFFER, Scorer, per_customer_metrics, top_k
from recommender.fairness.groups import AttributeAudit, compare_groups, group_frame, group_labels
from recommender.fairness.report import AuditReport
from recommender.models import Recommender, make_model
from recommender.split import Split, temporal_split
from recommender.training import level_allowed


def metric_names(k: int) -> dict[str, str]:
    """Report name of each audited quantity (the keys evaluation.evaluate uses where it has one)."""
    return {"ndcg": f"ndcg@{k}", "recall": f"recall@{k}", "hit": f"hit_rate@{k}",
            "calibration_gap": f"calibration_gap@{k}", "coverage": f"coverage@{k}"}


def protected_attributes(dataset: Dataset, attributes: Sequence[str] | None = None) -> list[str]:
    """The attributes to audit: those named, else the taxonomy's protected ones the customers have."""
    present = dataset.customer_attributes()
    if attributes is not None:
        unknown = [a for a in attributes if a not in present]
        if unknown:
            raise DataError(f"customers have no attribute {unknown[0]!r}; they have "
                            f"{', '.join(present)}", field="attribute")
        return list(attributes)
    chosen = [a for a in dataset.taxonomy.protected if a in present]
    if not chosen:
        raise DataError("no protected attribute to audit: the taxonomy's [protected] attributes "
                        f"({', '.join(dataset.taxonomy.protected) or 'none'}) are not customer "
                        "attributes of this data", field="attribute")
    return chosen


def consent_scorer(model: Recommender, level: str | None = None,
                   allowed: np.ndarray | None = None) -> Scorer:
    """The model's scorer, with only the data categories a personalization level (or an explicit
    (G,) mask over model.to_additive().categories) lets in; neither: every category."""
    if level is None and allowed is None:
        return model.score
    additive = model.to_additive()
    mask = np.asarray(allowed, dtype=bool) if allowed is not None else level_allowed(model, level)
    return lambda rows: additive.score(rows, mask)


def fit_configuration(split: Split, name: str, params: dict | None = None) -> Recommender:
    """make_model(name, **params) fitted on the split's training part."""
    return make_model(name, **(params or {})).fit(split.train)


def audit_model(
    score: Scorer, split: Split, dataset: Dataset | None = None, *, label: str = "model",
    attributes: Sequence[str] | None = None, k: int = 10, category_attribute: str | None = None,
    n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, min_group_size: int = 10,
    batch_size: int = 256, notes: Iterable[str] = (),
) -> AuditReport:
    """Audit a fitted model's scorer (Recommender.score contract) on split.test.

    The model must not have seen split.test (fit it on split.train). dataset: where customer
    attributes and offer categories come from (default split.train: a split shares them).
    category_attribute: the offer attribute whose values are categories (default: "category" or
    else "genre", whichever the offers have; no such attribute: no calibration gap).
    """
    source = dataset if dataset is not None else split.train
    attributes = protected_attributes(source, attributes)
    names = metric_names(k)
    recorder = _ListRecorder(score, split.train.interaction_matrix(), k)
    table = per_customer_metrics(recorder, split, k=k, batch_size=batch_size)
    rows = split.train.customers.index.get_indexer(table.index)
    lists = recorder.lists[rows]
    values = table[["ndcg", "recall", "hit"]].rename(columns=names)

    category_attribute = category_attribute or default_category_attribute(source)
    history_mix = list_mix = categories = None
    if category_attribute is not None:
        offer_categories, categories = offer_category_matrix(source, category_attribute)
        history_mix = history_distributions(split.train, offer_categories)[rows]
        list_mix = list_distributions(lists, offer_categories)
        values[names["calibration_gap"]] = calibration_gap(history_mix, list_mix)

    n_offers = split.train.n_offers
    everyone = pd.Series(np.full(len(values), "all"), name="all")
    overall = group_frame(values, everyone, lists=lists, n_offers=n_offers,
                          coverage=names["coverage"]).overall
    audits: dict[str, AttributeAudit] = {}
    for attribute in attributes:
        groups = group_labels(source.customers[attribute].reindex(table.index))
        audit = compare_groups(
            values, pd.Series(groups.to_numpy(), name=attribute),
            higher_is_better={names["calibration_gap"]: False}, lists=lists, n_offers=n_offers,
            coverage=names["coverage"], n_boot=n_boot, seed=seed, confidence=confidence,
            min_group_size=min_group_size,
        )
        if categories is not None:
            audit.category_mix = _category_mix(groups.to_numpy(), audit.sizes, history_mix,
                                               list_mix, categories)
        audits[attribute] = audit
    return AuditReport(
        label=label, dataset=source.name, k=k, customers=len(values),
        overall={str(n): float(v) for n, v in overall.items()}, attributes=audits,
        category_attribute=category_attribute, n_boot=n_boot, seed=seed, confidence=confidence,
        notes=list(notes),
    )


def audit_configuration(
    dataset: Dataset, name: str, params: dict | None = None, *, split: Split | None = None,
    level: str | None = None, label: str | None = None, notes: Iterable[str] = (),
    **options: object,
) -> AuditReport:
    """Fit make_model(name, **params) on the temporal split's training part and audit it on the
    test part, optionally under a personalization level ("full", "segment", "none").
    options: those of audit_model."""
    split = split or temporal_split(dataset)
    model = fit_configuration(split, name, params)
    label = label or name + (f" [consent {level}]" if level else "")
    fitted = (f"Audits the configuration {name} {_describe(params)} fitted on the training part "
              f"of the temporal split and scored on its test part"
              + (f", under the personalization level {level!r}" if level else "") + ".")
    return audit_model(consent_scorer(model, level), split, dataset, label=label,
                       notes=[fitted, *notes], **options)


def artifact_configuration(artifact: Artifact) -> tuple[str, dict]:
    """(model name, hyperparameters) from an artifact's manifest, lists back to tuples."""
    manifest = artifact.manifest
    params = {k: tuple(v) if isinstance(v, list) else v
              for k, v in manifest.get("hyperparameters", {}).items()}
    return manifest["model"], params


def audit_artifact(
    artifact: Artifact | str | Path, dataset: Dataset, *, split: Split | None = None,
    level: str | None = None, **options: object,
) -> AuditReport:
    """Audit the configuration of an artifact (see the module docstring: the served model itself
    saw the test split, so its name and hyperparameters are refitted on the training part)."""
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    name, params = artifact_configuration(artifact)
    if "show_progress" in make_model(name).get_params():
        params["show_progress"] = False
    notes = [f"Artifact {artifact.version}: the served model was fitted on all the data, so the "
             "audit refits its configuration rather than scoring it on data it has seen."]
    if artifact.manifest.get("data_fingerprint") not in (None, dataset.fingerprint()):
        notes.append("The data differ from the data the artifact was trained on (fingerprint "
                     f"{artifact.manifest['data_fingerprint']} vs {dataset.fingerprint()}).")
    label = artifact.version + (f" [consent {level}]" if level else "")
    return audit_configuration(dataset, name, params, split=split, level=level, label=label,
                               notes=notes, **options)


class _ListRecorder:
    """Wraps a scorer to keep each customer's top-k list as per_customer_metrics computes it (the
    same top_k on the same scores and exclusions), for coverage and calibration."""

    def __init__(self, score: Scorer, seen: sp.csr_matrix, k: int) -> None:
        self.score, self.seen, self.k = score, seen, k
        self.lists = np.full((seen.shape[0], k), NO_OFFER, dtype=np.int64)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.score(rows))
        self.lists[rows] = top_k(scores, self.seen[rows], self.k)
        return scores


def _category_mix(
    groups: np.ndarray, sizes: dict[str, int], history_mix: np.ndarray, list_mix: np.ndarray,
    categories: list[str],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per compared group: the mean category mix of its customers' histories and of their lists
    (customers without categorized history left out of both)."""
    has_history = history_mix.sum(axis=1) > 0
    mix = {}
    for group in sizes:
        members = (groups == group) & has_history
        mix[group] = {
            part: {c: round(float(v), 4) for c, v in
                   zip(categories, matrix[members].mean(axis=0), strict=True)}
            for part, matrix in (("history", history_mix), ("recommended", list_mix))
        } if members.any() else {}
    return mix


def _describe(params: dict | None) -> str:
    shown = {k: v for k, v in (params or {}).items() if k != "show_progress"}
    return "(defaults)" if not shown else "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"
