"""Results of one or more evaluation runs: JSON, a Markdown table and a PNG bar chart.

Each score column ``<part>.<metric>.<reference>`` (see :mod:`imagenet_think.evaluate.scoring`)
becomes one result row: the mean over the examples where the metric is defined (NaN scores,
from empty teacher references, are left out and ``n`` counts the rest) with a 95 % percentile
bootstrap confidence interval of that mean (``num_resamples`` resamples drawn with
``numpy.random.default_rng(seed)``; the generator restarts for every column, so all columns
of a run are resampled with the same example indices when their ``n`` agree).

``results.json`` holds ``{"runs": [run, ...], "results": [{"model", "part", "metric",
"reference", "mean", "ci_low", "ci_high", "n"}, ...], "labels": [{"model", "answers", "figure", "mean",
"ci_low", "ci_high", "n"}, ...]}`` (NaN written as ``null``; a ``bertscore_f1`` result also names
its ``bertscore_model`` and says whether that model was the offline fallback,
``bertscore_fallback``, whose scores are not comparable with bert-score's default model's;
``labels`` from the ``label_reward.<answers>`` columns, see
:mod:`imagenet_think.evaluate.label_accuracy`), where a run is
``{"model", "subset_size", "scored_rows", "ids_without_prediction", "predictions_outside_subset",
"status_counts", "settings"}``: how many ids the evaluation subset held, how many of them were
scored, which had no prediction, how many predictions fell outside the subset, the split status
of the scored predictions, and every setting of the run (the metric settings as used: the
BERTScore layer resolved, never ``null``).  A comparison of several runs has the same shape, with
one entry per run, so comparisons can be compared again; :func:`setting_differences` lists the
settings that change scores and differ between its runs.  ``results.md`` and the chart say when
BERTScore fell back, and ``results.md`` marks a result whose interval rests on a single row.

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
from typing import Any, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from imagenet_think.evaluate.label_accuracy import ANSWERS, COLUMN_PREFIX, FIGURES, label_figures
from imagenet_think.evaluate.metrics import METRIC_NAMES, MetricSettings
from imagenet_think.evaluate.scoring import PARTS, REFERENCES
from imagenet_think.schema import TEACHERS

RESULT_FILES = ("results.json", "results.md", "results.png")

METRIC_LABELS = {
    "bertscore_f1": "BERTScore F1",
    "sbert_cosine": "SBERT cosine",
    "rouge1_f": "ROUGE-1 F",
    "rougeL_f": "ROUGE-L F",
    "jaccard": "Jaccard",
    "overlap": "overlap coef.",
    "tfidf_cosine": "TF-IDF cosine",
}
"""Axis labels of the metrics in the chart."""

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


def _estimate(values: np.ndarray, num_resamples: int, seed: int) -> dict[str, Any]:
    """``mean``, its bootstrap interval ``ci_low``/``ci_high`` (:func:`bootstrap_ci`) and ``n`` of ``values``."""
    low, high = bootstrap_ci(values, num_resamples, seed)
    return {"mean": float(values.mean()) if values.size else math.nan, "ci_low": low, "ci_high": high, "n": int(values.size)}


def summarize(
    scores: pa.Table,
    model: str,
    settings: dict[str, Any] | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
    coverage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run's results (see the module docstring for the shape) from its per-example scores.

    ``coverage`` holds ``subset_size``, ``ids_without_prediction`` and
    ``predictions_outside_subset``; without it every subset id is taken to be scored.
    """
    rows = []
    for name in scores.column_names:
        if name.count(".") != 2:
            continue
        part, metric, reference = name.split(".")
        values = scores[name].to_numpy(zero_copy_only=False).astype(float)
        values = values[~np.isnan(values)]
        row = dict(model=model, part=part, metric=metric, reference=reference, **_estimate(values, num_resamples, seed))
        if metric == "bertscore_f1":
            row.update(bertscore_model=(settings or {}).get("bertscore_model"), bertscore_fallback=_fell_back(settings or {}))
        rows.append(row)
    label_rows = []
    for name in (n for n in scores.column_names if n.startswith(COLUMN_PREFIX)):
        figures = label_figures(scores[name].to_numpy(zero_copy_only=False).astype(float))
        for figure, values in figures.items():
            label_rows.append(dict(model=model, answers=name[len(COLUMN_PREFIX) :], figure=figure, **_estimate(values, num_resamples, seed)))
    statuses = scores["status"].value_counts().to_pylist() if "status" in scores.column_names else []
    run = {
        "model": model,
        "subset_size": scores.num_rows,
        "scored_rows": scores.num_rows,
        "ids_without_prediction": [],
        "predictions_outside_subset": 0,
        **(coverage or {}),
        "status_counts": {entry["values"]: entry["counts"] for entry in statuses},
        "settings": settings or {},
    }
    return {"runs": [run], "results": rows, "labels": label_rows}


