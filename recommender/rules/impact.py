"""What a rule file would change, before publishing it: for a marketer's notebook.

    run = train_and_evaluate(dataset, "served", seed=0)   # or the dataset, or (artifact, dataset=)
    result = preview(run, load_rules("spring.toml", dataset), customers=["c00001"])
    result.offers, result.metrics, result.category_mix, result.plot()

Metrics come from recommender.evaluation on the run's test split: once with the model's plain top k,
once with the rules applied to its candidates exactly as serving applies them (CompiledRules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.artifacts import Artifact
from recommender.data import Dataset
from recommender.errors import DataError
from recommender.evaluation import NO_OFFER, Scorer, evaluate, top_k
from recommender.rules.engine import CHANGES, CompiledRules, RulesOutcome
from recommender.rules.spec import BusinessRules, load_rules
from recommender.split import temporal_split
from recommender.training import TrainingRun, train_and_evaluate

_METRICS = ("ndcg", "recall", "precision", "hit_rate", "coverage")


@dataclass
class RulesPreview:
    """offers: per shown customer and rank, the offer before and after the rules; changes: every
    change the rules made for them; metrics: before/after over the test split; category_mix: the
    share of list places per category, before/after; change_counts: changes per kind over the
    evaluated customers."""

    rules: BusinessRules
    offers: pd.DataFrame
    changes: pd.DataFrame
    metrics: pd.DataFrame
    category_mix: pd.DataFrame
    change_counts: pd.Series

    def plot(self, ax=None):
        """The category mix before and after, as grouped bars; returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        self.category_mix.plot.bar(ax=ax, rot=30)
        ax.set_ylabel("share of offers shown")
        ax.set_title(f"Category mix before and after rules {self.rules.version!r}")
        return ax


def preview(
    source: TrainingRun | Dataset | Artifact, rules: BusinessRules | str | Path, *,
    customers: Sequence[str] | None = None, k: int = 10, model: str = "served", seed: int = 0,
    dataset: Dataset | None = None,
) -> RulesPreview:
    """The effect of `rules` (or a rule file's path) on `source`: a TrainingRun; a Dataset to
    train `model` on first; or an Artifact with the `dataset` it was trained on, whose
    configuration is refitted on the training split (the served model has seen the test split,
    as in the fairness audit). `customers`: ids whose offers to show (default: the first three
    evaluated customers the rules change)."""
    run = _run(source, dataset, model, seed, k)
    train = run.split.train
    if not isinstance(rules, BusinessRules):
        rules = load_rules(rules, train)
    vectors = run.model.to_additive().item_vectors if rules.diversity else None
    compiled = CompiledRules(rules, train.offers, vectors)
    seen = train.interaction_matrix()
    lists: dict[str, dict[int, np.ndarray]] = {"before": {}, "after": {}}
    outcomes: dict[int, RulesOutcome] = {}

    def plain(rows: np.ndarray) -> np.ndarray:
        scores = run.model.score(rows)
        for row, chosen in zip(rows.tolist(), top_k(scores, seen[rows], k), strict=True):
            lists["before"][row] = chosen
        return scores

    def ruled(rows: np.ndarray) -> np.ndarray:
        out = np.full((len(rows), train.n_offers), -np.inf)
        for i, (row, outcome) in enumerate(_apply(run.model.score, compiled, seen, rows, k).items()):
            outcomes[row] = outcome
            lists["after"][row] = outcome.columns
            out[i, outcome.columns] = np.arange(len(outcome.columns), 0, -1)
        return out

    before, after = evaluate(plain, run.split, k), evaluate(ruled, run.split, k)
    metrics = pd.DataFrame(
        {"before": [before[f"{m}@{k}"] for m in _METRICS], "after": [after[f"{m}@{k}"] for m in _METRICS]},
        index=pd.Index([f"{m}@{k}" for m in _METRICS], name="metric"))
    metrics["change"] = metrics["after"] - metrics["before"]
    counts = pd.Series([c.change for o in outcomes.values() for c in o.changes], dtype=object)
    change_counts = counts.value_counts().reindex(CHANGES, fill_value=0).rename("changes")
    if customers is None:
        changed = [row for row, outcome in outcomes.items() if outcome.changes][:3]
        customers = [str(train.customer_ids[row]) for row in changed]
    offers, changes = _customer_tables(run, compiled, seen, customers, k)
    mix = pd.DataFrame({name: _mix(compiled, found) for name, found in lists.items()}).fillna(0.0)
    mix.index.name = "category"
    return RulesPreview(rules, offers, changes, metrics, mix, change_counts)


