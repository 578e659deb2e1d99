"""Parsing what a request sends: query parameters and JSON bodies, each failure a 400 (or 415)
naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from flask import current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from recommender.errors import DataError
from serving.errors import ApiError, bad_parameter
from serving.records.consent import check_name

Body = TypeVar("Body", bound=BaseModel)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
MAX_LIST = 1000  # ids in one comma-separated parameter
MAX_VALUE_LENGTH = 200
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000  # records listed in one response


def customer_id(value: str) -> str:
    try:
        return check_name(value, "customer_id")
    except DataError as exc:
        raise bad_parameter("customer_id", exc.message) from None


class Query:
    """A request's query parameters, read once (request.args goes through a context proxy)."""

    def __init__(self, args: MultiDict | None = None) -> None:
        self.args = request.args if args is None else args

    def only(self, allowed: Iterable[str], prefixes: tuple[str, ...] = ()) -> Query:
        """Refuse parameters the endpoint does not know: a misspelt filter must not be silently
        ignored."""
        allowed = set(allowed)
        for name in self.args:
            if name not in allowed and not name.startswith(prefixes):
                expected = ", ".join(sorted(allowed | set(prefixes))) or "none"
                raise bad_parameter(name, f"unknown query parameter {name!r}; expected: {expected}")
        return self

    def single(self, name: str) -> str | None:
        values = self.args.getlist(name)
        if len(values) > 1:
            raise bad_parameter(name, f"{name} given more than once")
        if values and len(values[0]) > MAX_VALUE_LENGTH * MAX_LIST:
            raise bad_parameter(name, f"{name} is too long")
        return values[0] if values else None

    def positive_int(self, name: str, default: int, maximum: int) -> int:
        raw = self.single(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise bad_parameter(name, f"{name} must be a positive integer, not {raw!r}")
        value = int(raw)
        if value > maximum:
            raise bad_parameter(name, f"{name} must be at most {maximum}, not {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.single(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise bad_parameter(name, f"{name} must be true or false, not {raw!r}")

    def fraction(self, name: str, default: float) -> float:
        """A number from 0 to 1."""
        raw = self.single(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 1:
            raise bad_parameter(name, f"{name} must be a number from 0 to 1, not {raw!r}")
        return value

    def id_list(self, name: str) -> tuple[str, ...]:
        raw = self.single(name)
        if not raw:
            return ()
        ids = tuple(part.strip() for part in raw.split(",") if part.strip())
        if len(ids) > MAX_LIST:
            raise bad_parameter(name, f"{name} lists more than {MAX_LIST} ids")
        return ids

    def prefixed(self, prefix: str) -> dict[str, str] | None:
        """Parameters named prefix + NAME, as {NAME: value}; None when there are none."""
        out = {}
        for name in self.args:
            if name.startswith(prefix):
                value = self.single(name)
                if not name[len(prefix):] or value is None or len(value) > MAX_VALUE_LENGTH:
                    raise bad_parameter(name, f"{name} needs a name after {prefix!r} and a short "
                                              "value")
                out[name[len(prefix):]] = value
        return out or None


def no_query() -> None:
    """For endpoints that take no query parameters."""
    Query().only(())


def json_body() -> dict:
    """The request's JSON object: 415 unless it says application/json, 400 unless it is UTF-8
    JSON of an object, with no key given twice (which value was meant?) and nesting no deeper than
    MAX_DEPTH. Too large a body is a 413 (MAX_CONTENT_LENGTH, with or without Content-Length)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the body as JSON with Content-Type: application/json", "Content-Type")
    raw = _body_bytes()
    if _depth(raw) > MAX_DEPTH:
        raise ApiError(400, "invalid_json", f"the body nests deeper than {MAX_DEPTH} levels", "body")
    try:
        body = json.loads(raw, object_pairs_hook=_without_duplicates,
                          parse_constant=_not_json)  # NaN and Infinity are not JSON
    except _DuplicateKey as exc:
        raise bad_parameter(exc.key, f"{exc.key!r} is given more than once") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8 JSON", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object", "body")
    return body


MAX_DEPTH = 32  # no body of this API nests deeper than 3


def _body_bytes() -> bytes:
    """The body; past MAX_CONTENT_LENGTH a 413. Werkzeug refuses a body whose Content-Length is
    too large before reading it, but cuts a chunked one (no Content-Length) short silently, which
    would turn it into broken JSON: read one byte more than allowed to tell."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None or not limit:
        return request.get_data(cache=True)
    raw = request.environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large",
                       f"request body too large (at most {limit} bytes)", "body")
    return raw


def _depth(raw: bytes) -> int:
    """How deep brackets nest, outside strings: checked before parsing, whose recursion a
    deeply nested body would exhaust."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    body = {}
    for key, value in pairs:
        if key in body:
            raise _DuplicateKey(key)
        body[key] = value
    return body


def body(model: type[Body], *, optional: bool = False) -> Body:
    """The request's JSON object validated by `model` (serving.schemas.requests): a 400 naming
    the first field at fault. optional: an empty body is an empty object."""
    raw = {} if optional and not request.content_length else json_body()
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _body_error(model, exc.errors()[0]) from None


def _body_error(model: type[BaseModel], error: dict) -> ApiError:
    name = str(error["loc"][0]) if error["loc"] else "body"
    kind = error["type"]
    if kind == "extra_forbidden":
        expected = ", ".join(model.model_fields)
        return bad_parameter(name, f"unknown field {name!r}; expected: {expected}")
    if kind == "missing":
        return bad_parameter(name, f"{name} is required")
    if kind == "value_error":  # our own validators' words, without pydantic's prefix
        return bad_parameter(name, str(error["ctx"]["error"]))
    # list positions only: pydantic also names the branch of a union it tried ("int")
    where = "".join(f"[{part}]" for part in error["loc"][1:] if isinstance(part, int))
    return bad_parameter(name, f"{name}{where}: {error['msg'][0].lower()}{error['msg'][1:]}")
