"""Exact "why this offer" explanations: SHAP values by data category, their split by past offer,
plain-language criteria, and population views for marketers.

    attribution = attribute(artifact.model, state, allowed, offer_columns)   # exact SHAP values
    explanations = explain_offers(artifact, state, allowed, offer_columns, consent=consent)
    explanations.compact(i)        # top criteria of the i-th offer, for the offers list
    explanations.payload(i)        # the full "Why do I see this?" JSON
    population_explanations(artifact, customer_ids, k=3)   # shap.Explanation for shap.plots

Names load on first use: serving needs criteria, not shap's plotting or implicit.
"""

from recommender.lazy import lazy_exports

_WHERE = {
    "Attribution": "attributions", "attribute": "attributions", "base_values": "attributions",
    "FeatureSplit": "splits", "split_features": "splits",
    "Criterion": "criteria", "NotUsed": "criteria", "OfferExplanations": "criteria",
    "explain_offers": "criteria", "why": "criteria",
    "Templates": "templates",
    "population_explanations": "population",
    "explain_als": "als",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _WHERE)
