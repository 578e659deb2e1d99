"""Feature rows for customers and offers, normalized within each data category (docs/architecture.md).

Normalizing per category, never across the row, keeps one category's weights independent of the
others: withdrawing consent for one category cannot rescale another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.data import MULTI_VALUE_SEPARATOR, Dataset
from recommender.taxonomy import HISTORY, Taxonomy

HISTORY_MODES = ("items", "identity", "blend")
# history_mode "blend": the learned identity's share of the history weight; past offers share the rest
IDENTITY_SHARE = 0.5


def attribute_values(value: object) -> list[str]:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return []
    return [v for v in str(value).split(MULTI_VALUE_SEPARATOR) if v]


def customer_feature_weights(
    taxonomy: Taxonomy,
    attributes: Mapping[str, object],
    history: Iterable[str] = (),
    *,
    history_mode: str = "items",
    customer_id: str | None = None,
) -> dict[str, float]:
    """Named feature weights of one customer, each category's weights summing to 1.

    history_mode "items": one `history:<offer_id>` feature per distinct past offer;
    "identity": one `customer:<id>` feature (only for customers seen in training);
    "blend": both, the identity weighing IDENTITY_SHARE when there is one (customer_id given).
    """
    if history_mode not in HISTORY_MODES:
        raise ValueError(f"history_mode must be one of {HISTORY_MODES}, not {history_mode!r}")
    groups: dict[str, list[str]] = {g: [] for g in taxonomy.categories if g != HISTORY}
    for attribute, value in attributes.items():
        if attribute not in taxonomy.attributes:
            continue  # attributes the taxonomy leaves out (e.g. fairness through unawareness)
        groups[taxonomy.attributes[attribute]] += [f"{attribute}={v}" for v in attribute_values(value)]
    weights = {name: 1.0 / len(names) for names in groups.values() for name in names}
    offers, offer_weight, identity, identity_weight = history_weights(
        history, history_mode=history_mode, customer_id=customer_id)
    weights |= {f"history:{o}": offer_weight for o in offers}
    if identity_weight:
        weights[f"customer:{identity}"] = identity_weight
    return weights


def history_weights(
    history: Iterable[str], *, history_mode: str = "items", customer_id: str | None = None,
) -> tuple[tuple[str, ...], float, str | None, float]:
    """The interaction_history part of customer_feature_weights, unnamed: (distinct past offers,
    the weight of each, the customer id whose identity feature is used or None, its weight).
    Explanations split the history by it without formatting a feature name per past offer."""
    if history_mode not in HISTORY_MODES:
        raise ValueError(f"history_mode must be one of {HISTORY_MODES}, not {history_mode!r}")
    offers = tuple(dict.fromkeys(history)) if history_mode != "identity" else ()
    identity = customer_id if history_mode != "items" and customer_id is not None else None
    if history_mode == "identity":
        return (), 0.0, identity, 1.0 if identity is not None else 0.0
    share = IDENTITY_SHARE if history_mode == "blend" and identity is not None and offers else 0.0
    return offers, (1.0 - share) / len(offers) if offers else 0.0, identity if share else None, share


def customer_histories(dataset: Dataset) -> list[list[str]]:
    """Per customer (dataset order), the offers they interacted with, oldest first."""
    histories: list[list[str]] = [[] for _ in range(dataset.n_customers)]
    offer_ids = dataset.offer_ids
    for row, col in zip(dataset.customer_codes, dataset.offer_codes, strict=True):
        histories[row].append(offer_ids[col])
    return histories


def user_feature_matrix(
    dataset: Dataset, history_mode: str = "items", taxonomy: Taxonomy | None = None
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(customers x features weights, feature names, category index of each feature).

    `taxonomy` (default: the dataset's) decides which attributes become features. Every history
    feature of every offer exists, so a later interaction with any offer can be placed without
    retraining."""
    taxonomy = taxonomy or dataset.taxonomy
    names: dict[str, int] = {}
    categories: list[int] = []

    def column(name: str, category: str) -> int:
        if name not in names:
            names[name] = len(names)
            categories.append(taxonomy.categories.index(category))
        return names[name]

    if history_mode in ("items", "blend"):
        for offer in dataset.offer_ids:
            column(f"history:{offer}", HISTORY)
    rows, cols, weights = [], [], []
    histories = customer_histories(dataset)
    records = dataset.customers.to_dict("records")
    for row, (customer_id, attributes) in enumerate(zip(dataset.customer_ids, records, strict=True)):
        features = customer_feature_weights(
            taxonomy, attributes, histories[row], history_mode=history_mode,
            customer_id=customer_id if histories[row] else None,
        )
        for name, weight in features.items():
            category = HISTORY if name.startswith(("history:", "customer:")) else \
                taxonomy.attributes[name.split("=", 1)[0]]
            rows.append(row)
            cols.append(column(name, category))
            weights.append(weight)
    matrix = sp.csr_matrix(
        (np.asarray(weights, np.float32), (rows, cols)), shape=(dataset.n_customers, len(names))
    )
    return matrix, np.array(list(names), dtype=object), np.asarray(categories, dtype=np.int32)


def item_feature_matrix(
    dataset: Dataset, attribute_weight: float = 1.0
) -> tuple[sp.csr_matrix, np.ndarray]:
    """(offers x features, names): identity weight 1 plus the offer's attribute values, which
    share `attribute_weight` between them. attribute_weight 0 gives pure collaborative filtering."""
    names = {f"offer:{offer}": i for i, offer in enumerate(dataset.offer_ids)}
    rows = list(range(dataset.n_offers))
    cols = list(range(dataset.n_offers))
    weights = [1.0] * dataset.n_offers
    if attribute_weight > 0:
        per_offer: list[list[str]] = [[] for _ in range(dataset.n_offers)]
        for attribute in dataset.offer_attributes():
            for i, values in enumerate(dataset.offer_attribute_values(attribute)):
                per_offer[i] += [f"{attribute}={v}" for v in values]
        for i, features in enumerate(per_offer):
            for name in features:
                rows.append(i)
                cols.append(names.setdefault(name, len(names)))
                weights.append(attribute_weight / len(features))
    matrix = sp.csr_matrix(
        (np.asarray(weights, np.float32), (rows, cols)), shape=(dataset.n_offers, len(names))
    )
    return matrix, np.array(list(names), dtype=object)
