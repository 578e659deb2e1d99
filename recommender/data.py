"""The one dataset type: customers, offers, interactions, and the taxonomy that labels customer data.

Tables are pandas DataFrames (what loaders and notebooks speak); models read the integer codes and
sparse matrices derived here, so every model sees customers and offers in the same order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import DataError
from recommender.taxonomy import Taxonomy

INTERACTION_COLUMNS = ("customer_id", "offer_id", "kind", "weight", "timestamp")
MULTI_VALUE_SEPARATOR = "|"


@dataclass(frozen=True, eq=False)
class Dataset:
    """customers: index customer_id (str), one column per attribute (str, NaN when unknown).
    offers: index offer_id (str), column `title`, other columns offer attributes (str; several
    values joined by "|", e.g. genres). interactions: columns customer_id, offer_id, kind (str),
    weight (float, > 0), timestamp (int, seconds), sorted by timestamp.
    """

    customers: pd.DataFrame
    offers: pd.DataFrame
    interactions: pd.DataFrame
    taxonomy: Taxonomy
    name: str = "dataset"

    def __post_init__(self) -> None:
        validate(self)

    # --- integer codes shared by every model -------------------------------------------------
    @cached_property
    def customer_ids(self) -> np.ndarray:
        return self.customers.index.to_numpy(dtype=object)

    @cached_property
    def offer_ids(self) -> np.ndarray:
        return self.offers.index.to_numpy(dtype=object)

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    @property
    def n_offers(self) -> int:
        return len(self.offers)

    @cached_property
    def customer_codes(self) -> np.ndarray:
        """Row of each interaction's customer (int32)."""
        return self.customers.index.get_indexer(self.interactions["customer_id"]).astype(np.int32)

    @cached_property
    def offer_codes(self) -> np.ndarray:
        """Column of each interaction's offer (int32)."""
        return self.offers.index.get_indexer(self.interactions["offer_id"]).astype(np.int32)

    def interaction_matrix(self) -> sp.csr_matrix:
        """Customers x offers, summed weights of repeated interactions."""
        matrix = sp.csr_matrix(
            (self.interactions["weight"].to_numpy(np.float32),
             (self.customer_codes, self.offer_codes)),
            shape=(self.n_customers, self.n_offers),
        )
        matrix.sum_duplicates()
        return matrix

    def with_interactions(self, interactions: pd.DataFrame) -> Dataset:
        """The same customers, offers and taxonomy with other interactions (a split's train part)."""
        return replace(self, interactions=interactions.reset_index(drop=True))

    def customer_attributes(self) -> list[str]:
        return [str(c) for c in self.customers.columns]

    def offer_attribute_values(self, attribute: str) -> list[list[str]]:
        """Per offer, the list of values of a (possibly multi-valued) attribute."""
        column = self.offers[attribute]
        return [
            [] if pd.isna(value) else [v for v in str(value).split(MULTI_VALUE_SEPARATOR) if v]
            for value in column
        ]

    def offer_attributes(self) -> list[str]:
        return [str(c) for c in self.offers.columns if c != "title"]

    def fingerprint(self) -> str:
        """A content hash: two datasets with the same fingerprint train the same model."""
        digest = hashlib.sha256()
        for frame in (self.customers, self.offers, self.interactions):
            digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        digest.update(repr(self.taxonomy.to_dict()).encode())
        return digest.hexdigest()[:16]

    def summary(self) -> dict[str, int]:
        return {
            "customers": self.n_customers,
            "offers": self.n_offers,
            "interactions": len(self.interactions),
        }


def validate(dataset: Dataset) -> None:
    """Refuse a dataset the models cannot trust, naming the table and field."""
    customers, offers, interactions = dataset.customers, dataset.offers, dataset.interactions
    if customers.index.name != "customer_id":
        raise DataError("customers must be indexed by customer_id", field="customer_id")
    if offers.index.name != "offer_id":
        raise DataError("offers must be indexed by offer_id", field="offer_id")
    for table, frame in (("customers", customers), ("offers", offers)):
        duplicated = frame.index[frame.index.duplicated()]
        if len(duplicated):
            raise DataError(f"duplicate id {duplicated[0]!r} in {table}", field=frame.index.name)
    if "title" not in offers.columns:
        raise DataError("offers need a title", field="title")
    for attribute in customers.columns:
        dataset.taxonomy.category_of(str(attribute))
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise DataError(f"interactions lack column {missing[0]!r}", field=missing[0])
    unknown_customer = ~interactions["customer_id"].isin(customers.index)
    if unknown_customer.any():
        first = interactions.loc[unknown_customer, "customer_id"].iloc[0]
        raise DataError(f"unknown customer id {first!r} in interactions", field="customer_id")
    unknown_offer = ~interactions["offer_id"].isin(offers.index)
    if unknown_offer.any():
        first = interactions.loc[unknown_offer, "offer_id"].iloc[0]
        raise DataError(f"unknown offer id {first!r} in interactions", field="offer_id")
    if len(interactions) and not (interactions["weight"].to_numpy(float) > 0).all():
        raise DataError("interaction weights must be positive", field="weight")
