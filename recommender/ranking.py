"""One customer's offers under their consent: the computation serving, explanations and notebooks
share, so what is served, what is explained and what is audited cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from recommender.additive import AdditiveModel, Identity
from recommender.artifacts import Artifact
from recommender.evaluation import top_k_one
from recommender.features import customer_feature_weights
from recommender.offer_index import OfferIndex
from recommender.taxonomy import HISTORY


@dataclass(frozen=True, eq=False)
class CustomerState:
    """What scoring knows of one customer: per-category partial vectors and the data behind them."""

    customer_id: str
    p: np.ndarray  # (G, d): p_ug
    c: np.ndarray  # (G,): c_ug
    has_data: np.ndarray  # (G,) bool
    history: tuple[str, ...]  # distinct past offers, oldest first
    attributes: Mapping[str, object]
    known: bool  # seen by the model in training
    # the customer's identity feature when the model's feature space does not hold it (read
    # from the online store): explanations split the history with it
    identity: Identity | None = None


def customer_state(
    artifact: Artifact, customer_id: str, *, attributes: Mapping[str, object] | None = None,
    new_history: Iterable[str] = (), leave_out: Iterable[str] = (),
) -> CustomerState:
    """The state of a known customer, optionally with interactions made since training, other
    attribute values or past offers left out ("don't use this purchase"), or of a new one from
    their attributes (cold start). Models without a feature space (implicit, popularity) place an
    unknown customer at the average."""
    model = artifact.model
    known = customer_id in artifact.customer_rows
    row = artifact.customer_rows.get(customer_id)  # None: known, but no partials stored
    new_history = tuple(new_history)
    trained = artifact.histories.get(customer_id, ())
    left_out = frozenset(leave_out) & frozenset((*trained, *new_history))
    history = tuple(o for o in dict.fromkeys((*trained, *new_history)) if o not in left_out)
    # stored partials hold only for the attributes and history the model was trained with; a
    # customer read from the online store has none stored (row None): built from features
    stored = row is not None and attributes is None and not new_history and not left_out
    identity = artifact.customer_identity(customer_id) if known else None
    if attributes is None:
        attributes = artifact.customer_attributes(customer_id) if known else {}
    if stored:
        p, c, has_data = model.partials(row)
    elif model.features is not None and artifact.history_mode is not None:
        weights = customer_feature_weights(
            artifact.taxonomy, attributes, history, history_mode=artifact.history_mode,
            customer_id=customer_id if known else None,
        )
        p, c, has_data = model.partials_from_features(weights, identity)
    elif row is not None:
        p, c, has_data = model.partials(row)
    else:
        p, c, has_data = _average_partials(model)
    return CustomerState(str(customer_id), p, c, has_data, history, dict(attributes), known,
                         identity)


def _average_partials(model: AdditiveModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_categories, d = len(model.categories), model.item_vectors.shape[1]
    return np.zeros((n_categories, d)), np.zeros(n_categories), np.zeros(n_categories, dtype=bool)


def scores(model: AdditiveModel, state: CustomerState, allowed: np.ndarray) -> np.ndarray:
    """The customer's score for every offer with only `allowed` categories, (n_offers,)."""
    return model.score_partials(state.p[None], state.c[None], state.has_data[None], allowed)[0]


def rank(
    artifact: Artifact, state: CustomerState, allowed: np.ndarray, k: int, *,
    exclude: Iterable[str] = (), exclude_history: bool = True, within: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(offer columns, scores) of the top k, best first; `within`: among these columns only.

    Past offers are excluded only when interaction_history may be used: excluding them is itself
    a use of the history, and a customer who withdrew it must get the same offers whatever it holds.
    """
    model = artifact.model
    column = artifact.offer_columns.get
    # one lookup per offer (a history may be long): ids not in the catalog give None
    removed = [c for c in map(column, exclude) if c is not None]
    if exclude_history and allowed[model.categories.index(HISTORY)]:
        removed += [c for c in map(column, state.history) if c is not None]
    if within is not None:
        candidates = np.setdiff1d(np.asarray(within, dtype=np.int64), removed)
        exact = model.score_partials(state.p[None], state.c[None], state.has_data[None], allowed,
                                     items=candidates)[0]
        best = top_k_one(exact, k)
        return candidates[best], exact[best]
    index = artifact.offer_index
    if index is not None:
        return _rank_candidates(model, index, state, allowed, k, removed)
    all_scores = scores(model, state, allowed)
    masked = all_scores.copy()
    masked[removed] = -np.inf
    columns = top_k_one(masked, k)
    return columns, all_scores[columns]


def _rank_candidates(
    model: AdditiveModel, index: OfferIndex, state: CustomerState, allowed: np.ndarray, k: int,
    removed: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """rank() over a large catalog: the index's candidates (enough to survive the exclusions),
    scored exactly, the top k of them."""
    query, _ = model.query(state.p, state.c, state.has_data, allowed)
    candidates = index.search(query, k + len(removed))  # by column: ties as top_k_one
    if model.n_offers > index.n_offers:  # offers added since the index was built: all scored
        candidates = np.union1d(candidates, np.arange(index.n_offers, model.n_offers))
    candidates = candidates[~np.isin(candidates, removed)]
    exact = model.score_partials(state.p[None], state.c[None], state.has_data[None], allowed,
                                 items=candidates)[0]
    best = top_k_one(exact, k)
    return candidates[best], exact[best]
