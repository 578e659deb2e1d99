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

Two samplers draw the interactions from that mixture. The dense one (the default up to
DENSE_MAX_CELLS customers x offers; every storefront the tests and benchmarks used before the
sparse one existed is drawn by it, so their data never changes) computes every customer's
probability of every offer: its time grows with customers x offers (100,000 x 10,000 took 88 s).
The sparse one draws each interaction from the mixture's parts directly, in time and memory linear
in the interactions drawn (a million customers of a 100,000-offer catalog). Two differences, both
inside a category: a history-driven customer's personal favourites are a few offers
(FAVOURITES) per preferred category instead of a weight on every offer, and in the categories they
do not prefer they follow the offers' popularity. Which categories, drivers and noise shape a
customer's interactions is the same in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.taxonomy import HISTORY, Taxonomy
from recommender.threads import thread_map

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
# Sampler "auto" draws densely up to this many customers x offers (100,000 x 10,000 and
# 20,000 x 100,000, the largest storefronts drawn before the sparse sampler, stay dense and keep
# their data), sparsely above it.
DENSE_MAX_CELLS = 2_500_000_000
SAMPLERS = ("auto", "dense", "sparse")
FAVOURITES = 64  # sparse sampler: a history-driven customer's personal offers per category
_SPARSE_DRAWS = 1 << 20  # sparse sampler: interactions drawn per block of customers (a thread's)
_UNIFORM_AFTER = 8  # sparse sampler: rounds of draws from the mixture before uniform top-ups


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
    sampler: str = "auto",
) -> Storefront:
    """A storefront drawn from numpy's Generator(seed): same arguments, identical data.

    strength: share of a customer's taste on their preferred categories (the rest is spread over
    all categories); popularity_noise: share of choices following global popularity instead of
    taste; disparity: share of uniform-noise choices for customers of gender `disparity_group`;
    drivers: relative frequency of each driver category; interactions_per_customer: inclusive
    range of the number of distinct offers each customer interacts with (capped at n_offers);
    sampler: "dense", "sparse" or "auto" (dense up to DENSE_MAX_CELLS customers x offers; see the
    module docstring)."""
    low, high = interactions_per_customer
    high = min(high, n_offers)  # offers are distinct per customer
    _check(n_customers, n_offers, low, high, strength, popularity_noise, disparity, click_share,
           drivers)
    if sampler not in SAMPLERS:
        raise DataError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}",
                        field="sampler")
    if sampler == "auto":
        sampler = "dense" if n_customers * n_offers <= DENSE_MAX_CELLS else "sparse"
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

    noisy = (customers["gender"].to_numpy() == disparity_group) & (disparity > 0)
    mixture = _Mixture(offer_category, popularity, preferred, driver, noisy, strength,
                       popularity_noise, disparity)
    draw = _dense if sampler == "dense" else _sparse
    drawn = draw(mixture, low, high, click_share, rng)
    customer, offer, click, timestamp = (np.concatenate(part) for part in zip(*drawn,
                                                                              strict=True))
    order = np.argsort(timestamp, kind="stable")
    # ids and kinds gathered from their few distinct strings (no Python string per interaction)
    interactions = pd.DataFrame({
        "customer_id": customers.index.take(customer[order]).array,
        "offer_id": offers.index.take(offer[order]).array,
        "kind": pd.Index(["purchase", "click"]).take(click[order].astype(np.int8)).array,
        "weight": 1.0,
        "timestamp": timestamp[order],
    })
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


_Drawn = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # customer, offer, click, time


