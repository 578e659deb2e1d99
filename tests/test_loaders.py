"""MovieLens and tabular loaders: real data where it exists, small hand-written files for errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from recommender.data import Dataset
from recommender.errors import DataError
from recommender.loaders import load_dataset, load_movielens, load_synthetic, load_tabular

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared/data/ml-100k"
EXAMPLE = REPO / "examples/tabular"


# --- MovieLens-100K, the real files --------------------------------------------------------------
@pytest.fixture(scope="module")
def movielens() -> tuple[Dataset, list[str]]:
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {ML100K}")
    messages: list[str] = []
    return load_movielens(ML100K, report=messages.append), messages


def raw_ratings() -> list[int]:
    lines = (ML100K / "u.data").read_text().splitlines()
    return [int(line.split("\t")[2]) for line in lines if line]


def test_movielens_counts(movielens):
    dataset, _ = movielens
    ratings = raw_ratings()
    assert dataset.n_customers == 943
    assert dataset.n_offers == 1682
    assert len(dataset.interactions) == sum(r >= 4 for r in ratings)
    assert set(dataset.interactions["kind"]) == {"rating"}
    assert dataset.interactions["weight"].isin([4.0, 5.0]).all()
    assert dataset.interactions["timestamp"].is_monotonic_increasing
    assert isinstance(dataset.customer_ids[0], str) and isinstance(dataset.offer_ids[0], str)


def test_movielens_reports_skipped_ratings_once(movielens):
    _, messages = movielens
    skipped = sum(r < 4 for r in raw_ratings())
    assert len(messages) == 1
    assert f"skipped {skipped} of 100000 ratings below 4" in messages[0]


def test_movielens_customers(movielens):
    dataset, _ = movielens
    customers = dataset.customers
    assert list(customers.columns) == ["age_band", "gender", "occupation", "zip_prefix"]
    assert customers.loc["1"].to_dict() == {  # 1|24|M|technician|85711
        "age_band": "18-24", "gender": "M", "occupation": "technician", "zip_prefix": "857"}
    assert set(customers["age_band"]) == {
        "under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}
    assert "L1V" in set(customers["zip_prefix"])  # Canadian postcodes are values too


def test_movielens_latin1_titles_genres_and_decades(movielens):
    dataset, _ = movielens
    offers = dataset.offers
    assert offers.loc["543", "title"] == "Misérables, Les (1995)"
    assert offers.loc["1633", "title"] == "Á köldum klaka (Cold Fever) (1994)"
    assert offers.loc["1", "genre"] == "Animation|Children's|Comedy"
    values = dict(zip(dataset.offer_ids, dataset.offer_attribute_values("genre"), strict=True))
    assert values["2"] == ["Action", "Adventure", "Thriller"]
    assert offers.loc["1", "decade"] == "1990s"
    assert offers["decade"].isna().sum() == 1  # item 267 has no date (and no genre)
    assert values["267"] == []


# --- MovieLens, small broken copies ---------------------------------------------------------
GENRES = "unknown|0\nAction|1\nComedy|2\n\n"
USERS = "1|17|F|student|12345\n2|18|M|writer|T8H1N\n3|56|M|retired|\n"
ITEMS = ("10|Café (1995)|01-Jan-1995|||0|1|1\n"
         "11|Old one (1931)|12-Mar-1931|||0|0|1\n"
         "12|unknown||||1|0|0\n")
RATINGS = "1\t10\t5\t100\n2\t11\t3\t90\n3\t10\t4\t80\n1\t12\t4\t120\n"


def write_movielens(folder: Path, *, users: str = USERS, items: str = ITEMS,
                    ratings: str = RATINGS) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "u.genre").write_text(GENRES, encoding="latin-1")
    (folder / "u.user").write_text(users, encoding="latin-1")
    (folder / "u.item").write_text(items, encoding="latin-1")
    (folder / "u.data").write_text(ratings, encoding="latin-1")
    return folder


def test_small_movielens_loads_and_prints_skipped_count(tmp_path, capsys):
    dataset = load_movielens(write_movielens(tmp_path / "ml"))
    assert "skipped 1 of 4 ratings below 4" in capsys.readouterr().err
    assert dataset.customers["age_band"].tolist() == ["under 18", "18-24", "56+"]
    assert pd.isna(dataset.customers.loc["3", "zip_prefix"])  # an empty zip is unknown
    assert dataset.offers.loc["10"].tolist() == ["Café (1995)", "Action|Comedy", "1990s"]
    assert dataset.offers.loc["11", "decade"] == "1930s"
    interactions = dataset.interactions
    assert interactions["timestamp"].tolist() == [80, 100, 120]  # sorted; the 3 was skipped
    assert interactions["offer_id"].tolist() == ["10", "10", "12"]


def test_small_movielens_silent_report(tmp_path, capsys):
    load_movielens(write_movielens(tmp_path / "ml"), report=None)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["u.data", "u.user", "u.item", "u.genre"])
def test_movielens_missing_file(tmp_path, name):
    folder = write_movielens(tmp_path / "ml")
    (folder / name).unlink()
    with pytest.raises(DataError, match="not found") as error:
        load_movielens(folder, report=None)
    assert error.value.file == str(folder / name)


@pytest.mark.parametrize("ratings, line, field", [
    ("1\t10\t5\t100\n2\t11\t3\t90\n3\t10\t4\n", 3, None),           # too few fields
    ("1\t10\t5\t100\n\n2\t11\t3\t90\t7\n", 3, None),                 # too many, after a blank
    ("1\t10\t5\t100\n2\t11\tfour\t90\n", 2, "rating"),               # not an integer
    ("1\t10\t5\t100\n2\t11\t4.5\t90\n", 2, "rating"),
    ("1\t10\t5\t100\n2\t11\t9\t90\n", 2, "rating"),                  # out of range
    ("1\t10\t5\t100\n2\t11\t3\tnoon\n", 2, "timestamp"),
    ("1\t10\t5\t100\n2\t11\t3\t90\n7\t10\t4\t80\n", 3, "user_id"),   # unknown ids
    ("1\t10\t5\t100\n2\t99\t2\t90\n", 2, "item_id"),
])
def test_movielens_bad_ratings_name_line_and_field(tmp_path, ratings, line, field):
    folder = write_movielens(tmp_path / "ml", ratings=ratings)
    with pytest.raises(DataError) as error:
        load_movielens(folder, report=None)
    assert (error.value.file, error.value.line, error.value.field) == (
        str(folder / "u.data"), line, field)


def test_movielens_short_row_says_how_many_fields(tmp_path):
    folder = write_movielens(tmp_path / "ml", ratings="1\t10\t5\t100\n3\t10\t4\n")
    with pytest.raises(DataError, match="expected 4 fields, found 3"):
        load_movielens(folder, report=None)


@pytest.mark.parametrize("users, items, file, line, field", [
    (USERS.replace("2|18|", "2|eighteen|"), ITEMS, "u.user", 2, "age"),
    (USERS + "1|30|F|writer|11111\n", ITEMS, "u.user", 4, "user_id"),  # duplicate id
    (USERS, ITEMS.replace("|0|0|1\n", "|0|2|1\n"), "u.item", 2, "Action"),
    (USERS, ITEMS.replace("12-Mar-1931", "1931"), "u.item", 2, "release_date"),
    (USERS, ITEMS.replace("12|unknown||||1|0|0", "12|unknown||||1|0"), "u.item", 3, None),
    (USERS.replace("|writer|T8H1N", "|writer"), ITEMS, "u.user", 2, None),
])
def test_movielens_bad_users_and_items(tmp_path, users, items, file, line, field):
    folder = write_movielens(tmp_path / "ml", users=users, items=items)
    with pytest.raises(DataError) as error:
        load_movielens(folder, report=None)
    assert (error.value.file, error.value.line, error.value.field) == (
        str(folder / file), line, field)


# --- tabular: the documented example and broken variants -----------------------------------------
def test_tabular_example_loads():
    dataset = load_tabular(EXAMPLE / "mapping.toml")
    assert dataset.name == "example-shop"
    assert dataset.summary() == {"customers": 5, "offers": 6, "interactions": 9}
    assert list(dataset.customers.columns) == ["age_band", "gender", "region"]
    assert pd.isna(dataset.customers.loc["c4", "region"])  # an empty cell is unknown
    assert dataset.offers.loc["B200", "title"] == "Cookbook, vegetarian (low)"
    assert dataset.offers.loc["A100", "category"] == "outdoor|sports"
    assert set(dataset.interactions["kind"]) == {"purchase", "click"}
    assert dataset.interactions["weight"].sum() == 10.0


def test_tabular_iso_timestamps():
    interactions = load_tabular(EXAMPLE / "mapping.toml").interactions
    seconds = dict(zip(zip(interactions["customer_id"], interactions["offer_id"], strict=True),
                       interactions["timestamp"], strict=True))
    assert seconds[("c1", "A100")] == 1704276900   # 2024-01-03T10:15:00Z
    assert seconds[("c2", "B100")] == 1704499200   # a date alone is midnight UTC
    assert seconds[("c2", "B200")] == 1704785400   # 08:30 at +01:00 is 07:30 UTC
    assert interactions["timestamp"].is_monotonic_increasing


@pytest.fixture
def shop(tmp_path) -> Path:
    folder = tmp_path / "shop"
    shutil.copytree(EXAMPLE, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def load_error(shop: Path) -> DataError:
    with pytest.raises(DataError) as error:
        load_tabular(shop / "mapping.toml")
    return error.value


def test_tabular_defaults_and_integer_timestamps(shop):
    (shop / "interactions.csv").write_text("customer_id,sku,ts\nc2,B100,200\nc1,A100,100\n")
    edit(shop / "mapping.toml", 'kind = "event"', "")
    edit(shop / "mapping.toml", 'weight = "quantity"', "")
    interactions = load_tabular(shop / "mapping.toml").interactions
    assert interactions.to_dict("list") == {
        "customer_id": ["c1", "c2"], "offer_id": ["A100", "B100"],
        "kind": ["purchase", "purchase"], "weight": [1.0, 1.0], "timestamp": [100, 200]}


def test_tabular_missing_column(shop):
    edit(shop / "mapping.toml", '"category", "price_band"', '"category", "colour"')
    error = load_error(shop)
    assert (error.file, error.field) == (str(shop / "offers.csv"), "colour")


def test_tabular_missing_file(shop):
    (shop / "offers.csv").unlink()
    error = load_error(shop)
    assert error.file == str(shop / "offers.csv") and "not found" in error.message


def test_tabular_bad_weight_names_line(shop):
    edit(shop / "interactions.csv", "c2,B100,purchase,2,", "c2,B100,purchase,two,")
    error = load_error(shop)
    assert (error.file, error.line, error.field) == (str(shop / "interactions.csv"), 4,
                                                     "quantity")
    assert "'two'" in error.message


def test_tabular_non_positive_weight(shop):
    edit(shop / "interactions.csv", "c3,C100,click,1,", "c3,C100,click,0,")
    assert (load_error(shop).line, load_error(shop).field) == (6, "quantity")


def test_tabular_line_numbers_survive_quoted_newlines_and_blank_lines(shop):
    edit(shop / "offers.csv", '"Cookbook, vegetarian (low)"', '"Cookbook,\nvegetarian (low)"')
    edit(shop / "offers.csv", "C100,", "\nC100,")  # B200 spans lines 5-6, line 7 is blank
    edit(shop / "offers.csv", "C200,Smartwatch", "A100,Smartwatch")
    error = load_error(shop)
    assert (error.file, error.line, error.field) == (str(shop / "offers.csv"), 9, "sku")
    assert "duplicate id 'A100'" in error.message
    edit(shop / "offers.csv", "A100,Smartwatch (high),electronics|sports,high",
         "C200,Smartwatch (high),electronics|sports")
    error = load_error(shop)
    assert (error.line, error.message) == (9, "expected 4 fields, found 3")


def test_tabular_too_many_fields(shop):
    edit(shop / "customers.csv", "c2,35-44,male,south", "c2,35-44,male,south,extra")
    error = load_error(shop)
    assert (error.file, error.line) == (str(shop / "customers.csv"), 3)


def test_tabular_unparsable_timestamp(shop):
    edit(shop / "interactions.csv", "2024-01-12T19:45:00Z", "last tuesday")
    error = load_error(shop)
    assert (error.line, error.field) == (7, "ts")


def test_tabular_unknown_offer(shop):
    edit(shop / "interactions.csv", "c4,B100,", "c4,Z999,")
    error = load_error(shop)
    assert (error.file, error.line, error.field) == (str(shop / "interactions.csv"), 8, "sku")
    assert "Z999" in error.message


def test_tabular_unknown_customer_and_duplicate_id(shop):
    edit(shop / "interactions.csv", "c5,A100", "c9,A100")
    assert (load_error(shop).line, load_error(shop).field) == (9, "customer_id")
    edit(shop / "customers.csv", "c5,", "c1,")
    assert (load_error(shop).file, load_error(shop).line) == (str(shop / "customers.csv"), 6)


def test_tabular_attribute_not_in_taxonomy(shop):
    (shop / "customers.csv").write_text("customer_id,shoe_size\nc1,38\nc2,44\nc3,\nc4,40\nc5,39\n")
    edit(shop / "mapping.toml", '["age_band", "gender", "region"]', '["shoe_size"]')
    error = load_error(shop)
    assert (error.file, error.field) == (str(shop / "mapping.toml"), "customers.attributes")
    # ... unless the mapping brings a taxonomy that gives it a category
    shutil.copy(REPO / "recommender/taxonomy.toml", shop / "my_taxonomy.toml")
    edit(shop / "my_taxonomy.toml", 'interests = "profile"', 'shoe_size = "profile"')
    edit(shop / "mapping.toml", '# taxonomy = "taxonomy.toml"', 'taxonomy = "my_taxonomy.toml"')
    dataset = load_tabular(shop / "mapping.toml")
    assert dataset.taxonomy.category_of("shoe_size") == "profile"


def test_tabular_mapping_typos_are_refused(shop):
    edit(shop / "mapping.toml", "attributes = [\"age_band\"", "atributes = [\"age_band\"")
    assert load_error(shop).field == "customers.atributes"


def test_tabular_mapping_problems(shop):
    with pytest.raises(DataError, match="mapping file not found"):
        load_tabular(shop / "nothing.toml")
    text = (shop / "mapping.toml").read_text()
    (shop / "mapping.toml").write_text(text.split("[offers]")[0])
    assert load_error(shop).field == "offers"
    (shop / "mapping.toml").write_text(text.replace('file = "offers.csv"', 'file = "offers.xlsx"'))
    assert (load_error(shop).file, load_error(shop).field) == (str(shop / "offers.xlsx"), "file")


def test_tabular_crlf_and_empty_files(shop):
    path = shop / "interactions.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n").replace(b",2,", b",x,"))
    assert (load_error(shop).line, load_error(shop).field) == (4, "quantity")
    path.write_text("")
    assert load_error(shop).message == "file is empty"


def test_tabular_parquet_with_numeric_ids_and_datetimes(shop):
    (shop / "customers.csv").write_text("customer_id,age_band\n1,25-34\n2,35-44\n")
    edit(shop / "mapping.toml", '["age_band", "gender", "region"]', '["age_band"]')
    pd.DataFrame({
        "customer_id": [2, 1], "sku": ["A100", "B100"],
        "event": ["click", "purchase"], "quantity": [1.0, 3.0],
        "ts": pd.to_datetime(["2024-01-02 00:00:00", "2024-01-01 00:00:00"]),
    }).to_parquet(shop / "events.parquet")
    edit(shop / "mapping.toml", 'file = "interactions.csv"', 'file = "events.parquet"')
    interactions = load_tabular(shop / "mapping.toml").interactions
    assert interactions["customer_id"].tolist() == ["1", "2"]
    assert interactions["timestamp"].tolist() == [1704067200, 1704153600]
    pd.DataFrame({"customer_id": [1], "sku": ["A100"], "event": ["click"], "quantity": [-1.0],
                  "ts": [5]}).to_parquet(shop / "events.parquet")
    error = load_error(shop)
    assert (error.file, error.line, error.field) == (str(shop / "events.parquet"), None,
                                                     "quantity")
    assert "row 1" in error.message


# --- one entry point ---------------------------------------------------------------------------
def test_load_dataset_dispatches(tmp_path):
    assert load_dataset(EXAMPLE / "mapping.toml", "csv").n_offers == 6
    assert load_dataset(str(EXAMPLE / "mapping.toml"), "Parquet").n_offers == 6
    small = {"n_customers": 40, "n_offers": 20}
    assert load_dataset("3", "synthetic", **small).fingerprint() == \
        load_synthetic(seed=3, **small).fingerprint()
    assert load_dataset(None, "synthetic", **small).name == "synthetic-storefront-0"
    assert load_dataset(write_movielens(tmp_path / "ml"), "movielens", report=None).n_offers == 3


@pytest.mark.parametrize("path, format, field", [
    ("x", "excel", "format"), (None, "movielens", "path"), ("data.csv", "synthetic", "path"),
])
def test_load_dataset_refuses(path, format, field):
    with pytest.raises(DataError) as error:
        load_dataset(path, format)
    assert error.value.field == field


# --- what real logs need: row filters, repeated ids, declared timestamp formats ----------------
LOG = """invoice,customer_id,sku,name,rating,qty,when
1,c1,A100,Trail shoes,5,2,1/3/24 10:15
C2,c1,A100,Trail shoes,5,-2,1/3/24 11:00
3,,B100,Cookbook,4,1,1/4/24 09:00
4,c2,B100,Cookbook (2nd ed.),2,1,1/5/24 12:30
5,c2,C100,Headphones,4,3,1/6/24 08:05
6,c3,C100,Headphones,5,0,1/7/24 16:45
"""


def log_mapping(folder: Path, interactions_filter: str, extra: str = "") -> Path:
    (folder / "log.csv").write_text(LOG)
    mapping = folder / "mapping.toml"
    mapping.write_text(f"""
