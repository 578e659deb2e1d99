"""Every model TrustRec trains, by name, with its defaults, and the grids baselines are tuned on.

SERVED names the model `trustrec train` builds by default; "served" is accepted wherever a model
name is. The stack chooses its own settings on each data set's validation split; the baselines'
defaults were chosen on ML-100K's validation split (`trustrec tune`) and TUNING_GRIDS lets a
comparison tune them on every data set's validation split too (`trustrec evaluate --tune`)."""

from __future__ import annotations

from collections.abc import Callable

from recommender.errors import DataError
from recommender.models.base import Recommender
from recommender.models.hybrid import HybridRecommender
from recommender.models.implicit_models import ALSRecommender, BPRRecommender, ItemKNNRecommender
from recommender.models.item_item import EASERecommender
from recommender.models.popularity import PopularityRecommender
from recommender.models.stack import StackedRecommender
from recommender.taxonomy import HISTORY

# name -> (factory, default hyperparameters)
HYBRID_TUNED = {"learning_rate": 0.02, "max_sampled": 100, "no_components": 128,
                "item_attribute_weight": 2.0}
MODELS: dict[str, tuple[Callable[..., Recommender], dict]] = {
    "stack": (StackedRecommender, {}),
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
    "ease": (EASERecommender, {}),
    "popularity": (PopularityRecommender, {}),
}


SERVED = "stack"
# Small validation grids (a few fits each) for fair comparisons: each baseline gets the same
# chance to fit a data set that the stack's own search gives it.
TUNING_GRIDS: dict[str, dict[str, list]] = {
    "als": {"factors": [32, 64, 128], "regularization": [0.01, 0.1], "alpha": [1.2, 5.0, 20.0]},
    "bpr": {"factors": [32, 64], "learning_rate": [0.01, 0.05], "regularization": [0.001, 0.01]},
    "itemknn-cosine": {"neighbours": [25, 50, 100, 200, 400]},
    "itemknn-bm25": {"neighbours": [50, 100, 200, 400], "K1": [0.9, 1.2], "B": [0.6, 0.75]},
    "lightfm-cf": {"no_components": [32, 64], "learning_rate": [0.02, 0.05]},
    "ease": {"regularization": [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0]},
}


def model_name(name: str) -> str:
    """The registered name behind `name` ("served" is SERVED); unknown names are refused."""
    resolved = SERVED if name == "served" else name
    if resolved not in MODELS:
        raise DataError(
            f"unknown model {name!r}; choose served or one of {', '.join(MODELS)}", field="model"
        )
    return resolved


def make_model(name: str, **params: object) -> Recommender:
    """A model by name ("served": SERVED); `params` override its defaults."""
    factory, defaults = MODELS[model_name(name)]
    model = factory(**defaults)
    unknown = set(params) - set(model.get_params())
    if unknown:
        raise DataError(
            f"model {name!r} has no parameter {sorted(unknown)[0]!r}; it takes "
            f"{', '.join(model.get_params())}", field="param",
        )
    return model.set_params(**params)


__all__ = ["MODELS", "SERVED", "TUNING_GRIDS", "Recommender", "make_model", "model_name"]
