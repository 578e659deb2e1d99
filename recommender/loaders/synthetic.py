"""A seeded synthetic storefront whose ground truth is known: which data category drove each
customer's interest, and which group's data is deliberately noisy.

The demo runs on it, and explanation, consent and fairness tests check against its truth:
- segment-driven customers (demographics: age_band, location: region, profile: occupation) buy
  mostly in the categories their segment value prefers (SEGMENT_PREFERENCES);
- history-driven customers have a personal taste unrelated to their attributes (own favourite
  categories and, within them, own favourite offers), so only their past purchases predict them;
- everyone buys some popular offers regardless of taste;
- for customers whose gender is `disparity_group` ("female" by default), about a share `disparity`
  of interactions is uniform noise, so any model serves that group measurably worse: the planted
  disparity the fairness audit must flag. `disparity=0` removes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.taxonomy import HISTORY, Taxonomy

PRODUCTS: dict[str, tuple[str, ...]] = {
    "electronics": ("Wireless earbuds", "Smartwatch", "Portable speaker", "E-reader",
                    "Action camera", "Noise-cancelling headphones", "Power bank", "Tablet"),
    "outdoor": ("Trail running shoes", "Camping tent", "Hiking backpack", "Sleeping bag",
                "Rain jacket", "Headlamp", "Trekking poles", "Camping stove"),
    "books": ("Crime novel", "Cookbook", "Travel guide", "Biography", "Poetry collection",
              "Science fiction novel", "History atlas", "Graphic novel"),
    "beauty": ("Face moisturizer", "Perfume", "Hair dryer", "Lipstick set", "Sunscreen",
               "Shaving kit", "Nail care set", "Bath salts"),
    "kids": ("Building blocks", "Picture book", "Plush bear", "Kids' bicycle", "Puzzle",
             "Board game", "School backpack", "Paint set"),
    "home": ("Coffee maker", "Bed linen", "Table lamp", "Cookware set", "Vacuum cleaner",
             "Houseplant", "Throw blanket", "Knife block"),
    "travel": ("Cabin suitcase", "City break voucher", "Travel pillow", "Packing cubes",
               "Train pass", "Beach holiday voucher", "Passport wallet", "Travel adapter"),
    "sports": ("Yoga mat", "Dumbbell set", "Tennis racket", "Football", "Cycling helmet",
               "Gym membership", "Running watch", "Swimming goggles"),
    "food": ("Coffee beans", "Olive oil", "Chocolate box", "Tea sampler", "Cheese hamper",
             "Spice set", "Wine gift box", "Granola"),
    "fashion": ("Denim jacket", "Leather belt", "Sneakers", "Wool scarf", "Sunglasses",
                "Summer dress", "Wristwatch", "Handbag"),
}
CATEGORIES = tuple(PRODUCTS)
VARIANTS = ("Classic", "Compact", "Deluxe", "Eco", "Premium", "Essential", "Family", "Signature")
PRICE_BANDS = ("low", "mid", "high")
PRICE_SHARES = (0.4, 0.4, 0.2)

# Attributes are drawn independently so each driver's effect can be told apart from the others.
ATTRIBUTE_VALUES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "age_band": (("18-24", "25-34", "35-44", "45-54", "55-64", "65+"),
                 (0.15, 0.22, 0.2, 0.17, 0.14, 0.12)),
    "gender": (("female", "male"), (0.5, 0.5)),
    "region": (("north", "south", "east", "west", "capital"), (0.2, 0.2, 0.2, 0.15, 0.25)),
    "occupation": (("engineer", "teacher", "nurse", "artist", "sales", "manager", "technician",
                    "chef"), (0.15, 0.14, 0.13, 0.1, 0.14, 0.14, 0.12, 0.08)),
}

# The data category that drives a segment-driven customer, and through which attribute.
DRIVER_ATTRIBUTES: dict[str, str] = {
    "demographics": "age_band", "location": "region", "profile": "occupation",
}
# A null group: customers driven by nothing, whose offers are drawn uniformly from the catalog.
# Whatever an explanation says drove them is what it says by chance (the lift of driver recovery
# is measured against them).
RANDOM = "random"
DEFAULT_DRIVER_MIX: dict[str, float] = {
    HISTORY: 0.4, "demographics": 0.2, "location": 0.2, "profile": 0.2,
}

SEGMENT_PREFERENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "age_band": {
        "18-24": ("fashion", "electronics"), "25-34": ("sports", "travel"),
        "35-44": ("kids", "home"), "45-54": ("outdoor", "food"),
        "55-64": ("books", "beauty"), "65+": ("travel", "books"),
    },
    "region": {
        "north": ("outdoor", "sports"), "south": ("food", "beauty"), "east": ("books", "home"),
        "west": ("travel", "electronics"), "capital": ("fashion", "kids"),
    },
    "occupation": {
        "engineer": ("electronics", "outdoor"), "teacher": ("books", "kids"),
        "nurse": ("beauty", "sports"), "artist": ("fashion", "home"),
        "sales": ("travel", "fashion"), "manager": ("travel", "food"),
        "technician": ("electronics", "home"), "chef": ("food", "home"),
    },
}

START = 1_704_067_200  # 2024-01-01T00:00:00Z
PERIOD = 365 * 24 * 3600
_CELLS = 1 << 24  # customers x offers probabilities drawn from at once (128 MB of float64)


@dataclass(frozen=True, eq=False)
class Storefront:
    """The dataset and the truth behind it (all Series indexed by customer_id).

    driver: the data category that drove the customer's interest, or "random" (the null group:
    uniform choices); driver_attribute: the attribute behind it (NaN for interaction_history and
    random); preferred_categories: the offer categories the
    customer mostly buys in (their segment value's, or their personal favourites); noisy: whether
    the customer's interactions carry the planted noise (their gender is disparity_group[1] and
    disparity > 0)."""

    dataset: Dataset
    driver: pd.Series
    driver_attribute: pd.Series
    preferred_categories: pd.Series
    noisy: pd.Series
    disparity_group: tuple[str, str]
    disparity: float
    seed: int
    segment_preferences: dict[str, dict[str, tuple[str, ...]]] = field(
        default_factory=lambda: SEGMENT_PREFERENCES)


def generate_storefront(
    n_customers: int = 3000,
    n_offers: int = 300,
    seed: int = 0,
    *,
    strength: float = 0.9,
    popularity_noise: float = 0.1,
    disparity: float = 0.5,
    disparity_group: str = "female",
    drivers: Mapping[str, float] = DEFAULT_DRIVER_MIX,
    interactions_per_customer: tuple[int, int] = (5, 40),
    click_share: float = 0.3,
) -> Storefront:
    """A storefront drawn from numpy's Generator(seed): same arguments, identical data.

    strength: share of a customer's taste on their preferred categories (the rest is spread over
    all categories); popularity_noise: share of choices following global popularity instead of
    taste; disparity: share of uniform-noise choices for customers of gender `disparity_group`;
    drivers: relative frequency of each driver category; interactions_per_customer: inclusive
    range of the number of distinct offers each customer interacts with (capped at n_offers)."""
    low, high = interactions_per_customer
    high = min(high, n_offers)  # offers are distinct per customer
    _check(n_customers, n_offers, low, high, strength, popularity_noise, disparity, click_share,
           drivers)
    if disparity_group not in ATTRIBUTE_VALUES["gender"][0]:
        raise DataError(f"not a gender of the storefront: {disparity_group!r}",
                        field="disparity_group")
    rng = np.random.default_rng(seed)
    offers, offer_category, popularity = _offers(n_offers, rng)
    customers = _customers(n_customers, rng)

    names = list(drivers)
    shares = np.array([drivers[n] for n in names], dtype=float)
    driver_code = rng.choice(len(names), size=n_customers, p=shares / shares.sum())
    driver = np.array(names, dtype=object)[driver_code]
    preferred = _preferred(customers, driver, rng)  # (customers, categories) bool

    # Taste over categories, then over offers within a category.
    n_categories = len(CATEGORIES)
    taste = (1 - strength) / n_categories + strength * preferred / preferred.sum(1, keepdims=True)
    by_category = np.eye(n_categories)[offer_category]  # (offers, categories)
    within_category = popularity / (popularity @ by_category)[offer_category]
    noisy = (customers["gender"].to_numpy() == disparity_group) & (disparity > 0)
    # customers x offers choice probabilities, a block of customers at a time: memory linear in
    # the interactions drawn, not in customers x offers (one block up to _CELLS)
    block = max(1, _CELLS // n_offers)
    frames = []
    for lo in range(0, n_customers, block):
        rows = slice(lo, min(lo + block, n_customers))
        within = np.broadcast_to(within_category, (rows.stop - lo, n_offers)).copy()
        personal = driver[rows] == HISTORY
        affinity = rng.gamma(0.3, size=(int(personal.sum()), n_offers)) + 1e-12
        within[personal] = affinity / (affinity @ by_category)[:, offer_category]
        choice = (1 - popularity_noise) * taste[rows][:, offer_category] * within \
            + popularity_noise * popularity
        choice[noisy[rows]] = (1 - disparity) * choice[noisy[rows]] + disparity / n_offers
        choice[driver[rows] == RANDOM] = 1.0 / n_offers
        frame = _draw(choice, low, high, click_share, rng)
        frame["customer_id"] += lo
        frames.append(frame)
    interactions = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
    interactions = interactions.reset_index(drop=True)
    interactions["customer_id"] = customers.index.to_numpy()[interactions["customer_id"]]
    interactions["offer_id"] = offers.index.to_numpy()[interactions["offer_id"]]
    dataset = Dataset(customers, offers, interactions, Taxonomy.default(),
                      name=f"synthetic-storefront-{seed}")

    index = customers.index
    categories = np.array(CATEGORIES, dtype=object)
    return Storefront(
        dataset=dataset,
        driver=pd.Series(driver, index=index, name="driver"),
        driver_attribute=pd.Series([DRIVER_ATTRIBUTES.get(d, np.nan) for d in driver],
                                   index=index, name="driver_attribute", dtype=object),
        preferred_categories=pd.Series([tuple(categories[row]) for row in preferred],
                                       index=index, name="preferred_categories", dtype=object),
        noisy=pd.Series(noisy, index=index, name="noisy"),
        disparity_group=("gender", disparity_group),
        disparity=disparity,
        seed=seed,
    )


def load_synthetic(seed: int = 0, **options: Any) -> Dataset:
    """The storefront's dataset alone (options: see generate_storefront)."""
    return generate_storefront(seed=seed, **options).dataset


