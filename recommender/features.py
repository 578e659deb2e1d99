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
    retraining.

    Row by row the weights are customer_feature_weights' (tests/test_features_vectorized.py holds
    them against it); the features other than history ones are numbered in the order
    customer_feature_weights names them, customer after customer. Computed with array operations,
    never a Python step per customer or interaction: a million customers take seconds."""
    taxonomy = taxonomy or dataset.taxonomy
    if history_mode not in HISTORY_MODES:
        raise ValueError(f"history_mode must be one of {HISTORY_MODES}, not {history_mode!r}")
    g_history = taxonomy.categories.index(HISTORY)
    names: list[str] = []
    categories: list[int] = []
    if history_mode in ("items", "blend"):
        names += [f"history:{offer}" for offer in dataset.offer_ids]
        categories += [g_history] * dataset.n_offers
    n = dataset.n_customers

    # attribute features: one entry per (customer, value), ordered as customer_feature_weights
    # orders them (category, then attribute, then value); `named` numbers each distinct name
    named: dict[str, int] = {}
    named_category: list[int] = []
    rows, sort_keys, name_ids = [], [], []
    for j, attribute in enumerate(dataset.customers.columns):
        if attribute not in taxonomy.attributes:
            continue  # attributes the taxonomy leaves out (e.g. fairness through unawareness)
        g = taxonomy.categories.index(taxonomy.attributes[attribute])
        codes, uniques = pd.factorize(dataset.customers[attribute])  # unknown: -1
        per_value = [[named.setdefault(f"{attribute}={v}", len(named)) for v in
                      attribute_values(value)] for value in uniques]
        named_category += [g] * (len(named) - len(named_category))
        lengths = np.array([len(v) for v in per_value] + [0], dtype=np.int64)  # [-1]: unknown
        counts = lengths[codes]
        owner = np.repeat(np.arange(n), counts)
        # the k-th value of each customer's value list
        k = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        offsets = np.cumsum(lengths) - lengths
        flat = np.array([i for v in per_value for i in v] + [0], dtype=np.int64)
        rows.append(owner)
        name_ids.append(flat[offsets[codes[owner]] + k])
        sort_keys.append((np.full(len(owner), g), np.full(len(owner), j), k))
    n_named = len(named)
    row = np.concatenate(rows) if rows else np.empty(0, np.int64)
    name_id = np.concatenate(name_ids) if name_ids else np.empty(0, np.int64)
    g_key, j_key, k_key = (np.concatenate([key[i] for key in sort_keys]) if sort_keys
                           else np.empty(0, np.int64) for i in range(3))
    # each category's weights sum to 1 over its values, repeated values counted
    n_categories = len(taxonomy.categories)
    per_category = np.bincount(row * n_categories + g_key, minlength=n * n_categories)
    weight = 1.0 / per_category[row * n_categories + g_key]

    # past offers: distinct, as history_weights counts them
    customer, offer = dataset.customer_codes.astype(np.int64), dataset.offer_codes.astype(np.int64)
    # sorted and deduplicated by hand: np.unique's hash path takes 20 times as long here
    distinct = np.sort(customer * max(dataset.n_offers, 1) + offer)
    distinct = distinct[np.append(True, distinct[1:] != distinct[:-1])] if len(distinct) \
        else distinct
    h_row, h_col = distinct // max(dataset.n_offers, 1), distinct % max(dataset.n_offers, 1)
    n_distinct = np.bincount(h_row, minlength=n)
    has_history = n_distinct > 0
    share = IDENTITY_SHARE if history_mode == "blend" else 0.0
    # the learned identity comes after the customer's attribute features (category n_categories)
    identity_rows = np.flatnonzero(has_history) if history_mode != "items" else np.empty(0, int)
    row = np.concatenate([row, identity_rows])
    name_id = np.concatenate([name_id, n_named + identity_rows])
    weight = np.concatenate([weight, np.full(len(identity_rows),
                                             share if history_mode == "blend" else 1.0)])
    g_key = np.concatenate([g_key, np.full(len(identity_rows), n_categories)])
    j_key = np.concatenate([j_key, np.zeros(len(identity_rows), np.int64)])
    k_key = np.concatenate([k_key, np.zeros(len(identity_rows), np.int64)])

    # a name's column: in the order of first use, customer by customer, each in its own order
    order = np.lexsort((k_key, j_key, g_key, row))
    row, name_id, weight = row[order], name_id[order], weight[order]
    used, first = np.unique(name_id, return_index=True)  # a repeated value: its first entry
    by_first = np.argsort(first, kind="stable")
    column_of = np.full(n_named + n, -1, dtype=np.int64)
    column_of[used[by_first]] = len(names) + np.arange(len(used))
    identity_names = [f"customer:{c}" for c in dataset.customer_ids]
    attribute_names = list(named)
    for i in used[by_first]:
        if i < n_named:
            names.append(attribute_names[i])
            categories.append(named_category[i])
        else:
            names.append(identity_names[i - n_named])
            categories.append(g_history)
    # one entry per (customer, name): a value repeated in a customer's list counts once
    _, keep = np.unique(row * (n_named + n) + name_id, return_index=True)
    cols = column_of[name_id[keep]]
    row, weight = row[keep], weight[keep]
    if history_mode in ("items", "blend"):
        row = np.concatenate([row, h_row])
        cols = np.concatenate([cols, h_col])  # history features are the first n_offers
        weight = np.concatenate([weight, (1.0 - share) / n_distinct[h_row]])
    matrix = sp.csr_matrix(
        (weight.astype(np.float32), (row, cols)), shape=(n, len(names))
    )
    return matrix, np.array(names, dtype=object), np.asarray(categories, dtype=np.int32)


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
