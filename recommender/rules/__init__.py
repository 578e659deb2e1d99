"""Business rules that serving applies after scoring (issue 9).

    rules = load_rules("rules/spring.toml", dataset_or_artifact)   # validated, DataError otherwise
    result = preview(run_or_dataset, rules)                        # before/after, for notebooks
    publish_rules(rules, "/srv/trustrec/rules.toml")               # atomic; serving re-reads it

spec: the file format and its validation; engine: applying rules to one customer's candidates;
source: the file serving watches, and atomic publishing; impact: preview(), the effect on offers
and metrics.
"""

from __future__ import annotations

from recommender.lazy import lazy_exports
from recommender.rules.engine import CHANGES, N_CANDIDATES, CompiledRules, RuleChange, RulesOutcome
from recommender.rules.source import RulesFile, publish_rules
from recommender.rules.spec import BusinessRules, load_rules, parse_rules

# preview trains models: imported on first use, so serving never loads LightFM for it
__getattr__, __dir__, _lazy = lazy_exports(__name__, {"preview": "impact", "RulesPreview": "impact"})
__all__ = [
    "CHANGES", "N_CANDIDATES", "BusinessRules", "CompiledRules", "RuleChange", "RulesFile",
    "RulesOutcome", "load_rules", "parse_rules", "publish_rules", *_lazy,
]
