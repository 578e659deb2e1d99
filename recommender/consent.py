"""A customer's consent, and the one decision every part of TrustRec shares: which data categories
may enter that customer's score (docs/architecture.md, "Consent").

Pure values, no I/O: records live in serving/consent_store.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.taxonomy import HISTORY, Taxonomy

FULL, SEGMENT, NONE = "full", "segment", "none"
LEVELS = (FULL, SEGMENT, NONE)

# What a customer without a record gets: a deployment setting.
OPT_IN, OPT_OUT = "opt_in", "opt_out"
REGIMES = (OPT_IN, OPT_OUT)


@dataclass(frozen=True)
class Consent:
    """The data categories a customer allowed, and the personalization level they chose.

    `allowed` keeps the customer's selection even when `level` narrows it (`segment` drops
    individual history, `none` drops everything), so going back to `full` restores it.
    What may actually be used is `effective_categories(consent, taxonomy)`.
    """

    allowed: frozenset[str]
    level: str

    def __post_init__(self) -> None:
        # A bare string is iterable too, and would silently become a set of letters.
        if isinstance(self.allowed, str) or not isinstance(self.allowed, Iterable):
            raise DataError("allowed must be a list of data category names", field="allowed")
        try:
            allowed = frozenset(self.allowed)
        except TypeError:
            raise DataError(
                "allowed must be a list of data category names", field="allowed"
            ) from None
        if not all(isinstance(category, str) for category in allowed):
            raise DataError("allowed must be a list of data category names", field="allowed")
        if not isinstance(self.level, str) or self.level not in LEVELS:
            raise DataError(
                f"unknown personalization level {self.level!r}; "
                f"expected one of {', '.join(LEVELS)}",
                field="level",
            )
        object.__setattr__(self, "allowed", allowed)

    def validate(self, taxonomy: Taxonomy) -> Consent:
        """This consent, if every category it names is one of the taxonomy's."""
        unknown = self.allowed - set(taxonomy.categories)
        if unknown:
            names = ", ".join(repr(name) for name in sorted(unknown))
            raise DataError(f"unknown data category {names}", field="allowed")
        return self

    def to_dict(self) -> dict:
        return {"allowed": sorted(self.allowed), "level": self.level}

    @classmethod
    def from_dict(cls, raw: Mapping, taxonomy: Taxonomy | None = None) -> Consent:
        """From JSON-like input; with a taxonomy, unknown categories are rejected too."""
        if not isinstance(raw, Mapping):
            raise DataError("consent must be an object with 'allowed' and 'level'")
        for key in ("allowed", "level"):
            if key not in raw:
                raise DataError(f"consent is missing {key!r}", field=key)
        extra = sorted(set(raw) - {"allowed", "level"})
        if extra:
            raise DataError(f"unknown consent field {extra[0]!r}", field=str(extra[0]))
        consent = cls(raw["allowed"], raw["level"])
        return consent if taxonomy is None else consent.validate(taxonomy)


# The fail-closed decision: when consent cannot be established, use no personal data at all.
NO_PERSONAL_DATA = Consent(frozenset(), NONE)


def default_consent(taxonomy: Taxonomy, regime: str) -> Consent:
    """Consent of a customer without a record: nothing under opt-in, everything under opt-out."""
    if regime == OPT_IN:
        return NO_PERSONAL_DATA
    if regime == OPT_OUT:
        return Consent(frozenset(taxonomy.categories), FULL)
    raise DataError(
        f"unknown consent regime {regime!r}; expected one of {', '.join(REGIMES)}", field="regime"
    )


def _usable(consent: Consent) -> frozenset[str]:
    if consent.level == FULL:
        return consent.allowed
    if consent.level == SEGMENT:
        # Coarse attributes only: individual behaviour stays out even when it was allowed.
        return consent.allowed - {HISTORY}
    return frozenset()


def effective_categories(consent: Consent, taxonomy: Taxonomy) -> frozenset[str]:
    """The categories that may enter the customer's score.

    A category the taxonomy no longer defines (a record older than a taxonomy edit) is dropped:
    no model can use it, and dropping can only narrow what is used.
    """
    return _usable(consent) & frozenset(taxonomy.categories)


def category_mask(consent: Consent, categories: tuple[str, ...]) -> np.ndarray:
    """A (G,) bool mask in the order of a model's `categories`, for AdditiveModel.score & co."""
    usable = _usable(consent)
    return np.array([category in usable for category in categories], dtype=bool)


def training_data(
    dataset: Dataset, consents: Mapping[str, Consent], default: Consent
) -> tuple[Dataset, dict[str, int]]:
    """The part of `dataset` that consent lets a training run learn from, and what was left out.

    Training uses of each customer what serving may use (effective_categories): the level counts as
    much as the categories. A customer whose interaction_history may not be used (not allowed, or
    level segment or none) gives no interactions; the attributes of every category that may not
    be used are blanked (unknown), so at level none nothing of the customer trains the model.
    Customers without a record get `default` (the deployment's regime).
    """
    taxonomy = dataset.taxonomy
    decided = [consents.get(str(c), default) for c in dataset.customer_ids]
    allowed = [effective_categories(consent, taxonomy) for consent in decided]
    withheld_history = {
        str(c) for c, a in zip(dataset.customer_ids, allowed, strict=True) if HISTORY not in a
    }
    keep = ~dataset.interactions["customer_id"].astype(str).isin(withheld_history)
    customers = dataset.customers.copy()
    blanked = 0
    for attribute in customers.columns:
        category = taxonomy.attributes[str(attribute)]
        withheld = np.array([category not in a for a in allowed])
        blanked += int((withheld & customers[attribute].notna().to_numpy()).sum())
        customers.loc[withheld, attribute] = np.nan
    counts = {
        "customers_history_excluded": int(
            dataset.interactions.loc[~keep, "customer_id"].nunique()
        ),
        "interactions_excluded": int((~keep).sum()),
        "attribute_values_withheld": blanked,
        "customers_at_level_segment": sum(consent.level == SEGMENT for consent in decided),
        "customers_at_level_none": sum(consent.level == NONE for consent in decided),
    }
    interactions = dataset.interactions[keep].reset_index(drop=True)
    view = replace(dataset, customers=customers, interactions=interactions)
    return view, counts
