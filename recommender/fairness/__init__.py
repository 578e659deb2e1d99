"""Fairness: audit offers across customer groups, and mitigations to compare (docs/architecture.md).

    report = audit_artifact("models/<version>", dataset)     # the artifact's configuration
    report = audit_model(model.score, split)                 # a model fitted on split.train
    report.write("audits/<version>")                         # audit.json, audit.md, PNGs

Names are imported from their module on first use: serving needs only the re-ranker, and the audit's
fairlearn and matplotlib would add about a second to every worker's start.
"""

from __future__ import annotations

from recommender.lazy import lazy_exports

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
__getattr__, __dir__, __all__ = lazy_exports(
    __name__, {name: module for module, names in _MODULES.items() for name in names})
