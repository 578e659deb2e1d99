"""Business rules (recommender.rules): the file's validation, applying rules to candidates (unit
tests and properties that must hold for any scores), the watched file, and the notebook preview."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import DataError
from recommender.evaluation import top_k_one
from recommender.features import attribute_values
from recommender.rules import CompiledRules, RulesFile, load_rules, parse_rules, preview, publish_rules

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rules" / "spring.toml"
CATEGORIES = ("books", "food", "home", "sports", "travel")


def catalog(n: int = 40) -> pd.DataFrame:
    """n offers in CATEGORIES, every seventh in two of them ("a|b"), the last without one."""
    values = [CATEGORIES[i % 5] + (f"|{CATEGORIES[(i + 2) % 5]}" if i % 7 == 3 else "")
              for i in range(n)]
    values[-1] = None
    index = pd.Index([f"o{i:03d}" for i in range(n)], name="offer_id")
    return pd.DataFrame({"title": [f"Offer {i}" for i in range(n)], "category": values}, index=index)


OFFERS = catalog()


def rules(body: str = "", offers: pd.DataFrame = OFFERS, **options) -> CompiledRules:
    return CompiledRules(parse_rules(f'version = "t"\n{body}', offers), offers, **options)


def plain_order(candidates: np.ndarray, scores: np.ndarray, k: int) -> list[int]:
    """The top k without rules, by the request path's own top_k_one."""
    full = np.full(len(OFFERS), -np.inf)
    full[candidates] = scores
    return top_k_one(full, k).tolist()


def categories_of(column: int) -> list[str]:
    return attribute_values(OFFERS["category"].iloc[column])


# --- the file ------------------------------------------------------------------------------------
def test_the_example_file_is_valid_and_complete():
    from recommender.loaders import load_synthetic

    parsed = load_rules(EXAMPLE, load_synthetic(0, n_customers=50))
    assert parsed.version and parsed.exclude_offers and parsed.caps and parsed.diversity
    assert {a.kind for a in parsed.adjustments} == {"boost", "bury"}


@pytest.mark.parametrize(("body", "field", "message"), [
    ('colour = "blue"', "colour", "unknown field 'colour'"),
    ('[exclude]\noffer = ["o001"]', "exclude.offer", "unknown field"),
    ('[exclude]\noffers = ["nope"]', "exclude.offers", "unknown offer 'nope'"),
    ('[exclude]\ncategories = ["garden"]', "exclude.categories", "unknown category 'garden'"),
    ('[[boost]]\ncategory = "books"\nfactor = 0', "boost[0].factor", "greater than 0"),
    ('[[bury]]\noffer = "o001"\nfactor = -2', "bury[0].factor", "greater than 0"),
    ('[[boost]]\ncategory = "books"', "boost[0].factor", "required"),
    ('[[boost]]\nfactor = 2', "boost[0]", "names no offer or category"),
    ('[[boost]]\noffers = ["o001", "zz"]\nfactor = 2', "boost[0].offers", "unknown offer 'zz'"),
    ('[[boost]]\ncategory = "books"\nfactor = 2\nweight = 1', "boost[0].weight", "unknown field"),
    ("[[cap]]\nshare = 0", "cap[0].share", "(0, 1]"),
    ("[[cap]]\nshare = 1.5", "cap[0].share", "(0, 1]"),
    ('[[cap]]\nshare = 0.5\ncategory = "garden"', "cap[0].category", "unknown category"),
    ("[diversity]\nstrength = 1.2", "diversity.strength", "[0, 1]"),
    ("[diversity]\nstrength = -0.1", "diversity.strength", "[0, 1]"),
    ('[diversity]\nstrength = 0.5\nby = "colour"', "diversity.by", "must be one of"),
    ('category_attribute = "colour"', "category_attribute", "no attribute 'colour'"),
])
def test_a_bad_field_is_refused_naming_the_file_and_field(tmp_path, body, field, message):
    path = tmp_path / "rules.toml"
    path.write_text(f'version = "1"\n{body}\n')
    with pytest.raises(DataError) as error:
        load_rules(path, OFFERS)
    assert error.value.field == field and error.value.file == str(path)
    assert message in str(error.value)


