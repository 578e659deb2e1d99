"""Load a dataset from CSV or Parquet files described by a small TOML mapping file.

Also home of the delimited-text reader the MovieLens loader shares: a cheap first pass records
the line each row starts on and its field count, then pandas parses; so every error can name its
line, even after blank lines or quoted line breaks.
"""

from __future__ import annotations

import csv
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.taxonomy import Taxonomy

DEFAULT_KIND = "purchase"
DEFAULT_WEIGHT = 1.0
PARQUET_SUFFIXES = (".parquet", ".pq")
_INTEGER = r"[+-]?\d{1,18}"  # more digits would overflow int64
Reporter = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)

# key -> required?; unknown keys are refused so a typo ("atributes") cannot silently drop data
_SECTIONS: dict[str, dict[str, bool]] = {
    "customers": {"file": True, "id": True, "attributes": False, "duplicates": False,
                  "filter": False},
    "offers": {"file": True, "id": True, "title": True, "attributes": False, "duplicates": False,
               "filter": False},
    "interactions": {
        "file": True, "customer": True, "offer": True, "timestamp": True,
        "kind": False, "weight": False, "timestamp_format": False, "filter": False,
    },
}
DUPLICATES = ("error", "first", "last")  # what to do with a repeated id (a log lists one per row)
# [section.filter]: which rows are kept; each rule's count of dropped rows is reported
_FILTERS = {"drop_empty": list, "min": dict, "above": dict, "drop_prefix": dict,
            "drop_values": dict}
_TOP_LEVEL = {"taxonomy", "name", *_SECTIONS}


# --- reading one table, remembering where each row came from ----------------------------------
@dataclass
class Table:
    """A file's rows as text (NaN where empty) and the line each row starts on (None: Parquet)."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray | None = None

    def error(self, row: int, column: str, message: str) -> DataError:
        if self.lines is None:
            return DataError(f"row {row + 1}: {message}", file=str(self.path), field=column)
        return DataError(message, file=str(self.path), line=int(self.lines[row]), field=column)

    def require_columns(self, columns: Sequence[str]) -> None:
        for column in columns:
            if column not in self.frame.columns:
                found = ", ".join(map(str, self.frame.columns))
                raise DataError(f"column {column!r} not found (columns: {found})",
                                file=str(self.path), field=column)

    def require_values(self, column: str) -> pd.Series:
        values = self.frame[column]
        self.fail_first(values.isna().to_numpy(), column, "missing value")
        return values

    def fail_first(self, bad: np.ndarray | pd.Series, column: str, message: str) -> None:
        """Raise for the first row where `bad` holds, with `message` formatted with its value."""
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            row = int(bad.argmax())
            raise self.error(row, column, message.format(value=self.frame[column].iloc[row]))

    def unique_ids(self, column: str) -> pd.Index:
        ids = as_text(self.require_values(column))
        self.fail_first(ids.duplicated().to_numpy(), column, "duplicate id {value!r}")
        return pd.Index(ids.to_numpy(dtype=object))


def read_delimited(
    path: Path, *, sep: str = ",", names: Sequence[str] | None = None,
    encoding: str = "utf-8-sig", quoting: int = csv.QUOTE_MINIMAL,
) -> Table:
    """Every value as text, empty -> NaN; with `names`, the file has no header line.

    Field counts are checked before pandas parses: pandas pads a short row with empty values,
    which would otherwise pass for unknown attributes."""
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    try:
        lines, counts = _records(path, sep, encoding, quoting)
        if not len(lines):
            raise DataError("file is empty", file=str(path))
        expected = len(names) if names is not None else int(counts[0])
        wrong = counts != expected
        if wrong.any():
            first = int(wrong.argmax())
            raise DataError(f"expected {expected} fields, found {counts[first]}",
                            file=str(path), line=int(lines[first]))
        frame = pd.read_csv(
            path, sep=sep, header=None if names is not None else 0, names=names, dtype=str,
            keep_default_na=False, na_values=[""],  # "NA" may be a real code (a region)
            quoting=quoting, encoding=encoding, engine="c",
        )
    except UnicodeDecodeError:
        raise DataError(f"file is not valid {encoding} text", file=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot parse: {exc}", file=str(path)) from None
    data_lines = lines if names is not None else lines[1:]
    if len(data_lines) != len(frame):  # our count and pandas' disagree: never guess a line
        raise DataError("cannot match rows to lines (unusual quoting or line breaks?)",
                        file=str(path))
    return Table(path, frame, data_lines)


def _records(path: Path, sep: str, encoding: str, quoting: int) -> tuple[np.ndarray, np.ndarray]:
    """(first line, field count) of every non-blank record, as pandas will see them."""
    raw = path.read_bytes()
    if not raw:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if quoting != csv.QUOTE_NONE and b'"' in raw:  # quotes may hide separators and newlines
        lines, counts = [], []
        with path.open(newline="", encoding=encoding) as handle:
            reader = csv.reader(handle, delimiter=sep, quoting=quoting)
            start = 1
            for record in reader:
                if record:  # pandas skips blank lines too
                    lines.append(start)
                    counts.append(len(record))
                start = reader.line_num + 1
        return np.asarray(lines, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    raw.decode(encoding)  # refuse undecodable text here, as pandas would
    data = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    ends -= (ends > starts) & (data[np.maximum(ends - 1, 0)] == ord("\r"))  # CRLF files
    separators = np.concatenate([[0], np.cumsum(data == ord(sep))])
    counts = separators[ends] - separators[starts] + 1
    keep = ends > starts
    return np.arange(1, len(starts) + 1)[keep], counts[keep]


def read_table(path: Path) -> Table:
    """CSV or Parquet by extension."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        if not path.is_file():
            raise DataError("file not found", file=str(path))
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read Parquet file: {exc}", file=str(path)) from None
        return Table(path, frame.reset_index(drop=True))
    if path.suffix.lower() == ".csv":
        return read_delimited(path)
    raise DataError(f"unsupported file type {path.suffix!r} (use .csv or .parquet)",
                    file=str(path), field="file")


