"""Metric by group with bootstrap intervals, one figure per protected attribute.

Built on matplotlib's object API (Figure + Agg canvas), not pyplot: no global backend switch, so
it neither needs a display on a server nor disturbs a notebook's own backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recommender.fairness.groups import AttributeAudit

FLAG_COLOR, PLAIN_COLOR = "#c0392b", "#2c3e50"


def attribute_figure(audit: AttributeAudit, title: str | None = None,
                     confidence: float = 0.95) -> Figure:
    """One panel per metric: each group's value with its interval; a flagged metric is red."""
    names = list(audit.metrics)
    columns = min(3, max(1, len(names)))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.2 * columns, 0.45 * len(audit.sizes) * rows + 1.6 * rows),
                    layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        comparison = audit.metrics[name]
        groups = list(comparison.by_group)
        values = np.array([comparison.by_group[g] for g in groups])
        low = np.array([comparison.group_ci[g][0] for g in groups])
        high = np.array([comparison.group_ci[g][1] for g in groups])
        color = FLAG_COLOR if comparison.flagged else PLAIN_COLOR
        positions = np.arange(len(groups))
        # a metric without interval (coverage) is drawn as bare points
        errors = np.nan_to_num(np.clip(np.vstack([values - low, high - values]), 0, None))
        ax.errorbar(values, positions, xerr=errors, fmt="o", color=color, capsize=3)
        ax.set_yticks(positions, [f"{g} (n={audit.sizes.get(g, '?')})" for g in groups])
        ax.set_ylim(len(groups) - 0.5, -0.5)  # first group on top, half a row of margin
        status = {None: "descriptive", True: "disparity flagged", False: "not flagged"}
        direction = "" if comparison.higher_is_better else ", lower is better"
        ax.set_title(f"{name}{direction}\n{status[comparison.flagged]}", fontsize=9, color=color)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    figure.suptitle(f"{title or audit.attribute} ({confidence:.0%} bootstrap intervals)",
                    fontsize=10)
    return figure


def plot_attribute(audit: AttributeAudit, path: str | Path, title: str | None = None,
                   confidence: float = 0.95) -> Path:
    """Write attribute_figure as a PNG and return its path."""
    path = Path(path)
    attribute_figure(audit, title, confidence).savefig(path, dpi=110)
    return path
