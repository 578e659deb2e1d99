"""Fairness building blocks on hand-built cases whose answers are known: group metrics and their
spread, the seeded bootstrap, calibration, the calibrated re-rank, the report's files."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from recommender.catalog import calibration_gap, list_distributions
from recommender.evaluation import NO_OFFER, top_k
from recommender.fairness import (
    AuditReport,
    calibrated_rerank,
    compare_groups,
    group_frame,
    latest_audit_summary,
    load_audit,
)
from recommender.fairness.groups import group_labels

# group a: ndcg 0.2, 0.4 (mean 0.3); group b: 0.1, 0.1, 0.1 (mean 0.1)
TABLE = pd.DataFrame({"ndcg": [0.2, 0.4, 0.1, 0.1, 0.1],
                      "gap": [1.0, 3.0, 0.5, 0.5, 0.5]})  # a: 2.0, b: 0.5 (lower is better)
GROUPS = pd.Series(["a", "a", "b", "b", "b"], name="gender")
LISTS = np.array([[0, 1], [1, 2], [3, NO_OFFER], [3, 4], [4, 3]])  # a: {0,1,2}, b: {3,4}


def hand_built(**options):
    options = {"min_group_size": 1} | options
    return compare_groups(TABLE, GROUPS, higher_is_better={"gap": False}, lists=LISTS,
                          n_offers=10, **options)


def test_group_values_difference_and_ratio_are_the_known_ones():
    audit = hand_built()
    ndcg, gap, coverage = (audit.metrics[m] for m in ("ndcg", "gap", "coverage"))
    assert ndcg.by_group == pytest.approx({"a": 0.3, "b": 0.1}, abs=1e-12)
    assert (ndcg.best, ndcg.worst) == ("a", "b")
    assert ndcg.difference == pytest.approx(0.2, abs=1e-12)
    assert ndcg.ratio == pytest.approx(1 / 3, abs=1e-12)
    # lower is better: the best group has the smaller gap; difference and ratio stay max-min, min/max
    assert gap.by_group == pytest.approx({"a": 2.0, "b": 0.5}, abs=1e-12)
    assert (gap.best, gap.worst) == ("b", "a")
    assert (gap.difference, gap.ratio) == pytest.approx((1.5, 0.25), abs=1e-12)
    assert coverage.by_group == pytest.approx({"a": 0.3, "b": 0.2}, abs=1e-12)  # NO_OFFER not counted
    assert coverage.flagged is None  # descriptive, and no valid bootstrap interval
    assert all(math.isnan(bound) for bound in (*coverage.difference_ci, *coverage.group_ci["a"]))
    assert audit.sizes == {"a": 2, "b": 3}


def test_group_values_are_fairlearns_metricframe():
    frame = group_frame(TABLE, GROUPS, lists=LISTS, n_offers=10)
    audit = hand_built()
    for name in ("ndcg", "gap", "coverage"):
        assert audit.metrics[name].by_group == frame.by_group[name].to_dict()
        assert audit.metrics[name].difference == frame.difference()[name]
        assert audit.metrics[name].ratio == frame.ratio()[name]


def test_unknown_values_form_a_group_and_small_groups_are_left_out():
    labels = group_labels(pd.Series(["F", None, "M", np.nan], name="gender"))
    assert list(labels) == ["F", "(unknown)", "M", "(unknown)"]
    audit = hand_built(min_group_size=3)
    assert audit.excluded == {"a": 2} and audit.metrics == {}  # one group left: nothing to compare


def noisy_groups(shift: float, groups: int = 2, size: int = 300, seed: int = 1):
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"g{i}" for i in range(groups)], size)
    values = rng.random(len(labels)) + shift * (labels == "g0")
    return pd.DataFrame({"ndcg": values}), pd.Series(labels, name="attribute")


def test_bootstrap_is_seeded_and_its_intervals_contain_the_estimates():
    values, groups = noisy_groups(shift=0.05)
    first = compare_groups(values, groups, n_boot=300, seed=7).metrics["ndcg"]
    again = compare_groups(values, groups, n_boot=300, seed=7).metrics["ndcg"]
    other = compare_groups(values, groups, n_boot=300, seed=8).metrics["ndcg"]
    assert first.to_json() == again.to_json()
    assert first.difference_ci != other.difference_ci
    assert first.difference == other.difference  # the point estimate does not depend on the seed
    for group, (low, high) in first.group_ci.items():
        assert low < first.by_group[group] < high
    assert first.difference_ci[0] < first.difference < first.difference_ci[1]
    assert first.ratio_ci[0] < first.ratio < first.ratio_ci[1]


def test_a_real_gap_is_flagged_and_noise_is_not():
    planted = compare_groups(*noisy_groups(shift=0.1), seed=0).metrics["ndcg"]
    assert planted.flagged and planted.difference_ci[0] > 0 and planted.worst == "g1"
    # same distribution in both groups: a difference remains, but its interval covers 0
    noise = compare_groups(*noisy_groups(shift=0.0), seed=0).metrics["ndcg"]
    assert noise.difference > 0 and not noise.flagged
    assert noise.difference_ci[0] < 0 < noise.difference_ci[1]


def test_the_flag_pays_for_comparing_every_pair_of_groups():
    """Two groups: the flag tests the reported 95% interval; seven groups (21 pairs): the
    Bonferroni-adjusted one, wider."""
    two = compare_groups(*noisy_groups(shift=0.0), seed=0).metrics["ndcg"]
    assert two.flag_interval == two.difference_ci
    seven = compare_groups(*noisy_groups(shift=0.0, groups=7, size=100), seed=0).metrics["ndcg"]
    tail = 0.05 / (2 * 21)
    assert seven.flag_interval == pytest.approx(tuple(np.quantile(seven.replicates,
                                                                  (tail, 1 - tail))))
    assert seven.flag_interval[0] < seven.difference_ci[0]
    assert seven.flag_interval[1] > seven.difference_ci[1]


def test_calibration_gap_is_smoothed_kl_and_multi_valued_offers_split_evenly():
    offer_categories = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])  # A, A|B, no category
    mix = list_distributions(np.array([[0, 1, 2, NO_OFFER]]), offer_categories)[0]
    assert mix == pytest.approx([0.75, 0.25])
    target, alpha = np.array([0.5, 0.5]), 0.01
    expected = 0.5 * math.log(0.5 / ((1 - alpha) * 0.75 + alpha * 0.5)) \
        + 0.5 * math.log(0.5 / ((1 - alpha) * 0.25 + alpha * 0.5))
    assert calibration_gap(target, mix) == pytest.approx(expected)
    assert calibration_gap(target, target) == pytest.approx(0.0, abs=1e-15)
    assert math.isnan(calibration_gap(np.zeros(2), mix))  # nothing to be calibrated to
    assert calibration_gap(target, np.zeros(2)) == pytest.approx(-math.log(alpha))


# offers 0-5 in category A (scored highest), 6-11 in B
CATEGORIES = np.repeat(np.eye(2), 6, axis=0)
SCORES = np.array([9, 8, 8, 7, 6, 5, 4.5, 4, 3, 2, 1, 0], dtype=float)


def test_rerank_at_strength_zero_is_the_plain_top_k_ties_included():
    rng = np.random.default_rng(0)
    candidates = rng.permutation(12)
    picked = calibrated_rerank(candidates, SCORES[candidates], CATEGORIES, np.array([0.5, 0.5]),
                               k=4, strength=0.0)
    assert list(picked) == list(top_k(SCORES[None], None, 4)[0]) == [0, 1, 2, 3]


def test_rerank_moves_the_list_towards_the_target_mix():
    target, candidates = np.array([0.5, 0.5]), np.arange(12)

    def kl(columns):
        return calibration_gap(target, list_distributions(columns[None], CATEGORIES)[0])

    plain = calibrated_rerank(candidates, SCORES, CATEGORIES, target, k=4, strength=0.0)
    lists = {s: calibrated_rerank(candidates, SCORES, CATEGORIES, target, k=4, strength=s)
             for s in (0.3, 0.9)}
    assert kl(lists[0.3]) < kl(plain) and kl(lists[0.9]) <= kl(lists[0.3])
    assert sorted(lists[0.9]) == [0, 1, 6, 7]  # two of each, the best-scored within each
    assert list(lists[0.9][:1]) == [0]  # relevance still orders equally calibrated choices
    # no categorized history: nothing to calibrate to, the plain list
    empty = calibrated_rerank(candidates, SCORES, CATEGORIES, np.zeros(2), k=4, strength=0.9)
    assert list(empty) == list(plain)
    with pytest.raises(ValueError):
        calibrated_rerank(candidates, SCORES, CATEGORIES, target, k=4, strength=1.5)


def report_of(audit) -> AuditReport:
    return AuditReport(label="hand-built", dataset="toy", k=2, customers=5,
                       overall={"ndcg": 0.18, "undefined": float("nan")},
                       attributes={"gender": audit}, category_attribute=None, n_boot=50, seed=0,
                       confidence=0.95, notes=["A hand-built case."])


def test_json_round_trip_is_strict_json():
    report = report_of(hand_built(n_boot=50))
    text = json.dumps(report.to_json(), allow_nan=False)  # NaN written as null
    back = AuditReport.from_json(json.loads(text))
    assert back.to_json() == report.to_json()
    assert math.isnan(back.overall["undefined"])
    assert back.comparison("gender", "ndcg").by_group == report.comparison("gender", "ndcg").by_group


def test_write_gives_json_markdown_and_one_png_per_attribute(tmp_path):
    report = report_of(hand_built(n_boot=50))
    written = report.write(tmp_path / "v1")
    assert set(written) == {"json", "markdown", "gender"}
    png = written["gender"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert load_audit(tmp_path / "v1").to_json() == report.to_json()
    summary = latest_audit_summary(tmp_path, "v1")
    assert summary == report.to_markdown()
    assert "| ndcg | a 0.3000 | b 0.1000 |" in summary
    assert latest_audit_summary(tmp_path, "never-audited") is None