@pytest.mark.parametrize(("text", "field"), [
    ("", "version"), ('version = ""', "version"), ("version = 3", "version"),
    ('version = "1"\nexclude = 3', "exclude"), ('version = "1"\n[cap', None),
])
def test_version_is_required_and_the_file_must_be_toml(text, field):
    with pytest.raises(DataError) as error:
        parse_rules(text, OFFERS)
    assert error.value.field == field


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_rules(tmp_path / "nope.toml")


def test_without_a_catalog_only_the_fields_are_checked():
    parsed = parse_rules('version = "1"\n[exclude]\noffers = ["anything"]')
    with pytest.raises(DataError, match="unknown offer"):
        CompiledRules(parsed, OFFERS)
    lenient = CompiledRules(parsed, OFFERS, strict=False)  # a new model version lacking it
    assert lenient.unknown == ["anything"] and lenient.n_excluded == 0


# --- applying rules: examples ---------------------------------------------------------------------
SCORES = -np.linspace(0.5, 4.0, 30)  # negative scores, best first
CANDIDATES = np.arange(30)


def test_exclusion_boost_and_bury_report_what_they_changed():
    compiled = rules('[exclude]\noffers = ["o000"]\n'
                     '[[boost]]\nname = "spring"\noffer = "o020"\nfactor = 4\n'
                     '[[bury]]\noffer = "o001"\nfactor = 4')
    outcome = compiled.apply(CANDIDATES, SCORES, 5)
    served = outcome.columns.tolist()
    assert 0 not in served and 1 not in served and served[0] == 20
    changes = {c.offer_id: c for c in outcome.changes}
    assert changes["o000"].change == "excluded" and changes["o000"].rank_without_rules == 1
    assert changes["o000"].rules == ("exclude.offers",) and changes["o000"].rank is None
    assert (changes["o020"].change, changes["o020"].rank_without_rules, changes["o020"].rank) == \
        ("boosted", 21, 1)
    assert changes["o020"].rules == ("spring",)
    assert changes["o001"].change == "buried" and changes["o001"].rank is None
    assert outcome.change_of(1) == changes["o020"]
    np.testing.assert_array_equal(CANDIDATES[outcome.positions], outcome.columns)


def test_a_boost_is_relevance_times_factor_within_the_candidates():
    # relevance of candidate i is 1 - i / 29; factor 2 lifts an offer past those under twice it
    outcome = rules('[[boost]]\noffer = "o020"\nfactor = 2').apply(CANDIDATES, SCORES, 20)
    relevance = 1 - 20 / 29
    assert outcome.columns.tolist().index(20) == sum(1 - i / 29 > 2 * relevance for i in range(30))


def test_cap_and_category_exclusion():
    compiled = rules('[exclude]\ncategories = ["food"]\n[[cap]]\nshare = 0.2')
    outcome = compiled.apply(CANDIDATES, SCORES, 10)
    served = outcome.columns.tolist()
    assert all("food" not in categories_of(c) for c in served)
    for category in CATEGORIES:
        assert sum(category in categories_of(c) for c in served) <= 2
    capped = [c for c in outcome.changes if c.change == "capped"]
    assert capped and all(c.rules == ("cap[0] every category share 0.2",) for c in capped)


def test_cap_of_one_category_leaves_the_others_alone():
    outcome = rules('[[cap]]\nshare = 0.1\ncategory = "books"').apply(CANDIDATES, SCORES, 10)
    served = outcome.columns.tolist()
    books = [c for c in range(30) if "books" in categories_of(c)]
    assert served == [c for c in range(30) if c not in books[1:]][:10]


