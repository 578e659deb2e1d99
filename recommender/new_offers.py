"""Offers added to the catalog after training: placed where the offers they resemble are.

The model learned no vector for a new offer, so it is scored with the mean vector and bias of its
peers: the trained offers that share its attribute values (all of them; when none shares all,
the last attribute given is dropped, and so on; with no attribute in common, the whole catalog).
The additive decomposition holds for that vector as for any other, so the new offer's score and
its explanation are exact; what the customer is told is that it is new and whom it is scored
like. Once a model is trained with the offer, its own learned vector replaces the peers'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.additive import AdditiveModel
from recommender.features import attribute_values


@dataclass(frozen=True)
class Peers:
    """The trained offers a new one is scored like, and the attribute values they share with it."""

    columns: np.ndarray  # offer columns, ascending
    shared: dict[str, str]  # attribute -> value, in the order given

    def describe(self) -> str:
        """'the 30 offers of category books, price_band low' (or 'the 300 offers of the catalog')."""
        n = len(self.columns)
        noun = "offer" if n == 1 else f"{n} offers"
        if not self.shared:
            return f"the {noun} of the catalog"
        values = ", ".join(f"{a} {v}" for a, v in self.shared.items())
        return f"the {noun} of {values}"


def peers(offers: pd.DataFrame, attributes: Mapping[str, str]) -> Peers:
    """The trained offers (rows of `offers`, the model's columns) sharing the new offer's values."""
    given = [(a, str(v)) for a, v in attributes.items() if a in offers.columns and a != "title"]
    while given:
        match = np.ones(len(offers), dtype=bool)
        for attribute, value in given:
            held = offers[attribute].map(attribute_values).tolist()
            match &= np.fromiter((value in v for v in held), dtype=bool, count=len(held))
        if match.any():
            return Peers(np.flatnonzero(match), dict(given))
        given.pop()
    return Peers(np.arange(len(offers)), {})


def peer_vectors(model: AdditiveModel, groups: list[Peers]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, d), biases (n,)) of new offers: the means over each one's peers."""
    d = model.item_vectors.shape[1]
    vectors = np.empty((len(groups), d))
    biases = np.empty(len(groups))
    for row, group in enumerate(groups):
        vectors[row] = model.item_vectors[group.columns].mean(axis=0)
        biases[row] = model.item_bias[group.columns].mean()
    return vectors, biases
