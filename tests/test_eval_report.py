"""Summaries, bootstrap intervals, Markdown, JSON, chart, and side-by-side comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from imagenet_think.evaluate.report import (
    bootstrap_ci,
    combine,
    describe_differences,
    draw_chart,
    load_summary,
    render_markdown,
    summarize,
    write_report,
)
from imagenet_think.schema import TEACHERS


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
    assert summary["runs"] == [{
        "model": "m", "subset_size": 3, "scored_rows": 3, "ids_without_prediction": [], "predictions_outside_subset": 0,
        "status_counts": {"ok": 2, "no_think": 1}, "settings": {"k": 1},
    }]
    coverage = {"subset_size": 5, "ids_without_prediction": ["x", "y"], "predictions_outside_subset": 4}
    assert summarize(scores_table([0.2, 0.1, 0.6]), "m", num_resamples=10, coverage=coverage)["runs"][0].items() >= coverage.items()


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


def test_an_older_results_file_with_n_rows_still_loads(tmp_path):
    old = {"runs": [{"model": "m", "n_rows": 4, "status_counts": {}, "settings": {}}], "results": []}
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert load_summary(tmp_path)["runs"][0]["scored_rows"] == 4


def run_summary(model, settings, values, metrics=("think.jaccard", "answer.rouge1_f")):
    columns = {"id": [f"r{i}" for i in range(len(values))], "status": ["ok"] * len(values)}
    for name in metrics:
        for reference in ("teacher1", "teacher2", "best"):
            columns[f"{name}.{reference}"] = values
    coverage = {"subset_size": len(values) + 1, "ids_without_prediction": ["gone"], "predictions_outside_subset": 0}
    return summarize(pa.table(columns), model, settings, num_resamples=20, coverage=coverage)


def test_differing_score_settings_are_named_only_where_the_metric_was_computed():
    lexical = {"metrics": ["jaccard", "rouge1_f"], "tfidf_fit": "pair", "rouge_stemmer": False, "bertscore_model": "a"}
    other = {**lexical, "rouge_stemmer": True, "bertscore_model": "b"}  # bertscore_f1 computed by neither
    both = combine([run_summary("m1", lexical, [0.5, 0.5]), run_summary("m2", other, [0.5, 0.5])], ["x", "y"])
    assert describe_differences(both) == "the runs differ in settings that change scores: rouge_stemmer (m1: False, m2: True)"
    table = render_markdown(both)
    assert "**Warning:** the runs differ in settings that change scores: rouge_stemmer" in table
    assert "| rouge_stemmer (differs) | False | True |" in table and "| tfidf_fit | – | – |" in table  # not computed
    same = combine([run_summary("m1", lexical, [0.5, 0.5]), run_summary("m2", lexical, [0.1, 0.2])], ["x", "y"])
    assert describe_differences(same) == "" and "Warning" not in render_markdown(same)


def test_the_chart_names_models_marks_missing_metrics_and_has_one_legend():
    import matplotlib.pyplot as plt

    settings = {"metrics": ["jaccard", "rouge1_f", "bertscore_f1"], "bertscore_model": "roberta-large", "bertscore_layers": 17}
    full = run_summary("alpha", settings, [1.0, 1.0, 1.0], ("think.jaccard", "answer.rouge1_f", "think.bertscore_f1"))
    partial = run_summary("beta", {**settings, "metrics": ["jaccard", "rouge1_f"]}, [0.2, 0.4, 0.6])
    figure = draw_chart(combine([full, partial], ["a", "b"]))
    try:
        title = figure._suptitle.get_text()
        assert "alpha, beta" in title and "BERTScore roberta-large layer 17" not in title  # beta has no BERTScore
        axes = figure.axes
        panel_titles = [ax.get_title() for ax in axes]
        assert f"think vs teacher 1 ({TEACHERS[1].split('/')[-1]})" in panel_titles
        assert f"answer vs teacher 2 ({TEACHERS[2].split('/')[-1]})" in panel_titles
        assert all("mean score" in ax.get_ylabel() for ax in axes[::3])
        assert all(ax.get_ylim()[1] > 1.05 for ax in axes)  # room for the CI whisker of a bar at 1.0
        # think panel, metrics bertscore_f1, rouge1_f, jaccard: alpha has think bertscore and jaccard (1.0),
        # beta think jaccard (mean 0.4); rouge1_f was scored on answers only. Three n/a marks, no zero bars.
        think_panel = axes[0]
        heights = sorted(round(p.get_height(), 6) for p in think_panel.patches)
        assert heights == [0.4, 1.0, 1.0]
        assert [t.get_text() for t in think_panel.texts] == ["n/a"] * 3
        assert len(figure.legends) == 1 and not any(ax.get_legend() for ax in axes)
        labels = [t.get_text() for t in figure.legends[0].get_texts()]
        assert labels == ["alpha: BERTScore roberta-large layer 17", "beta"]
    finally:
        plt.close(figure)


def label_scores():
    """Hand-built rewards: the model names the class once, an ancestor once (0.25), misses once,
    and one row has no wnid in the table (NaN); teacher 1 names it twice of three, teacher 2 never answered."""
    return pa.table({
        "id": ["a", "b", "c", "d"], "status": ["ok"] * 4,
        "answer.jaccard.teacher1": [0.5, 0.5, 0.5, 0.5],
        "label_reward.prediction": [1.0, 0.25, 0.0, float("nan")],
        "label_reward.teacher1": [1.0, 1.0, 0.5, float("nan")],
        "label_reward.teacher2": [float("nan")] * 4,
    })  # fmt: skip


def test_label_figures_with_bootstrap_intervals():
    summary = summarize(label_scores(), "m", {"label_reward": {"decay": 0.5, "max_depth": 3, "exclusive": False}}, num_resamples=300)
    figures = {(r["answers"], r["figure"]): r for r in summary["labels"]}
    expected = {
        ("prediction", "named"): 1 / 3, ("prediction", "ancestor"): 1 / 3, ("prediction", "reward"): 1.25 / 3,
        ("teacher1", "named"): 2 / 3, ("teacher1", "ancestor"): 1 / 3, ("teacher1", "reward"): 2.5 / 3,
    }  # fmt: skip
    for key, mean in expected.items():
        row = figures[key]
        assert row["mean"] == pytest.approx(mean) and row["n"] == 3 and row["model"] == "m"
        assert row["ci_low"] <= mean <= row["ci_high"]
    named = np.array([1.0, 0.0, 0.0])  # the same bootstrap as every metric
    assert (figures[("prediction", "named")]["ci_low"], figures[("prediction", "named")]["ci_high"]) == bootstrap_ci(named, 300)
    assert all(math.isnan(figures[("teacher2", f)]["mean"]) and figures[("teacher2", f)]["n"] == 0 for f in ("named", "reward"))
    assert [r["metric"] for r in summary["results"]] == ["jaccard"]  # label columns are not similarity metrics
    table = render_markdown(summary)
    assert "## Label accuracy" in table and "m: decay 0.5, max_depth 3, exclusive False" in table
    assert "| m | 0.333 [" in table and "| 3 |" in table
    assert "| m: teacher 2 answers | – | – | – | 0 |" in table


def test_label_figures_survive_json_and_comparison(tmp_path):
    summary = summarize(label_scores(), "m", num_resamples=50)
    write_report(summary, tmp_path / "one")
    loaded = load_summary(tmp_path / "one")
    assert math.isnan(next(r["mean"] for r in loaded["labels"] if r["answers"] == "teacher2"))
    both = combine([loaded, loaded], ["x", "y"])
    assert {r["model"] for r in both["labels"]} == {"m [x]", "m [y]"} and len(both["labels"]) == 2 * len(loaded["labels"])
    assert "| m [y]: teacher 1 answers | 0.667 [" in render_markdown(both)
    older = {"runs": loaded["runs"], "results": loaded["results"]}  # written before label accuracy existed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(older))
    assert load_summary(tmp_path / "old")["labels"] == [] and "Label accuracy" not in render_markdown(load_summary(tmp_path / "old"))
