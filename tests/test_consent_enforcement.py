"""The consent filter, proved on trained models: data a customer withheld changes nothing they get."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trained import artifact_for, movielens_artifact, synthetic_artifact, synthetic_dataset

from recommender.consent import LEVELS, Consent, category_mask, default_consent, training_data
from recommender.ranking import customer_state, rank
from recommender.taxonomy import HISTORY

K = 10
# the served stack on both data sets, and the LightFM hybrid, which serves through the same code
ARTIFACTS = {"synthetic": synthetic_artifact, "movielens": movielens_artifact,
             "synthetic-hybrid": lambda: synthetic_artifact("hybrid")}


def served(artifact, customer_id, consent, attributes, new_history=()):
    """Offers, scores and per-offer attributions, as serving computes them."""
    state = customer_state(artifact, customer_id, attributes=attributes, new_history=new_history)
    allowed = category_mask(consent, artifact.model.categories)
    offers, scores = rank(artifact, state, allowed, K)
    contributions = artifact.model.contributions(state.p, state.c, state.has_data, allowed, offers)
    return offers, scores, contributions


def consent_states(categories):
    return st.builds(
        lambda allowed, level: Consent(frozenset(allowed), level),
        st.sets(st.sampled_from(categories)), st.sampled_from(LEVELS),
    )


@pytest.mark.parametrize("data", [pytest.param(name, marks=pytest.mark.slow)
                                  if name == "movielens" else name for name in ARTIFACTS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rnd=st.randoms(use_true_random=False), consent=consent_states(
    ("interaction_history", "demographics", "location", "profile")))
def test_withheld_data_changes_nothing_bit_for_bit(data, rnd, consent):
    artifact = ARTIFACTS[data]()
    taxonomy = artifact.taxonomy
    customer_id = rnd.choice(list(artifact.customer_rows))
    original = artifact.customer_attributes(customer_id)
    usable = category_mask(consent, artifact.model.categories)
    withheld = {g for g, use in zip(artifact.model.categories, usable, strict=True) if not use}
    replaced = dict(original)
    for attribute in artifact.customers.columns:
        if taxonomy.attributes.get(attribute) in withheld:
            seen = artifact.customers[attribute].dropna().unique().tolist()
            replaced[attribute] = rnd.choice([*seen, "never-seen-value", None])
    extra = ()
    if HISTORY in withheld:
        extra = tuple(rnd.sample(list(artifact.offer_columns), rnd.randint(1, 20)))

    before = served(artifact, customer_id, consent, original)
    after = served(artifact, customer_id, consent, replaced, extra)
    for a, b in zip(before, after, strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("category", ["interaction_history", "demographics", "location", "profile"])
def test_withdrawing_each_category_changes_some_offers(category):
    artifact = synthetic_artifact()
    everything = frozenset(artifact.model.categories)
    changed = 0
    for customer_id in list(artifact.customer_rows)[:200]:
        attributes = artifact.customer_attributes(customer_id)
        full = served(artifact, customer_id, Consent(everything, "full"), attributes)[0]
        without = served(artifact, customer_id, Consent(everything - {category}, "full"), attributes)[0]
        changed += not np.array_equal(full, without)
    assert changed > 0, f"withdrawing {category} changed no customer's offers"


def test_level_none_gives_everyone_the_same_offers():
    artifact = synthetic_artifact()
    none = Consent(frozenset(artifact.model.categories), "none")
    lists = {
        served(artifact, c, none, artifact.customer_attributes(c))[0].tobytes()
        for c in list(artifact.customer_rows)[:300]
    }
    assert len(lists) == 1


def test_segment_level_ignores_history_even_when_allowed():
    artifact = synthetic_artifact()
    segment = Consent(frozenset(artifact.model.categories), "segment")
    customer_id = next(iter(artifact.customer_rows))
    attributes = artifact.customer_attributes(customer_id)
    before = served(artifact, customer_id, segment, attributes)
    after = served(artifact, customer_id, segment, attributes, tuple(artifact.offer_columns)[:30])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after, strict=True))


def test_training_leaves_out_withdrawn_history_and_withheld_attributes():
    dataset = synthetic_dataset()
    taxonomy = dataset.taxonomy
    ids = [str(c) for c in dataset.customer_ids[:50]]
    consents = {c: Consent(frozenset(taxonomy.categories) - {HISTORY, "location"}, "full") for c in ids}
    view, counts = training_data(dataset, consents, default_consent(taxonomy, "opt_out"))
    withdrawn = dataset.interactions["customer_id"].isin(ids)
    assert counts["interactions_excluded"] == int(withdrawn.sum()) > 0
    assert counts["customers_history_excluded"] == 50
    assert not view.interactions["customer_id"].isin(ids).any()
    assert len(view.interactions) == len(dataset.interactions) - int(withdrawn.sum())
    location = taxonomy.attributes_in("location")
    location = [a for a in location if a in view.customers.columns]
    assert view.customers.loc[ids, location].isna().all().all()
    others = view.customers.index.difference(ids)
    pd_equal = view.customers.loc[others].equals(dataset.customers.loc[others])
    assert pd_equal


def test_opt_in_regime_trains_on_nobody_without_a_record():
    dataset = synthetic_dataset()
    view, counts = training_data(dataset, {}, default_consent(dataset.taxonomy, "opt_in"))
    assert len(view.interactions) == 0
    assert counts["interactions_excluded"] == len(dataset.interactions)


def test_training_honours_the_level():
    """segment: attributes only; none: nothing at all. A customer at level none contributes
    nothing to the trained model: with their data changed, retraining gives identical arrays."""
    dataset = synthetic_dataset()
    taxonomy = dataset.taxonomy
    everything = frozenset(taxonomy.categories)
    at_none, at_segment = (str(c) for c in dataset.customer_ids[:2])
    consents = {at_none: Consent(everything, "none"), at_segment: Consent(everything, "segment")}
    default = default_consent(taxonomy, "opt_out")
    view, counts = training_data(dataset, consents, default)
    assert counts["customers_at_level_none"] == counts["customers_at_level_segment"] == 1
    assert not view.interactions["customer_id"].isin([at_none, at_segment]).any()
    assert view.customers.loc[at_none].isna().all()
    assert view.customers.loc[at_segment].notna().any()

    # the customer at none buys other offers and tells other attributes: nothing changes
    interactions = dataset.interactions.copy()
    theirs = interactions["customer_id"] == at_none
    offers = dataset.offers.index.to_numpy()
    interactions.loc[theirs, "offer_id"] = offers[: int(theirs.sum())]
    customers = dataset.customers.copy()
    customers.loc[at_none] = customers.loc[str(dataset.customer_ids[5])].to_numpy()
    changed = replace(dataset, customers=customers, interactions=interactions)
    changed_view, _ = training_data(changed, consents, default)
    first = artifact_for(view).model
    second = artifact_for(changed_view).model
    for name in ("item_vectors", "item_bias", "partial_vectors", "partial_bias", "mean_vectors"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes(), name
