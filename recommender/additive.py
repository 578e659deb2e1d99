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

from recommender.threads import thread_map


@dataclass(eq=False)
class FeatureSpace:
    """User features: the embedding table behind the partial vectors, so a customer the model has not
    seen (cold start), or one with a new interaction, gets partial vectors without retraining.

    names[f] is "attribute=value", "customer:<id>" (identity) or "history:<offer_id>";
    category[f] indexes AdditiveModel.categories.

    The online store keeps the shared features only (`shared()`): a customer's identity feature
    travels with that customer's record (`Identity`), so what every worker holds does not grow
    with the number of customers.
    """

    names: np.ndarray  # (F,) str
    category: np.ndarray  # (F,) int
    vectors: np.ndarray  # (F, d)
    bias: np.ndarray  # (F,)

    def index(self) -> dict[str, int]:
        """Feature name -> row (built once: a catalog's features number in the hundred thousands)."""
        return self._index

    @cached_property
    def _index(self) -> dict[str, int]:
        return {str(name): f for f, name in enumerate(self.names)}

    @cached_property
    def is_identity(self) -> np.ndarray:
        """(F,) bool: the feature is one customer's learned identity ("customer:<id>")."""
        return np.array([str(name).startswith(IDENTITY_PREFIX) for name in self.names], dtype=bool)

    def identity(self, customer_id: str) -> Identity | None:
        """The customer's identity feature, or None (no such feature)."""
        f = self.index().get(IDENTITY_PREFIX + str(customer_id))
        if f is None:
            return None
        return Identity(IDENTITY_PREFIX + str(customer_id), int(self.category[f]),
                        self.vectors[f], float(self.bias[f]))

    def shared(self) -> FeatureSpace:
        """The features every customer may have: all but the identities."""
        if not self.is_identity.any():
            return self
        keep = ~self.is_identity
        return FeatureSpace(self.names[keep], self.category[keep], self.vectors[keep],
                            self.bias[keep])

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


IDENTITY_PREFIX = "customer:"
_CHUNK = 2048  # customers whose partials are built at once (their terms are held in memory)


@dataclass(frozen=True, eq=False)
class Identity:
    """One customer's identity feature, held apart from the shared feature space."""

    name: str  # "customer:<id>"
    category: int
    vector: np.ndarray  # (d,)
    bias: float


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
        p, c, has_data = partials(customer_features, features, len(categories))
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

    def query(
        self, p: np.ndarray, c: np.ndarray, has_data: np.ndarray, allowed: np.ndarray,
    ) -> tuple[np.ndarray, float]:
        """(x, const) of one customer's partials, with score(i) = q_i . x + b_i + const: the
        query an index over the offers is searched with (recommender.offer_index)."""
        dp, dc = self.deviations(p, c, self.used(has_data, allowed))
        return self.mean_vectors.sum(axis=0) + dp.sum(axis=0), float(self.mean_bias.sum() + dc.sum())

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
    def partials_from_features(
        self, weights: dict[str, float], identity: Identity | None = None,
    ) -> tuple[np.ndarray, ...]:
        """Partials from named, already normalized feature weights (cold start, new history, and
        every customer read from the online store). `identity`: the customer's identity feature
        when the feature space does not hold it (the online store's shared features).

        Computed exactly as training computed the stored ones (from_features: a float32 weight
        row, the same products in the same order), so a customer whose data did not change gets
        the stored partials bit for bit, whichever way they are read. An identity feature comes
        after every other feature of its category in both: training creates the history features
        of every offer before any identity, and attributes are other categories."""
        if self.features is None:
            raise ValueError("this model has no feature space: it cannot place unseen customers")
        features = self.features
        index = features.index()
        # a value never seen in training carries no learned signal: skipped, not renormalized
        known = sorted((index[name], weight) for name, weight in weights.items() if name in index)
        rows = [f for f, _ in known]
        # the few features this customer has, as a feature space of their own (in feature order)
        vectors, bias, category = (features.vectors[rows], features.bias[rows],
                                   features.category[rows])
        values = [w for _, w in known]
        if identity is not None and identity.name in weights and identity.name not in index:
            vectors = np.vstack([vectors, identity.vector[None]])
            bias, category = np.append(bias, identity.bias), np.append(category, identity.category)
            values.append(weights[identity.name])
        p, c, has_data = _weighted_sums(
            np.array([0, len(values)]), np.arange(len(values)), np.array(values, np.float32),
            FeatureSpace(np.empty(len(values), dtype=object), category, vectors, bias),
            len(self.categories))
        return p[:, 0], c[:, 0], has_data[:, 0]


