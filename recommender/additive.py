"""The additive-by-category model of docs/architecture.md in numpy: what serving and explaining use.

    score(u, i) = base(i) + sum over allowed g of phi_g(u, i)
    base(i)     = b_i + sum over g of (pbar_g . q_i + cbar_g)
    phi_g(u, i) = (p_ug - pbar_g) . q_i + (c_ug - cbar_g)

A category a customer did not allow, or has no data in, takes the population average, so it adds
exactly nothing. Every model TrustRec serves (LightFM hybrid, implicit ALS/BPR/item-kNN,
popularity) is written in this one form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp


@dataclass(eq=False)
class FeatureSpace:
    """User features: the embedding table behind the partial vectors, so a customer the model has not
    seen (cold start), or one with a new interaction, gets partial vectors without retraining.

    names[f] is "attribute=value", "customer:<id>" (identity) or "history:<offer_id>";
    category[f] indexes AdditiveModel.categories.
    """

    names: np.ndarray  # (F,) str
    category: np.ndarray  # (F,) int
    vectors: np.ndarray  # (F, d)
    bias: np.ndarray  # (F,)

    def index(self) -> dict[str, int]:
        return {str(name): f for f, name in enumerate(self.names)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for an npz file (artifacts, the Redis item blob)."""
        return {
            "feature_names": self.names.astype(str), "feature_category": self.category,
            "feature_vectors": self.vectors, "feature_bias": self.bias,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> FeatureSpace | None:
        """The inverse of to_arrays; None when the arrays hold no feature space."""
        if "feature_names" not in arrays:
            return None
        return cls(
            names=arrays["feature_names"].astype(object), category=arrays["feature_category"],
            vectors=arrays["feature_vectors"], bias=arrays["feature_bias"],
        )


@dataclass(eq=False)
class AdditiveModel:
    categories: tuple[str, ...]
    item_vectors: np.ndarray  # q: (n_offers, d)
    item_bias: np.ndarray  # b: (n_offers,)
    partial_vectors: np.ndarray  # p: (G, n_customers, d)
    partial_bias: np.ndarray  # c: (G, n_customers)
    has_data: np.ndarray  # (G, n_customers) bool: u has any data in g
    mean_vectors: np.ndarray  # pbar: (G, d), over customers with data in g
    mean_bias: np.ndarray  # cbar: (G,)
    features: FeatureSpace | None = None

    @classmethod
    def from_features(
        cls, categories: tuple[str, ...], customer_features: sp.csr_matrix, features: FeatureSpace,
        item_vectors: np.ndarray, item_bias: np.ndarray,
    ) -> AdditiveModel:
        """Partial vectors as category-masked products of a customer x feature weight matrix."""
        p, c, has_data = _partials(customer_features, features, len(categories))
        return cls.from_partials(categories, item_vectors, item_bias, p, c, has_data, features)

    @classmethod
    def from_partials(
        cls, categories: tuple[str, ...], item_vectors: np.ndarray, item_bias: np.ndarray,
        partial_vectors: np.ndarray, partial_bias: np.ndarray, has_data: np.ndarray,
        features: FeatureSpace | None = None,
    ) -> AdditiveModel:
        """Averages are taken over the customers who have data in each category."""
        n_categories, _, d = partial_vectors.shape
        mean_vectors = np.zeros((n_categories, d))
        mean_bias = np.zeros(n_categories)
        for g in range(n_categories):
            if has_data[g].any():
                mean_vectors[g] = partial_vectors[g, has_data[g]].mean(axis=0)
                mean_bias[g] = partial_bias[g, has_data[g]].mean()
        return cls(
            categories=tuple(categories),
            item_vectors=np.asarray(item_vectors, dtype=np.float64),
            item_bias=np.asarray(item_bias, dtype=np.float64),
            partial_vectors=np.asarray(partial_vectors, dtype=np.float64),
            partial_bias=np.asarray(partial_bias, dtype=np.float64),
            has_data=np.asarray(has_data, dtype=bool),
            mean_vectors=mean_vectors,
            mean_bias=mean_bias,
            features=features,
        )

    # --- shapes ---------------------------------------------------------------------------------
    @property
    def n_customers(self) -> int:
        return self.partial_vectors.shape[1]

    @property
    def n_offers(self) -> int:
        return self.item_vectors.shape[0]

    def category_mask(self, allowed: object) -> np.ndarray:
        """A (G,) bool mask from None (all), an iterable of category names, or a bool array."""
        if allowed is None:
            return np.ones(len(self.categories), dtype=bool)
        if isinstance(allowed, np.ndarray) and allowed.dtype == bool:
            return allowed
        names = set(allowed)
        unknown = names - set(self.categories)
        if unknown:
            raise ValueError(f"unknown data category {sorted(unknown)[0]!r}")
        return np.array([g in names for g in self.categories])

    # --- the decomposition ----------------------------------------------------------------------
    def base(self) -> np.ndarray:
        """base(i): the average customer's score for every offer, (n_offers,). Read-only."""
        return self._catalog[0]

    def catalog_mean(self) -> tuple[np.ndarray, float]:
        """(qbar, mean base): the mean offer vector (read-only) and the mean of base(i) over the
        catalog. phi_g is linear in q_i, so phi_g at qbar is its catalog mean (explain/)."""
        return self._catalog[1], self._catalog[2]

    @cached_property
    def _catalog(self) -> tuple[np.ndarray, np.ndarray, float]:
        # asked for on every request; the arrays never change after construction
        base = self.item_vectors @ self.mean_vectors.sum(axis=0) + self.item_bias
        base += self.mean_bias.sum()
        base.flags.writeable = False
        n_offers, d = self.item_vectors.shape
        mean_item = self.item_vectors.mean(axis=0) if n_offers else np.zeros(d)
        mean_item.flags.writeable = False
        return base, mean_item, float(base.mean()) if n_offers else 0.0

    def partials(self, customer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p_u: (G, d), c_u: (G,), has_data: (G,)) of one known customer."""
        return (
            self.partial_vectors[:, customer], self.partial_bias[:, customer],
            self.has_data[:, customer],
        )

    def used(self, has_data: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Categories that enter the score: allowed and holding data. (..., G) bool."""
        return has_data & allowed

    def deviations(
        self, p: np.ndarray, c: np.ndarray, used: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p_ug - pbar_g, c_ug - cbar_g) for used categories, exactly zero for the others.

        p: (..., G, d), c: (..., G), used: (..., G)."""
        dp = np.where(used[..., None], p - self.mean_vectors, 0.0)
        dc = np.where(used, c - self.mean_bias, 0.0)
        return dp, dc

    def score_partials(
        self, p: np.ndarray, c: np.ndarray, has_data: np.ndarray, allowed: np.ndarray,
        items: np.ndarray | None = None,
    ) -> np.ndarray:
        """Scores from partial vectors: (n, G, d), (n, G), (n, G) -> (n, n_items)."""
        dp, dc = self.deviations(p, c, self.used(has_data, allowed))
        q = self.item_vectors if items is None else self.item_vectors[items]
        base = self.base() if items is None else self.base()[items]
        return dp.sum(axis=-2) @ q.T + dc.sum(axis=-1)[..., None] + base

    def score(self, customers: np.ndarray, allowed: object = None) -> np.ndarray:
        """Scores of known customers for every offer under one consent: (n, n_offers)."""
        customers = np.asarray(customers)
        p = self.partial_vectors[:, customers].transpose(1, 0, 2)
        c = self.partial_bias[:, customers].T
        has_data = self.has_data[:, customers].T
        return self.score_partials(p, c, has_data, self.category_mask(allowed))

    def contributions(
        self, p: np.ndarray, c: np.ndarray, has_data: np.ndarray, allowed: np.ndarray,
        items: np.ndarray,
    ) -> np.ndarray:
        """phi_g(u, i) for one customer's partials: (len(items), G); zero where g is not used."""
        dp, dc = self.deviations(p, c, self.used(has_data, allowed))
        return self.item_vectors[items] @ dp.T + dc

    # --- partials of customers the model has not stored -------------------------------------
    def partials_from_features(self, weights: dict[str, float]) -> tuple[np.ndarray, ...]:
        """Partials from named, already normalized feature weights (cold start, new history).

        Computed exactly as training computed the stored ones (from_features: a float32 weight
        row, the same products in the same order), so a customer whose data did not change gets
        the stored partials bit for bit, whichever way they are read."""
        if self.features is None:
            raise ValueError("this model has no feature space: it cannot place unseen customers")
        index = self.features.index()
        # a value never seen in training carries no learned signal: skipped, not renormalized
        known = sorted((index[name], weight) for name, weight in weights.items() if name in index)
        columns = np.array([f for f, _ in known], dtype=np.intp)
        values = np.array([w for _, w in known], dtype=np.float32)
        row = sp.csr_matrix((values, (np.zeros(len(known), dtype=np.intp), columns)),
                            shape=(1, len(self.features.names)))
        p, c, has_data = _partials(row, self.features, len(self.categories))
        return p[:, 0], c[:, 0], has_data[:, 0]


def _partials(
    customer_features: sp.spmatrix, features: FeatureSpace, n_categories: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p: (G, n, d), c: (G, n), has_data: (G, n)) of n customers' weight rows: the one way
    partials are computed, at training and at serving time alike."""
    customer_features = sp.csr_matrix(customer_features, dtype=np.float64)
    n, d = customer_features.shape[0], features.vectors.shape[1]
    p = np.zeros((n_categories, n, d))
    c = np.zeros((n_categories, n))
    has_data = np.zeros((n_categories, n), dtype=bool)
    vectors = features.vectors.astype(np.float64)
    bias = features.bias.astype(np.float64)
    for g in range(n_categories):
        mask = sp.diags((features.category == g).astype(np.float64))
        block = customer_features @ mask
        p[g] = block @ vectors
        c[g] = block @ bias
        has_data[g] = np.diff(block.tocsr().indptr) > 0
    return p, c, has_data
