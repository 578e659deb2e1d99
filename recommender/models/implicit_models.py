"""Pure-history baselines on `implicit`'s CPU models: ALS, BPR and item-kNN (an item-item model).

What the three share:
- They train on Dataset.interaction_matrix() binarized: a rating of 4 or 5, or three clicks on one
  offer, counts as one positive. The weights mean different things for different interaction kinds,
  and implicit's models read a value as a confidence, so passing them through would let the kind
  mix decide the model.
- Only interaction_history carries data. A customer without training interactions cannot be placed
  (there is no feature space: `features_` is None), so they score as the average customer: the mean
  user vector of the customers with history. `score` and `to_additive` agree on this, so the
  additive form reproduces `score` exactly for every customer, with or without history.
- `score` is computed with numpy from the fitted factors, never through implicit's `recommend`, so
  evaluation decides itself which items (e.g. the training ones) to exclude.
- `fit` limits BLAS to one thread while implicit trains, as implicit advises: its own threads and a
  BLAS thread pool slow each other down badly.
"""

from __future__ import annotations

import warnings
from typing import Self

import implicit.cpu.als
import implicit.cpu.bpr
import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from recommender.additive import AdditiveModel
from recommender.data import Dataset
from recommender.errors import DataError
from recommender.taxonomy import HISTORY

KNN_WEIGHTINGS = ("cosine", "bm25")


