"""`make bench-scale` at a small size, end to end (the large rows are measured by hand: README)."""

from __future__ import annotations

import json

from benchmarks import scale


def test_bench_scale_prints_every_column_for_each_size(tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert scale.main(["--sizes", "1200x250,2400x500", "--requests", "20", "--threads", "1",
                       "--index-min-offers", "500", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["customers"], r["offers"]) for r in rows] == [(1200, 250), (2400, 500)]
    printed = capsys.readouterr().out
    assert all(column in printed for column in scale.COLUMNS)
    small, indexed = rows
    assert "index recall@10" not in small and indexed["index MB"] > 0
    assert indexed["index recall@10"] >= 0.9  # the full-size target is README's row
    for row in rows:
        assert row["interactions"] >= 5 * row["customers"]
        assert 0 < row["redis B/customer"] < 3000 and row["http ms"] > 0