LEXICAL_METRICS = ("rouge1_f", "rougeL_f", "jaccard", "overlap", "tfidf_cosine")

SCORE_SETTINGS: dict[str, Optional[tuple[str, ...]]] = {
    "source": None,
    "split": None,
    "size": None,
    "validation_fraction": None,
    "reasoning_style": None,
    "tokenizer": LEXICAL_METRICS,
    "rouge_stemmer": ("rouge1_f", "rougeL_f"),
    "tfidf_fit": ("tfidf_cosine",),
    "bertscore_model": ("bertscore_f1",),
    "bertscore_layers": ("bertscore_f1",),
    "sbert_model": ("sbert_cosine",),
}
"""Recorded settings that change scores, and the metrics they change (``None``: the rows, so all)."""


def setting_differences(summary: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """The :data:`SCORE_SETTINGS` that differ between runs of ``summary`` which computed a metric
    the setting changes, with ``(model, value)`` of each such run (``None``: not recorded).

    >>> runs = [{"model": "a", "settings": {"tfidf_fit": "pair", "metrics": ["jaccard", "tfidf_cosine"]}},
    ...         {"model": "b", "settings": {"tfidf_fit": "corpus", "metrics": ["tfidf_cosine"]}},
    ...         {"model": "c", "settings": {"tfidf_fit": "corpus", "metrics": ["jaccard"]}}]
    >>> setting_differences({"runs": runs, "results": []})
    {'tfidf_fit': [('a', 'pair'), ('b', 'corpus')]}
    """
    differences = {}
    for name, affected in SCORE_SETTINGS.items():
        found = [(run["model"], run.get("settings", {}).get(name)) for run in summary["runs"] if _uses(run, name)]
        if len({repr(value) for _, value in found}) > 1:
            differences[name] = found
    return differences


def _uses(run: dict[str, Any], setting: str) -> bool:
    """Whether ``setting`` (of :data:`SCORE_SETTINGS`) changed a score of ``run``: it computed a
    metric the setting affects (runs that did not record their metrics count as all seven)."""
    affected = SCORE_SETTINGS[setting]
    return affected is None or bool(set(affected) & set(run.get("settings", {}).get("metrics") or affected))


def describe_differences(summary: dict[str, Any]) -> str:
    """One line naming each score-changing setting that differs between runs, ``""`` if none.

    >>> runs = [{"model": "a", "settings": {"rouge_stemmer": False}}, {"model": "b", "settings": {}}]
    >>> describe_differences({"runs": runs, "results": []})
    'the runs differ in settings that change scores: rouge_stemmer (a: False, b: not recorded)'
    """
    parts = [
        f"{name} ({', '.join(f'{model}: {_setting_text(value)}' for model, value in found)})"
        for name, found in setting_differences(summary).items()
    ]
    return f"the runs differ in settings that change scores: {'; '.join(parts)}" if parts else ""


def _setting_text(value: Any) -> str:
    return "not recorded" if value is None else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


MIN_INTERVAL_ROWS = 2
"""Examples a bootstrap interval needs to be one: on a single example every resample is that example."""


def _cell(row: dict[str, Any] | None) -> str:
    """The ``mean [low, high] | n`` cells of one model in a result row."""
    return f"{_interval(row)} | {_n(row)}"


def _interval(row: dict[str, Any] | None) -> str:
    """``mean [low, high]``, or ``–`` where there is no mean."""
    if row is None or row["mean"] is None or math.isnan(row["mean"]):
        return "–"
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _n(row: dict[str, Any] | None) -> str:
    """The rows a result rests on, marked ``*`` below :data:`MIN_INTERVAL_ROWS` (but above 0)."""
    n = row["n"] if row else 0
    return f"{n}{' *' if 0 < n < MIN_INTERVAL_ROWS else ''}"


def _ordered(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    models = list(dict.fromkeys(run["model"] for run in summary["runs"]))
    found = {row["metric"] for row in summary["results"]}
    metrics = [m for m in METRIC_NAMES if m in found] + sorted(found - set(METRIC_NAMES))
    return models, metrics


def _fell_back(settings: dict[str, Any]) -> bool:
    """Whether a run with ``settings`` scored BERTScore with the offline fallback model, not bert-score's default."""
    return bool(settings.get("bertscore_fallback"))


def fallback_note(summary: dict[str, Any]) -> str:
    """One sentence naming the runs whose BERTScore used the offline fallback model, ``""`` if none.

    >>> fallback_note({"runs": [{"model": "m", "settings": {"bertscore_fallback": True, "bertscore_model": "mini"}}]})
    "BERTScore of m used the fallback model 'mini', not 'roberta-large' (not available offline): not comparable with roberta-large BERTScores"
    """
    runs = [run for run in summary["runs"] if _fell_back(run.get("settings", {}))]
    if not runs:
        return ""
    default = MetricSettings.bertscore_model
    models = sorted({repr(run["settings"].get("bertscore_model")) for run in runs})
    return (
        f"BERTScore of {', '.join(run['model'] for run in runs)} used the fallback model {' / '.join(models)}, "
        f"not {default!r} (not available offline): not comparable with {default} BERTScores"
    )


MISSING_IDS_SHOWN = 10
"""Subset ids without a prediction listed in ``results.md`` (all of them are in ``results.json``)."""


def _missing_ids(summary: dict[str, Any]) -> list[str]:
    lines = []
    for run in summary["runs"]:
        missing = run.get("ids_without_prediction") or []
        if missing:
            shown = ", ".join(f"`{row_id}`" for row_id in missing[:MISSING_IDS_SHOWN])
            more = f" and {len(missing) - MISSING_IDS_SHOWN} more" if len(missing) > MISSING_IDS_SHOWN else ""
            lines.append(f"* {run['model']}: {shown}{more} (all {len(missing)}: `runs[].ids_without_prediction` "
                         "in results.json)")
    return ["", "Subset ids without a prediction (not scored):", "", *lines] if lines else []


def _runs_table(summary: dict[str, Any]) -> list[str]:
    lines = ["| model | subset ids | scored | without prediction | prediction status |", "| --- | --- | --- | --- | --- |"]
    for run in summary["runs"]:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(run.get("status_counts", {}).items()))
        missing = len(run.get("ids_without_prediction", []))
        lines.append(f"| {run['model']} | {run.get('subset_size', '?')} | {run['scored_rows']} | {missing} | {counts} |")
    return lines


def _settings_table(summary: dict[str, Any]) -> list[str]:
    models = [run["model"] for run in summary["runs"]]
    differing = setting_differences(summary)
    lines = ["| setting | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
    for name in SCORE_SETTINGS:
        values = [_setting_text(run.get("settings", {}).get(name)) if _uses(run, name) else "–" for run in summary["runs"]]
        lines.append(f"| {name}{' (differs)' if name in differing else ''} | " + " | ".join(values) + " |")
    return lines


def render_markdown(summary: dict[str, Any]) -> str:
    """Markdown: the runs (and the subset ids they lack), their score-changing settings (a
    warning when they differ, a note when BERTScore fell back), then one table per reference,
    a row per (part, metric), per model its mean with interval and ``n``, the rows it rests on
    (``n`` marked ``*``, with a warning, below 2: such an interval is one value).

    >>> print(render_markdown({"runs": [{"model": "m", "scored_rows": 1, "status_counts": {"ok": 1}}],
    ...     "results": [dict(model="m", part="answer", metric="jaccard", reference="best",
    ...                      mean=0.5, ci_low=0.4, ci_high=0.6, n=2)]}).splitlines()[-1])
    | answer | jaccard | 0.500 [0.400, 0.600] | 2 |
    """
    models, metrics = _ordered(summary)
    index = {(r["model"], r["part"], r["metric"], r["reference"]): r for r in summary["results"]}
    lines = ["# Evaluation results", "", "Mean score with 95 % bootstrap confidence interval; n: the examples it rests on.", ""]
    note = fallback_note(summary)
    if note:
        lines += [f"**Warning:** {note}.", ""]
    if any(0 < row["n"] < MIN_INTERVAL_ROWS for row in (*summary["results"], *summary.get("labels", []))):
        lines += [f"**Warning:** a result whose n is marked * rests on fewer than {MIN_INTERVAL_ROWS} examples: "
                  "its interval is a single value, not an interval.", ""]
    lines += _runs_table(summary)
    lines += _missing_ids(summary)
    lines += ["", "## Settings that change scores", ""]
    warning = describe_differences(summary)
    if warning:
        lines += [f"**Warning:** {warning}; their scores are not comparable.", ""]
    lines += _settings_table(summary)
    for reference in REFERENCES:
        if not any(key[3] == reference for key in index):
            continue
        lines += ["", f"## Against {REFERENCE_TITLES[reference]}", ""]
        lines += ["| part | metric | " + " | ".join(f"{model} | n" for model in models) + " |",
                  "| --- | --- |" + " --- | --- |" * len(models)]
        for part in PARTS:
            for metric in metrics:
                if any((model, part, metric, reference) in index for model in models):
                    cells = " | ".join(_cell(index.get((model, part, metric, reference))) for model in models)
                    lines.append(f"| {part} | {metric} | {cells} |")
    lines += _labels_table(summary)
    return "\n".join(lines) + "\n"


LABEL_ANSWER_TITLES = {"prediction": "", "teacher1": "teacher 1 answers", "teacher2": "teacher 2 answers"}


def _labels_table(summary: dict[str, Any]) -> list[str]:
    """The label accuracy section: a row per (run, whose answers), a column per figure."""
    index = {(r["model"], r["answers"], r["figure"]): r for r in summary.get("labels", [])}
    if not index:
        return []
    models = list(dict.fromkeys(model for model, _, _ in index))
    settings = "; ".join(
        f"{run['model']}: " + ", ".join(f"{k} {v}" for k, v in run.get("settings", {}).get("label_reward", {}).items())
        for run in summary["runs"]
        if run["model"] in models
    )
    lines = [
        "", "## Label accuracy", "",
        "Does the answer name the image's WordNet class (`imagenet_think.rewards.label_reward` on the answer part; "
        f"{settings})? named: reward 1.0 (the class or a more specific one); ancestor only: 0 < reward < 1; "
        "teacher rows: the teachers' own answers on the same rows.", "",
        "| answers | named | ancestor only | mean reward | n |", "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for model in models:
        for answers in ANSWERS:
            found = [index.get((model, answers, figure)) for figure in FIGURES]
            if any(found):
                title = f"{model}: {LABEL_ANSWER_TITLES[answers]}" if LABEL_ANSWER_TITLES[answers] else model
                n = _n(next(r for r in found if r))  # the figures of one row rest on the same answers
                lines.append(f"| {title} | " + " | ".join(map(_interval, found)) + f" | {n} |")
    return lines


def _run_notes(run: dict[str, Any]) -> list[str]:
    """Short notes on what a run's bars are: rows scored and the metric settings."""
    settings = run.get("settings", {})
    metrics = settings.get("metrics") or METRIC_NAMES
    notes = [f"{run['scored_rows']} of {run.get('subset_size', '?')} subset rows scored"]
    if "bertscore_f1" in metrics and settings.get("bertscore_model"):
        fallback = " (offline fallback)" if _fell_back(settings) else ""
        notes.append(f"BERTScore {settings['bertscore_model']}{fallback} layer {_setting_text(settings.get('bertscore_layers'))}")
    if "sbert_cosine" in metrics and settings.get("sbert_model"):
        notes.append(f"SBERT {settings['sbert_model'].split('/')[-1]}")
    if settings.get("rouge_stemmer"):
        notes.append("ROUGE stemmed")
    if "tfidf_cosine" in metrics and settings.get("tfidf_fit"):
        notes.append(f"TF-IDF fit per {settings['tfidf_fit']}")
    return notes


def draw_chart(summary: dict[str, Any]) -> Any:
    """The results as a ``matplotlib`` figure (Agg backend; close it with ``plt.close``).

    Bar chart: a panel per (part, reference), a bar group per metric, a bar per model, 95 % CI
    whiskers; a metric a run did not compute (or could not: no scorable pair) has no bar but an
    ``n/a`` mark.  The title names the models and the rows and metric settings they share (and
    warns when score-changing settings differ); the one legend adds what is not shared.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    models, metrics = _ordered(summary)
    index = {(r["model"], r["part"], r["metric"], r["reference"]): r for r in summary["results"]}
    figure, axes = plt.subplots(
        len(PARTS), len(REFERENCES), figsize=(5.2 * len(REFERENCES), 3.8 * len(PARTS) + 1.2), sharey=True, squeeze=False
    )
    notes = {run["model"]: _run_notes(run) for run in summary["runs"]}
    shared = [note for note in next(iter(notes.values()), []) if all(note in other for other in notes.values())]
    width = 0.8 / max(1, len(models))
    positions = np.arange(len(metrics))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row_axes, part in zip(axes, PARTS, strict=True):
        for ax, reference in zip(row_axes, REFERENCES, strict=True):
            for k, model in enumerate(models):
                found = [index.get((model, part, metric, reference)) for metric in metrics]
                means = np.array([_number(r, "mean") for r in found])
                errors = np.vstack([means - [_number(r, "ci_low") for r in found], [_number(r, "ci_high") for r in found] - means])
                x = positions + (k - (len(models) - 1) / 2) * width
                shown = ~np.isnan(means)
                ax.bar(x[shown], means[shown], width, yerr=np.nan_to_num(errors[:, shown]), capsize=2,
                       color=colours[k % len(colours)])
                for spot in x[~shown]:
                    ax.text(spot, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=8, color="0.35")
            ax.set_title(f"{part} vs {REFERENCE_TITLES[reference]}", fontsize=10)
            ax.set_xticks(positions)
            ax.set_xticklabels([METRIC_LABELS.get(m, m) for m in metrics], rotation=30, ha="right", fontsize=8)
            ax.set_ylim(0, 1.12)
            ax.set_yticks(np.linspace(0, 1, 6))
            ax.axhline(1.0, color="0.85", linewidth=0.8, zorder=0)
            ax.grid(axis="y", color="0.92", linewidth=0.6)
            ax.set_axisbelow(True)
        row_axes[0].set_ylabel(f"{part}: mean score (95 % CI)", fontsize=9)
    title = f"ImageNet-Think evaluation: {', '.join(models)}\n{', '.join(shared)}"
    differing = setting_differences(summary)
    if differing:
        title += f"\nnot comparable: the runs differ in {', '.join(differing)}"
    if fallback_note(summary):
        title += f"\nBERTScore by the offline fallback model, not {MetricSettings.bertscore_model}: not comparable"
    figure.suptitle(title, fontsize=11)
    own = {model: [note for note in notes.get(model, []) if note not in shared] for model in models}
    handles = [
        Patch(color=colours[k % len(colours)], label=f"{model}: {', '.join(own[model])}" if own[model] else model)
        for k, model in enumerate(models)
    ]
    one_per_line = any(own.values())
    figure.legend(handles=handles, loc="lower center", ncol=1 if one_per_line else min(len(models), 4), fontsize=9,
                  frameon=False)
    legend_lines = len(models) if one_per_line else -(-len(models) // 4)
    figure.tight_layout(rect=(0, 0.03 + 0.025 * legend_lines, 1, 1))
    return figure


def plot_results(summary: dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Write :func:`draw_chart` of ``summary`` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    figure = draw_chart(summary)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _number(row: Optional[dict[str, Any]], key: str) -> float:
    """``row[key]`` as a float, NaN for a missing row or value."""
    value = None if row is None else row.get(key)
    return math.nan if value is None else float(value)


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
    """The ``results.json`` of a run (or comparison) directory, with nulls back to NaN.

    Files written before ``scored_rows`` existed (``n_rows``) are read too."""
    path = Path(run_dir) / RESULT_FILES[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results here; is {run_dir} an evaluation run directory?")
    summary = json.loads(path.read_text(encoding="utf-8"))
    for run in summary["runs"]:
        if "scored_rows" not in run and "n_rows" in run:
            run["scored_rows"] = run.pop("n_rows")
    for row in summary["results"] + summary.setdefault("labels", []):
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
    runs, results, label_rows = [], [], []
    for summary, label in zip(summaries, labels, strict=True):
        rename = {run["model"]: (f"{run['model']} [{label}]" if names.count(run["model"]) > 1 else run["model"]) for run in summary["runs"]}
        runs += [{**run, "model": rename[run["model"]]} for run in summary["runs"]]
        results += [{**row, "model": rename[row["model"]]} for row in summary["results"]]
        label_rows += [{**row, "model": rename[row["model"]]} for row in summary.get("labels", [])]
    return {"runs": runs, "results": results, "labels": label_rows}
