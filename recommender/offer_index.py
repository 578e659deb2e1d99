"""Approximate top-k over a large catalog: candidates from a graph index, scores exact.

A customer's score under any consent is one inner product plus a constant (recommender.additive):

    score(u, i) = q_i . x_u + b_i + const_u,   x_u = sum_g pbar_g + sum over used g of (p_ug - pbar_g)

so consent changes only the query x_u, and one index over the offers serves every consent state.
Maximum inner product becomes nearest neighbour by the usual augmentation (Bachrach et al. 2014):
offers y_i = [q_i, b_i, sqrt(M^2 - |q_i|^2 - b_i^2)] with M the largest norm, queries [x_u, 1, 0],
so that |query - y_i|^2 = |query|^2 + M^2 - 2 (q_i . x_u + b_i). faiss's HNSW graph finds the
nearest. The graph alone misses offers every customer scores highly (the average customer's best:
their large norms put them far from most queries in the augmented space), so the offers with the
highest base(i) join every search's candidates: on a 30,000-offer storefront the graph alone
(efSearch 384) found 93% of the exact top 10; with the 100 best for the average customer, 99.6% at
efSearch 128, in 0.23 ms a search.
ranking.rank scores the candidates exactly and keeps the top k, so every score shown and
explained is the exact one, and the index can only miss an offer, never misstate one (recall
against exact ranking: `make bench-scale`, tests/test_offer_index.py).
"""

from __future__ import annotations

import io

import numpy as np

from recommender.additive import AdditiveModel

# Catalogs from this size get an index when published: below it ranking stays exact, at about
# 1.5 ms a request at 10,000 offers on one core (make bench-scale prints both).
MIN_OFFERS = 20_000
NEIGHBOURS = 48  # HNSW links per node: recall against memory and build time
EF_CONSTRUCTION = 400
POPULAR = 100  # the average customer's best offers, candidates in every search
EF_SEARCH = 128  # candidates a search keeps (at least the number asked for): recall against time


class OfferIndex:
    """An HNSW index over one model's offers (faiss), searched by a customer's query vector."""

    def __init__(self, index: object, popular: np.ndarray, ef_search: int = EF_SEARCH) -> None:
        self.index = index
        self.popular = popular  # offer columns with the highest base(i)
        self.ef_search = ef_search

    @classmethod
    def build(cls, model: AdditiveModel, *, neighbours: int = NEIGHBOURS,
              ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH,
              popular: int = POPULAR) -> OfferIndex:
        import faiss  # only catalogs large enough for an index need it

        points = np.hstack([model.item_vectors, model.item_bias[:, None]])
        norms = np.einsum("ij,ij->i", points, points)
        lift = np.sqrt(np.maximum(norms.max(initial=0.0) - norms, 0.0))
        points = np.ascontiguousarray(np.hstack([points, lift[:, None]]), dtype=np.float32)
        index = faiss.IndexHNSWFlat(points.shape[1], neighbours)
        index.hnsw.efConstruction = ef_construction
        index.add(points)
        best = np.argsort(-model.base(), kind="stable")[:popular]
        return cls(index, best.astype(np.int64), ef_search)

    @property
    def n_offers(self) -> int:
        return self.index.ntotal

    def search(self, query: np.ndarray, n: int) -> np.ndarray:
        """Offer columns, in column order: (about) the n highest q_i . query + b_i, and the
        average customer's best offers."""
        import faiss

        n = min(n, self.n_offers)
        if n < 1:
            return np.empty(0, dtype=np.int64)
        point = np.append(query, [1.0, 0.0]).astype(np.float32)[None]
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, n))
        _, found = self.index.search(point, n, params=params)
        return np.union1d(found[0][found[0] >= 0], self.popular)

    def to_bytes(self) -> bytes:
        import faiss

        buffer = io.BytesIO()
        np.savez(buffer, graph=faiss.serialize_index(self.index), popular=self.popular)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, ef_search: int = EF_SEARCH) -> OfferIndex:
        import faiss

        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return cls(faiss.deserialize_index(arrays["graph"]), arrays["popular"], ef_search)
