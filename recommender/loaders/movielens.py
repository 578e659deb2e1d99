"""MovieLens-100K (u.data, u.user, u.item, u.genre) as a Dataset of positive interactions.

Policy: only ratings >= 4 count as a customer choosing an offer; lower ratings are skipped and
their number reported, so nobody mistakes a disliked film for an interest.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.data import MULTI_VALUE_SEPARATOR, Dataset
from recommender.errors import DataError
from recommender.loaders.tabular import Table, read_delimited
from recommender.taxonomy import Taxonomy

POSITIVE_RATING = 4
DATA_FIELDS = ("user_id", "item_id", "rating", "timestamp")
USER_FIELDS = ("user_id", "age", "gender", "occupation", "zip_code")
ITEM_FIELDS = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
UNKNOWN_GENRE = "unknown"  # MovieLens' "no genre given", not a genre customers share
# MovieLens-1M age groups: (upper bound exclusive, label)
AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"),
             (56, "50-55"), (None, "56+"))
_ENCODING = "latin-1"  # titles such as "Misérables, Les (1995)"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_movielens(
    path: str | Path, *, report: Callable[[str], None] | None = _stderr,
    taxonomy: Taxonomy | None = None,
) -> Dataset:
    """Customers (age_band, gender, occupation, zip_prefix), offers (title, genre, decade) and the
    ratings >= 4 of a MovieLens-100K folder. `report` receives one line saying how many ratings
    were skipped (default: printed to stderr; None: silent)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError("MovieLens folder not found", file=str(folder))
    customers = _customers(_read(folder / "u.user", USER_FIELDS))
    genres = _genres(folder / "u.genre")
    offers = _offers(_read(folder / "u.item", (*ITEM_FIELDS, *genres)), genres)
    interactions, skipped = _interactions(_read(folder / "u.data", DATA_FIELDS, sep="\t"),
                                          customers.index, offers.index)
    if report is not None:
        report(f"{folder / 'u.data'}: skipped {skipped} of {skipped + len(interactions)} ratings "
               f"below {POSITIVE_RATING} (only ratings >= {POSITIVE_RATING} are interactions)")
    return Dataset(customers, offers, interactions, taxonomy or Taxonomy.default(),
                   name=f"movielens-{folder.resolve().name}")


def _read(path: Path, names: tuple[str, ...], sep: str = "|") -> Table:
    return read_delimited(path, sep=sep, names=names, encoding=_ENCODING, quoting=csv.QUOTE_NONE)


def _integers(table: Table, column: str, *, optional: bool = False) -> np.ndarray:
    """The column as int64; with `optional`, empty values become -1."""
    values = table.frame[column] if optional else table.require_values(column)
    valid = values.str.fullmatch(r"\d{1,18}").fillna(False).to_numpy(dtype=bool)
    table.fail_first(~valid & values.notna().to_numpy(), column,
                     "{value!r} is not a non-negative integer")
    return values.where(valid, "-1").astype(np.int64).to_numpy()


def _ids(table: Table, column: str) -> pd.Index:
    _integers(table, column)
    return table.unique_ids(column)


def _customers(table: Table) -> pd.DataFrame:
    ids = _ids(table, "user_id")
    # attributes may be empty (unknown -> NaN); a missing field is caught by the field count
    ages = _integers(table, "age", optional=True)
    bounds = [bound for bound, _ in AGE_BANDS[:-1]]
    labels = np.array([label for _, label in AGE_BANDS], dtype=object)
    bands = np.where(ages >= 0, labels[np.searchsorted(bounds, ages, side="right")], np.nan)
    customers = pd.DataFrame({
        "age_band": bands,
        "gender": table.frame["gender"].to_numpy(dtype=object),
        "occupation": table.frame["occupation"].to_numpy(dtype=object),
        "zip_prefix": table.frame["zip_code"].str.slice(0, 3).to_numpy(dtype=object),
    }, index=ids)
    customers.index.name = "customer_id"
    return customers


def _genres(path: Path) -> list[str]:
    table = read_delimited(path, sep="|", names=("genre", "index"), encoding=_ENCODING,
                           quoting=csv.QUOTE_NONE)
    names = table.require_values("genre")
    indices = _integers(table, "index")
    table.fail_first(indices != np.arange(len(indices)), "index",
                     "genre indices must count 0, 1, 2, ... (found {value!r})")
    return [str(n) for n in names]


def _offers(table: Table, genres: list[str]) -> pd.DataFrame:
    ids = _ids(table, "item_id")
    titles = table.require_values("title")
    flags = np.empty((len(table.frame), len(genres)), dtype=bool)
    for j, genre in enumerate(genres):
        values = table.require_values(genre)
        table.fail_first(~values.isin(["0", "1"]).to_numpy(), genre,
                         "genre flag must be 0 or 1, not {value!r}")
        flags[:, j] = (values == "1").to_numpy()
    shown = np.array([g != UNKNOWN_GENRE for g in genres])
    names = np.array(genres, dtype=object)
    genre = [MULTI_VALUE_SEPARATOR.join(names[row & shown]) or np.nan for row in flags]
    offers = pd.DataFrame({
        "title": titles.to_numpy(dtype=object),
        "genre": np.array(genre, dtype=object),
        "decade": _decades(table),
    }, index=ids)
    offers.index.name = "offer_id"
    return offers


def _decades(table: Table) -> np.ndarray:
    dates = table.frame["release_date"]
    years = dates.str.extract(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$", expand=False)
    table.fail_first((dates.notna() & years.isna()).to_numpy(), "release_date",
                     "release date {value!r} is not like 01-Jan-1995")
    decades = (years.dropna().astype(int) // 10 * 10).astype(str) + "s"
    return decades.reindex(dates.index).to_numpy(dtype=object)  # missing date -> NaN


def _interactions(
    table: Table, customers: pd.Index, offers: pd.Index
) -> tuple[pd.DataFrame, int]:
    for column, known, what in (("user_id", customers, "user"), ("item_id", offers, "item")):
        ids = table.require_values(column)
        table.fail_first(~ids.isin(known).to_numpy(), column, f"unknown {what} id {{value!r}}")
    ratings = _integers(table, "rating")
    table.fail_first((ratings < 1) | (ratings > 5), "rating", "rating {value!r} is not 1 to 5")
    timestamps = _integers(table, "timestamp")
    keep = ratings >= POSITIVE_RATING
    interactions = pd.DataFrame({
        "customer_id": table.frame["user_id"].to_numpy(dtype=object)[keep],
        "offer_id": table.frame["item_id"].to_numpy(dtype=object)[keep],
        "kind": "rating",
        "weight": ratings[keep].astype(float),
        "timestamp": timestamps[keep],
    })
    interactions = interactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return interactions, int((~keep).sum())
