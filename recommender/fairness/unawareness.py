"""Fairness through unawareness, measured: the same configuration trained with and without the
protected attributes (HybridRecommender's exclude_attributes), both audited on the same split.

Leaving an attribute out of the model does not leave it out of the data: history correlates with
age and gender, so the gap may not narrow. Whether it does, and what it costs in NDCG, is what the
comparison shows. Each seed trains both variants; the bootstrap uses the same seed for both, so it
draws the same customers for both and their gaps can be compared replicate by replicate (paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.fairness.audit import audit_configuration, metric_names, protected_attributes
from recommender.fairness.report import AuditReport
from recommender.models import make_model
from recommender.split import Split, temporal_split

VARIANTS = ("aware", "unaware")


@dataclass(eq=False)
class UnawarenessComparison:
    """Audits of `model` with (aware) and without (unaware) the protected attributes, per seed."""

    model: str
    params: dict
    protected: tuple[str, ...]
    seeds: tuple[int, ...]
    audits: dict[str, list[AuditReport]]  # variant -> one report per seed
    k: int = 10

    def table(self, metric: str | None = None) -> pd.DataFrame:
        """One row per variant: overall `metric` (default NDCG@k) mean and sd over seeds; per
        attribute the gap (best - worst group) mean over seeds, its bootstrap interval (bounds
        averaged over seeds) and in how many seeds it was flagged."""
        metric = metric or metric_names(self.k)["ndcg"]
        rows = {}
        for variant in VARIANTS:
            reports = self.audits[variant]
            overall = [r.overall[metric] for r in reports]
            row: dict[str, object] = {metric: float(np.mean(overall)),
                                      f"{metric} sd": float(np.std(overall))}
            for attribute in self.protected:
                gaps = [r.comparison(attribute, metric) for r in reports]
                row[f"{attribute} gap"] = float(np.mean([g.difference for g in gaps]))
                row[f"{attribute} gap CI"] = tuple(
                    float(np.mean([g.difference_ci[i] for g in gaps])) for i in (0, 1))
                row[f"{attribute} flagged"] = f"{sum(bool(g.flagged) for g in gaps)}/{len(gaps)}"
            rows[variant] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def gap_change(self, attribute: str, metric: str | None = None,
                   confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
        """Aware gap minus unaware gap (> 0: unawareness narrowed it), mean over seeds, with a
        paired bootstrap interval (same resampled customers in both audits of a seed)."""
        metric = metric or metric_names(self.k)["ndcg"]
        pairs = list(zip(self.audits["aware"], self.audits["unaware"], strict=True))
        point = np.mean([a.comparison(attribute, metric).difference
                         - u.comparison(attribute, metric).difference for a, u in pairs])
        replicates = np.mean([a.comparison(attribute, metric).replicates
                              - u.comparison(attribute, metric).replicates for a, u in pairs],
                             axis=0)
        low, high = np.quantile(replicates, ((1 - confidence) / 2, (1 + confidence) / 2))
        return float(point), (float(low), float(high))

    def to_markdown(self, metric: str | None = None) -> str:
        metric = metric or metric_names(self.k)["ndcg"]
        table = self.table(metric)
        header = ["variant", f"{metric} (mean ± sd over {len(self.seeds)} seeds)"]
        for attribute in self.protected:
            header += [f"{attribute} gap in {metric} [95% CI]", "flagged"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant, row in table.iterrows():
            name = (f"{self.model} (protected attributes used)" if variant == "aware"
                    else f"{self.model}, exclude_attributes={','.join(self.protected)}")
            cells = [name, f"{row[metric]:.4f} ± {row[f'{metric} sd']:.4f}"]
            for attribute in self.protected:
                low, high = row[f"{attribute} gap CI"]
                cells += [f"{row[f'{attribute} gap']:.4f} [{low:.4f}, {high:.4f}]",
                          str(row[f"{attribute} flagged"])]
            lines.append("| " + " | ".join(cells) + " |")
        cost = table.loc["aware", metric] - table.loc["unaware", metric]
        lines.append("")
        lines.append(f"Cost of unawareness in overall {metric}: {cost:+.4f} (aware - unaware).")
        for attribute in self.protected:
            change, (low, high) = self.gap_change(attribute, metric)
            verdict = ("narrows" if low > 0 else "widens" if high < 0
                       else "does not measurably change")
            lines.append(f"{attribute}: leaving the protected attributes out {verdict} the gap "
                         f"(aware - unaware gap {change:+.4f} [{low:+.4f}, {high:+.4f}], "
                         "paired bootstrap).")
        return "\n".join(lines) + "\n"


def compare_unawareness(
    dataset: Dataset, model_name: str = "hybrid-identity", params: dict | None = None, *,
    seeds: Sequence[int] = (0, 1, 2), protected: Sequence[str] | None = None,
    split: Split | None = None, k: int = 10, **options: object,
) -> UnawarenessComparison:
    """Audit `model_name` trained with and without the protected attributes, over `seeds`.

    protected: default the taxonomy's protected attributes the customers have. options: those of
    audit_model (n_boot, seed, confidence, ...); the bootstrap seed stays the same for every run.
    """
    params = dict(params or {})
    model_params = make_model(model_name).get_params()
    if "exclude_attributes" not in model_params:
        raise DataError(f"model {model_name!r} cannot leave attributes out (it takes no "
                        "exclude_attributes): it uses no customer attributes anyway", field="model")
    protected = tuple(protected_attributes(dataset, protected))
    split = split or temporal_split(dataset)
    audits: dict[str, list[AuditReport]] = {v: [] for v in VARIANTS}
    for seed in seeds:
        seeded = params | ({"random_state": seed} if "random_state" in model_params else {})
        for variant in VARIANTS:
            run_params = seeded | ({"exclude_attributes": protected} if variant == "unaware" else {})
            audits[variant].append(audit_configuration(
                dataset, model_name, run_params, split=split, k=k, attributes=protected,
                label=f"{model_name} {variant} (seed {seed})", **options))
    return UnawarenessComparison(model_name, params, protected, tuple(seeds), audits, k)
