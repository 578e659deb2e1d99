"""Reading command-line values and writing results: what the commands share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from recommender.errors import TrustRecError


def parse_value(text: str) -> object:
    """`64` -> 64, `0.05` -> 0.05, `true` -> True, `a,b` -> ("a", "b"), else the string."""
    if "," in text:
        return tuple(parse_value(part) for part in text.split(",") if part)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(pairs: Sequence[str]) -> dict:
    return {name: parse_value(value) for name, value in parse_pairs(pairs, "--param").items()}


def parse_pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    """NAME=VALUE arguments as a dict of strings."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TrustRecError(f"{option} takes NAME=VALUE, not {pair!r}")
        parsed[name] = value
    return parsed


def write_json(path: str | Path, payload: object) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(path)