def binarize(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same pattern with every stored value 1 (float32, what implicit trains on)."""
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    return binary


def history_mask(matrix: sp.csr_matrix) -> np.ndarray:
    """(n_customers,) bool: customers with at least one training interaction."""
    has_history = np.diff(matrix.indptr) > 0
    if not has_history.any():
        raise DataError("no training interactions: a history model has nothing to learn from",
                        field="interactions")
    return has_history


def average_cold(user_vectors: np.ndarray, has_history: np.ndarray) -> np.ndarray:
    """float64 copy in which customers without history take the mean vector of those with it."""
    vectors = np.array(user_vectors, dtype=np.float64)
    vectors[~has_history] = vectors[has_history].mean(axis=0)
    return vectors


def history_additive(
    categories: tuple[str, ...], item_vectors: np.ndarray, item_bias: np.ndarray,
    user_vectors: np.ndarray, has_history: np.ndarray,
) -> AdditiveModel:
    """The additive form of score(u, i) = p_u . q_i + b_i where p_u is all interaction_history.

    Other categories have no data and zero partials, so they add nothing. Customers without history
    get zero partials and has_data False: they score base(i), the average customer.
    """
    n_categories, (n_customers, d) = len(categories), user_vectors.shape
    g = categories.index(HISTORY)
    partial_vectors = np.zeros((n_categories, n_customers, d))
    partial_vectors[g] = np.where(has_history[:, None], user_vectors, 0.0)
    has_data = np.zeros((n_categories, n_customers), dtype=bool)
    has_data[g] = has_history
    return AdditiveModel.from_partials(
        categories, item_vectors, item_bias, partial_vectors,
        partial_bias=np.zeros((n_categories, n_customers)), has_data=has_data, features=None,
    )


def als_factors(
    matrix: sp.csr_matrix, *, factors: int, regularization: float, alpha: float, iterations: int,
    random_state: int | None, num_threads: int, show_progress: bool = False,
) -> tuple[implicit.cpu.als.AlternatingLeastSquares, np.ndarray, np.ndarray]:
    """(implicit model, customer factors, offer factors) of implicit's CPU ALS on a binary matrix.

    After implicit's iterations the customer factors are solved once more, exactly, against the
    final offer factors: one more ALS half-step, so it only lowers the loss, and it makes the
    factors equal what implicit's `explain` recomputes from the customer's history. Call with BLAS
    limited to one thread (implicit's own threads and a BLAS pool slow each other down)."""
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
        random_state=random_state, num_threads=num_threads,
    )
    model.fit(matrix, show_progress=show_progress)
    model.partial_fit_users(np.arange(matrix.shape[0]), matrix)
    return model, model.user_factors, model.item_factors


class FactorizationRecommender(BaseEstimator):
    """score(u, i) = user_factors_[u] . item_factors_[i] + item_bias_[i]; subclasses factorize.

    Fitted attributes: model_ (the implicit estimator), train_matrix_ (binarized customers x
    offers CSR), has_history_, user_factors_ (float64; customers without history hold the mean),
    item_factors_, item_bias_, categories_, features_ (None).
    """

    def _factorize(
        self, matrix: sp.csr_matrix
    ) -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
        """(implicit model, user vectors, item vectors, item bias) learned from `matrix`."""
        raise NotImplementedError

    def fit(self, train: Dataset, validation: Dataset | None = None) -> Self:
        """`validation` is accepted for the common interface and unused: no early stopping."""
        matrix = binarize(train.interaction_matrix())
        has_history = history_mask(matrix)
        with threadpool_limits(1, "blas"):
            model, user_vectors, item_vectors, item_bias = self._factorize(matrix)
        self.model_ = model
        self.train_matrix_ = matrix
        self.has_history_ = has_history
        self.user_factors_ = average_cold(user_vectors, has_history)
        self.item_factors_ = np.asarray(item_vectors, dtype=np.float64)
        self.item_bias_ = np.asarray(item_bias, dtype=np.float64)
        self.categories_ = tuple(train.taxonomy.categories)
        self.features_ = None
        return self

    def score(self, customers: np.ndarray) -> np.ndarray:
        """(len(customers), n_offers) float64, training items included."""
        check_is_fitted(self, "user_factors_")
        users = self.user_factors_[np.atleast_1d(customers)]
        return users @ self.item_factors_.T + self.item_bias_

    def to_additive(self) -> AdditiveModel:
        check_is_fitted(self, "user_factors_")
        return history_additive(
            self.categories_, self.item_factors_, self.item_bias_, self.user_factors_,
            self.has_history_,
        )


class ALSRecommender(FactorizationRecommender):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on implicit.cpu.als.

    Confidence follows implicit 0.7: an observed pair has confidence alpha * x_ui, here alpha (the
    matrix is binary), and preference 1; an unobserved pair has confidence 1 and preference 0.
    This is not the paper's 1 + alpha * r: implicit multiplies the stored value by alpha and
    nothing else, so alpha should stay above 1 for positives to outweigh the unobserved.

    The user factors are solved once more after implicit's iterations (als_factors), so `score`
    equals the total that implicit's `explain` recomputes from the customer's history.
    """

    def __init__(
        self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
        iterations: int = 15, random_state: int | None = None, num_threads: int = 2,
        show_progress: bool = True,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _factorize(self, matrix):
        model, users, items = als_factors(
            matrix, factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, random_state=self.random_state,
            num_threads=self.num_threads, show_progress=self.show_progress,
        )
        return model, users, items, np.zeros(matrix.shape[1])

    def explain(
        self, customer: int, offer: int, N: int = 10, user_weights: object = None,
    ) -> tuple[float, list[tuple[int, float]], object]:
        """implicit's own explanation of score(customer, offer): (total_score, top_contributions,
        user_weights).

        implicit recomputes the customer's vector from their training history,
        p_u = W_u Y^T C_u p(u) with W_u = (Y^T C_u Y + regularization I)^-1, so the score splits
        over past offers j: s_j = confidence_j * q_offer^T W_u q_j. top_contributions lists the N
        largest (offer_index, s_j), largest first; all of them (N >= the customer's history) sum
        to total_score, which equals score(customer, offer) (float32 factors: to ~1e-5).
        total_score is the whole score p_u . q_i = base(i) + phi_history(u, i) of the additive
        form, not phi_history alone. user_weights (the Cholesky factor of W_u^-1) can be passed
        back in to explain other offers for the same customer faster.

        Raises ValueError for a customer without training history: they score as the average
        customer, and no past offer of theirs is behind it.
        """
        check_is_fitted(self, "model_")
        if not self.has_history_[customer]:
            raise ValueError(
                f"customer {customer} has no training history: their score is the average "
                "customer's, with no past offer behind it"
            )
        history = self.train_matrix_[customer]
        return self.model_.explain(0, history, offer, user_weights=user_weights, N=N)


class BPRRecommender(FactorizationRecommender):
    """Bayesian Personalized Ranking (Rendle et al. 2009) on implicit.cpu.bpr.

    implicit keeps the item bias as an extra factor column matched by a user column of ones; here
    that column becomes item_bias_ (and leaves the factors), which gives the same scores exactly.
    BPR samples one negative per positive and ignores weights; with num_threads=1 a fixed
    random_state reproduces the model.
    """

    def __init__(
        self, factors: int = 64, learning_rate: float = 0.01, regularization: float = 0.01,
        iterations: int = 100, random_state: int | None = None, num_threads: int = 2,
        show_progress: bool = True,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _factorize(self, matrix):
        model = implicit.cpu.bpr.BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            random_state=self.random_state, num_threads=self.num_threads,
        )
        model.fit(matrix, show_progress=self.show_progress)
        users, items = model.user_factors, model.item_factors
        return model, users[:, :-1], items[:, :-1], items[:, -1]


def knn_similarity(
    matrix: sp.csr_matrix, weighting: str = "cosine", neighbours: int = 100, K1: float = 1.2,
    B: float = 0.75, num_threads: int = 2, show_progress: bool = False,
) -> tuple[CosineRecommender | BM25Recommender, sp.csr_matrix]:
    """(implicit model, item-item similarity as CSR float64) of implicit's item-kNN on a binary
    matrix: each row keeps its `neighbours` largest entries."""
    if weighting == "cosine":
        model = CosineRecommender(K=neighbours, num_threads=num_threads)
    elif weighting == "bm25":
        model = BM25Recommender(K=neighbours, K1=K1, B=B, num_threads=num_threads)
    else:
        raise ValueError(f"weighting must be one of {KNN_WEIGHTINGS}, not {weighting!r}")
    with warnings.catch_warnings(), threadpool_limits(1, "blas"):
        # implicit's weighting hands its own knn step a COO matrix and then warns about it
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(matrix, show_progress=show_progress)
    return model, sp.csr_matrix(model.similarity, dtype=np.float64)


class ItemItemRecommender(BaseEstimator):
    """score(u, i) = sum_j x_uj W[j, i], x_u the customer's binary training row and W offers x
    offers item-item weights that a subclass learns (`_item_weights`). Linear in x_u, so the
    additive form is exact with item_vectors = W^T (dense, n_offers x n_offers) and the history
    partial = x_u, and every score splits by past offer.

    Fitted attributes: model_ (the library's model, or None), train_matrix_, has_history_,
    weights_ (n_offers x n_offers, CSR or dense), mean_history_ (the average customer's row),
    categories_, features_ (None).
    """

    def _item_weights(self, matrix: sp.csr_matrix) -> tuple[object, np.ndarray | sp.csr_matrix]:
        """(model or None, W) learned from the binary customers x offers matrix."""
        raise NotImplementedError

    def fit(self, train: Dataset, validation: Dataset | None = None) -> Self:
        """`validation` is accepted for the common interface and unused: nothing is iterated."""
        matrix = binarize(train.interaction_matrix())
        has_history = history_mask(matrix)
        self.model_, self.weights_ = self._item_weights(matrix)
        self.train_matrix_ = matrix
        self.has_history_ = has_history
        self.mean_history_ = np.asarray(matrix[has_history].mean(axis=0), dtype=np.float64).ravel()
        self.categories_ = tuple(train.taxonomy.categories)
        self.features_ = None
        return self

    def score(self, customers: np.ndarray) -> np.ndarray:
        """(len(customers), n_offers) float64, training items included."""
        check_is_fitted(self, "weights_")
        customers = np.atleast_1d(customers)
        history = sp.csr_matrix(self.train_matrix_[customers], dtype=np.float64)
        scores = history @ self.weights_
        scores = np.asarray(scores.todense() if sp.issparse(scores) else scores)
        cold = ~self.has_history_[customers]
        if cold.any():
            scores[cold] = np.asarray(self.weights_.T @ self.mean_history_).ravel()
        return scores

    def to_additive(self) -> AdditiveModel:
        check_is_fitted(self, "weights_")
        weights = self.weights_.toarray() if sp.issparse(self.weights_) else self.weights_
        return history_additive(
            self.categories_, np.asarray(weights, dtype=np.float64).T,
            np.zeros(weights.shape[0]), self.train_matrix_.toarray(), self.has_history_,
        )


class ItemKNNRecommender(ItemItemRecommender):
    """Item-item nearest neighbours on implicit.nearest_neighbours (cosine or BM25 weighting):
    W is the item-item similarity, each row keeping its `neighbours` largest entries (so it is not
    symmetric), and the scores are exactly what implicit's `recommend` ranks by. weights_ is CSR.
    """

    def __init__(
        self, neighbours: int = 50, weighting: str = "cosine", K1: float = 1.2, B: float = 0.75,
        num_threads: int = 2, show_progress: bool = True,
    ) -> None:
        self.neighbours = neighbours
        self.weighting = weighting
        self.K1 = K1
        self.B = B
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _item_weights(self, matrix):
        return knn_similarity(matrix, self.weighting, self.neighbours, self.K1, self.B,
                              self.num_threads, self.show_progress)
