"""`trustrec audit ARTIFACT --data ...`: what the command does once its arguments are parsed
(trustrec.cli parses them, trustrec.commands.audit calls this)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recommender.artifacts import load_artifact
from recommender.consent import LEVELS
from recommender.data import Dataset
from recommender.errors import TrustRecError
from recommender.fairness.audit import audit_artifact

DEFAULT_ROOT = Path("audits")


def audit_command(args: argparse.Namespace, dataset: Dataset) -> int:
    """Audit the configuration of args.artifact on `dataset`; write audit.json, audit.md and one
    PNG per attribute into args.out (default audits/<artifact version>/), print the summary."""
    if args.n_boot < 2:
        raise TrustRecError("--n-boot must be at least 2")
    if args.k < 1:
        raise TrustRecError("--k must be at least 1")
    if args.level is not None and args.level not in LEVELS:
        raise TrustRecError(f"--level must be one of {', '.join(LEVELS)}")
    artifact = load_artifact(args.artifact)
    print(f"auditing the configuration of {artifact.version} ({artifact.manifest['model']}): "
          "refitted on the training part of the temporal split, audited on its test part",
          flush=True)
    report = audit_artifact(
        artifact, dataset, level=args.level, k=args.k, n_boot=args.n_boot, seed=args.seed,
        attributes=args.attribute or None, category_attribute=args.category,
    )
    out = Path(args.out) if args.out else DEFAULT_ROOT / artifact.version
    written = report.write(out)
    print(report.to_markdown())
    print(f"audit written: {', '.join(str(path) for path in written.values())}")
    return 0
