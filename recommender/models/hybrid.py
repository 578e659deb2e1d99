"""The consent-aware hybrid: LightFM with user features grouped by data category.

A customer's representation is the sum of their feature embeddings, and the features of each
category are normalized within that category (recommender.features), so the fitted model is
exactly additive by category (recommender.additive) and consent can switch categories off.
"""

from __future__ import annotations

import copy
from typing import Self

import numpy as np
from lightfm import LightFM
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from recommender.additive import AdditiveModel, FeatureSpace
from recommender.data import Dataset
from recommender.errors import DataError
from recommender.features import HISTORY_MODES, item_feature_matrix, user_feature_matrix
from recommender.taxonomy import HISTORY, Taxonomy

LOSSES = ("warp", "bpr", "warp-kos", "logistic")


class HybridRecommender(BaseEstimator):
    """LightFM hybrid with a category-additive user side.

    history: "items" represents history as the normalized sum of embeddings of past offers
    (decomposes per past offer, updates without retraining); "identity" learns one embedding per
    customer; "blend" gives each half the history weight (recommender.features.IDENTITY_SHARE).
    user_categories limits the categories that feed the model (None: all);
    exclude_attributes leaves named attributes out entirely (fairness through unawareness).
    item_attribute_weight: weight the offer attributes share beside the offer's identity (0: pure CF).
    epochs is the maximum; with a validation set, training stops after `patience` epochs without
    a better validation NDCG@`k` and keeps the best epoch's parameters.
    """

    def __init__(
        self,
        no_components: int = 64,
        loss: str = "warp",
        history: str = "items",
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        epochs: int = 40,
        patience: int = 3,
        k: int = 10,
        item_attribute_weight: float = 1.0,
        user_categories: tuple[str, ...] | None = None,
        exclude_attributes: tuple[str, ...] = (),
        num_threads: int = 2,
        random_state: int | None = None,
        show_progress: bool = True,
    ) -> None:
        self.no_components = no_components
        self.loss = loss
        self.history = history
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.epochs = epochs
        self.patience = patience
        self.k = k
        self.item_attribute_weight = item_attribute_weight
        self.user_categories = user_categories
        self.exclude_attributes = exclude_attributes
        self.num_threads = num_threads
        self.random_state = random_state
        self.show_progress = show_progress

    # --- training -------------------------------------------------------------------------------
    def _check_params(self, train: Dataset) -> None:
        if self.loss not in LOSSES:
            raise DataError(f"loss must be one of {LOSSES}, not {self.loss!r}", field="loss")
        if self.history not in HISTORY_MODES:
            raise DataError(
                f"history must be one of {HISTORY_MODES}, not {self.history!r}", field="history"
            )
        unknown = set(self.user_categories or ()) - set(train.taxonomy.categories)
        if unknown:
            raise DataError(f"unknown data category {sorted(unknown)[0]!r}", field="user_categories")

    def _model_taxonomy(self, train: Dataset) -> Taxonomy:
        kept = [
            a for a in train.customer_attributes()
            if a not in self.exclude_attributes
            and (self.user_categories is None
                 or train.taxonomy.attributes.get(a) in self.user_categories)
        ]
        return train.taxonomy.restricted(kept)

    def fit(self, train: Dataset, validation: Dataset | None = None) -> Self:
        self._check_params(train)
        taxonomy = self._model_taxonomy(train)
        user_features, names, categories = user_feature_matrix(train, self.history, taxonomy)
        if self.user_categories is not None and HISTORY not in self.user_categories:
            keep = categories != taxonomy.categories.index(HISTORY)
            user_features, names, categories = user_features[:, keep], names[keep], categories[keep]
        item_features, _ = item_feature_matrix(train, self.item_attribute_weight)
        interactions = train.interaction_matrix().tocoo()
        interactions.data[:] = 1.0  # implicit positives: the rating value is not a preference strength

        self.taxonomy_ = taxonomy
        self.user_features_ = user_features.tocsr()
        self.feature_names_ = names
        self.feature_categories_ = categories
        self.item_features_ = item_features.tocsr()
        self.lightfm_ = LightFM(
            no_components=self.no_components, loss=self.loss, learning_rate=self.learning_rate,
            item_alpha=self.item_alpha, user_alpha=self.user_alpha, max_sampled=self.max_sampled,
            random_state=self.random_state,
        )
        self.validation_curve_: list[tuple[int, float]] = []
        best_score, best_state, since_best = -np.inf, None, 0
        progress = tqdm(range(1, self.epochs + 1), desc="hybrid", unit="epoch",
                        disable=not self.show_progress)
        for epoch in progress:
            self.lightfm_.fit_partial(
                interactions, user_features=self.user_features_,
                item_features=self.item_features_, epochs=1, num_threads=self.num_threads,
            )
            self.epochs_ = epoch
            if validation is None:
                continue
            metric = self._validation_ndcg(train, validation)
            self.validation_curve_.append((epoch, metric))
            progress.set_postfix({f"val_ndcg@{self.k}": f"{metric:.4f}"})
            if metric > best_score:
                best_score, best_state, since_best = metric, copy.deepcopy(self.lightfm_), 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        progress.close()
        if best_state is not None:
            self.lightfm_ = best_state
            self.epochs_ = max(self.validation_curve_, key=lambda pair: pair[1])[0]
        self.additive_ = self._additive(train)
        return self

    def _validation_ndcg(self, train: Dataset, validation: Dataset) -> float:
        from recommender.evaluation import evaluate
        from recommender.split import Split

        self.additive_ = self._additive(train)
        metrics = evaluate(self.score, Split(train=train, test=validation), k=self.k)
        return metrics[f"ndcg@{self.k}"]

    def _additive(self, train: Dataset) -> AdditiveModel:
        """The fitted LightFM in additive form: offer side summed over item features."""
        model = self.lightfm_
        features = FeatureSpace(
            names=self.feature_names_, category=self.feature_categories_,
            vectors=model.user_embeddings, bias=model.user_biases,
        )
        return AdditiveModel.from_features(
            self.taxonomy_.categories, self.user_features_, features,
            item_vectors=self.item_features_ @ model.item_embeddings.astype(np.float64),
            item_bias=self.item_features_ @ model.item_biases.astype(np.float64),
        )

    # --- scoring --------------------------------------------------------------------------------
    def score(self, customers: np.ndarray, allowed: object = None) -> np.ndarray:
        """Scores of customer rows for every offer, with only `allowed` categories (None: all)."""
        return self.additive_.score(customers, allowed)

    def to_additive(self) -> AdditiveModel:
        return self.additive_

    def lightfm_predict(self, customers: np.ndarray) -> np.ndarray:
        """LightFM's own prediction, every category allowed (to check the additive form)."""
        customers = np.asarray(customers)
        n_offers = self.item_features_.shape[0]
        rows = np.repeat(customers, n_offers).astype(np.int32)
        cols = np.tile(np.arange(n_offers, dtype=np.int32), len(customers))
        return self.lightfm_.predict(
            rows, cols, user_features=self.user_features_, item_features=self.item_features_,
            num_threads=self.num_threads,
        ).reshape(len(customers), n_offers)

