"""Metrics by customer group, their spread, and whether the spread is more than noise.

Group values, their best-worst difference and ratio come from fairlearn's MetricFrame
(by_group, group_max / group_min, difference(), ratio()). Uncertainty comes from a stratified
bootstrap: customers are resampled with replacement within each group (so every replicate keeps
the group sizes), with a seeded numpy Generator, and the group statistics are recomputed.

Intervals (percentile, `confidence`, 95% by default):
- each group's value;
- the difference high - low and the ratio low / high, where "high" and "low" are the groups with
  the largest and smallest value on the full data, held fixed across replicates. Recomputing
  max - min in every replicate would give an interval that never contains 0 (a range is never
  negative), so it could not tell noise from disparity.

Flag rule. A metric is flagged when the percentile interval of its difference at the
Bonferroni-adjusted level 1 - (1 - confidence) / P lies above 0, where P = G (G - 1) / 2 is the
number of group pairs: high and low were picked as the most extreme of G groups, so the comparison
pays for looking at every pair. With two groups (P = 1) this is exactly "the reported 95% interval
of the difference excludes 0". With many groups the adjusted interval reaches far into the tails
(P = 21 for 7 groups: the 0.12% quantile), which n_boot resamples estimate coarsely: use 1000 or
more.

Metrics named `descriptive` get intervals but no flag. Coverage (distinct offers in a group's
lists) is descriptive and gets no interval either: it grows with the number of customers in a
group, and a resample with replacement repeats customers, so it has fewer distinct lists and the
percentile interval would sit below the estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from recommender.evaluation import NO_OFFER

UNKNOWN_GROUP = "(unknown)"


@dataclass(eq=False)
class GroupComparison:
    """One metric across the groups of one attribute. `flagged` is None for a descriptive metric.

    flag_interval: the Bonferroni-adjusted interval of the difference that the flag rule tests
    (see the module docstring)."""

    metric: str
    higher_is_better: bool
    by_group: dict[str, float]
    group_ci: dict[str, tuple[float, float]]
    best: str
    worst: str
    difference: float
    difference_ci: tuple[float, float]
    ratio: float
    ratio_ci: tuple[float, float]
    flag_interval: tuple[float, float] | None
    flagged: bool | None
    # bootstrap differences high - low, for paired comparisons of two audits with the same seed;
    # not part of the JSON
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def to_json(self) -> dict:
        return {
            "metric": self.metric, "higher_is_better": self.higher_is_better,
            "by_group": self.by_group, "group_ci": {g: list(ci) for g, ci in self.group_ci.items()},
            "best": self.best, "worst": self.worst,
            "difference": self.difference, "difference_ci": list(self.difference_ci),
            "ratio": self.ratio, "ratio_ci": list(self.ratio_ci),
            "flag_interval": None if self.flag_interval is None else list(self.flag_interval),
            "flagged": self.flagged,
        }

    @classmethod
    def from_json(cls, raw: Mapping) -> GroupComparison:
        flag_interval = raw["flag_interval"]
        return cls(
            metric=raw["metric"], higher_is_better=raw["higher_is_better"],
            by_group={g: nan_if_null(v) for g, v in raw["by_group"].items()},
            group_ci={g: _pair(ci) for g, ci in raw["group_ci"].items()},
            best=raw["best"], worst=raw["worst"],
            difference=nan_if_null(raw["difference"]), difference_ci=_pair(raw["difference_ci"]),
            ratio=nan_if_null(raw["ratio"]), ratio_ci=_pair(raw["ratio_ci"]),
            flag_interval=None if flag_interval is None else _pair(flag_interval),
            flagged=raw["flagged"],
        )


def nan_if_null(value: float | None) -> float:
    """JSON null back to NaN (the report writes NaN as null)."""
    return float("nan") if value is None else float(value)


def _pair(values: list) -> tuple[float, float]:
    return (nan_if_null(values[0]), nan_if_null(values[1]))


@dataclass(eq=False)
class AttributeAudit:
    """Every metric across the groups of one protected attribute.

    sizes: customers per compared group; excluded: groups below min_group_size (too few customers
    for an interval worth reading), left out of the comparison; category_mix: per group, the mean
    category distribution of the customers' histories and of their lists."""

    attribute: str
    sizes: dict[str, int]
    excluded: dict[str, int]
    metrics: dict[str, GroupComparison]
    category_mix: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "attribute": self.attribute, "sizes": self.sizes, "excluded": self.excluded,
            "metrics": {name: c.to_json() for name, c in self.metrics.items()},
            "category_mix": self.category_mix,
        }

    @classmethod
    def from_json(cls, raw: Mapping) -> AttributeAudit:
        return cls(
            attribute=raw["attribute"], sizes=dict(raw["sizes"]), excluded=dict(raw["excluded"]),
            metrics={n: GroupComparison.from_json(c) for n, c in raw["metrics"].items()},
            category_mix=dict(raw.get("category_mix", {})),
        )


def group_labels(values: pd.Series) -> pd.Series:
    """Attribute values as group labels (str); an unknown value is a group of its own."""
    return values.astype(object).where(values.notna(), UNKNOWN_GROUP).astype(str)


