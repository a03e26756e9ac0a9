"""The quality signals of records that are too slow to compute at start-up: how far the two
teachers' answers agree, and whether each answer names the image's class.

* ``agreement``: the Jaccard index of the two answers' word sets,
  :func:`imagenet_think.quality.agreement` (what the record page shows); null unless both
  answers are non-empty.
* ``check_1`` / ``check_2``: the label check of each pair's answer, the ``kind`` of
  :func:`imagenet_think.rewards.label_hit` (:data:`LABEL_KINDS`); null for an empty answer.

Both read the answers, so they cost a pass over the answer text of the whole corpus (about
3 s per 10,000 records on one core); the viewer computes them per file in the background on
first use (:meth:`imagenet_think.view.corpus.Corpus.signals`), ``export --where`` per batch.

>>> import pyarrow as pa
>>> table = pa.table({"wnid": ["n02084071"] * 2,
...     "answer_1": ["A dog on a mat.", ""], "answer_2": ["A dog on a rug.", "A truck on a road."]})
>>> signal_table(table).to_pylist()[1]
{'agreement': None, 'check_1': None, 'check_2': 'missed'}
>>> round(signal_table(table)["agreement"][0].as_py(), 2), signal_table(table)["check_1"][0].as_py()
(0.6, 'named')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think import schema

LABEL_KINDS = ("named", "ancestor", "hedged", "missed", "unknown")
"""Label checks of an answer, as :func:`imagenet_think.rewards.label_hit` names them: it names
the class (or a more specific one), only an ancestor class within three levels, the class and a
competing class, no class of the family, or the class is not in WordNet."""

SOURCE_COLUMNS = ("wnid", *(f"answer_{p}" for p in schema.TEACHER_NAMES))
"""Columns :func:`signal_table` reads."""

SIGNAL_SCHEMA = pa.schema(
    [pa.field("agreement", pa.float64())] + [pa.field(f"check_{p}", pa.string()) for p in schema.TEACHER_NAMES]
)
"""Columns :func:`signal_table` returns, one row per record."""


def label_check(answer: str, wnid: str) -> Any:
    """The label check of one answer: :func:`imagenet_think.rewards.label_hit` with its defaults
    (ancestors up to three levels; naming a competing class is ``hedged``).

    >>> label_check("Some canine.", "n02084071")
    LabelHit(kind='ancestor', distance=1)
    """
    from imagenet_think.rewards import label_hit

    return label_hit(answer, wnid)


def _non_empty(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.greater(pc.utf8_length(column), 0), False).to_numpy(zero_copy_only=False)


def signal_table(table: pa.Table) -> pa.Table:
    """The :data:`SIGNAL_SCHEMA` columns of the records in ``table`` (which holds
    :data:`SOURCE_COLUMNS`)."""
    from imagenet_think.quality import agreement

    answers = {p: table[f"answer_{p}"] for p in schema.TEACHER_NAMES}
    present = {p: _non_empty(answers[p]) for p in answers}
    both = np.flatnonzero(present[1] & present[2])
    scores = np.full(table.num_rows, np.nan)
    if len(both):
        scores[both] = agreement(answers[1].take(both), answers[2].take(both))
    columns = {"agreement": pa.array(scores, pa.float64(), mask=np.isnan(scores))}
    wnids = table["wnid"].to_pylist()
    for p, column in answers.items():
        texts, kinds = column.to_pylist(), [None] * table.num_rows
        for row in np.flatnonzero(present[p]).tolist():
            kinds[row] = label_check(texts[row], wnids[row] or "").kind
        columns[f"check_{p}"] = pa.array(kinds, pa.string())
    return pa.table(columns, schema=SIGNAL_SCHEMA)
