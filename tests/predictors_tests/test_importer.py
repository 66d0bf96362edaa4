from __future__ import annotations

import csv

import pytest

from predictors.dataset import DatasetStore
from predictors.dataset.importer import import_table, parse_metric
from search_spaces.errors import HwnasError

GOOD = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]


def _csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_s", "energy"])
        w.writerows(rows)
    return path


def test_metric_mapping_with_unit_conversion():
    assert parse_metric("latency_ms=latency_s*1000") == ("latency_ms", "latency_s", 1000.0)
    assert parse_metric("energy_mj = energy") == ("energy_mj", "energy", 1.0)
    with pytest.raises(HwnasError, match="NAME=COLUMN"):
        parse_metric("latency")


def test_bad_rows_are_reported_and_skipped_the_rest_imported(tmp_path):
    table = _csv(tmp_path / "t.csv", [
        [GOOD[0], "0.012", "3.5"],
        ["|not_an_op~0|+|", "0.010", "1"],
        [GOOD[1], "fast", "1"],
        [GOOD[1], "-1", "1"],
        [GOOD[1], "0.004", "2.0"],
    ])
    out = tmp_path / "ds"
    stats = import_table(out, "nasbench201", table, "arch", ["latency_ms=latency_s*1000", "energy_mj=energy"],
                         "my-board", progress=False)
    assert stats["imported"] == 2 and stats["rows"] == 5
    skipped = stats["skipped"]
    assert skipped["arch does not parse"]["count"] == 1
    assert skipped["non-numeric value"]["count"] == 1 and "line 4" in skipped["non-numeric value"]["examples"][0]
    assert skipped["non-positive or non-finite value"]["count"] == 1
    with DatasetStore(out) as store:
        labels = {r["arch"]["arch_str"]: r["labels"]["my-board"] for r in store.rows()}
    assert labels[GOOD[0]] == {"latency_ms": pytest.approx(12.0), "energy_mj": 3.5}
    # resumable: a second run finds everything there; another device reuses the exports
    again = import_table(out, "nasbench201", table, "arch", ["latency_ms=latency_s*1000"], "my-board",
                         progress=False)
    assert again["imported"] == 0 and again["already"] == 2
    other = import_table(out, "nasbench201", table, "arch", ["latency_ms=latency_s*1000"], "other-board",
                         progress=False)
    assert other["reused_exports"] == 2


def test_errors_when_nothing_is_usable(tmp_path):
    table = _csv(tmp_path / "t.csv", [["|nope|", "1", "1"]])
    with pytest.raises(HwnasError, match="no usable rows.*arch does not parse"):
        import_table(tmp_path / "a", "nasbench201", table, "arch", ["latency_ms=latency_s"], "x", progress=False)
    with pytest.raises(HwnasError, match="no column 'lat'"):
        import_table(tmp_path / "b", "nasbench201", table, "arch", ["latency_ms=lat"], "x", progress=False)
    with pytest.raises(HwnasError, match="cannot read"):
        import_table(tmp_path / "c", "nasbench201", tmp_path / "missing.csv", "arch", ["a=b"], "x", progress=False)