def _run(source: TrainingRun | Dataset | Artifact, dataset: Dataset | None, model: str, seed: int,
         k: int) -> TrainingRun:
    if isinstance(source, TrainingRun):
        return source
    if isinstance(source, Dataset):
        return train_and_evaluate(source, model, seed=seed, k=k)
    if dataset is None:
        raise DataError("previewing an artifact needs the dataset it was trained on (dataset=)",
                        field="dataset")
    from recommender.fairness.audit import artifact_configuration, fit_configuration

    name, params = artifact_configuration(source)
    split = temporal_split(dataset)
    fitted = fit_configuration(split, name, params)
    return TrainingRun(name, params, fitted, split, {}, {}, 0.0)


def _apply(score: Scorer, compiled: CompiledRules, seen, rows: np.ndarray, k: int,
           ) -> dict[int, RulesOutcome]:
    """Each row's outcome, from the model's best candidates without its training offers."""
    scores = np.asarray(score(rows), dtype=float)
    pool = top_k(scores, seen[rows], compiled.candidates_needed(k))
    out = {}
    for i, row in enumerate(rows.tolist()):
        candidates = pool[i][pool[i] != NO_OFFER]
        out[row] = compiled.apply(candidates, scores[i, candidates], k, ordered=True)
    return out


def _customer_tables(run: TrainingRun, compiled: CompiledRules, seen, customers: Sequence[str],
                     k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = run.split.train
    rows = train.customers.index.get_indexer([str(c) for c in customers])
    if (rows < 0).any():
        unknown = [c for c, r in zip(customers, rows, strict=True) if r < 0]
        raise DataError(f"unknown customer {unknown[0]!r}", field="customers")
    titles, ids = train.offers["title"].astype(str).tolist(), compiled.offer_ids
    category = {i: ", ".join(compiled.categories[j] for j in cats)
                for i, cats in enumerate(compiled.offer_categories)}
    scores = np.asarray(run.model.score(rows), dtype=float)
    plain = top_k(scores, seen[rows], k)
    offer_rows, change_rows = [], []
    for row, outcome, before in zip(rows.tolist(), _apply(run.model.score, compiled, seen, rows, k).values(),
                                    plain, strict=True):
        customer = str(train.customer_ids[row])
        after = outcome.columns.tolist()
        for rank in range(1, k + 1):
            b = int(before[rank - 1]) if rank <= len(before) and before[rank - 1] != NO_OFFER else None
            a = after[rank - 1] if rank <= len(after) else None
            change = outcome.change_of(rank)
            offer_rows.append({
                "customer_id": customer, "rank": rank,
                "before": ids[b] if b is not None else None,
                "before_title": titles[b] if b is not None else None,
                "before_category": category.get(b),
                "after": ids[a] if a is not None else None,
                "after_title": titles[a] if a is not None else None,
                "after_category": category.get(a),
                "change": change.change if change else "",
            })
        for c in outcome.changes:
            change_rows.append({"customer_id": customer, **c.to_dict(),
                                "title": titles[train.offers.index.get_loc(c.offer_id)]})
    columns = ["customer_id", "offer_id", "title", "change", "rules", "rank_without_rules", "rank"]
    return pd.DataFrame(offer_rows), pd.DataFrame(change_rows, columns=columns)


def _mix(compiled: CompiledRules, lists: dict[int, np.ndarray]) -> pd.Series:
    """Share of list places per category (an offer in several categories splits its place)."""
    counts = np.zeros(len(compiled.categories))
    for columns in lists.values():
        for column in columns.tolist():
            if column == NO_OFFER:
                continue
            cats = compiled.offer_categories[column]
            for j in cats:
                counts[j] += 1.0 / len(cats)
    total = counts.sum()
    return pd.Series(counts / total if total else counts, index=compiled.categories)
