"""Category importance across many customers and offers, for marketers: shap.Explanation objects
that shap.plots.waterfall (one row), bar and beeswarm draw.

Values are the exact per-category SHAP values of the offer's advantage, the quantity every "Why do
I see this?" explains (explain.criteria), with the average customer's advantage as base value;
data is 1 where a category was used, 0 where consent or missing data kept it out, so a beeswarm
colours points by use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shap

from explain.attributions import attribute
from explain.context import context
from explain.templates import Templates
from recommender.artifacts import Artifact
from recommender.consent import NO_PERSONAL_DATA, Consent, category_mask
from recommender.ranking import customer_state, rank


def population_explanations(
    artifact: Artifact, customer_ids: Sequence[str], offer_ids: Sequence[str] | None = None, *,
    k: int = 1, consent: Consent | Mapping[str, Consent] | None = None,
    templates: Templates | None = None, relative: bool = True,
) -> shap.Explanation:
    """One row per (customer, offer): the given offers for every customer, or each customer's top k
    under their consent (None: every category allowed; a mapping: per customer, missing customers
    get no personal data, as when a consent record cannot be read).

    relative: explain the advantage (the score relative to the customer's catalog average, base
    value base(i) - mean base), as the criteria do; False explains the raw score, whose values
    include per-customer shifts that move all of a customer's offers alike and decide nothing."""
    model = artifact.model
    templates = templates or Templates.default()
    ctx = context(artifact)
    columns = None
    if offer_ids is not None:
        columns = np.array([artifact.offer_columns[str(o)] for o in offer_ids], dtype=np.intp)
    values, bases, data, names = [], [], [], []
    for customer_id in customer_ids:
        customer_id = str(customer_id)
        if isinstance(consent, Mapping):
            allowed = category_mask(consent.get(customer_id, NO_PERSONAL_DATA), model.categories)
        elif consent is None:
            allowed = np.ones(len(model.categories), dtype=bool)
        else:
            allowed = category_mask(consent, model.categories)
        state = customer_state(artifact, customer_id)
        offers = columns if columns is not None else rank(artifact, state, allowed, k)[0]
        a = attribute(model, state, allowed, offers)
        values.append(a.relative if relative else a.contributions)
        bases.append(a.relative_base if relative else a.base)
        data.append(np.broadcast_to(a.used.astype(float), a.contributions.shape))
        names += [f"{customer_id} → {ctx.title(ctx.offer_ids[o])}" for o in a.offers]
    n_categories = len(model.categories)
    return shap.Explanation(
        values=np.vstack(values) if values else np.zeros((0, n_categories)),
        base_values=np.concatenate(bases) if bases else np.zeros(0),
        data=np.vstack(data) if data else np.zeros((0, n_categories)),
        feature_names=[templates.name(c) for c in model.categories],
        instance_names=names,
    )
