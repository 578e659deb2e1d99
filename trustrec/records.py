"""Training data as the serving database's records allow: consent (withdrawn history, withheld
attributes), erasures, the interactions posted to the API, and the customers' controls (a purchase
they asked not to use, an offer they marked not relevant: not a positive for them). `trustrec
train` and the notebooks' save_model use it, so a model meant for serving is trained on the same
data either way."""

from __future__ import annotations

from dataclasses import replace

from recommender.data import Dataset
from recommender.errors import TrustRecError


def as_records_allow(
    dataset: Dataset, url: str | None, regime: str = "opt_out", *, recorded_interactions: bool = False,
    secret: str | None = None,
) -> tuple[Dataset, dict]:
    """(the data training may use, counts of what was kept out). Without `url`, every customer
    is under the default consent of `regime`. `secret` is the serving secret
    (TRUSTREC_SECRET_KEY), which recognises erased customers."""
    from recommender.consent import default_consent, training_data

    if not url:
        if recorded_interactions:
            raise TrustRecError("--recorded-interactions reads the database given by --consent-db "
                                "(or $TRUSTREC_DATABASE_URL)")
        return training_data(dataset, {}, default_consent(dataset.taxonomy, regime))
    from serving.records.consent import ConsentStore
    from serving.records.database import create_schema, make_engine

    engine = make_engine(url)
    try:
        create_schema(engine)
        if recorded_interactions:
            dataset = _with_recorded(dataset, engine)
        dataset, erased = _without_erased(dataset, engine, secret)
        dataset, left_out = _without_controlled(dataset, engine)
        store = ConsentStore(engine, dataset.taxonomy, regime)
        view, counts = training_data(dataset, store.consents(), store.default)
    finally:
        engine.dispose()
    return view, counts | {"customers_erased": erased, "interactions_left_out_by_customers": left_out}


def _without_controlled(dataset: Dataset, engine) -> tuple[Dataset, int]:
    """The dataset with the attribute values customers corrected, and without the (customer,
    offer) pairs a customer asked not to use or marked not relevant: no positive of theirs."""
    from serving.records.controls import LEAVE_OUT, NOT_RELEVANT, all_controls, all_corrections

    customers = dataset.customers
    corrected = [(c, a, v) for c, a, v in all_corrections(engine)
                 if c in customers.index and a in customers.columns]
    if corrected:  # the values customers corrected (None: cleared) replace those of the data
        customers = customers.astype({a: object for _, a, _ in corrected})
        for customer, attribute, value in corrected:
            customers.at[customer, attribute] = value
        dataset = replace(dataset, customers=customers)
    pairs = {(customer, offer) for customer, _, offer in all_controls(engine, (LEAVE_OUT,
                                                                               NOT_RELEVANT))}
    if not pairs:
        return dataset, 0
    interactions = dataset.interactions
    named = [(str(c), str(o)) in pairs for c, o in zip(interactions["customer_id"],
                                                         interactions["offer_id"], strict=True)]
    kept = interactions[[not n for n in named]].reset_index(drop=True)
    return dataset.with_interactions(kept), len(interactions) - len(kept)


def _with_recorded(dataset: Dataset, engine) -> Dataset:
    """The dataset plus the interactions posted to the API since (serving.records.interactions), for
    the customers and offers it knows; the others are counted, not guessed at."""
    import pandas as pd

    from serving.records.interactions import recorded_interactions

    recorded = recorded_interactions(engine)
    known = (recorded["customer_id"].isin(dataset.customers.index)
             & recorded["offer_id"].isin(dataset.offers.index))
    print(f"recorded interactions: {int(known.sum())} added, {int((~known).sum())} skipped "
          "(customer or offer not in the data)")
    combined = pd.concat([dataset.interactions, recorded[known]], ignore_index=True)
    return dataset.with_interactions(combined.sort_values("timestamp", kind="stable"))


def _without_erased(dataset, engine, secret: str | None):
    """The dataset without customers whose erasure is recorded (tombstones hold an HMAC of the id
    made with TRUSTREC_SECRET_KEY, so training needs the serving secret to recognise them)."""
    from serving.records.erasure import erased_among

    erased = erased_among(engine, dataset.customers.index.astype(str), secret)
    if not erased:
        return dataset, 0
    customers = dataset.customers.drop(index=list(erased))
    interactions = dataset.interactions[~dataset.interactions["customer_id"].isin(erased)]
    interactions = interactions.reset_index(drop=True)
    return replace(dataset, customers=customers, interactions=interactions), len(erased)
