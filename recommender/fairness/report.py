"""The audit's result: JSON for machines, a short markdown summary for people (and the model card),
and where to find the latest one for a model version."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recommender.fairness.groups import AttributeAudit, GroupComparison, nan_if_null

KIND = "trustrec-fairness-audit"
JSON_NAME, MARKDOWN_NAME = "audit.json", "audit.md"
FLAG_RULE = (
    "Intervals: {confidence:.0%} percentile intervals from {n_boot} bootstrap resamples of "
    "customers within each group (seed {seed}), the best and worst group held fixed. Flagged: the "
    "interval of the best-minus-worst difference lies above 0 at the level Bonferroni-adjusted "
    "for the number of group pairs (with two groups: the {confidence:.0%} interval shown "
    "excludes 0). Coverage is descriptive: it grows with group size, and has neither interval "
    "nor flag."
)


@dataclass(eq=False)
class AuditReport:
    """What one model (or configuration) gives each customer group on the evaluation split.

    overall: metric -> value over every evaluated customer; attributes: per protected attribute,
    each metric by group with its spread; notes: what exactly was audited, in words."""

    label: str
    dataset: str
    k: int
    customers: int
    overall: dict[str, float]
    attributes: dict[str, AttributeAudit]
    category_attribute: str | None
    n_boot: int
    seed: int
    confidence: float
    notes: list[str] = field(default_factory=list)
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    # --- queries --------------------------------------------------------------------------------
    def comparison(self, attribute: str, metric: str) -> GroupComparison:
        return self.attributes[attribute].metrics[metric]

    def flagged(self) -> list[tuple[str, str]]:
        """(attribute, metric) pairs whose disparity is flagged."""
        return [(a, m) for a, audit in self.attributes.items()
                for m, c in audit.metrics.items() if c.flagged]

    # --- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Strict JSON: NaN (a metric undefined for a group) becomes null."""
        return _json_safe({
            "kind": KIND, "label": self.label, "dataset": self.dataset, "k": self.k,
            "customers": self.customers, "overall": self.overall,
            "category_attribute": self.category_attribute,
            "bootstrap": {"n_boot": self.n_boot, "seed": self.seed, "confidence": self.confidence},
            "flag_rule": self.flag_rule(),
            "attributes": {a: audit.to_json() for a, audit in self.attributes.items()},
            "notes": list(self.notes), "created_at": self.created_at,
        })

    @classmethod
    def from_json(cls, raw: Mapping) -> AuditReport:
        if raw.get("kind") != KIND:
            raise ValueError(f"not a TrustRec fairness audit (kind is not {KIND!r})")
        boot = raw["bootstrap"]
        return cls(
            label=raw["label"], dataset=raw["dataset"], k=raw["k"], customers=raw["customers"],
            overall={m: nan_if_null(v) for m, v in raw["overall"].items()},
            attributes={a: AttributeAudit.from_json(v) for a, v in raw["attributes"].items()},
            category_attribute=raw["category_attribute"], n_boot=boot["n_boot"],
            seed=boot["seed"], confidence=boot["confidence"], notes=list(raw["notes"]),
            created_at=raw["created_at"],
        )

    # --- markdown -------------------------------------------------------------------------------
    def flag_rule(self) -> str:
        return FLAG_RULE.format(confidence=self.confidence, n_boot=self.n_boot, seed=self.seed)

    def to_markdown(self) -> str:
        overall = ", ".join(f"{name} {_number(v)}" for name, v in self.overall.items())
        lines = [
            f"## Fairness audit: {self.label}",
            "",
            f"{self.dataset}, evaluation split, {self.customers} customers, top {self.k}. "
            f"Overall: {overall}.",
        ]
        for attribute, audit in self.attributes.items():
            sizes = ", ".join(f"{g} {n}" for g, n in audit.sizes.items())
            lines += ["", f"### {attribute} ({sizes})"]
            if audit.excluded:
                left_out = ", ".join(f"{g} {n}" for g, n in audit.excluded.items())
                lines.append(f"Too few customers to compare, left out: {left_out}.")
            if not audit.metrics:
                lines.append("Fewer than two groups to compare.")
                continue
            pct = f"{self.confidence:.0%}"
            lines += ["", f"| metric | best | worst | difference [{pct} CI] | ratio [{pct} CI] "
                          "| flagged |", "|---|---|---|---|---|---|"]
            for name, c in audit.metrics.items():
                flag = "n/a" if c.flagged is None else ("**yes**" if c.flagged else "no")
                lines.append(
                    f"| {name}{'' if c.higher_is_better else ' (lower is better)'} "
                    f"| {c.best} {_number(c.by_group[c.best])} "
                    f"| {c.worst} {_number(c.by_group[c.worst])} "
                    f"| {_estimate(c.difference, c.difference_ci)} "
                    f"| {_estimate(c.ratio, c.ratio_ci, 3)} | {flag} |")
        for paragraph in (self.flag_rule(), *self.notes):
            lines += ["", paragraph]
        return "\n".join(lines) + "\n"

    # --- files ----------------------------------------------------------------------------------
    def write(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """audit.json, audit.md and (with plots) one <attribute>.png per attribute in out_dir."""
        from recommender.fairness.plots import plot_attribute

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": out / JSON_NAME, "markdown": out / MARKDOWN_NAME}
        _atomic_write(written["json"], json.dumps(self.to_json(), indent=2, allow_nan=False))
        _atomic_write(written["markdown"], self.to_markdown())
        if plots:
            for attribute, audit in self.attributes.items():
                if audit.metrics:
                    path = out / f"{_file_name(attribute)}.png"
                    plot_attribute(audit, path, title=f"{self.label}: {attribute}",
                                   confidence=self.confidence)
                    written[attribute] = path
        return written


def load_audit(path: str | Path) -> AuditReport:
    """An audit from its folder (audit.json inside) or from the JSON file itself."""
    path = Path(path)
    file = path / JSON_NAME if path.is_dir() else path
    return AuditReport.from_json(json.loads(file.read_text()))


def latest_audit_summary(audits_dir: str | Path, version: str) -> str | None:
    """The markdown summary of the latest audit of a model version (`audits/<version>/audit.md`),
    for the model card; None when that version was never audited."""
    file = Path(audits_dir) / version / MARKDOWN_NAME
    return file.read_text() if file.is_file() else None


def _json_safe(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _file_name(attribute: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in attribute)


def _number(value: float, digits: int = 4) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _estimate(value: float, ci: tuple[float, float], digits: int = 4) -> str:
    """"value [low, high]", or the bare value when there is no valid interval (coverage)."""
    if any(math.isnan(bound) for bound in ci):
        return _number(value, digits)
    return f"{_number(value, digits)} [{_number(ci[0], digits)}, {_number(ci[1], digits)}]"
