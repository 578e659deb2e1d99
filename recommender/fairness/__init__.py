"""Fairness: audit offers across customer groups, and mitigations to compare (design.md, fairness).

    report = audit_artifact("models/<version>", dataset)     # the artifact's configuration
    report = audit_model(model.score, split)                 # a model fitted on split.train
    report.write("audits/<version>")                         # audit.json, audit.md, PNGs
"""

from recommender.fairness.audit import (
    artifact_configuration,
    audit_artifact,
    audit_configuration,
    audit_model,
    consent_scorer,
    fit_configuration,
    metric_names,
    protected_attributes,
)
from recommender.fairness.categories import (
    calibration_gap,
    default_category_attribute,
    history_distributions,
    list_distributions,
    offer_category_matrix,
)
from recommender.fairness.groups import AttributeAudit, GroupComparison, compare_groups, group_frame
from recommender.fairness.report import AuditReport, latest_audit_summary, load_audit
from recommender.fairness.rerank import CalibratedReranker, calibrated_rerank, reranked_scorer
from recommender.fairness.unawareness import UnawarenessComparison, compare_unawareness

__all__ = [
    "AttributeAudit", "AuditReport", "CalibratedReranker", "GroupComparison", "UnawarenessComparison",
    "artifact_configuration", "audit_artifact", "audit_configuration", "audit_model",
    "calibrated_rerank", "calibration_gap", "compare_groups", "compare_unawareness",
    "consent_scorer", "default_category_attribute", "fit_configuration", "group_frame",
    "history_distributions", "latest_audit_summary", "list_distributions", "load_audit",
    "metric_names", "offer_category_matrix", "protected_attributes", "reranked_scorer",
]
