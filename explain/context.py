"""What explaining needs from an artifact, looked up once per artifact instead of once per request.

An explanation must cost little next to the ranking it explains, so name lookups (feature rows,
titles, the category of an attribute) are built here once and kept as long as the artifact lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from recommender.artifacts import Artifact
from recommender.features import attribute_values, customer_feature_weights
from recommender.taxonomy import HISTORY, Taxonomy

HISTORY_PREFIX = "history:"
IDENTITY_PREFIX = "customer:"
_MAX_CACHED_ATTRIBUTES = 4096


@dataclass(frozen=True, eq=False)
class AttributeFeatures:
    """A customer's attribute features, grouped by category in customer_feature_weights' order:
    names ("age_band=25-34"), rows into ExplainContext.vectors, weights and category indices; and
    values[g], the values of the attributes of category g (one, or a tuple when several)."""

    names: tuple[str, ...]
    rows: tuple[int, ...]
    weights: tuple[float, ...]
    categories: tuple[int, ...]
    values: Mapping[int, Mapping[str, str | tuple[str, ...]]]
    blocks: Mapping[int, slice]  # category -> its features' positions


@dataclass(frozen=True, eq=False)
class ExplainContext:
    """Per-artifact lookups.

    feature_rows maps a feature name to its row in `vectors`/`bias`; a name the model never learned
    maps to `missing`, an all-zero row, which is exactly what AdditiveModel.partials_from_features
    does with it (skips it, without renormalizing the others).
    """

    taxonomy: Taxonomy
    history_mode: str | None
    history: int  # index of interaction_history in the model's categories
    offer_ids: np.ndarray  # (n_offers,) str, by column
    titles: dict[str, str]
    feature_rows: dict[str, int]
    history_rows: dict[str, int]  # offer id -> row of its "history:<offer_id>" feature
    missing: int
    vectors: np.ndarray  # (F + 1, d) feature embeddings in float64 (as partials multiply them),
    bias: np.ndarray  # (F + 1,)                                             last row zero
    attribute_category: dict[str, int]  # attribute -> category index
    attribute_category_index: dict[str, int]  # name of an attribute category -> its index
    in_model: np.ndarray  # (G,) bool: categories any customer has data in
    # attribute values -> their features (see attribute_features): customers share few values
    _attribute_features: dict = field(default_factory=dict, repr=False)

    def attribute_features(self, attributes: Mapping[str, object]) -> AttributeFeatures:
        """The features of these attribute values, weighted as customer_feature_weights weighs
        them, and the values by category. Remembered per distinct values (a bounded cache):
        explaining a response needs them, and they cost more to name than to look up."""
        try:
            key = tuple(attributes.items())
            found = self._attribute_features.get(key)
        except TypeError:  # values that cannot be hashed: named every time
            key, found = None, None
        if found is None:
            found = self._name_attribute_features(attributes)
            if key is not None:
                if len(self._attribute_features) >= _MAX_CACHED_ATTRIBUTES:
                    self._attribute_features.clear()
                self._attribute_features[key] = found
        return found

    def _name_attribute_features(self, attributes: Mapping[str, object]) -> AttributeFeatures:
        named = customer_feature_weights(self.taxonomy, attributes, (),
                                         history_mode=self.history_mode or "items")
        values: dict[int, dict[str, str | tuple[str, ...]]] = {}
        for name, raw in attributes.items():
            g = self.attribute_category.get(name)
            found = attribute_values(raw) if g is not None and g != self.history else []
            if found:
                values.setdefault(g, {})[name] = found[0] if len(found) == 1 else tuple(found)
        categories = tuple(self.attribute_category[n.split("=", 1)[0]] for n in named)
        blocks: dict[int, slice] = {}
        for position, g in enumerate(categories):
            block = blocks.get(g)
            if block is not None and block.stop != position:  # customer_feature_weights groups them
                raise RuntimeError(f"the attribute features of category {g} are not contiguous")
            blocks[g] = slice(position if block is None else block.start, position + 1)
        return AttributeFeatures(
            tuple(named), tuple(self.feature_rows.get(n, self.missing) for n in named),
            tuple(named.values()), categories, values, blocks)

    def category_of(self, feature: str) -> int:
        if feature.startswith((HISTORY_PREFIX, IDENTITY_PREFIX)):
            return self.history
        return self.attribute_category[feature.split("=", 1)[0]]

    def title(self, offer_id: str) -> str:
        return self.titles.get(offer_id, offer_id)


_CONTEXTS: weakref.WeakKeyDictionary[Artifact, tuple[int, ExplainContext]] = weakref.WeakKeyDictionary()


def context(artifact: Artifact) -> ExplainContext:
    """The artifact's lookups, built on first use (rebuilt if its model was replaced)."""
    cached = _CONTEXTS.get(artifact)
    if cached is not None and cached[0] == id(artifact.model):
        return cached[1]
    built = _build(artifact)
    _CONTEXTS[artifact] = (id(artifact.model), built)
    return built


def _build(artifact: Artifact) -> ExplainContext:
    model = artifact.model
    taxonomy = artifact.taxonomy
    categories = model.categories
    offer_ids = np.asarray(artifact.offers.index.astype(str), dtype=object)
    titles = (
        dict(zip(offer_ids, artifact.offers["title"].astype(str), strict=True))
        if "title" in artifact.offers else {}
    )
    d = model.item_vectors.shape[1]
    if model.features is not None:
        names = model.features.names
        vectors = np.vstack([model.features.vectors, np.zeros((1, d))]).astype(np.float64)
        bias = np.append(model.features.bias, 0.0).astype(np.float64)
        feature_rows = {str(name): f for f, name in enumerate(names)}
    else:
        vectors, bias, feature_rows = np.zeros((1, d)), np.zeros(1), {}
    return ExplainContext(
        taxonomy=taxonomy,
        history_mode=artifact.history_mode,
        history=categories.index(HISTORY),
        offer_ids=offer_ids,
        titles=titles,
        feature_rows=feature_rows,
        history_rows={
            name[len(HISTORY_PREFIX):]: f for name, f in feature_rows.items()
            if name.startswith(HISTORY_PREFIX)
        },
        missing=len(vectors) - 1,
        vectors=vectors,
        bias=bias,
        attribute_category={
            a: categories.index(c) for a, c in taxonomy.attributes.items() if c in categories
        },
        attribute_category_index={c: g for g, c in enumerate(categories) if c != HISTORY},
        in_model=model.has_data.any(axis=1),
    )
