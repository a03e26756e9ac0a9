"""Summaries, bootstrap intervals, Markdown, JSON, chart, and side-by-side comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from imagenet_think.evaluate.report import bootstrap_ci, combine, load_summary, render_markdown, summarize, write_report


def scores_table(values, second=None):
    columns = {"id": [f"r{i}" for i in range(len(values))], "status": ["ok"] * (len(values) - 1) + ["no_think"]}
    columns["think.jaccard.teacher1"] = values
    columns["answer.rouge1_f.best"] = second if second is not None else values
    return pa.table(columns)


def test_bootstrap_matches_a_direct_numpy_bootstrap():
    values = np.random.default_rng(1).random(50)
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, 50, size=(400, 50))].mean(axis=1)
    assert bootstrap_ci(values, 400, seed=7) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_bootstrap_interval_narrows_with_more_data_and_holds_the_mean():
    rng = np.random.default_rng(0)
    small, large = rng.random(20), rng.random(2000)
    (a, b), (c, d) = bootstrap_ci(small), bootstrap_ci(large)
    assert a < small.mean() < b and c < large.mean() < d
    assert d - c < b - a


def test_summary_skips_nan_and_counts_statuses():
    summary = summarize(scores_table([0.2, float("nan"), 0.6]), "m", {"k": 1}, num_resamples=100)
    row = next(r for r in summary["results"] if r["metric"] == "jaccard")
    assert (row["part"], row["reference"], row["n"]) == ("think", "teacher1", 2)
    assert row["mean"] == pytest.approx(0.4)
    assert summary["runs"] == [{"model": "m", "n_rows": 3, "status_counts": {"ok": 2, "no_think": 1}, "settings": {"k": 1}}]


def test_all_nan_column_gives_nan_mean_and_dash():
    summary = summarize(scores_table([float("nan")] * 2, [0.5, 0.5]), "m", num_resamples=10)
    row = next(r for r in summary["results"] if r["metric"] == "jaccard")
    assert math.isnan(row["mean"]) and row["n"] == 0
    assert "| think | jaccard | – |" in render_markdown(summary)


def test_report_files_round_trip(tmp_path):
    summary = summarize(scores_table([float("nan")] * 3, [0.1, 0.3, float("nan")]), "m", num_resamples=50)
    paths = write_report(summary, tmp_path / "run")
    assert [p.name for p in paths] == ["results.json", "results.md", "results.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def reject(constant):
        raise AssertionError(f"results.json holds {constant}, which is not JSON")

    raw = json.loads(paths[0].read_text(), parse_constant=reject)
    assert [r["mean"] for r in raw["results"]] == [None, pytest.approx(0.2)]
    loaded = load_summary(tmp_path / "run")
    assert math.isnan(loaded["results"][0]["mean"]) and loaded["results"][1]["mean"] == pytest.approx(0.2)
    table = paths[1].read_text()
    assert "## Against teacher 1 (GLM-4.1V-9B-Thinking)" in table
    assert "## Against best of the two teachers" in table
    assert "| answer | rouge1_f | 0.200 [" in table


def test_compare_puts_models_in_columns(tmp_path):
    first = summarize(scores_table([0.1, 0.3, 0.2]), "alpha", num_resamples=20)
    second = summarize(scores_table([0.7, 0.9, 0.8]), "beta", num_resamples=20)
    third = summarize(scores_table([0.5, 0.5, 0.5]), "beta", num_resamples=20)
    both = combine([first, second, third], ["a", "b", "c"])
    assert [run["model"] for run in both["runs"]] == ["alpha", "beta [b]", "beta [c]"]
    table = render_markdown(both)
    assert "| part | metric | alpha | beta [b] | beta [c] |" in table
    assert "| think | jaccard | 0.200 [" in table and "0.800 [" in table
    write_report(both, tmp_path)
    assert len(load_summary(tmp_path)["runs"]) == 3


def test_missing_results_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json: no results here"):
        load_summary(tmp_path)
