
import numpy as np
import pandas as pd
import pytest

from recommender.data import Dataset
from recommender.split import temporal_split
from recommender.taxonomy import Taxonomy


def make_dataset(rows: list[tuple[str, str, int]], n_customers: int = 0, n_offers: int = 0,
                 ) -> Dataset:
    """rows: (customer_id, offer_id, timestamp); ids of every row must be among c0.. / o0.."""
    customer_ids = sorted({c for c, _, _ in rows} | {f"c{i}" for i in range(n_customers)})
    offer_ids = sorted({o for _, o, _ in rows} | {f"o{i}" for i in range(n_offers)})
    customers = pd.DataFrame(
        {"age_band": ["25-34"] * len(customer_ids)},
        index=pd.Index(customer_ids, name="customer_id"),
    )
    offers = pd.DataFrame({"title": offer_ids}, index=pd.Index(offer_ids, name="offer_id"))
    interactions = pd.DataFrame(rows, columns=["customer_id", "offer_id", "timestamp"])
    interactions["kind"] = "purchase"
    interactions["weight"] = 1.0
    interactions = interactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return Dataset(customers, offers, interactions, Taxonomy.default())


def random_dataset(seed: int, n_customers: int = 40, n_offers: int = 60) -> Dataset:
    """Random histories (0-25 positives each) with many timestamp ties and some repeat pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        for _ in range(rng.integers(0, 26)):
            rows.append((f"c{c}", f"o{rng.integers(n_offers)}", int(rng.integers(0, 30))))
    return make_dataset(rows, n_customers, n_offers)


def pairs(dataset: Dataset) -> set[tuple[str, str]]:
    frame = dataset.interactions
    return set(zip(frame["customer_id"], frame["offer_id"], strict=True))


def row_keys(dataset: Dataset) -> list[tuple]:
    frame = dataset.interactions[["customer_id", "offer_id", "timestamp"]]
    return sorted(frame.itertuples(index=False, name=None))


@pytest.mark.parametrize("seed", range(5))
def test_no_test_pair_occurs_in_train(seed: int) -> None:
    split = temporal_split(random_dataset(seed))
    assert not pairs(split.test) & pairs(split.train)
    assert len(split.test.interactions) > 0


@pytest.mark.parametrize("seed", range(5))
def test_test_is_never_older_than_train(seed: int) -> None:
    split = temporal_split(random_dataset(seed))
    newest_train = split.train.interactions.groupby("customer_id")["timestamp"].max()
    oldest_test = split.test.interactions.groupby("customer_id")["timestamp"].min()
    common = oldest_test.index
    assert (oldest_test >= newest_train.reindex(common)).all()


@pytest.mark.parametrize("seed", range(5))
def test_rows_are_kept_moved_or_counted_as_repeats(seed: int) -> None:
    dataset = random_dataset(seed)
    split = temporal_split(dataset)
    total = len(split.train.interactions) + len(split.test.interactions) + split.repeats_dropped
    assert total == len(dataset.interactions)
    kept = row_keys(split.train) + row_keys(split.test)
    assert set(kept) <= set(row_keys(dataset))


def test_fraction_per_customer() -> None:
    counts = {"a": 4, "b": 5, "c": 9, "d": 10, "e": 14, "f": 15, "g": 1}
    rows = [(c, f"o{i}", i) for c, n in counts.items() for i in range(n)]
    split = temporal_split(make_dataset(rows))
    per_customer = split.test.interactions["customer_id"].value_counts()
    expected = {"b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    assert per_customer.to_dict() == expected
    assert split.repeats_dropped == 0


def test_fraction_rounds_down_without_floating_point_slips() -> None:
    rows = [("a", f"o{i}", i) for i in range(100)]
    split = temporal_split(make_dataset(rows), test_fraction=0.29)
    assert len(split.test.interactions) == 29  # 0.29 * 100 == 28.999999999999996


def test_customers_with_few_positives_stay_in_train() -> None:
    dataset = random_dataset(0)
    split = temporal_split(dataset, min_positives=5)
    counts = dataset.interactions["customer_id"].value_counts()
    few = set(counts.index[counts < 5])
    assert few, "the random data should contain such customers"
    assert not few & set(split.test.interactions["customer_id"])
    train_counts = split.train.interactions["customer_id"].value_counts()
    assert all(train_counts[c] == counts[c] for c in few)


def test_most_recent_go_to_test_and_ties_break_by_offer_id() -> None:
    rows = [("a", "o1", 5), ("a", "o2", 1), ("a", "o3", 9), ("a", "o4", 2), ("a", "o5", 7),
            ("b", "o9", 3), ("b", "o3", 3), ("b", "o7", 3), ("b", "o1", 3), ("b", "o5", 3)]
    split = temporal_split(make_dataset(rows))
    assert pairs(split.test) == {("a", "o3"), ("b", "o9")}


def test_split_is_deterministic_and_ignores_row_order() -> None:
    dataset = random_dataset(1)
    first, second = temporal_split(dataset), temporal_split(dataset)
    pd.testing.assert_frame_equal(first.train.interactions, second.train.interactions)
    pd.testing.assert_frame_equal(first.test.interactions, second.test.interactions)

    shuffled = dataset.with_interactions(dataset.interactions.sample(frac=1.0, random_state=3))
    third = temporal_split(shuffled)
    assert row_keys(third.train) == row_keys(first.train)
    assert row_keys(third.test) == row_keys(first.test)
    assert third.repeats_dropped == first.repeats_dropped


def test_repeat_of_a_training_pair_is_dropped_from_test_and_counted() -> None:
    rows = [("a", "o1", 1), ("a", "o2", 2), ("a", "o3", 3), ("a", "o4", 4),
            ("a", "o5", 5), ("a", "o6", 6), ("a", "o7", 7), ("a", "o8", 8),
            ("a", "o1", 9), ("a", "o9", 10)]  # the last two (20% of 10) are test; o1 is a repeat
    split = temporal_split(make_dataset(rows))
    assert pairs(split.test) == {("a", "o9")}
    assert split.repeats_dropped == 1
    assert len(split.train.interactions) == 8


def test_validation_is_carved_from_train_the_same_way() -> None:
    split = temporal_split(random_dataset(2))
    inner = temporal_split(split.train)
    assert not pairs(inner.test) & pairs(inner.train)
    assert not pairs(inner.test) & pairs(split.test)
    assert pairs(inner.train) | pairs(inner.test) <= pairs(split.train)
    assert inner.train.n_offers == split.train.n_offers


def test_train_and_test_share_customers_and_offers() -> None:
    dataset = random_dataset(3)
    split = temporal_split(dataset)
    for part in (split.train, split.test):
        assert part.customers is dataset.customers and part.offers is dataset.offers
        assert part.interactions["timestamp"].is_monotonic_increasing


def test_bad_arguments_are_refused() -> None:
    dataset = random_dataset(0)
    with pytest.raises(ValueError):
        temporal_split(dataset, test_fraction=1.0)
    with pytest.raises(ValueError):
        temporal_split(dataset, min_positives=0)


def test_ml100k_sized_split() -> None:
    rng = np.random.default_rng(0)
    n_customers, n_offers, n_rows = 943, 1682, 100_000
    customers = pd.DataFrame(
        {"age_band": "25-34"}, index=pd.Index([f"c{i}" for i in range(n_customers)],
                                              name="customer_id"))
    offer_ids = [str(i) for i in range(n_offers)]
    offers = pd.DataFrame({"title": offer_ids}, index=pd.Index(offer_ids, name="offer_id"))
    interactions = pd.DataFrame({
        "customer_id": customers.index.to_numpy()[rng.integers(n_customers, size=n_rows)],
        "offer_id": offers.index.to_numpy()[rng.integers(n_offers, size=n_rows)],
        "kind": "rating",
        "weight": 1.0,
        "timestamp": np.sort(rng.integers(0, 10**6, size=n_rows)),
    })
    dataset = Dataset(customers, offers, interactions, Taxonomy.default())
    split = temporal_split(dataset)
    assert len(split.test.interactions) > 15_000