def as_text(values: pd.Series) -> pd.Series:
    """Parquet columns may hold numbers; ids and attributes are compared as text."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")  # 7.0 -> "7", as the CSV would have said
    text = values.astype(object).map(str, na_action="ignore")
    return text.where(values.notna(), np.nan)


# --- parsing values ------------------------------------------------------------------------------
def parse_timestamps(values: pd.Series, declared: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since the epoch as int64, bad mask). Accepts integer seconds, ISO-8601 strings
    (without a zone: UTC) and, from Parquet, datetime columns; with `declared`, a strftime format
    ("%m/%d/%y %H:%M"; without a zone: UTC) that every text value must match."""
    if declared is not None and not pd.api.types.is_datetime64_any_dtype(values):
        text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
        return _seconds(pd.to_datetime(text, format=declared, utc=True, errors="coerce"))
    if pd.api.types.is_datetime64_any_dtype(values):
        moments = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        return _seconds(moments)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(float).to_numpy()
        bad = ~np.isfinite(numbers) | (numbers % 1 != 0)
        return np.where(bad, 0, numbers).astype(np.int64), bad
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    integer = text.str.fullmatch(_INTEGER).to_numpy(dtype=bool)
    seconds = np.zeros(len(text), dtype=np.int64)
    seconds[integer] = text[integer].astype(np.int64).to_numpy()
    iso_seconds, iso_bad = _seconds(
        pd.to_datetime(text[~integer], format="ISO8601", utc=True, errors="coerce")
    )
    seconds[~integer] = iso_seconds
    bad = np.zeros(len(text), dtype=bool)
    bad[~integer] = iso_bad
    return seconds, bad


