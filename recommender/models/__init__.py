"""Every model TrustRec trains, by name, with the defaults tuned on ML-100K validation."""

from __future__ import annotations

from collections.abc import Callable

from recommender.errors import DataError
from recommender.models.base import Recommender
from recommender.models.hybrid import HybridRecommender
from recommender.models.implicit_models import ALSRecommender, BPRRecommender, ItemKNNRecommender
from recommender.models.popularity import PopularityRecommender
from recommender.taxonomy import HISTORY

# name -> (factory, default hyperparameters)
MODELS: dict[str, tuple[Callable[..., Recommender], dict]] = {
    "hybrid": (HybridRecommender, {"history": "items"}),
    "hybrid-identity": (HybridRecommender, {"history": "identity"}),
    "lightfm-cf": (
        HybridRecommender,
        {"history": "identity", "user_categories": (HISTORY,), "item_attribute_weight": 0.0},
    ),
    "als": (ALSRecommender, {}),
    "bpr": (BPRRecommender, {}),
    "itemknn-cosine": (ItemKNNRecommender, {"weighting": "cosine"}),
    "itemknn-bm25": (ItemKNNRecommender, {"weighting": "bm25"}),
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
