"""Corpus statistics (what ``imagenet-think stats`` prints and plots).

:func:`measure` reads the text columns of a dataset (never its images) in Arrow batches and
returns one small row of numbers per record: each pair's status and think/answer lengths in
characters, and the word-set Jaccard agreement of the two answers
(:func:`imagenet_think.quality.agreement`).  :func:`summarize` turns that table into a
JSON-able summary, :func:`format_summary` into text, :func:`write_histograms` into PNGs.

>>> import datasets
>>> ds = datasets.Dataset.from_dict({
...     "status_1": ["ok", "ok"], "think_1": ["abc", "abcdef"], "answer_1": ["A red fox.", "A dog."],
...     "status_2": ["ok", "malformed"], "think_2": ["ab", ""], "answer_2": ["A fox.", ""]})
>>> table = measure(ds)
>>> table.column_names
['status_1', 'think_chars_1', 'answer_chars_1', 'status_2', 'think_chars_2', 'answer_chars_2', 'agreement']
>>> summary = summarize(table)
>>> summary["teachers"]["2"]["status"], summary["teachers"]["1"]["think_chars"]["p50"]
({'ok': 1, 'malformed': 1}, 4.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think import schema
from imagenet_think.quality import PAIRS, agreement

PERCENTILES = (5, 25, 50, 75, 95, 99)
AGREEMENT_BINS = 10
FIELDS = ("think", "answer")


def text_columns(suffixes: Sequence[str] = PAIRS) -> list[str]:
    """The columns :func:`measure` reads (load only these: ``load_dataset(..., columns=...)``).

    >>> text_columns(("",))
    ['status', 'think', 'answer']
    """
    return [f"{name}{s}" for s in suffixes for name in ("status", *FIELDS)]


def measure(dataset: Any, suffixes: Sequence[str] = PAIRS, batch_size: int = 10_000) -> pa.Table:
    """Per-record ``status<s>``, ``think_chars<s>``, ``answer_chars<s>`` for each suffix ``s``,
    plus ``agreement`` of ``answer_1`` and ``answer_2`` when both pairs are measured.

    ``dataset`` is a ``Dataset`` or ``IterableDataset``; only its :func:`text_columns` are read.
    """
    with_agreement = tuple(suffixes) == PAIRS
    batches = [
        measure_table(batch, suffixes, with_agreement)
        for batch in dataset.select_columns(text_columns(suffixes)).with_format("arrow").iter(batch_size=batch_size)
    ]
    if not batches:
        raise ValueError("the dataset has no rows to measure")
    return pa.concat_tables(batches)


def measure_table(table: pa.Table, suffixes: Sequence[str] = PAIRS, with_agreement: bool = True) -> pa.Table:
    """The :func:`measure` columns of one Arrow table holding the text columns; ``agreement``
    (which needs ``answer_1`` and ``answer_2``) only when ``with_agreement``.

    >>> measure_table(pa.table({"status": ["ok"], "think": ["Fur."], "answer": ["A cat."]}), ("",), False).to_pylist()
    [{'status': 'ok', 'think_chars': 4, 'answer_chars': 6}]
    """
    measured = {}
    for s in suffixes:
        measured[f"status{s}"] = table[f"status{s}"]
        for field in FIELDS:
            measured[f"{field}_chars{s}"] = pc.utf8_length(table[f"{field}{s}"])
    if with_agreement:
        scores = agreement(table["answer_1"].to_pylist(), table["answer_2"].to_pylist())
        measured["agreement"] = pa.array(scores, pa.float32())
    return pa.table(measured)


def _distribution(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"count": 0}
    points = np.percentile(values, PERCENTILES)
    return {
        "count": int(len(values)),
        "mean": round(float(values.mean()), 4),
        **{f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, points)},
        "max": round(float(values.max()), 4),
    }


def _present(table: pa.Table, column: str, suffix: str) -> np.ndarray:
    """Values of ``column`` where the pair exists (status not ``missing``, value not null)."""
    present = pc.and_(pc.not_equal(table[f"status{suffix}"], "missing"), pc.is_valid(table[column]))
    return table[column].filter(pc.fill_null(present, False)).to_numpy()


def summarize(table: pa.Table) -> dict[str, Any]:
    """JSON-able summary of a :func:`measure` table: rows; per teacher the model, the count of
    each status and the distribution (count, mean, percentiles, max) of think and answer
    lengths in characters over the pairs that exist; and the answer agreement distribution
    with a ``AGREEMENT_BINS``-bin histogram over [0, 1].
    """
    summary: dict[str, Any] = {"rows": table.num_rows, "teachers": {}}
    for suffix in (c[len("status") :] for c in table.column_names if c.startswith("status")):
        statuses = pc.value_counts(pc.fill_null(table[f"status{suffix}"], "null")).to_pylist()
        teacher = int(suffix[1:]) if suffix else None
        summary["teachers"][str(teacher or "")] = {
            "model": schema.TEACHERS.get(teacher, ""),
            "status": {e["values"]: e["counts"] for e in sorted(statuses, key=lambda e: _status_order(e["values"]))},
            **{f"{field}_chars": _distribution(_present(table, f"{field}_chars{suffix}", suffix)) for field in FIELDS},
        }
    if "agreement" in table.column_names:
        scores = table["agreement"].to_numpy()
        counts, edges = np.histogram(scores, bins=AGREEMENT_BINS, range=(0.0, 1.0))
        summary["agreement"] = {
            **_distribution(scores),
            "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()},
        }
    return summary


def format_summary(summary: dict[str, Any], title: str = "ImageNet-Think") -> str:
    """The summary as plain-text tables.

    Counts are integers; every other number has one decimal.

    >>> think = {"count": 2, "mean": 4.5, "p5": 3.15, "p25": 3.75, "p50": 4.5, "p75": 5.25, "p95": 5.85,
    ...          "p99": 5.97, "max": 6.0}
    >>> print(format_summary({"rows": 2, "teachers": {"1": {"model": "m", "status": {"ok": 2},
    ...       "think_chars": think, "answer_chars": {"count": 0}}}}))
    ImageNet-Think: 2 rows
    <BLANKLINE>
    status            pair 1
    ok                     2
    <BLANKLINE>
    chars             count     mean       p5      p25      p50      p75      p95      p99      max
    think_1               2      4.5      3.1      3.8      4.5      5.2      5.8      6.0      6.0
    answer_1              0
    """
    teachers = summary["teachers"]
    lines = [f"{title}: {summary['rows']} rows", ""]
    statuses = sorted({s for info in teachers.values() for s in info["status"]}, key=_status_order)
    lines.append("status        " + "".join(f"{'pair ' + t if t else 'pair':>10}" for t in teachers))
    for status in statuses:
        lines.append(f"{status:<14}" + "".join(f"{info['status'].get(status, 0):>10}" for info in teachers.values()))
    keys = ("count", "mean", *(f"p{p}" for p in PERCENTILES), "max")
    lines += ["", "chars         " + "".join(f"{k:>9}" for k in keys)]
    for t, info in teachers.items():
        for field in FIELDS:
            dist = info[f"{field}_chars"]
            label = f"{field}_{t}" if t else field
            lines.append(f"{label:<14}" + "".join(f"{_number(k, dist[k]):>9}" for k in keys if k in dist))
    if "agreement" in summary:
        agree = summary["agreement"]
        lines += ["", f"answer agreement (Jaccard of word sets): mean {agree.get('mean', 0):.3f}, median {agree.get('p50', 0):.3f}"]
        edges, counts = agree["histogram"]["edges"], agree["histogram"]["counts"]
        scale = max(counts) or 1
        for lo, hi, count in zip(edges, edges[1:], counts):
            lines.append(f"  [{lo:.1f}, {hi:.1f}{']' if hi == 1.0 else ')'} {count:>8}  " + "#" * round(40 * count / scale))
    return "\n".join(lines)


def _status_order(status: str) -> tuple[int, str]:
    return (schema.STATUSES.index(status) if status in schema.STATUSES else len(schema.STATUSES), status)


def _number(key: str, value: float) -> str:
    return str(int(value)) if key == "count" else f"{value:.1f}"


def write_histograms(table: pa.Table, out_dir: str | Path) -> list[Path]:
    """Write ``think_chars.png``, ``answer_chars.png`` (one series per teacher) and, for two
    pairs, ``agreement.png`` into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffixes = [c[len("status") :] for c in table.column_names if c.startswith("status")]
    written = []
    for field in FIELDS:
        fig, ax = plt.subplots(figsize=(7, 4))
        series = {suffix: _present(table, f"{field}_chars{suffix}", suffix) for suffix in suffixes}
        edges = np.histogram_bin_edges(np.concatenate(list(series.values())), bins=50)
        for suffix, values in series.items():
            teacher = int(suffix[1:]) if suffix else None
            name = schema.TEACHERS.get(teacher, "pair").split("/")[-1]
            ax.hist(values, bins=edges, alpha=0.6, label=f"{name} (n={len(values)})")
        ax.set(xlabel=f"{field} length (characters)", ylabel="records", title=f"{field} length")
        ax.legend()
        written.append(_save(fig, out_dir / f"{field}_chars.png"))
    if "agreement" in table.column_names:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(table["agreement"].to_numpy(), bins=AGREEMENT_BINS * 2, range=(0.0, 1.0))
        ax.set(xlabel="Jaccard of answer word sets (pair 1 vs pair 2)", ylabel="records", title="teacher agreement")
        written.append(_save(fig, out_dir / "agreement.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
