"""Fairness: audit offers across customer groups, and mitigations to compare (docs/architecture.md).

    report = audit_artifact("models/<version>", dataset)     # the artifact's configuration
    report = audit_model(model.score, split)                 # a model fitted on split.train
    report.write("audits/<version>")                         # audit.json, audit.md, PNGs

Names are imported from their module on first use: serving needs only the re-ranker, and the audit's
fairlearn and matplotlib would add about a second to every worker's start.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "audit": (
        "artifact_configuration", "audit_artifact", "audit_configuration", "audit_model",
        "consent_scorer", "fit_configuration", "metric_names", "protected_attributes",
    ),
    "groups": ("AttributeAudit", "GroupComparison", "compare_groups", "group_frame"),
    "report": ("AuditReport", "latest_audit_summary", "load_audit"),
    "rerank": ("CalibratedReranker", "calibrated_rerank", "reranked_scorer"),
    "unawareness": ("UnawarenessComparison", "compare_unawareness"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