def _seconds(moments: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    bad = moments.isna().to_numpy()
    delta = (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return delta.fillna(0).to_numpy(dtype=np.int64), bad


# --- the mapping file -----------------------------------------------------------------------------
def load_tabular(mapping_path: str | Path, *, taxonomy: Taxonomy | None = None,
                 report: Reporter | None = _stderr) -> Dataset:
    """The dataset a mapping file describes (format: docs/data.md, "Loading your own data").

    Relative paths resolve against the mapping file's folder. `taxonomy` overrides the one the
    mapping names (default: the built-in taxonomy). `report` receives one line per filtered table
    saying how many rows each rule dropped (None: silent)."""
    report = report or (lambda line: None)
    mapping_path = Path(mapping_path)
    mapping = _read_mapping(mapping_path)
    folder = mapping_path.parent
    if taxonomy is None:
        taxonomy = (Taxonomy.load(folder / mapping["taxonomy"]) if "taxonomy" in mapping
                    else Taxonomy.default())
    customers = _customers(mapping["customers"], folder, taxonomy, mapping_path, report)
    offers = _offers(mapping["offers"], folder, report)
    interactions = _interactions(mapping["interactions"], folder, customers.index, offers.index,
                                 report)
    return Dataset(customers, offers, interactions, taxonomy,
                   name=str(mapping.get("name", folder.resolve().name)))


def _read_mapping(path: Path) -> dict:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("mapping file not found", file=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read mapping file: {exc.strerror}", file=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"mapping is not valid TOML: {exc}", file=str(path)) from None
    for key in raw:
        if key not in _TOP_LEVEL:
            raise DataError(f"unknown key {key!r}", file=str(path), field=key)
    for key in ("taxonomy", "name"):
        if key in raw and not isinstance(raw[key], str):
            raise DataError("must be a string", file=str(path), field=key)
    for section, keys in _SECTIONS.items():
        table = raw.get(section)
        if not isinstance(table, dict):
            raise DataError(f"missing table [{section}]", file=str(path), field=section)
        for key, value in table.items():
            where = f"{section}.{key}"
            if key not in keys:
                raise DataError(f"unknown key {key!r}", file=str(path), field=where)
            if key == "attributes":
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise DataError("must be a list of column names", file=str(path),
                                    field=where)
                if "title" in value:
                    raise DataError("'title' is the offer title, not an attribute",
                                    file=str(path), field=where)
            elif key == "filter":
                _check_filter(value, path, where)
            elif not isinstance(value, str):
                raise DataError("must be a string", file=str(path), field=where)
            elif key == "duplicates" and value not in DUPLICATES:
                raise DataError(f"must be one of {', '.join(DUPLICATES)}", file=str(path),
                                field=where)
        for key, required in keys.items():
            if required and key not in table:
                raise DataError(f"missing key {key!r}", file=str(path), field=f"{section}.{key}")
    return raw


def _check_filter(rules: object, path: Path, where: str) -> None:
    if not isinstance(rules, dict):
        raise DataError("must be a table of rules", file=str(path), field=where)
    for rule, value in rules.items():
        field = f"{where}.{rule}"
        if rule not in _FILTERS:
            raise DataError(f"unknown rule {rule!r} (rules: {', '.join(_FILTERS)})",
                            file=str(path), field=field)
        if not isinstance(value, _FILTERS[rule]):
            kind = "a list of column names" if _FILTERS[rule] is list else "a table column = value"
            raise DataError(f"must be {kind}", file=str(path), field=field)
        if rule == "drop_empty" and not all(isinstance(c, str) for c in value):
            raise DataError("must be a list of column names", file=str(path), field=field)
        if rule in ("min", "above") and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
            raise DataError("each limit must be a number", file=str(path), field=field)
        if rule == "drop_prefix" and not all(isinstance(v, str) and v for v in value.values()):
            raise DataError("each prefix must be a non-empty string", file=str(path), field=field)
        if rule == "drop_values" and not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()):
            raise DataError("each entry must be a list of strings", file=str(path), field=field)


def _read_section(section: dict, folder: Path, name: str, report: Reporter) -> Table:
    """The section's file with its [section.filter] applied: dropped rows are counted by rule and
    reported, never silently lost. A rule that cannot be read for a row (a limit on a value that is
    not a number) stops the load at that row."""
    table = read_table(folder / section["file"])
    rules = section.get("filter")
    if not rules:
        return table
    frame = table.frame
    columns = [c for rule in rules.values() for c in rule]
    table.require_columns(list(dict.fromkeys(columns)))
    keep = np.ones(len(frame), dtype=bool)
    dropped = []
    for rule, spec in rules.items():
        for column in spec:
            text = as_text(frame[column])
            if rule == "drop_empty":
                bad = text.isna().to_numpy() | (text.str.strip() == "").to_numpy(dtype=bool)
            elif rule in ("min", "above"):
                numbers = pd.to_numeric(text, errors="coerce").to_numpy(float)
                table.fail_first(keep & ~np.isfinite(numbers), column,
                                 f"{{value!r}} is not a number (filter {rule})")
                bad = numbers < spec[column] if rule == "min" else numbers <= spec[column]
            elif rule == "drop_prefix":
                bad = text.fillna("").str.startswith(spec[column]).to_numpy(dtype=bool)
            else:
                bad = text.isin(spec[column]).to_numpy(dtype=bool)
            newly = keep & bad
            keep &= ~bad
            dropped.append(f"{rule} {column}: {int(newly.sum())}")
    report(f"{table.path.name} [{name}]: kept {int(keep.sum())} of {len(frame)} rows "
           f"(dropped by {'; '.join(dropped)})")
    lines = None if table.lines is None else table.lines[keep]
    return Table(table.path, frame[keep].reset_index(drop=True), lines)


def _ids(table: Table, section: dict, column: str) -> tuple[pd.Index, np.ndarray]:
    """(distinct ids, the row kept for each): every row when ids are unique; with duplicates =
    "first" or "last", the first or last row of each id (a log that repeats an id per row)."""
    policy = section.get("duplicates", "error")
    if policy == "error":
        return table.unique_ids(column), np.arange(len(table.frame))
    ids = as_text(table.require_values(column))
    rows = np.flatnonzero(~ids.duplicated(keep=policy).to_numpy())
    return pd.Index(ids.iloc[rows].to_numpy(dtype=object)), rows


def _customers(section: dict, folder: Path, taxonomy: Taxonomy, mapping_path: Path,
               report: Reporter) -> pd.DataFrame:
    attributes = section.get("attributes", [])
    for attribute in attributes:
        if attribute not in taxonomy.attributes:
            raise DataError(
                f"attribute {attribute!r} has no data category in the taxonomy "
                f"(known: {', '.join(taxonomy.attributes)})",
                file=str(mapping_path), field="customers.attributes",
            )
    table = _read_section(section, folder, "customers", report)
    table.require_columns([section["id"], *attributes])
    ids, rows = _ids(table, section, section["id"])
    frame = pd.DataFrame({a: as_text(table.frame[a]).to_numpy()[rows] for a in attributes},
                         index=ids)
    frame.index.name = "customer_id"
    return frame


def _offers(section: dict, folder: Path, report: Reporter) -> pd.DataFrame:
    attributes = section.get("attributes", [])
    table = _read_section(section, folder, "offers", report)
    table.require_columns([section["id"], section["title"], *attributes])
    ids, rows = _ids(table, section, section["id"])
    titles = table.require_values(section["title"])
    columns = {"title": as_text(titles).to_numpy()[rows]}
    columns |= {a: as_text(table.frame[a]).to_numpy()[rows] for a in attributes}
    frame = pd.DataFrame(columns, index=ids)
    frame.index.name = "offer_id"
    return frame


def _interactions(
    section: dict, folder: Path, customers: pd.Index, offers: pd.Index, report: Reporter,
) -> pd.DataFrame:
    table = _read_section(section, folder, "interactions", report)
    optional = [section[k] for k in ("kind", "weight") if k in section]
    table.require_columns([section["customer"], section["offer"], section["timestamp"],
                           *optional])
    frame = {}
    for key, known, target in (("customer", customers, "customer_id"),
                               ("offer", offers, "offer_id")):
        column = section[key]
        ids = as_text(table.require_values(column))
        table.fail_first(~ids.isin(known).to_numpy(), column, f"unknown {key} id {{value!r}}")
        frame[target] = ids.to_numpy(dtype=object)
    if "kind" in section:
        frame["kind"] = as_text(table.require_values(section["kind"])).to_numpy(dtype=object)
    else:
        frame["kind"] = np.full(len(table.frame), DEFAULT_KIND, dtype=object)
    if "weight" in section:
        column = section["weight"]
        weights = pd.to_numeric(table.require_values(column), errors="coerce").to_numpy(float)
        table.fail_first(~np.isfinite(weights), column, "weight {value!r} is not a number")
        table.fail_first(weights <= 0, column, "weight {value!r} is not positive")
        frame["weight"] = weights
    else:
        frame["weight"] = np.full(len(table.frame), DEFAULT_WEIGHT)
    column = section["timestamp"]
    declared = section.get("timestamp_format")
    seconds, bad = parse_timestamps(table.require_values(column), declared)
    expected = f"the format {declared!r}" if declared else "integer seconds or an ISO-8601 date"
    table.fail_first(bad, column, f"timestamp {{value!r}} does not match {expected}")
    frame["timestamp"] = seconds
    interactions = pd.DataFrame(frame)
    return interactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