def test_diversity_by_category_spreads_the_list():
    # candidates of one category first: the plain top 5 is all books
    offers = catalog()
    books = [i for i in range(40) if offers["category"].iloc[i] == "books"]
    others = [i for i in range(40) if i not in books and i != 39]
    candidates = np.array(books + others)
    scores = -np.arange(len(candidates), dtype=float)
    outcome = rules("[diversity]\nstrength = 0.7").apply(candidates, scores, 5)
    assert len({OFFERS["category"].iloc[c] for c in outcome.columns}) > 2
    assert any(c.change == "diversified" for c in outcome.changes)


def test_diversity_by_vectors_uses_cosine_of_the_offer_vectors():
    vectors = np.zeros((40, 2))
    vectors[:, 0] = 1
    vectors[5:, :] = [0, 1]  # offers 0-4 point one way, the rest another
    compiled = rules('[diversity]\nstrength = 0.9\nby = "vectors"', item_vectors=vectors)
    assert 5 in compiled.apply(CANDIDATES, SCORES, 2).columns.tolist()


def test_effects_of_an_offer_for_the_why_endpoint():
    compiled = rules('[exclude]\noffers = ["o000"]\n[[boost]]\noffer = "o001"\nfactor = 2\n'
                     '[[bury]]\noffer = "o002"\nfactor = 2')
    assert [compiled.effects(c) for c in range(4)] == [["excluded"], ["boosted"], ["buried"], []]


# --- properties: for any scores -------------------------------------------------------------------
@st.composite
def requests(draw):
    n = draw(st.integers(min_value=12, max_value=40))
    candidates = np.array(draw(st.permutations(range(40)))[:n])
    # few distinct values, so that ties are common
    scores = np.array(draw(st.lists(st.sampled_from([-3.0, -1.5, -0.2, 0.0, 0.7, 2.5]) | st.floats(-5, 5),
                                    min_size=n, max_size=n)))
    k = draw(st.integers(min_value=1, max_value=n - 1))
    return candidates, scores, k


PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTIES
@given(requests(), st.sets(st.integers(0, 39), max_size=8), st.sampled_from([(), ("home",)]))
def test_excluded_offers_never_appear(request, offers, categories):
    candidates, scores, k = request
    body = (f"[exclude]\noffers = {[f'o{i:03d}' for i in sorted(offers)]}\n"
            f"categories = {list(categories)}")
    compiled = rules(body)
    served = compiled.apply(candidates, scores, k).columns.tolist()
    assert not set(served) & offers
    assert all("home" not in categories_of(c) for c in served) or not categories
    eligible = [c for c in candidates.tolist() if not compiled.excluded[c]]
    assert len(served) == min(k, len(eligible)) and len(set(served)) == len(served)


@PROPERTIES
@given(requests(), st.floats(0.05, 1.0), st.floats(0, 1), st.sampled_from(["category", "vectors"]))
def test_the_cap_holds_with_and_without_diversity(request, share, strength, by):
    candidates, scores, k = request
    vectors = np.random.default_rng(0).normal(size=(40, 4))
    compiled = rules(f'[[cap]]\nshare = {share}\n[diversity]\nstrength = {strength}\nby = "{by}"',
                     item_vectors=vectors)
    served = compiled.apply(candidates, scores, k).columns.tolist()
    for category in CATEGORIES:
        assert sum(category in categories_of(c) for c in served) <= math.ceil(share * k - 1e-9)
    assert set(served) <= set(candidates.tolist())


@PROPERTIES
@given(requests())
def test_no_rules_boost_one_and_diversity_zero_change_nothing(request):
    candidates, scores, k = request
    expected = plain_order(candidates, scores, k)
    for body in ("", '[[boost]]\ncategory = "books"\nfactor = 1\n[[bury]]\noffer = "o003"\nfactor = 1',
                 "[diversity]\nstrength = 0"):
        outcome = rules(body).apply(candidates, scores, k)
        assert outcome.columns.tolist() == expected and outcome.changes == []


