"""Results of one or more evaluation runs: JSON, a Markdown table and a PNG bar chart.

Each score column ``<part>.<metric>.<reference>`` (see :mod:`imagenet_think.evaluate.scoring`)
becomes one result row: the mean over the examples where the metric is defined (NaN scores,
from empty teacher references, are left out and ``n`` counts the rest) with a 95 % percentile
bootstrap confidence interval of that mean (``num_resamples`` resamples drawn with
``numpy.random.default_rng(seed)``; the generator restarts for every column, so all columns
of a run are resampled with the same example indices when their ``n`` agree).

``results.json`` holds ``{"runs": [{"model", "n_rows", "status_counts", "settings"}, ...],
"results": [{"model", "part", "metric", "reference", "mean", "ci_low", "ci_high", "n"}, ...]}``
(NaN written as ``null``).  A comparison of several runs has the same shape, with one entry
per run, so comparisons can be compared again.

>>> import pyarrow as pa
>>> scores = pa.table({"id": ["a", "b"], "status": ["ok", "no_think"],
...                    "answer.jaccard.teacher1": [0.5, 1.0]})
>>> row = summarize(scores, "m", num_resamples=200)["results"][0]
>>> row["part"], row["metric"], row["reference"], row["mean"], row["n"]
('answer', 'jaccard', 'teacher1', 0.75, 2)
>>> row["ci_low"] >= 0.5 and row["ci_high"] <= 1.0
True
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import pyarrow as pa

from imagenet_think.evaluate.metrics import METRIC_NAMES
from imagenet_think.evaluate.scoring import PARTS, REFERENCES
from imagenet_think.schema import TEACHERS

RESULT_FILES = ("results.json", "results.md", "results.png")

REFERENCE_TITLES = {
    "teacher1": f"teacher 1 ({TEACHERS[1].split('/')[-1]})",
    "teacher2": f"teacher 2 ({TEACHERS[2].split('/')[-1]})",
    "best": "best of the two teachers (per-example max)",
}


def bootstrap_ci(values: np.ndarray, num_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs must be removed first).

    >>> bootstrap_ci(np.array([2.0, 2.0, 2.0]))
    (2.0, 2.0)
    >>> bootstrap_ci(np.array([]))
    (nan, nan)
    """
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    block = max(1, 5_000_000 // values.size)
    means = []
    for done in range(0, num_resamples, block):
        picks = rng.integers(0, values.size, size=(min(block, num_resamples - done), values.size))
        means.append(values[picks].mean(axis=1))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(np.concatenate(means), [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(
    scores: pa.Table,
    model: str,
    settings: dict[str, Any] | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """One run's results (see the module docstring for the shape) from its per-example scores."""
    rows = []
    for name in scores.column_names:
        if name.count(".") != 2:
            continue
        part, metric, reference = name.split(".")
        values = scores[name].to_numpy(zero_copy_only=False).astype(float)
        values = values[~np.isnan(values)]
        low, high = bootstrap_ci(values, num_resamples, seed)
        mean = float(values.mean()) if values.size else math.nan
        rows.append(dict(model=model, part=part, metric=metric, reference=reference, mean=mean, ci_low=low, ci_high=high, n=int(values.size)))
    statuses = scores["status"].value_counts().to_pylist() if "status" in scores.column_names else []
    run = {
        "model": model,
        "n_rows": scores.num_rows,
        "status_counts": {entry["values"]: entry["counts"] for entry in statuses},
        "settings": settings or {},
    }
    return {"runs": [run], "results": rows}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["mean"] is None or math.isnan(row["mean"]):
        return "–"
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _ordered(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    models = list(dict.fromkeys(run["model"] for run in summary["runs"]))
    found = {row["metric"] for row in summary["results"]}
    metrics = [m for m in METRIC_NAMES if m in found] + sorted(found - set(METRIC_NAMES))
    return models, metrics


def render_markdown(summary: dict[str, Any]) -> str:
    """Markdown: one table per reference, a row per (part, metric), a column per model.

    >>> print(render_markdown({"runs": [{"model": "m", "n_rows": 1, "status_counts": {"ok": 1}}],
    ...     "results": [dict(model="m", part="answer", metric="jaccard", reference="best",
    ...                      mean=0.5, ci_low=0.4, ci_high=0.6, n=1)]}).splitlines()[-1])
    | answer | jaccard | 0.500 [0.400, 0.600] |
    """
    models, metrics = _ordered(summary)
    index = {(r["model"], r["part"], r["metric"], r["reference"]): r for r in summary["results"]}
    lines = ["# Evaluation results", "", "Mean score with 95 % bootstrap confidence interval.", ""]
    lines += ["| model | rows | prediction status |", "| --- | --- | --- |"]
    for run in summary["runs"]:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(run.get("status_counts", {}).items()))
        lines.append(f"| {run['model']} | {run['n_rows']} | {counts} |")
    for reference in REFERENCES:
        if not any(key[3] == reference for key in index):
            continue
        lines += ["", f"## Against {REFERENCE_TITLES[reference]}", ""]
        lines += ["| part | metric | " + " | ".join(models) + " |", "| --- | --- |" + " --- |" * len(models)]
        for part in PARTS:
            for metric in metrics:
                if any((model, part, metric, reference) in index for model in models):
                    cells = " | ".join(_cell(index.get((model, part, metric, reference))) for model in models)
                    lines.append(f"| {part} | {metric} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_results(summary: dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Bar chart: a panel per (part, reference), a bar group per metric, a bar per model, CI whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, metrics = _ordered(summary)
    index = {(r["model"], r["part"], r["metric"], r["reference"]): r for r in summary["results"]}
    figure, axes = plt.subplots(len(PARTS), len(REFERENCES), figsize=(6 * len(REFERENCES), 4 * len(PARTS)), squeeze=False)
    width = 0.8 / max(1, len(models))
    positions = np.arange(len(metrics))
    for row_axes, part in zip(axes, PARTS):
        for ax, reference in zip(row_axes, REFERENCES):
            for k, model in enumerate(models):
                found = [index.get((model, part, metric, reference)) for metric in metrics]
                means = np.array([r["mean"] if r and r["mean"] is not None else np.nan for r in found], dtype=float)
                lows = np.array([r["ci_low"] if r and r["ci_low"] is not None else np.nan for r in found], dtype=float)
                highs = np.array([r["ci_high"] if r and r["ci_high"] is not None else np.nan for r in found], dtype=float)
                errors = np.nan_to_num(np.vstack([means - lows, highs - means]))
                ax.bar(positions + k * width, np.nan_to_num(means), width, yerr=errors, capsize=2, label=model)
            ax.set_title(f"{part} vs {reference}")
            ax.set_xticks(positions + width * (len(models) - 1) / 2)
            ax.set_xticklabels(metrics, rotation=35, ha="right", fontsize=8)
            ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(summary: dict[str, Any], out_dir: Union[str, os.PathLike]) -> list[Path]:
    """Write ``results.json``, ``results.md`` and ``results.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in RESULT_FILES]
    paths[0].write_text(json.dumps(_jsonable(summary), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(summary), encoding="utf-8")
    plot_results(summary, paths[2])
    return paths


def load_summary(run_dir: Union[str, os.PathLike]) -> dict[str, Any]:
    """The ``results.json`` of a run (or comparison) directory, with nulls back to NaN."""
    path = Path(run_dir) / RESULT_FILES[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results here; is {run_dir} an evaluation run directory?")
    summary = json.loads(path.read_text(encoding="utf-8"))
    for row in summary["results"]:
        for key in ("mean", "ci_low", "ci_high"):
            row[key] = math.nan if row[key] is None else row[key]
    return summary


def combine(summaries: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Several runs side by side; a model name used by more than one run gets its label appended.

    >>> one = {"runs": [{"model": "m"}], "results": [{"model": "m"}]}
    >>> [r["model"] for r in combine([one, one], ["a", "b"])["runs"]]
    ['m [a]', 'm [b]']
    """
    names = [run["model"] for summary in summaries for run in summary["runs"]]
    runs, results = [], []
    for summary, label in zip(summaries, labels):
        rename = {run["model"]: (f"{run['model']} [{label}]" if names.count(run["model"]) > 1 else run["model"]) for run in summary["runs"]}
        runs += [{**run, "model": rename[run["model"]]} for run in summary["runs"]]
        results += [{**row, "model": rename[row["model"]]} for row in summary["results"]]
    return {"runs": runs, "results": results}