[customers]
file = "log.csv"
id = "customer_id"
duplicates = "last"
[customers.filter]
drop_empty = ["customer_id"]
[offers]
file = "log.csv"
id = "sku"
title = "name"
duplicates = "last"
[interactions]
file = "log.csv"
customer = "customer_id"
offer = "sku"
timestamp = "when"
timestamp_format = "%m/%d/%y %H:%M"
{extra}
[interactions.filter]
{interactions_filter}
""")
    return mapping


def test_tabular_filters_keep_positive_interactions_and_report_each_rule(tmp_path):
    lines = []
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]\ndrop_prefix = { invoice = "C" }\n'
                                    'above = { qty = 0 }\nmin = { rating = 4 }')
    dataset = load_tabular(mapping, report=lines.append)
    rows = dataset.interactions.sort_values("timestamp")
    assert list(zip(rows["customer_id"], rows["offer_id"], strict=True)) == [("c1", "A100"),
                                                                             ("c2", "C100")]
    assert rows["timestamp"].tolist() == [1704276900, 1704528300]  # 2024-01-03 10:15, 01-06 08:05 UTC
    report = [line for line in lines if "[interactions]" in line][0]
    assert "kept 2 of 6 rows" in report
    for rule in ("drop_empty customer_id: 1", "drop_prefix invoice: 1", "above qty: 1",
                 "min rating: 1"):
        assert rule in report
    # repeated ids: one customer and one offer each, the last row's values; no empty id
    assert list(dataset.customers.index) == ["c1", "c2", "c3"]
    assert dataset.offers.loc["B100", "title"] == "Cookbook (2nd ed.)"


def test_tabular_first_row_wins_with_duplicates_first(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]')
    edit(mapping, 'title = "name"\nduplicates = "last"', 'title = "name"\nduplicates = "first"')
    assert load_tabular(mapping, report=None).offers.loc["B100", "title"] == "Cookbook"


def test_tabular_repeated_ids_need_a_duplicates_policy(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]')
    edit(mapping, 'title = "name"\nduplicates = "last"', 'title = "name"')
    with pytest.raises(DataError, match="duplicate id 'A100'") as error:
        load_tabular(mapping, report=None)
    assert (error.value.line, error.value.field) == (3, "sku")


@pytest.mark.parametrize(("rules", "field", "message"), [
    ('keep = ["qty"]', "interactions.filter.keep", "unknown rule 'keep'"),
    ('above = { qty = "0" }', "interactions.filter.above", "must be a number"),
    ('drop_empty = "customer_id"', "interactions.filter.drop_empty", "list of column names"),
    ('drop_prefix = { invoice = "" }', "interactions.filter.drop_prefix", "non-empty string"),
    ('drop_values = { sku = "A100" }', "interactions.filter.drop_values", "list of strings"),
])
def test_tabular_bad_filter_names_the_rule(tmp_path, rules, field, message):
    with pytest.raises(DataError, match=message) as error:
        load_tabular(log_mapping(tmp_path, rules), report=None)
    assert error.value.field == field


def test_tabular_filter_on_a_value_that_is_not_a_number_names_the_line(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]\nmin = { rating = 4 }')
    edit(tmp_path / "log.csv", "c2,C100,Headphones,4,", "c2,C100,Headphones,four,")
    with pytest.raises(DataError, match="'four' is not a number") as error:
        load_tabular(mapping, report=None)
    assert (error.value.line, error.value.field) == (6, "rating")


def test_tabular_filter_drop_values_and_missing_filter_column(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]\ndrop_values = { sku = ["A100"] }')
    assert set(load_tabular(mapping, report=None).interactions["offer_id"]) == {"B100", "C100"}
    mapping = log_mapping(tmp_path, 'drop_empty = ["colour"]')
    with pytest.raises(DataError, match="column 'colour' not found"):
        load_tabular(mapping, report=None)


def test_tabular_declared_timestamp_format_names_a_row_that_does_not_match(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]')
    edit(tmp_path / "log.csv", "1/5/24 12:30", "2024-01-05 12:30")
    with pytest.raises(DataError, match="does not match the format '%m/%d/%y %H:%M'") as error:
        load_tabular(mapping, report=None)
    assert (error.value.line, error.value.field) == (5, "when")


def test_tabular_duplicates_policy_is_checked(tmp_path):
    mapping = log_mapping(tmp_path, 'drop_empty = ["customer_id"]')
    edit(mapping, 'duplicates = "last"', 'duplicates = "latest"')
    with pytest.raises(DataError, match="must be one of error, first, last") as error:
        load_tabular(mapping, report=None)
    assert error.value.field == "customers.duplicates"


RETAIL = REPO.parent / "shared" / "data" / "online-retail" / "online_retail_dec2010.csv"


@pytest.mark.skipif(not RETAIL.is_file(), reason=f"the retail log is not at {RETAIL}")
def test_retail_log_loads_from_its_raw_file_with_the_example_mapping():
    lines = []
    dataset = load_tabular(REPO / "examples" / "retail" / "mapping.toml", report=lines.append)
    # the figures ../shared/data/online-retail/README.md gives for the purchase lines
    assert dataset.summary() == {"customers": 666, "offers": 2135, "interactions": 18102}
    assert dataset.taxonomy.category_of("Country") == "location"
    assert dataset.customers["Country"].notna().all()
    assert (dataset.interactions["weight"] > 0).all()
    assert any("drop_prefix InvoiceNo: 386" in line for line in lines)
