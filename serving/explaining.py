"""explain/ for a model version served from Redis.

explain/ reads an Artifact: the model with every customer's partial vectors, the offers table, the
taxonomy. A worker holds a LoadedModel instead (the item side only; customers stay in Redis), so
`ServedVersion` presents one version the way explain/ and ranking.rank read an artifact. It is
built once per version, so explain's per-artifact lookups (explain.context) and base values
(explain.attributions) are computed once for the version's whole life, not per request.

tests/test_serving.py holds served explanations equal to explain's own on the artifact.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote

import numpy as np
import pandas as pd

from explain import criteria
from explain.criteria import OfferExplanations
from explain.templates import Templates
from recommender.additive import AdditiveModel
from recommender.consent import Consent
from recommender.features import attribute_values
from recommender.offer_index import OfferIndex
from recommender.ranking import CustomerState
from recommender.taxonomy import Taxonomy
from serving.redis_store import LoadedModel


@dataclass(eq=False)
class ServedVersion:
    """One served model version, shaped as the Artifact that ranking.rank and explain/ read.

    model: the version's item side, with one placeholder customer row whose has_data says which
    categories any trained customer had data in (explain tells "not used by the model" from "no
    data about you" by it); no real customer is in it, and customer_rows is empty for that reason.
    Plain attributes, not properties: ranking.rank reads offer_columns once per excluded offer.
    """

    loaded: LoadedModel
    model: AdditiveModel
    version: str
    manifest: dict
    offers: pd.DataFrame
    taxonomy: Taxonomy
    history_mode: str | None
    offer_columns: dict[str, int]
    customer_rows: dict[str, int] = field(default_factory=dict)

    @property
    def catalog_key(self) -> str:
        """Names the version with its live catalog: what is compiled against the offers (business
        rules) is compiled again when the catalog gains offers."""
        serial = self.loaded.catalog_serial
        return self.version if not serial else f"{self.version}+catalog.{serial}"

    @cached_property
    def offer_ids(self) -> list[str]:
        return list(self.loaded.offer_columns)

    @property
    def offer_index(self) -> OfferIndex | None:
        return self.loaded.offer_index

    @cached_property
    def offer_paths(self) -> list[str]:
        """Offer ids as URL path segments (quoted once per version, not per response)."""
        return [quote(o, safe="") for o in self.offer_ids]

    @cached_property
    def titles(self) -> list[str]:
        offers = self.loaded.offers
        if "title" not in offers:
            return self.offer_ids
        return [str(t) for t in offers["title"]]

    @cached_property
    def offer_attributes(self) -> tuple[str, ...]:
        """Offer columns a request may filter on."""
        return tuple(str(c) for c in self.loaded.offers.columns if c != "title")

    def outside(self, attribute: str, value: str) -> tuple[str, ...] | None:
        """Ids of the offers whose `attribute` does not hold `value` (several values are joined
        by "|"), or None when no offer holds it: an unknown filter value."""
        key = (attribute, value)
        cached = self._filters.get(key)
        if cached is None:
            values = self.loaded.offers[attribute].map(attribute_values).tolist()
            keep = [value in v for v in values]
            if not any(keep):
                return None
            cached = self._filters[key] = tuple(
                o for o, k in zip(self.offer_ids, keep, strict=True) if not k
            )
        return cached

    @cached_property
    def _filters(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {}

    def holding(self, attribute: str) -> dict[str, np.ndarray]:
        """Value -> the offer columns holding it (ascending), for one offer attribute; built once
        per version."""
        found = self._holding.get(attribute)
        if found is None:
            by_value: dict[str, list[int]] = {}
            for column, values in enumerate(self.loaded.offers[attribute].map(attribute_values)):
                for value in values:
                    by_value.setdefault(value, []).append(column)
            found = self._holding[attribute] = {
                v: np.array(c, dtype=np.int64) for v, c in by_value.items()}
        return found

    @cached_property
    def _holding(self) -> dict[str, dict[str, np.ndarray]]:
        return {}


_SERVED: weakref.WeakKeyDictionary[LoadedModel, ServedVersion] = weakref.WeakKeyDictionary()


def served(loaded: LoadedModel) -> ServedVersion:
    """The ServedVersion of a loaded version, built on first use and kept as long as it is."""
    version = _SERVED.get(loaded)
    if version is None:
        version = _SERVED[loaded] = _build(loaded)
    return version


def _build(loaded: LoadedModel) -> ServedVersion:
    m = loaded.model
    n_categories, d = len(m.categories), m.item_vectors.shape[1]
    in_model = loaded.in_model
    if in_model is None:
        # versions published before the item side carried it: a category nobody had data in
        # averages to exactly zero
        in_model = (m.mean_vectors != 0).any(axis=1) | (m.mean_bias != 0)
    model = AdditiveModel(
        categories=m.categories, item_vectors=m.item_vectors, item_bias=m.item_bias,
        partial_vectors=np.zeros((n_categories, 1, d)), partial_bias=np.zeros((n_categories, 1)),
        has_data=np.asarray(in_model, dtype=bool)[:, None], mean_vectors=m.mean_vectors,
        mean_bias=m.mean_bias, features=m.features,
    )
    return ServedVersion(
        loaded, model, loaded.version, loaded.manifest, loaded.offers, loaded.taxonomy,
        loaded.history_mode, loaded.offer_columns,
    )


def explain_offers(
    version: ServedVersion, state: CustomerState, allowed: np.ndarray, offers: Sequence[int] | np.ndarray,
    *, consent: Consent | None = None, templates: Templates | None = None,
    min_share: float = criteria.MIN_SHARE,
) -> OfferExplanations:
    """explain.criteria.explain_offers for a served version."""
    return criteria.explain_offers(version, state, allowed, offers, consent=consent,
                                   templates=templates, min_share=min_share)


def not_used_only(
    version: ServedVersion, state: CustomerState, allowed: np.ndarray, *,
    consent: Consent | None = None, templates: Templates | None = None,
) -> OfferExplanations:
    """Explanations of no offer at all: what a response without criteria still reports (the
    categories used, those not used and why)."""
    return explain_offers(version, state, allowed, np.zeros(0, dtype=np.intp),
                          consent=consent, templates=templates)