@PROPERTIES
@given(requests(), st.sampled_from(['[exclude]\noffers = ["o001", "o005"]', '[[cap]]\nshare = 0.3',
                                    '[[boost]]\ncategory = "home"\nfactor = 2\n[diversity]\nstrength = 0.4']))
def test_candidates_given_best_first_need_no_sorting(request, body):
    candidates, scores, k = request
    compiled = rules(body)
    best_first = np.lexsort((candidates, -scores))
    given_sorted = compiled.apply(candidates[best_first], scores[best_first], k, ordered=True)
    unsorted = compiled.apply(candidates, scores, k)
    assert given_sorted.columns.tolist() == unsorted.columns.tolist()
    assert given_sorted.changes == unsorted.changes
    np.testing.assert_array_equal(candidates[best_first][given_sorted.positions], given_sorted.columns)


@PROPERTIES
@given(requests(), st.floats(1.01, 50))
def test_a_boosted_offer_never_falls_and_is_reported_when_it_rises(request, factor):
    candidates, scores, k = request
    target = int(candidates[len(candidates) // 2])
    outcome = rules(f'[[boost]]\noffer = "o{target:03d}"\nfactor = {factor}').apply(candidates, scores, k)
    before = plain_order(candidates, scores, len(candidates)).index(target) + 1
    served = outcome.columns.tolist()
    if before <= k:
        assert served.index(target) + 1 <= before
    if target in served and served.index(target) + 1 < before:
        assert outcome.change_of(served.index(target) + 1).change == "boosted"


# --- the watched file -----------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, version: str, body: str = "") -> None:
    publish_rules(parse_rules(f'version = "{version}"\n{body}'), path)


def test_the_file_is_reread_at_most_once_per_interval_and_bad_files_are_refused(tmp_path, caplog):
    path, clock = tmp_path / "rules.toml", Clock()
    write(path, "v1", '[exclude]\noffers = ["o000"]')
    source = RulesFile(path, check_interval_ms=1000, clock=clock)
    assert source.compiled("m1", OFFERS).version == "v1" and source.version == "v1"
    write(path, "v2")
    assert source.compiled("m1", OFFERS).version == "v1"  # not a second yet
    clock.now = 1.0
    assert source.compiled("m1", OFFERS).version == "v2"
    caplog.set_level(logging.ERROR)
    for bad in ('version = "v3"\ncolour = 1', 'version = "v3"\n[exclude]\noffers = ["nope"]'):
        path.write_text(bad)
        clock.now += 1
        assert source.compiled("m1", OFFERS).version == "v2"
        assert "rule file refused, rules v2 stay in force" in caplog.text
        caplog.clear()
    path.unlink()
    clock.now += 1
    assert source.compiled("m1", OFFERS).version == "v2"  # a vanished file changes nothing


def test_a_new_model_version_keeps_rules_naming_offers_it_lacks(tmp_path, caplog):
    path = tmp_path / "rules.toml"
    write(path, "v1", '[exclude]\noffers = ["o039"]')
    source = RulesFile(path, check_interval_ms=0)
    assert source.compiled("m1", OFFERS).n_excluded == 1
    with caplog.at_level(logging.WARNING):
        smaller = source.compiled("m2", catalog(20))
    assert smaller.version == "v1" and smaller.n_excluded == 0 and "o039" in caplog.text


def test_a_first_file_naming_an_unknown_offer_gives_no_rules(tmp_path):
    path = tmp_path / "rules.toml"
    write(path, "v1", '[exclude]\noffers = ["o999"]')
    source = RulesFile(path, check_interval_ms=0)
    assert source.compiled("m1", OFFERS) is None and source.version is None
    # the next model version's catalog has the offer: the same file is held to it again
    assert source.compiled("m1", OFFERS) is None
    later = source.compiled("m2", catalog(1000))
    assert later is not None and later.version == "v1" and later.n_excluded == 1


def test_publish_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "live" / "rules.toml"
    write(target, "v1")
    inode = target.stat().st_ino
    write(target, "v2")
    assert load_rules(target).version == "v2" and target.stat().st_ino != inode
    assert [p.name for p in target.parent.iterdir()] == ["rules.toml"]  # no temporary left


# --- the notebook preview --------------------------------------------------------------------------
def test_preview_shows_offers_metrics_and_category_mix_before_and_after():
    from recommender.loaders import load_synthetic
    from recommender.training import train_and_evaluate

    dataset = load_synthetic(0, n_customers=300, n_offers=60)
    run = train_and_evaluate(dataset, "popularity")
    top = run.model.score(np.array([0]))[0].argmax()
    top_category = dataset.offers["category"].iloc[top]
    result = preview(run, parse_rules(
        f'version = "p1"\n[exclude]\ncategories = ["{top_category}"]\n[[cap]]\nshare = 0.3', dataset))
    assert set(result.metrics.index) == {"ndcg@10", "recall@10", "precision@10", "hit_rate@10",
                                         "coverage@10"}
    assert result.metrics.loc["ndcg@10", "before"] == pytest.approx(run.test_metrics["ndcg@10"])
    assert result.category_mix.loc[top_category, "after"] == 0
    assert result.category_mix.loc[top_category, "before"] > 0
    assert result.category_mix.sum().round(9).tolist() == [1.0, 1.0]
    assert result.change_counts["excluded"] > 0
    assert len(result.offers) == 30
    assert set(result.offers["customer_id"]) == set(result.changes["customer_id"])
    assert (result.offers["after_category"] != top_category).all()
    ax = result.plot()
    assert ax.get_ylabel() == "share of offers shown"
    unchanged = preview(run, parse_rules('version = "none"'), customers=[dataset.customer_ids[0]])
    assert (unchanged.metrics["change"] == 0).all() and unchanged.changes.empty
    assert (unchanged.offers["before"] == unchanged.offers["after"]).all()


@PROPERTIES
@given(st.lists(st.integers(-1, 4), min_size=2, max_size=30), st.floats(0, 1), st.integers(1, 12),
       st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1), min_size=30, max_size=30))
