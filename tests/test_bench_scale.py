"""`make bench-scale` at two small sizes, end to end (the large rows are measured by hand:
docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_scale_prints_every_column_for_each_size(tmp_path):
    out = tmp_path / "scale.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--sizes", "1200x250,2400x500", "--requests",
         "20", "--threads", "1", "--index-min-offers", "500", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["customers"], r["offers"]) for r in rows] == [(1200, 250), (2400, 500)]
    header = next(line for line in run.stdout.splitlines() if line.startswith("customers"))
    for column in ("train s", "peak RSS MB", "redis B/customer", "request ms", "http ms",
                   "index recall@10"):
        assert column in header
    small, indexed = rows
    assert "index recall@10" not in small and indexed["index MB"] > 0
    assert indexed["index recall@10"] >= 0.9  # the full-size figures are docs/benchmarks.md's
    for row in rows:
        assert row["interactions"] >= 5 * row["customers"]
        # the record, key and overhead included (10.7 KB when partial vectors were stored whole)
        assert 0 < row["redis B/customer"] < 1500 and row["http ms"] > 0