def partials(
    customer_features: sp.spmatrix, features: FeatureSpace, n_categories: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p: (G, n, d), c: (G, n), has_data: (G, n)) of n customers' weight rows: the one way
    partials are computed, at training and at serving time alike.

    Each row's terms w_j e_j of a category are added one at a time, in feature order (as
    np.add.accumulate adds): the same additions in the same order for a million customers at once
    and for one customer alone, so both give the same bits. Only the embeddings of the features
    in use are read (one customer's few, never the whole table)."""
    weights = sp.csr_matrix(customer_features, dtype=np.float32)
    weights.sort_indices()
    n = weights.shape[0]
    if n <= _CHUNK:
        return _weighted_sums(weights.indptr, weights.indices, weights.data, features,
                              n_categories)
    p = np.zeros((n_categories, n, features.vectors.shape[1]))
    c = np.zeros((n_categories, n))
    has_data = np.zeros((n_categories, n), dtype=bool)

    def chunk(lo: int) -> None:  # bounded memory: a chunk's terms are held at once
        rows = weights[lo:lo + _CHUNK]
        part = _weighted_sums(rows.indptr, rows.indices, rows.data, features, n_categories)
        p[:, lo:lo + _CHUNK], c[:, lo:lo + _CHUNK], has_data[:, lo:lo + _CHUNK] = part

    # Chunks are independent and write disjoint slices; numpy's indexing and arithmetic on them
    # release the GIL, so threads share the work (a million customers: minutes on one core).
    thread_map(chunk, range(0, n, _CHUNK))
    return p, c, has_data


def _weighted_sums(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, features: FeatureSpace,
    n_categories: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """partials of the rows of one CSR weight matrix (its arrays, indices sorted in each row)."""
    n, d = len(indptr) - 1, features.vectors.shape[1]
    p = np.zeros((n_categories, n, d))
    c = np.zeros((n_categories, n))
    has_data = np.zeros((n_categories, n), dtype=bool)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    category = features.category[indices]
    for g in range(n_categories):
        entries = np.flatnonzero(category == g)  # by row, in feature order within a row
        if not len(entries):
            continue
        owner, columns = rows[entries], indices[entries]
        w = data[entries].astype(np.float64)
        vector_terms = w[:, None] * features.vectors[columns]
        bias_terms = w * features.bias[columns]
        has_data[g, owner] = True
        if n == 1:  # one customer: the same additions, in one call
            p[g, 0] = np.add.accumulate(vector_terms, axis=0)[-1]
            c[g, 0] = np.add.accumulate(bias_terms)[-1]
            continue
        # each term's position among its row's: the k-th terms of every row are added at once
        starts = np.flatnonzero(np.diff(owner, prepend=-1))
        position = np.arange(len(owner)) - np.repeat(starts, np.diff(starts, append=len(owner)))
        order = np.argsort(position, kind="stable")
        counts = np.bincount(position)
        for k, stop in enumerate(np.cumsum(counts)):
            terms = order[stop - counts[k]:stop]  # at most one per row
            if k == 0:  # r_0 = t_0, r_k = r_(k-1) + t_k: np.add.accumulate's order
                p[g, owner[terms]] = vector_terms[terms]
                c[g, owner[terms]] = bias_terms[terms]
            else:
                p[g, owner[terms]] += vector_terms[terms]
                c[g, owner[terms]] += bias_terms[terms]
    return p, c, has_data
