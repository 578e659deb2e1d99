"""Business rules as a versioned TOML file, validated field by field.

A rule file (examples/rules/ documents every field):

    version = "2024-06-spring"          # required: recorded with every response served under it
    description = "Spring campaign"     # optional
    category_attribute = "category"     # optional: the offers' attribute the categories come from
    [exclude]                           # never shown
    offers = ["o0012"]
    categories = ["tobacco"]
    [[boost]]                           # relevance x factor
    category = "outdoor"                # or offer / offers / categories
    factor = 2.0
    [[bury]]                            # relevance / factor
    offer = "o0003"
    factor = 4.0
    [[cap]]                             # at most ceil(share * k) offers of one category
    share = 0.3
    category = "books"                  # optional: without it, every category is capped
    [diversity]                         # MMR over the list
    strength = 0.3                      # 0: off, 1: only variety counts
    by = "category"                     # or "vectors" (the model's offer vectors)

Anything else is refused with the file and the field, so a typo cannot silently disable a rule.
Against a catalog (an offers table, a Dataset or an Artifact), unknown offers and category values are
refused too.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recommender.catalog import default_category_attribute
from recommender.errors import DataError
from recommender.features import attribute_values

MAX_VERSION_LENGTH = 128
DIVERSITY_BY = ("category", "vectors")
_TOP = ("version", "description", "category_attribute", "exclude", "boost", "bury", "cap", "diversity")
_MATCH = ("offer", "offers", "category", "categories")


@dataclass(frozen=True)
class Adjustment:
    """A boost (relevance x factor) or a bury (relevance / factor) of some offers or categories."""

    kind: str  # "boost" or "bury"
    offers: tuple[str, ...]
    categories: tuple[str, ...]
    factor: float
    label: str
    field: str  # where it is in the file, e.g. "boost[0]"

    @property
    def multiplier(self) -> float:
        return self.factor if self.kind == "boost" else 1.0 / self.factor


@dataclass(frozen=True)
class Cap:
    share: float  # at most ceil(share * k) offers of the category in a list of k
    category: str | None  # None: every category
    label: str
    field: str


@dataclass(frozen=True)
class Diversity:
    strength: float  # MMR's lambda: 0 relevance only, 1 variety only
    by: str  # "category" or "vectors"
    label: str


@dataclass(frozen=True)
class BusinessRules:
    """One parsed rule file. `text` is the file as written, so publishing copies it unchanged."""

    version: str
    source: str
    description: str = ""
    category_attribute: str | None = None
    exclude_offers: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    caps: tuple[Cap, ...] = ()
    diversity: Diversity | None = None
    text: str = ""

    @property
    def uses_categories(self) -> bool:
        return bool(self.exclude_categories or self.caps
                    or any(a.categories for a in self.adjustments)
                    or (self.diversity is not None and self.diversity.by == "category"))

    def summary(self) -> str:
        """One line for the CLI and logs."""
        parts = [f"{len(self.exclude_offers)} offers and {len(self.exclude_categories)} categories "
                 f"excluded", f"{sum(a.kind == 'boost' for a in self.adjustments)} boosts",
                 f"{sum(a.kind == 'bury' for a in self.adjustments)} buries", f"{len(self.caps)} caps",
                 f"diversity {self.diversity.strength:g} by {self.diversity.by}" if self.diversity
                 else "no diversity"]
        return f"rules {self.version!r}: " + ", ".join(parts)


def load_rules(path: str | Path, catalog: Any = None) -> BusinessRules:
    """Read and validate a rule file; with `catalog` (an offers table, a Dataset or an Artifact)
    every offer id and category value must exist in it. DataError names the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("rule file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"rule file unreadable: {exc}", file=str(path)) from None
    return parse_rules(text, catalog, source=str(path))


def parse_rules(text: str, catalog: Any = None, *, source: str = "<rules>") -> BusinessRules:
    """parse_rules for text already read (load_rules reads the file)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"not valid TOML: {exc}", file=source) from None
    reader = _Reader(source)
    reader.known(raw, _TOP, "")
    version = reader.string(raw, "version", required=True)
    if len(version) > MAX_VERSION_LENGTH:
        reader.fail("version", f"at most {MAX_VERSION_LENGTH} characters")
    exclude = reader.table(raw, "exclude")
    reader.known(exclude, ("offers", "categories"), "exclude")
    adjustments = tuple(
        reader.adjustment(kind, i, entry)
        for kind in ("boost", "bury") for i, entry in enumerate(reader.entries(raw, kind))
    )
    caps = tuple(reader.cap(i, entry) for i, entry in enumerate(reader.entries(raw, "cap")))
    diversity = None
    if "diversity" in raw:
        diversity = reader.diversity(reader.table(raw, "diversity"))
    rules = BusinessRules(
        version=version, source=source, description=reader.string(raw, "description") or "",
        category_attribute=reader.string(raw, "category_attribute"),
        exclude_offers=reader.ids(exclude, "offers", "exclude"),
        exclude_categories=reader.ids(exclude, "categories", "exclude"),
        adjustments=adjustments, caps=caps, diversity=diversity, text=text,
    )
    if catalog is not None:
        check_catalog(rules, offers_table(catalog))
    return rules


def offers_table(catalog: Any) -> pd.DataFrame:
    """The offers table of a catalog: an offers DataFrame, or anything with `.offers` (Dataset,
    Artifact, a served version)."""
    return catalog if isinstance(catalog, pd.DataFrame) else catalog.offers


def category_attribute(rules: BusinessRules, offers: pd.DataFrame) -> str | None:
    """The offer attribute the rules' categories come from (None: the offers have none)."""
    return rules.category_attribute or default_category_attribute(offers)


def check_catalog(rules: BusinessRules, offers: pd.DataFrame) -> None:
    """Refuse offer ids and category values the catalog does not have (DataError)."""
    fail = _Reader(rules.source).fail
    known = set(offers.index.astype(str))
    named = [("exclude.offers", rules.exclude_offers)] + [
        (f"{a.field}.offers", a.offers) for a in rules.adjustments]
    for field, ids in named:
        for offer in ids:
            if offer not in known:
                fail(field, f"unknown offer {offer!r}")
    attribute = category_attribute(rules, offers)
    if rules.category_attribute is not None and (
            attribute not in offers.columns or attribute == "title"):
        present = ", ".join(str(c) for c in offers.columns if c != "title") or "none"
        fail("category_attribute", f"offers have no attribute {attribute!r} (they have: {present})")
    if not rules.uses_categories:
        return
    if attribute is None:
        fail("category_attribute", "the rules name categories, but the offers have no category "
                                   "attribute: name one with category_attribute")
    values = {v for cell in offers[attribute] for v in attribute_values(cell)}
    named = [("exclude.categories", rules.exclude_categories)] + [
        (f"{a.field}.categories", a.categories) for a in rules.adjustments] + [
        (f"{c.field}.category", (c.category,)) for c in rules.caps if c.category is not None]
    for field, categories in named:
        for category in categories:
            if category not in values:
                fail(field, f"unknown {attribute} {category!r}; known: {', '.join(sorted(values))}")


class _Reader:
    """Typed reads of the parsed TOML that fail with the file and the field's dotted name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, message: str):
        raise DataError(message, file=self.source, field=field)

    def known(self, table: dict, allowed: tuple[str, ...], where: str) -> None:
        for name in table:
            if name not in allowed:
                field = f"{where}.{name}" if where else name
                self.fail(field, f"unknown field {name!r}; allowed: {', '.join(allowed)}")

    def string(self, table: dict, name: str, *, where: str = "", required: bool = False) -> str | None:
        field = f"{where}.{name}" if where else name
        value = table.get(name)
        if value is None:
            if required:
                self.fail(field, "required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(field, "must be a non-empty string")
        return value

    def table(self, raw: dict, name: str) -> dict:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, f"must be a table ([{name}])")
        return value

    def entries(self, raw: dict, name: str) -> list[dict]:
        """[[name]] entries; a single [name] table counts as one."""
        value = raw.get(name, [])
        value = [value] if isinstance(value, dict) else value
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(name, f"must be tables ([[{name}]])")
        return value

    def ids(self, table: dict, name: str, where: str) -> tuple[str, ...]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{where}.{name}", "must be a list of non-empty strings")
        return tuple(dict.fromkeys(value))

    def number(self, table: dict, name: str, where: str) -> float:
        value = table.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(f"{where}.{name}", "required, a finite number")
        return float(value)

    def adjustment(self, kind: str, i: int, entry: dict) -> Adjustment:
        where = f"{kind}[{i}]"
        self.known(entry, (*_MATCH, "factor", "name"), where)
        offers, categories = self.match(entry, where)
        factor = self.number(entry, "factor", where)
        if factor <= 0:
            self.fail(f"{where}.factor", f"must be greater than 0, not {factor:g}")
        target = ", ".join([*offers, *categories])
        label = self.string(entry, "name", where=where) or f"{where} {target} x{factor:g}"
        return Adjustment(kind, offers, categories, factor, label, where)

    def match(self, entry: dict, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        found = {}
        for singular, plural in (("offer", "offers"), ("category", "categories")):
            if singular in entry:
                found[plural] = (self.string(entry, singular, where=where),)
            if plural in entry:
                found[plural] = found.get(plural, ()) + self.ids(entry, plural, where)
        if not any(found.values()):
            self.fail(where, "names no offer or category (offer, offers, category or categories)")
        return found.get("offers", ()), found.get("categories", ())

    def cap(self, i: int, entry: dict) -> Cap:
        where = f"cap[{i}]"
        self.known(entry, ("share", "category", "name"), where)
        share = self.number(entry, "share", where)
        if not 0 < share <= 1:
            self.fail(f"{where}.share", f"must be in (0, 1], not {share:g}")
        category = self.string(entry, "category", where=where)
        label = self.string(entry, "name", where=where) or \
            f"{where} {category or 'every category'} share {share:g}"
        return Cap(share, category, label, where)

    def diversity(self, table: dict) -> Diversity:
        self.known(table, ("strength", "by", "name"), "diversity")
        strength = self.number(table, "strength", "diversity")
        if not 0 <= strength <= 1:
            self.fail("diversity.strength", f"must be in [0, 1], not {strength:g}")
        by = self.string(table, "by", where="diversity") or "category"
        if by not in DIVERSITY_BY:
            self.fail("diversity.by", f"must be one of {', '.join(DIVERSITY_BY)}, not {by!r}")
        label = self.string(table, "name", where="diversity") or f"diversity {strength:g} by {by}"
        return Diversity(strength, by, label)