def test_one_category_mmr_sorts_to_the_greedy_loops_order(categories, strength, k, gains):
    from recommender.rules import select

    categories = np.array(categories)
    order = np.arange(len(categories))
    gain = -np.sort(-np.array(gains[:len(categories)]), kind="stable")  # order: by gain, best first
    rows = np.zeros((len(categories), 5))
    rows[categories >= 0, categories[categories >= 0]] = 1.0
    looped, _ = select.mmr(order, gain, rows, strength, k)
    assert select.mmr(order, gain, rows, 0.0, k)[0] == order[:k].tolist()
    sorted_at_once = select.one_category_mmr_order(order, gain, rows > 0, strength)[:k]
    assert looped == sorted_at_once.tolist()


def test_preview_of_an_artifact_refits_its_configuration_on_the_training_split():
    from trained import artifact_for

    from recommender.evaluation import evaluate
    from recommender.loaders import load_synthetic
    from recommender.models import make_model
    from recommender.split import temporal_split

    dataset = load_synthetic(0, n_customers=300, n_offers=60)
    artifact = artifact_for(dataset, "popularity")
    rules_text = parse_rules('version = "a1"\n[[cap]]\nshare = 0.2', dataset)
    result = preview(artifact, rules_text, dataset=dataset, customers=[])
    split = temporal_split(dataset)
    refitted = evaluate(make_model("popularity").fit(split.train).score, split)
    assert result.metrics.loc["ndcg@10", "before"] == pytest.approx(refitted["ndcg@10"])
    assert result.change_counts["capped"] > 0
    with pytest.raises(DataError, match="needs the dataset"):
        preview(artifact, rules_text)
