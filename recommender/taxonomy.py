"""The data-category taxonomy: which category each customer attribute belongs to."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from recommender.errors import DataError

HISTORY = "interaction_history"
DEFAULT_PATH = Path(__file__).with_name("taxonomy.toml")


@dataclass(frozen=True)
class Taxonomy:
    """Categories (in a fixed order), their plain-language purpose, and attribute -> category."""

    categories: tuple[str, ...]
    purposes: dict[str, str]
    attributes: dict[str, str]
    protected: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if HISTORY not in self.categories:
            raise DataError(f"taxonomy must define the category {HISTORY!r}", field="categories")
        for attribute, category in self.attributes.items():
            if category not in self.categories:
                raise DataError(
                    f"attribute {attribute!r} maps to unknown category {category!r}",
                    field=f"attributes.{attribute}",
                )
            if category == HISTORY:
                raise DataError(
                    f"attribute {attribute!r}: {HISTORY} holds behaviour, not attributes",
                    field=f"attributes.{attribute}",
                )

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> Taxonomy:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("taxonomy file not found", file=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"taxonomy is not valid TOML: {exc}", file=str(path)) from None
        for key in ("categories", "attributes"):
            if not isinstance(raw.get(key), dict):
                raise DataError(f"missing table [{key}]", file=str(path), field=key)
        return cls(
            categories=tuple(raw["categories"]),
            purposes=dict(raw["categories"]),
            attributes=dict(raw["attributes"]),
            protected=tuple(raw.get("protected", {}).get("attributes", ())),
        )

    @classmethod
    def default(cls) -> Taxonomy:
        return cls.load(DEFAULT_PATH)

    def to_dict(self) -> dict:
        return {
            "categories": {c: self.purposes.get(c, "") for c in self.categories},
            "attributes": dict(self.attributes),
            "protected": {"attributes": list(self.protected)},
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Taxonomy:
        return cls(
            categories=tuple(raw["categories"]),
            purposes=dict(raw["categories"]),
            attributes=dict(raw["attributes"]),
            protected=tuple(raw.get("protected", {}).get("attributes", ())),
        )

    def category_of(self, attribute: str) -> str:
        try:
            return self.attributes[attribute]
        except KeyError:
            raise DataError(
                f"attribute {attribute!r} has no data category in the taxonomy", field=attribute
            ) from None

    def attributes_in(self, category: str) -> list[str]:
        return [a for a, c in self.attributes.items() if c == category]

    def restricted(self, attributes: list[str]) -> Taxonomy:
        """The taxonomy limited to the given attributes (categories stay, so consent still names them)."""
        return Taxonomy(
            categories=self.categories,
            purposes=self.purposes,
            attributes={a: c for a, c in self.attributes.items() if a in attributes},
            protected=tuple(a for a in self.protected if a in attributes),
        )