@dataclass(frozen=True, eq=False)
class _Mixture:
    """What every interaction is drawn from: a customer's choice is uniform for the null group
    (driver "random"), uniform with probability `disparity` for a noisy customer, else by global
    popularity with probability `popularity_noise`, else a category from their taste (one of
    their preferred categories with probability `strength`, any category otherwise), then an offer
    within it (by popularity within the category; history-driven customers by their own
    affinities)."""

    offer_category: np.ndarray  # (offers,) category index
    popularity: np.ndarray  # (offers,) sums to 1
    preferred: np.ndarray  # (customers, categories) bool
    driver: np.ndarray  # (customers,) object
    noisy: np.ndarray  # (customers,) bool
    strength: float
    popularity_noise: float
    disparity: float

    @property
    def n_offers(self) -> int:
        return len(self.offer_category)

    @property
    def n_customers(self) -> int:
        return len(self.driver)

    # --- what the sparse sampler looks up for every draw, computed once ----------------------
    @cached_property
    def personal(self) -> np.ndarray:
        """(customers,) bool: history-driven (their own affinities within a category)."""
        return self.driver == HISTORY

    @cached_property
    def tasteful(self) -> np.ndarray:
        """(customers,) bool: not the null group (whose choices are all uniform)."""
        return self.driver != RANDOM

    @cached_property
    def slots(self) -> np.ndarray:
        """(customers, most preferred categories of anyone): each customer's preferred categories
        (ascending), -1 past their number."""
        width = max(1, int(self.preferred.sum(1).max()))
        order = np.argsort(~self.preferred, axis=1, kind="stable")[:, :width]
        return np.where(np.take_along_axis(self.preferred, order, 1), order, -1).astype(np.int8)

    @cached_property
    def popularity_cdf(self) -> np.ndarray:
        return np.cumsum(self.popularity)

    @cached_property
    def members(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offer columns grouped by category, each category's start in it, its size)."""
        members = np.argsort(self.offer_category, kind="stable")
        sizes = np.bincount(self.offer_category, minlength=len(CATEGORIES))
        return members, np.cumsum(sizes) - sizes, sizes

    @cached_property
    def within_cdf(self) -> np.ndarray:
        """Each category's cumulative popularity within it, over `members` order, plus the
        category's index: category c's offer for a uniform u is the first entry above c + u."""
        members, starts, sizes = self.members
        totals = np.bincount(self.offer_category, self.popularity, len(CATEGORIES))
        share = (self.popularity / totals[self.offer_category])[members]
        cdf = np.concatenate([np.cumsum(share[a:a + n]) for a, n in zip(starts, sizes,
                                                                          strict=True)])
        return cdf + np.repeat(np.arange(len(CATEGORIES)), sizes)

    def prepare(self) -> None:
        """Compute every lookup the sparse sampler uses."""
        for name in ("personal", "tasteful", "slots", "popularity_cdf", "members", "within_cdf"):
            getattr(self, name)


def _dense(mixture: _Mixture, low: int, high: int, click_share: float,
           rng: np.random.Generator) -> list[_Drawn]:
    """Interactions from every customer's probability of every offer, a block of customers at a
    time (one block up to _CELLS probabilities): time grows with customers x offers."""
    n_customers, n_offers = mixture.n_customers, mixture.n_offers
    offer_category, popularity, preferred = (mixture.offer_category, mixture.popularity,
                                             mixture.preferred)
    driver, noisy, disparity = mixture.driver, mixture.noisy, mixture.disparity
    # Taste over categories, then over offers within a category.
    n_categories = len(CATEGORIES)
    taste = (1 - mixture.strength) / n_categories \
        + mixture.strength * preferred / preferred.sum(1, keepdims=True)
    by_category = np.eye(n_categories)[offer_category]  # (offers, categories)
    within_category = popularity / (popularity @ by_category)[offer_category]
    block = max(1, _CELLS // n_offers)
    drawn: list[_Drawn] = []
    for lo in range(0, n_customers, block):
        rows = slice(lo, min(lo + block, n_customers))
        within = np.broadcast_to(within_category, (rows.stop - lo, n_offers)).copy()
        personal = driver[rows] == HISTORY
        affinity = rng.gamma(0.3, size=(int(personal.sum()), n_offers)) + 1e-12
        within[personal] = affinity / (affinity @ by_category)[:, offer_category]
        choice = (1 - mixture.popularity_noise) * taste[rows][:, offer_category] * within \
            + mixture.popularity_noise * popularity
        choice[noisy[rows]] = (1 - disparity) * choice[noisy[rows]] + disparity / n_offers
        choice[driver[rows] == RANDOM] = 1.0 / n_offers
        customer, offer, click, timestamp = _draw(choice, low, high, click_share, rng)
        drawn.append((customer + lo, offer, click, timestamp))
    return drawn


def _sparse(mixture: _Mixture, low: int, high: int, click_share: float,
            rng: np.random.Generator) -> list[_Drawn]:
    """Interactions drawn one at a time from the mixture's parts, with replacement, keeping each
    customer's first draw of an offer: the same order distribution as drawing without
    replacement (what the dense sampler's Gumbel top-k does), in time and memory linear in the
    draws.

    A block of customers at a time, each block from a generator of its own seeded from `rng`:
    blocks are drawn on several threads (numpy's array operations release the GIL) and the data
    do not depend on how many."""
    n_customers = mixture.n_customers
    counts = rng.integers(low, high + 1, size=n_customers)
    block = max(1, _SPARSE_DRAWS // (high + 4))
    starts = range(0, n_customers, block)
    seeds = rng.integers(0, 2**63, size=len(starts))
    mixture.prepare()  # the shared lookups, computed once rather than by racing threads

    def draw(lo: int, seed: int) -> _Drawn:
        own = np.random.default_rng(seed)
        rows = np.arange(lo, min(lo + block, n_customers))
        owner, offer = _distinct_draws(mixture, rows, counts[rows], own)
        # in the order drawn, at increasing times over one year (as the dense sampler): owner
        # is sorted, so sorting owner * PERIOD + time sorts the times within each customer
        times = own.integers(0, PERIOD, size=len(owner))
        times = np.sort(owner * PERIOD + times) - owner * PERIOD
        return _drawn(rows[owner], offer, times, click_share, own)

    return thread_map(draw, starts, seeds)


def _distinct_draws(mixture: _Mixture, rows: np.ndarray, counts: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(owner, offer): counts[k] distinct offers of customer rows[k] (owner k), owner-major,
    each customer's in the order first drawn. Customers short of their count after a round draw
    again; after _UNIFORM_AFTER rounds uniformly, which ends the rounds quickly even when a
    customer needs nearly every offer of a small catalog."""
    favourites = _favourites(mixture, rows, rng)
    done: list[tuple[np.ndarray, np.ndarray]] = []
    owner = np.empty(0, dtype=np.int64)
    offer = np.empty(0, dtype=np.int64)
    need = counts.copy()
    finished = np.zeros_like(counts)  # the count of customers out of the rounds, else 0
    round_ = 0
    while (short := np.flatnonzero(need > 0)).size:
        # enough draws that few customers fall short of distinct offers: more in later rounds
        extra = need[short] + (need[short] + 3) // 4 + 2 if round_ == 0 else 2 * need[short] + 4
        drawn = np.repeat(short, extra)
        owner = np.concatenate([owner, drawn])
        offer = np.concatenate([offer, _draw_offers(mixture, rows[drawn], drawn, favourites,
                                                    round_ >= _UNIFORM_AFTER, rng)])
        # each customer's first draw of an offer, in the order drawn, then their first counts[k]
        _, first = np.unique(owner * mixture.n_offers + offer, return_index=True)
        first.sort()
        order = first[np.argsort(owner[first], kind="stable")]
        owner, offer = owner[order], offer[order]
        position = np.arange(len(owner)) - np.searchsorted(owner, owner)
        keep = position < counts[owner]
        owner, offer = owner[keep], offer[keep]
        need = counts - np.bincount(owner, minlength=len(rows)) - finished
        # customers with all their offers leave the rounds (later rounds sort only the others)
        complete = need[owner] == 0
        done.append((owner[complete], offer[complete]))
        owner, offer = owner[~complete], offer[~complete]
        finished[need == 0] = counts[need == 0]
        round_ += 1
    owner = np.concatenate([o for o, _ in done])
    offer = np.concatenate([f for _, f in done])
    order = np.argsort(owner, kind="stable")  # customer-major; each one's order unchanged
    return owner[order], offer[order]


@dataclass(frozen=True, eq=False)
class _Favourites:
    """The personal offers of a block's history-driven customers: for each (customer, preferred
    category slot) FAVOURITES offers of the category drawn uniformly and weighted by gamma(0.3)
    (the dense sampler's affinities, on a few offers instead of every one)."""

    first_row: np.ndarray  # (block customers,) row of the customer's first slot, -1: not personal
    offers: np.ndarray  # (rows * FAVOURITES,) offer columns, row-major
    cdf: np.ndarray  # (rows * FAVOURITES,) each row's cumulative weights (ending at 1), plus r


def _favourites(mixture: _Mixture, rows: np.ndarray, rng: np.random.Generator) -> _Favourites:
    personal = mixture.personal[rows]
    width = mixture.slots.shape[1]
    first_row = np.where(personal, np.cumsum(personal) - 1, -1) * width
    category = mixture.slots[rows[personal]].ravel().astype(np.int64)  # -1: an unused slot
    used = category >= 0
    members, starts, sizes = mixture.members
    picks = rng.random((int(used.sum()), FAVOURITES))
    offers = np.zeros((len(category), FAVOURITES), dtype=np.int64)
    offers[used] = members[starts[category[used], None]
                           + (picks * sizes[category[used], None]).astype(np.int64)]
    weights = np.ones((len(category), FAVOURITES))  # unused slots: never drawn from
    weights[used] = rng.gamma(0.3, size=(int(used.sum()), FAVOURITES)) + 1e-12
    cdf = np.cumsum(weights, axis=1)
    cdf = cdf / cdf[:, -1:] + np.arange(len(category))[:, None]
    return _Favourites(first_row, offers.ravel(), cdf.ravel())


def _draw_offers(mixture: _Mixture, customers: np.ndarray, local: np.ndarray,
                 favourites: _Favourites, uniform: bool, rng: np.random.Generator) -> np.ndarray:
    """One offer for each of `customers` (storefront rows; `local`: their rows in the block),
    drawn from the mixture, or uniformly when `uniform`."""
    n = len(customers)
    offer = rng.integers(0, mixture.n_offers, size=n)  # uniform: the null group, noise, top-ups
    if uniform:
        return offer
    # u: noise?, popularity?, popularity's offer or strength?, category, offer within it
    u = rng.random((n, 5))
    tasteful = mixture.tasteful[customers] \
        & ~(mixture.noisy[customers] & (u[:, 0] < mixture.disparity))
    popular = tasteful & (u[:, 1] < mixture.popularity_noise)
    offer[popular] = _inverse_cdf(mixture.popularity_cdf, u[popular, 2])
    chosen = np.flatnonzero(tasteful & ~popular)
    u = u[chosen]
    # a category: one of the customer's preferred with probability strength, else any
    slots = mixture.slots[customers[chosen]].astype(np.int64)
    n_preferred = (slots >= 0).sum(1)
    slot = np.minimum((u[:, 3] * n_preferred).astype(np.int64), n_preferred - 1)
    category = np.where(u[:, 2] < mixture.strength, slots[np.arange(len(chosen)), slot],
                        (u[:, 3] * len(CATEGORIES)).astype(np.int64))
    # an offer of the category by popularity within it ...
    members, starts, sizes = mixture.members
    position = _inverse_cdf(mixture.within_cdf, category + u[:, 4])
    picked = members[np.clip(position, starts[category], starts[category] + sizes[category] - 1)]
    # ... or, in a history-driven customer's preferred category, among their favourites
    at = np.where(slots == category[:, None], np.arange(slots.shape[1]), -1).max(1)
    first_row = favourites.first_row[local[chosen]]
    personal = (first_row >= 0) & (at >= 0)
    row = first_row[personal] + at[personal]
    position = _inverse_cdf(favourites.cdf, row + u[personal, 4])
    picked[personal] = favourites.offers[np.clip(position, row * FAVOURITES,
                                                 row * FAVOURITES + FAVOURITES - 1)]
    offer[chosen] = picked
    return offer


def _inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the first entry of nondecreasing `cdf` above u (the last one if none is)."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _drawn(customer: np.ndarray, offer: np.ndarray, timestamp: np.ndarray, click_share: float,
           rng: np.random.Generator) -> _Drawn:
    """A block's interactions (customer and offer rows, a click or a purchase, the time)."""
    click = rng.random(len(customer)) < click_share
    return customer, offer, click, START + timestamp.astype(np.int64)


def _draw(choice: np.ndarray, low: int, high: int, click_share: float,
          rng: np.random.Generator) -> _Drawn:
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
    return _drawn(np.repeat(np.arange(n_customers), counts), order[taken], times[taken],
                  click_share, rng)
