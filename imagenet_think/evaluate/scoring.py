"""Score split predictions against both teachers, think and answer apart, in resumable chunks.

Input is one Arrow table with a row per scored image: ``id``, the model's raw ``prediction``
(and ``finish_reason``), and the teachers' ``think_1``, ``answer_1``, ``think_2``,
``answer_2``.  Output has ``id``, the prediction's split ``status``, and one float column per
``<part>.<metric>.<reference>``: part ``think`` or ``answer``, reference ``teacher1``
(GLM-4.1V-Thinking), ``teacher2`` (Kimi-VL-Thinking) or ``best`` (per example, the higher of
the two; NaN only when both are NaN).

>>> import pyarrow as pa
>>> rows = pa.table({"id": ["a"], "prediction": ["<think>red cat</think>A cat."], "finish_reason": [None],
...                  "think_1": ["a red cat"], "answer_1": ["A cat."], "think_2": [""], "answer_2": ["A dog."]})
>>> scores = score_rows(rows, ["jaccard"])
>>> [scores[f"think.jaccard.{r}"][0].as_py() for r in REFERENCES]
[0.6666666666666666, nan, 0.6666666666666666]
>>> scores["answer.jaccard.best"][0].as_py(), scores["status"][0].as_py()
(1.0, 'ok')
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from imagenet_think.evaluate.chunks import fingerprint, run_chunks
from imagenet_think.evaluate.metrics import METRIC_NAMES, MetricSettings, Pairs, corpus_idf, score_texts
from imagenet_think.evaluate.predictions import split_predictions
from imagenet_think.text import TOKENIZER

PARTS = ("think", "answer")
REFERENCES = ("teacher1", "teacher2", "best")
REFERENCE_COLUMNS = ("think_1", "answer_1", "think_2", "answer_2")


def score_column(part: str, metric: str, reference: str) -> str:
    """Name of the output column of one (part, metric, reference).

    >>> score_column("think", "rouge1_f", "best")
    'think.rouge1_f.best'
    """
    return f"{part}.{metric}.{reference}"


def _comparisons(rows: pa.Table, split: pa.Table) -> Iterator[tuple[str, int, list[str], list[str]]]:
    """``(part, teacher, predicted texts, reference texts)`` of each comparison of ``rows``,
    whose predictions :func:`split_predictions` made ``split``."""
    for part in PARTS:
        predicted = split[part].to_pylist()
        for teacher in (1, 2):
            yield part, teacher, predicted, [text or "" for text in rows[f"{part}_{teacher}"].to_pylist()]


def corpus_idfs(rows: pa.Table, reasoning_style: str = "auto") -> dict[str, dict[str, float]]:
    """The ``tfidf_fit="corpus"`` IDF of each ``"<part>.teacher<k>"`` comparison, fitted on all
    of ``rows`` (:func:`imagenet_think.evaluate.metrics.corpus_idf`)."""
    return {
        f"{part}.teacher{teacher}": corpus_idf([Pairs.of(predicted, references)])
        for part, teacher, predicted, references in _comparisons(rows, split_predictions(rows, reasoning_style))
    }


def score_rows(
    rows: pa.Table,
    metrics: Sequence[str] = METRIC_NAMES,
    settings: MetricSettings = MetricSettings(),
    reasoning_style: str = "auto",
    idfs: Optional[Mapping[str, Mapping[str, float]]] = None,
) -> pa.Table:
    """Split every prediction and score each part against each teacher (one batch, no files).

    With ``settings.tfidf_fit == "corpus"``, ``idfs`` are :func:`corpus_idfs` of the whole
    evaluated set; without them ``rows`` are taken to be the whole set.
    """
    split = split_predictions(rows, reasoning_style)
    columns = {"id": rows["id"], "status": split["status"]}
    scored = {}
    for part, teacher, predicted, references in _comparisons(rows, split):
        idf = idfs[f"{part}.teacher{teacher}"] if idfs is not None else None
        scored[part, teacher] = score_texts(predicted, references, metrics, settings, idf)
    for part in PARTS:
        for metric in metrics:
            first, second = scored[part, 1][metric], scored[part, 2][metric]
            for reference, values in zip(REFERENCES, (first, second, np.fmax(first, second)), strict=True):
                columns[score_column(part, metric, reference)] = pa.array(values, pa.float64())
    return pa.table(columns)


def score_in_chunks(
    rows: pa.Table,
    run_dir: Union[str, os.PathLike],
    metrics: Sequence[str] = METRIC_NAMES,
    settings: MetricSettings = MetricSettings(),
    reasoning_style: str = "auto",
    chunk_size: int = 256,
    progress: bool = True,
) -> pa.Table:
    """:func:`score_rows` chunk by chunk into ``<run_dir>/scores/``, reusing chunks already scored.

    A stored chunk is reused when its ids, prediction and reference texts, metrics, metric
    settings, tokenizer (:data:`imagenet_think.text.TOKENIZER`) and reasoning style are unchanged (and, with ``tfidf_fit="corpus"``, the IDF fitted
    on all ``rows`` before the first chunk).  Scores do not depend on ``chunk_size``.
    """
    inputs = rows.select(["id", "prediction", "finish_reason", *REFERENCE_COLUMNS])
    idfs = corpus_idfs(inputs, reasoning_style) if settings.tfidf_fit == "corpus" and "tfidf_cosine" in metrics else None
    config = {"metrics": list(metrics), "settings": asdict(settings), "reasoning_style": reasoning_style,
              "tokenizer": TOKENIZER}
    if idfs is not None:
        config["idfs"] = fingerprint(idfs)

    def fingerprint_of(start: int, stop: int) -> str:
        return fingerprint(config, inputs.slice(start, stop - start).to_pydict())

    def compute(start: int, stop: int) -> pa.Table:
        return score_rows(inputs.slice(start, stop - start), metrics, settings, reasoning_style, idfs)

    return run_chunks(rows.num_rows, chunk_size, os.path.join(run_dir, "scores"), fingerprint_of, compute, "scoring", progress)
