"""The interface every recommender shares (scikit-learn style)."""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np

from recommender.additive import AdditiveModel
from recommender.data import Dataset


class Recommender(Protocol):
    """Constructor takes plain hyperparameters; `fit` learns attributes ending in `_`.

    fit(train, validation=None): `validation`, when given, is a Dataset with the same customers and
    offers whose interactions are held out from `train`; models that train in epochs use it for
    early stopping and report `validation_curve_`.
    """

    def fit(self, train: Dataset, validation: Dataset | None = None) -> Self: ...

    def score(self, customers: np.ndarray) -> np.ndarray:
        """Scores of the given customer rows for every offer: (len(customers), n_offers)."""
        ...

    def to_additive(self) -> AdditiveModel:
        """The fitted model in the additive-by-category form that artifacts store."""
        ...

    def get_params(self) -> dict: ...