def group_frame(
    values: pd.DataFrame, groups: pd.Series, *, lists: np.ndarray | None = None,
    n_offers: int | None = None, coverage: str = "coverage",
) -> MetricFrame:
    """fairlearn's MetricFrame over customers: each column of `values` (one row per customer) is
    averaged within groups (NaN skipped); with `lists` ((customers, k) offer columns) also
    `coverage`: distinct offers in the group's lists / n_offers."""
    matrix = values.to_numpy(dtype=float)
    metrics: dict[str, Callable] = {
        name: _column_mean(j) for j, name in enumerate(values.columns)
    }
    y_pred = np.zeros((len(values), 1))
    if lists is not None:
        if n_offers is None:
            raise ValueError("coverage needs n_offers")
        metrics[coverage] = _coverage(n_offers)
        y_pred = np.asarray(lists)
    return MetricFrame(
        metrics=metrics, y_true=matrix, y_pred=y_pred,
        sensitive_features=pd.Series(np.asarray(groups, dtype=str), name=groups.name or "group"),
    )


def _column_mean(j: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def mean(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        column = y_true.reshape(len(y_true), -1)[:, j]  # fairlearn squeezes a single column
        return _nanmean(column)

    return mean


def _coverage(n_offers: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def coverage(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        offers = np.unique(y_pred)
        return float(np.count_nonzero(offers != NO_OFFER)) / n_offers

    return coverage


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    with warnings.catch_warnings():  # an all-NaN group is NaN, which the report shows as such
        warnings.simplefilter("ignore", RuntimeWarning)
        result = np.nanmean(values, axis=axis)
    return result if axis is not None else float(result)


def compare_groups(
    values: pd.DataFrame, groups: pd.Series, *, higher_is_better: Mapping[str, bool] | None = None,
    lists: np.ndarray | None = None, n_offers: int | None = None, coverage: str = "coverage",
    descriptive: Iterable[str] = (), n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
    min_group_size: int = 10,
) -> AttributeAudit:
    """Compare every column of `values` (and coverage, given `lists`) across `groups`.

    values: per-customer metrics, rows aligned with `groups` (labels; see group_labels) and with
    `lists`. higher_is_better: per metric (default True); it decides which group is best.
    descriptive: metrics reported without a flag (coverage always is). Same arguments and seed,
    same result.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if len(values) != len(groups) or (lists is not None and len(lists) != len(values)):
        raise ValueError("values, groups and lists must have one row per customer")
    labels = np.asarray(groups, dtype=str)
    counts = pd.Series(labels).value_counts().sort_index()
    kept = counts[counts >= min_group_size]
    excluded = {str(g): int(n) for g, n in counts[counts < min_group_size].items()}
    attribute = str(groups.name or "group")
    if len(kept) < 2:
        return AttributeAudit(attribute, {str(g): int(n) for g, n in kept.items()}, excluded, {})

    rows = np.isin(labels, kept.index.to_numpy())
    kept_values = values[rows]
    kept_lists = None if lists is None else np.asarray(lists)[rows]
    frame = group_frame(kept_values, pd.Series(labels[rows], name=attribute), lists=kept_lists,
                        n_offers=n_offers, coverage=coverage)
    by_group = frame.by_group  # rows: groups in sorted order, columns: metrics
    names = list(by_group.columns)
    order = [str(g) for g in by_group.index]
    # (n_boot, G, value columns); coverage, the last column when lists are given, has no valid
    # bootstrap (see the module docstring) and gets NaN intervals
    replicates = _bootstrap(kept_values.to_numpy(dtype=float), labels[rows], order, n_boot, seed)
    missing = np.full((n_boot, len(order)), np.nan)
    pairs = len(order) * (len(order) - 1) / 2
    quantiles = ((1 - confidence) / 2, (1 + confidence) / 2)
    adjusted = ((1 - confidence) / (2 * pairs), 1 - (1 - confidence) / (2 * pairs))
    untested = set(descriptive) | {coverage}
    higher_is_better = higher_is_better or {}
    metrics = {}
    for j, name in enumerate(names):
        column = by_group[name]
        if column.notna().sum() < 2:  # undefined for all groups but one: nothing to compare
            continue
        high = order.index(str(column.dropna().idxmax()))
        low = order.index(str(column.dropna().idxmin()))
        if high == low:  # every group equal: still compare two different groups
            low = (high + 1) % len(order)
        better = higher_is_better.get(name, True)
        samples = replicates[:, :, j] if j < replicates.shape[2] else missing
        differences = samples[:, high] - samples[:, low]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = samples[:, low] / samples[:, high]
        difference = float(frame.difference()[name])  # group_max - group_min
        flag_interval, flagged = None, None
        if name not in untested:
            flag_interval = _interval(differences, adjusted)
            flagged = bool(flag_interval[0] > 0)
        metrics[name] = GroupComparison(
            metric=name, higher_is_better=better,
            by_group={g: float(v) for g, v in zip(order, column, strict=True)},
            group_ci={g: _interval(samples[:, i], quantiles) for i, g in enumerate(order)},
            best=order[high if better else low], worst=order[low if better else high],
            difference=difference, difference_ci=_interval(differences, quantiles),
            ratio=float(frame.ratio()[name]), ratio_ci=_interval(ratios, quantiles),
            flag_interval=flag_interval, flagged=flagged, replicates=differences,
        )
    return AttributeAudit(attribute, {g: int(kept[g]) for g in order}, excluded, metrics)


def _interval(samples: np.ndarray, quantiles: tuple[float, float]) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return (float("nan"), float("nan"))
    low, high = np.quantile(finite, quantiles)
    return (float(low), float(high))


def _bootstrap(
    values: np.ndarray, labels: np.ndarray, order: list[str], n_boot: int, seed: int,
) -> np.ndarray:
    """(n_boot, groups, columns): column means over customers resampled within each group."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(order), values.shape[1]))
    for g, label in enumerate(order):
        members = np.flatnonzero(labels == label)
        draw = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        for j in range(values.shape[1]):  # a column at a time bounds memory at n_boot x members
            out[:, g, j] = _nanmean(values[draw, j], axis=1)
    return out
