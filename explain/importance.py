"""The main parameters that decide offers and their relative importance in the live model, as the
Digital Services Act (Art. 27) asks a platform to publish them.

A parameter's importance is its share of the mean absolute contribution to the offers' advantage
(explain.criteria: the same decomposition every "Why do I see this?" uses), over a sample of the
model's customers and their top k offers, with every category the model has allowed: what the
model does when customers let it. Computed once per published version (serving.publish).
"""

from __future__ import annotations

import numpy as np

from explain.attributions import attribute
from explain.templates import POPULARITY
from recommender.artifacts import Artifact
from recommender.ranking import customer_state, rank

METHOD = ("share of the mean absolute contribution to the offers' advantage (each offer's score "
          "above the customer's average), over a sample of customers' top offers, every data "
          "category allowed")


def main_parameters(artifact: Artifact, *, customers: int = 500, k: int = 10, seed: int = 0
                    ) -> dict:
    """{"method", "customers", "offers_per_customer", "importance": {parameter: share}} for
    popularity and each data category of the model; shares add up to 1."""
    model = artifact.model
    allowed = np.ones(len(model.categories), dtype=bool)
    ids = list(artifact.customer_rows)
    sample = np.random.default_rng(seed).permutation(len(ids))[:customers]
    totals = np.zeros(1 + len(model.categories))
    for position in np.sort(sample):
        state = customer_state(artifact, ids[position])
        columns, _ = rank(artifact, state, allowed, k)
        attribution = attribute(model, state, allowed, columns)
        totals[0] += np.abs(attribution.relative_base).sum()
        totals[1:] += np.abs(attribution.relative).sum(axis=0)
    shares = totals / totals.sum() if totals.sum() > 0 else totals
    names = (POPULARITY, *model.categories)
    return {"method": METHOD, "customers": len(sample), "offers_per_customer": k,
            "importance": {name: float(share) for name, share in zip(names, shares, strict=True)}}
