"""Popularity: the non-personalized baseline, and the offers a customer gets with no personal data.

score(u, i) = the number of distinct customers who interacted with offer i in training, the same
for every customer. Raw counts rather than log1p: the ranking is the same either way, and a count
reads plainly in an explanation ("chosen by 120 customers"). Repeated interactions and their weights
(ratings 4 or 5) do not count twice: popularity measures reach, not intensity.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from recommender.additive import AdditiveModel
from recommender.data import Dataset


class PopularityRecommender(BaseEstimator):
    """The same ranking for everyone: offers by how many customers chose them.

    Fitted attributes: popularity_ (n_offers,) float64, categories_, n_customers_, features_ (None:
    no customer data enters the score, so there is nothing to place an unseen customer with).
    """

    def fit(self, train: Dataset, validation: Dataset | None = None) -> Self:
        """`validation` is accepted for the common interface and unused: nothing is iterated."""
        matrix = train.interaction_matrix()
        # interaction_matrix sums duplicates, so stored entries are distinct (customer, offer) pairs
        self.popularity_ = matrix.getnnz(axis=0).astype(np.float64)
        self.categories_ = tuple(train.taxonomy.categories)
        self.n_customers_ = train.n_customers
        self.features_ = None
        return self

    def score(self, customers: np.ndarray) -> np.ndarray:
        """(len(customers), n_offers) float64: every row is the popularity."""
        check_is_fitted(self, "popularity_")
        n = len(np.atleast_1d(customers))
        return np.tile(self.popularity_, (n, 1))

    def to_additive(self) -> AdditiveModel:
        """item_bias = popularity; no category carries data, so every customer scores the base.

        Vectors have one zero dimension rather than none, so stores and products never meet an
        empty axis.
        """
        check_is_fitted(self, "popularity_")
        n_categories, n_offers = len(self.categories_), len(self.popularity_)
        return AdditiveModel.from_partials(
            self.categories_,
            item_vectors=np.zeros((n_offers, 1)),
            item_bias=self.popularity_,
            partial_vectors=np.zeros((n_categories, self.n_customers_, 1)),
            partial_bias=np.zeros((n_categories, self.n_customers_)),
            has_data=np.zeros((n_categories, self.n_customers_), dtype=bool),
            features=None,
        )
