"""The consent value and the decision which data categories may enter a customer's score."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from recommender.additive import AdditiveModel
from recommender.consent import (
    FULL,
    NO_PERSONAL_DATA,
    NONE,
    OPT_IN,
    OPT_OUT,
    SEGMENT,
    Consent,
    category_mask,
    default_consent,
    effective_categories,
)
from recommender.errors import DataError
from recommender.taxonomy import HISTORY, Taxonomy

TAXONOMY = Taxonomy.default()
ALL = frozenset(TAXONOMY.categories)


def test_allowed_becomes_a_frozenset():
    consent = Consent(["location", "profile", "location"], FULL)
    assert consent.allowed == frozenset({"location", "profile"})
    assert consent == Consent(frozenset({"profile", "location"}), FULL)
    assert hash(consent) == hash(Consent(frozenset({"profile", "location"}), FULL))


@pytest.mark.parametrize(
    ("allowed", "level", "field"),
    [
        (frozenset(), "max", "level"),
        (frozenset(), "", "level"),
        (frozenset(), None, "level"),
        ("location", FULL, "allowed"),  # a bare string would become a set of letters
        (None, FULL, "allowed"),
        ([1, 2], FULL, "allowed"),
        ([["location"]], FULL, "allowed"),
    ],
)
def test_malformed_consent_names_the_field(allowed, level, field):
    with pytest.raises(DataError) as error:
        Consent(allowed, level)
    assert error.value.field == field


def test_unknown_category_is_rejected_against_the_taxonomy():
    consent = Consent(frozenset({"location", "shoe_size"}), FULL)
    with pytest.raises(DataError, match="shoe_size") as error:
        consent.validate(TAXONOMY)
    assert error.value.field == "allowed"
    assert Consent(ALL, FULL).validate(TAXONOMY) == Consent(ALL, FULL)


def test_regimes_decide_the_default():
    assert default_consent(TAXONOMY, OPT_IN) == Consent(frozenset(), NONE)
    assert default_consent(TAXONOMY, OPT_OUT) == Consent(ALL, FULL)
    with pytest.raises(DataError) as error:
        default_consent(TAXONOMY, "opt_maybe")
    assert error.value.field == "regime"


def test_fail_closed_consent_uses_nothing():
    assert NO_PERSONAL_DATA.level == NONE
    assert effective_categories(NO_PERSONAL_DATA, TAXONOMY) == frozenset()
    assert not category_mask(NO_PERSONAL_DATA, TAXONOMY.categories).any()


def test_effective_categories_by_level():
    allowed = frozenset({HISTORY, "location"})
    assert effective_categories(Consent(allowed, FULL), TAXONOMY) == allowed
    # segment: individual history goes even though the customer allowed it
    assert effective_categories(Consent(allowed, SEGMENT), TAXONOMY) == {"location"}
    assert effective_categories(Consent(allowed, NONE), TAXONOMY) == frozenset()
    assert effective_categories(Consent(ALL, SEGMENT), TAXONOMY) == ALL - {HISTORY}


def test_effective_categories_never_exceed_the_taxonomy():
    narrow = Taxonomy(categories=(HISTORY, "location"), purposes={}, attributes={})
    consent = Consent(frozenset({"location", "profile"}), FULL)
    assert effective_categories(consent, narrow) == {"location"}


def test_mask_follows_the_model_category_order():
    consent = Consent(frozenset({HISTORY, "profile"}), FULL)
    order = ("profile", "location", HISTORY, "demographics")
    mask = category_mask(consent, order)
    assert mask.dtype == bool and mask.shape == (4,)
    assert mask.tolist() == [True, False, True, False]
    assert category_mask(replace(consent, level=SEGMENT), order).tolist() == [
        True, False, False, False,
    ]
    assert category_mask(consent, ()).shape == (0,)


def test_opted_out_data_changes_nothing_bit_for_bit():
    """The check of design.md, through the real model: the mask is where consent is enforced."""
    rng = np.random.default_rng(7)
    categories = TAXONOMY.categories
    n_categories, n_customers, d, n_offers = len(categories), 5, 4, 9
    model = AdditiveModel.from_partials(
        categories, rng.normal(size=(n_offers, d)), rng.normal(size=n_offers),
        rng.normal(size=(n_categories, n_customers, d)),
        rng.normal(size=(n_categories, n_customers)),
        np.ones((n_categories, n_customers), dtype=bool),
    )
    consent = Consent(frozenset({HISTORY, "location"}), SEGMENT)
    mask = category_mask(consent, model.categories)
    before = model.score(np.arange(n_customers), mask)

    # Rewrite every opted-out category's data (history included: allowed, but level segment);
    # the population averages are part of the trained model and stay.
    p, c = model.partial_vectors.copy(), model.partial_bias.copy()
    p[~mask] = rng.normal(size=p[~mask].shape) * 1e3
    c[~mask] = rng.normal(size=c[~mask].shape) * 1e3
    after = replace(model, partial_vectors=p, partial_bias=c).score(np.arange(n_customers), mask)
    assert np.array_equal(before, after)
    assert not np.array_equal(before, model.score(np.arange(n_customers), None))


def test_dict_round_trip_is_json():
    consent = Consent(frozenset({"profile", HISTORY}), SEGMENT)
    raw = json.loads(json.dumps(consent.to_dict()))
    assert raw == {"allowed": [HISTORY, "profile"], "level": SEGMENT}
    assert Consent.from_dict(raw) == consent
    assert Consent.from_dict(raw, TAXONOMY) == consent


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"level": FULL}, "allowed"),
        ({"allowed": []}, "level"),
        ({"allowed": [], "level": FULL, "levle": NONE}, "levle"),
        ({"allowed": ["shoe_size"], "level": FULL}, "allowed"),
        ({"allowed": "location", "level": FULL}, "allowed"),
        ({"allowed": [], "level": "max"}, "level"),
    ],
)
def test_from_dict_names_the_bad_field(raw, field):
    with pytest.raises(DataError) as error:
        Consent.from_dict(raw, TAXONOMY)
    assert error.value.field == field


def test_from_dict_rejects_a_non_object():
    with pytest.raises(DataError):
        Consent.from_dict(["location"], TAXONOMY)
