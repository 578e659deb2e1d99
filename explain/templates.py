"""The wording of every criterion, from one file (criteria.toml) a deployment can edit or translate."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from recommender.errors import DataError

DEFAULT_PATH = Path(__file__).with_name("criteria.toml")
POPULARITY = "popularity"
DIRECTIONS = ("positive", "negative", "neutral")
NOT_USED_REASONS = ("consent", "level", "no_data", "not_in_model")

# What must be there for any explanation to be worded; everything else has a fallback.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "names": (),
    "lists": ("separator", "last"),
    f"criteria.{POPULARITY}": DIRECTIONS,
    "criteria.interaction_history": (*DIRECTIONS, "positive_unsplit", "negative_unsplit",
                                     "positive_learned", "negative_learned"),
    "criteria.default": DIRECTIONS,
    "notes": ("learned_profile", "unsplit"),
    "not_used": NOT_USED_REASONS,
    "messages": ("no_personal_data", "minor"),
    "business_rules": ("boosted", "buried", "diversified", "why_boosted", "why_buried",
                       "why_excluded"),
}


@dataclass(frozen=True, eq=False)
class Templates:
    """The parsed wording file; str.format templates, filled only for criteria that are shown."""

    raw: Mapping[str, dict]
    source: str

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> Templates:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("criteria wording file not found", file=str(path)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"criteria wording is not valid TOML: {exc}", file=str(path)) from None
        for dotted, keys in _REQUIRED.items():
            table: object = raw
            for part in dotted.split("."):
                table = table.get(part) if isinstance(table, dict) else None
            if not isinstance(table, dict):
                raise DataError(f"missing table [{dotted}]", file=str(path), field=dotted)
            for key in keys:
                if not isinstance(table.get(key), str):
                    raise DataError("missing text", file=str(path), field=f"{dotted}.{key}")
        return cls(raw, str(path))

    @classmethod
    def default(cls) -> Templates:
        return _default()

    def name(self, category: str) -> str:
        """A category's readable name ("Your location")."""
        return self.raw["names"].get(category) or category.replace("_", " ").capitalize()

    def criterion(self, category: str, direction: str, *, attribute: str | None = None,
                  variant: str = "") -> str:
        """The template of a criterion: by attribute when worded, else by category, else default.

        variant "_unsplit" is for history that cannot be split by past offer, "_learned" for
        history whose part a learned profile carried rather than the past offers."""
        if attribute is not None:
            worded = self.raw.get("attributes", {}).get(attribute, {}).get(direction)
            if worded:
                return worded
        table = self.raw["criteria"].get(category) or self.raw["criteria"]["default"]
        return (table.get(direction + variant) or table.get(direction)
                or self.raw["criteria"]["default"][direction])

    def note(self, key: str) -> str:
        return self.raw["notes"][key]

    def not_used(self, reason: str) -> str:
        return self.raw["not_used"][reason]

    def message(self, key: str) -> str:
        return self.raw["messages"][key]

    def business_rule(self, key: str) -> str:
        """How a shop rule's effect on an offer reads (recommender.rules)."""
        return self.raw["business_rules"][key]

    def join(self, items: Sequence[str]) -> str:
        """"A", "A and B", "A, B and C" in the file's wording."""
        if len(items) <= 1:
            return "".join(items)
        lists = self.raw["lists"]
        return lists["separator"].join(items[:-1]) + lists["last"] + items[-1]


@cache
def _default() -> Templates:
    return Templates.load(DEFAULT_PATH)