def _check(n_customers: int, n_offers: int, low: int, high: int, strength: float,
           popularity_noise: float, disparity: float, click_share: float,
           drivers: Mapping[str, float]) -> None:
    if n_customers < 1:
        raise DataError("need at least one customer", field="n_customers")
    if n_offers < len(CATEGORIES):
        raise DataError(f"need at least {len(CATEGORIES)} offers, one per category",
                        field="n_offers")
    if not 1 <= low <= high <= n_offers:
        raise DataError("need 1 <= low <= high <= n_offers", field="interactions_per_customer")
    for name, value in (("strength", strength), ("popularity_noise", popularity_noise),
                        ("disparity", disparity), ("click_share", click_share)):
        if not 0 <= value <= 1:
            raise DataError(f"must be between 0 and 1, not {value}", field=name)
    unknown = [d for d in drivers if d not in (HISTORY, RANDOM) and d not in DRIVER_ATTRIBUTES]
    if unknown or not drivers or any(v < 0 for v in drivers.values()) \
            or sum(drivers.values()) <= 0:
        raise DataError(f"drivers must give non-negative shares to {HISTORY}, "
                        f"{', '.join(DRIVER_ATTRIBUTES)} or {RANDOM}", field="drivers")


def _offers(n_offers: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    category = rng.permutation(np.arange(n_offers) % len(CATEGORIES))
    band = rng.choice(len(PRICE_BANDS), size=n_offers, p=PRICE_SHARES)
    rank = pd.Series(category).groupby(category).cumcount().to_numpy()  # k-th offer of its category
    titles = []
    for c, b, k in zip(category, band, rank, strict=True):
        products = PRODUCTS[CATEGORIES[c]]
        name, round_ = products[k % len(products)], k // len(products)
        if round_:  # more offers than product names: variants keep titles unique
            edition, variant = divmod(round_ - 1, len(VARIANTS))
            name = f"{VARIANTS[variant]} {name[0].lower()}{name[1:]}"
            name += f" no. {edition + 1}" if edition else ""
        titles.append(f"{name} ({PRICE_BANDS[b]})")
    popularity = (rng.permutation(n_offers) + 1.0) ** -0.8  # a long tail, as in real stores
    width = max(4, len(str(n_offers - 1)))
    offers = pd.DataFrame({
        "title": titles,
        "category": np.array(CATEGORIES)[category],
        "price_band": np.array(PRICE_BANDS)[band],
    }, index=pd.Index([f"o{j:0{width}d}" for j in range(n_offers)], name="offer_id"))
    return offers, category, popularity / popularity.sum()


def _customers(n_customers: int, rng: np.random.Generator) -> pd.DataFrame:
    columns = {}
    for attribute, (values, shares) in ATTRIBUTE_VALUES.items():
        columns[attribute] = np.array(values)[rng.choice(len(values), size=n_customers, p=shares)]
    width = max(5, len(str(n_customers - 1)))
    index = pd.Index([f"c{i:0{width}d}" for i in range(n_customers)], name="customer_id")
    return pd.DataFrame(columns, index=index)


def _preferred(customers: pd.DataFrame, driver: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which categories each customer prefers: their segment value's, or two personal ones."""
    n_categories = len(CATEGORIES)
    # personal favourites for everyone (draws do not depend on the driver mix), used by history
    preferred = rng.random((len(customers), n_categories)).argsort(1)[:, :2]
    mask = np.zeros((len(customers), n_categories), dtype=bool)
    np.put_along_axis(mask, preferred, True, axis=1)
    for category, attribute in DRIVER_ATTRIBUTES.items():
        rows = driver == category
        table = SEGMENT_PREFERENCES[attribute]
        lookup = {v: np.isin(CATEGORIES, table[v]) for v in table}
        if rows.any():
            mask[rows] = np.stack([lookup[v] for v in customers[attribute].to_numpy()[rows]])
    return mask


def _draw(choice: np.ndarray, low: int, high: int, click_share: float,
          rng: np.random.Generator) -> pd.DataFrame:
    """Per customer (row of `choice`), low..high distinct offers sampled without replacement
    (Gumbel top-k), in the order drawn, at increasing times over one year; customer-major."""
    n_customers = len(choice)
    counts = rng.integers(low, high + 1, size=n_customers)
    with np.errstate(divide="ignore"):
        keys = np.log(choice) - np.log(-np.log(rng.random(choice.shape)))
    # the `high` largest keys of each row, largest first (ties: lower offer first), without
    # sorting whole rows of a large catalog
    top = np.argpartition(-keys, high - 1, axis=1)[:, :high] if high < keys.shape[1] \
        else np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    order = np.take_along_axis(top, np.lexsort((top, -np.take_along_axis(keys, top, 1))), 1)
    taken = np.arange(high) < counts[:, None]
    times = rng.integers(0, PERIOD, size=(n_customers, high))
    times = np.sort(np.where(taken, times, PERIOD), axis=1)  # unused slots sort last
    total = int(counts.sum())
    frame = pd.DataFrame({
        "customer_id": np.repeat(np.arange(n_customers), counts),
        "offer_id": order[taken],
        "kind": np.where(rng.random(total) < click_share, "click", "purchase"),
        "weight": 1.0,
        "timestamp": START + times[taken].astype(np.int64),
    })
    return frame
