"""Every model TrustRec trains, by name, with defaults chosen on ML-100K's validation split
(`trustrec tune`, see README: the test split played no part in choosing them)."""

from __future__ import annotations

from collections.abc import Callable

from recommender.errors import DataError
from recommender.models.base import Recommender
from recommender.models.hybrid import HybridRecommender
from recommender.models.implicit_models import ALSRecommender, BPRRecommender, ItemKNNRecommender
from recommender.models.popularity import PopularityRecommender
from recommender.taxonomy import HISTORY

# name -> (factory, default hyperparameters)
HYBRID_TUNED = {"learning_rate": 0.02, "max_sampled": 100, "no_components": 128,
                "item_attribute_weight": 2.0}
MODELS: dict[str, tuple[Callable[..., Recommender], dict]] = {
    "hybrid": (HybridRecommender, HYBRID_TUNED | {"history": "blend"}),
    "hybrid-items": (HybridRecommender, HYBRID_TUNED | {"history": "items"}),
    "hybrid-identity": (HybridRecommender, HYBRID_TUNED | {"history": "identity"}),
    "lightfm-cf": (
        HybridRecommender,
        {"history": "identity", "user_categories": (HISTORY,), "item_attribute_weight": 0.0,
         "learning_rate": 0.05, "max_sampled": 30, "no_components": 64},
    ),
    "als": (ALSRecommender, {"factors": 32, "regularization": 0.01, "alpha": 1.2}),
    "bpr": (BPRRecommender, {}),
    "itemknn-cosine": (ItemKNNRecommender, {"weighting": "cosine", "neighbours": 100}),
    "itemknn-bm25": (ItemKNNRecommender, {"weighting": "bm25", "neighbours": 200, "K1": 0.9, "B": 0.6}),
    "popularity": (PopularityRecommender, {}),
}


def make_model(name: str, **params: object) -> Recommender:
    """A model by name; `params` override its defaults."""
    try:
        factory, defaults = MODELS[name]
    except KeyError:
        raise DataError(
            f"unknown model {name!r}; choose one of {', '.join(MODELS)}", field="model"
        ) from None
    model = factory(**defaults)
    unknown = set(params) - set(model.get_params())
    if unknown:
        raise DataError(
            f"model {name!r} has no parameter {sorted(unknown)[0]!r}; it takes "
            f"{', '.join(model.get_params())}", field="param",
        )
    return model.set_params(**params)


__all__ = ["MODELS", "Recommender", "make_model"]
