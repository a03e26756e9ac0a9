"""Label accuracy: does an answer name the image's WordNet class?

Each row's ``wnid`` is checked with :func:`imagenet_think.rewards.label_hit` against the answer
part of the model's prediction (split as the similarity metrics split it) and, as reference, the
two teachers' own answers of the same rows.  ``label_reward.<answers>`` columns (``answers`` one
of :data:`ANSWERS`) hold each row's reward: 1.0 for the class or a more specific one,
``decay ** d`` for an ancestor ``d`` links up (``d <= max_depth``), else 0.0; NaN where there is
nothing to check (a teacher pair that was never produced, a wnid the table lacks).

Per column, :func:`label_figures` gives three per-example series whose means are reported with
bootstrap intervals: ``named`` (share of answers with reward 1.0), ``ancestor`` (share with
only an ancestor named, 0 < reward < 1) and ``reward`` (the mean reward).

Descriptive answers name much besides the class (the grass, a white frame), so the evaluation
does not count other classes against an answer by default (``exclusive=False``, unlike
:func:`~imagenet_think.rewards.label_reward`'s training default).

>>> import pyarrow as pa
>>> rows = pa.table({"wnid": ["n02084071"] * 2, "answer_1": ["A beagle.", "A canine."], "answer_2": ["A cat.", None]})
>>> columns = label_rewards(rows, ["A dog.", "Hm"], LabelSettings())
>>> [columns[label_column(a)].to_pylist() for a in ANSWERS]
[[1.0, 0.0], [1.0, 0.5], [0.0, nan]]
>>> {k: v.tolist() for k, v in label_figures(columns[label_column("teacher1")].to_numpy()).items()}
{'named': [1.0, 0.0], 'ancestor': [0.0, 1.0], 'reward': [1.0, 0.5]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

ANSWERS = ("prediction", "teacher1", "teacher2")
"""Whose answers are checked: the model's, then each teacher's on the same rows."""

FIGURES = ("named", "ancestor", "reward")
"""What is reported per answers column (see the module docstring)."""

COLUMN_PREFIX = "label_reward."


@dataclass(frozen=True)
class LabelSettings:
    """Arguments of :func:`imagenet_think.rewards.label_hit` and the reward's ``decay``."""

    decay: float = 0.5
    max_depth: int = 3
    exclusive: bool = False


def label_column(answers: str) -> str:
    """Name of the score column of ``answers`` (one of :data:`ANSWERS`).

    >>> label_column("teacher2")
    'label_reward.teacher2'
    """
    return COLUMN_PREFIX + answers


def _rewards(answers: Sequence[Optional[str]], wnids: Sequence[Optional[str]], settings: LabelSettings) -> pa.Array:
    from imagenet_think.rewards import label_hit

    values = []
    for answer, wnid in zip(answers, wnids):
        hit = None if answer is None else label_hit(answer, wnid or "", max_depth=settings.max_depth, exclusive=settings.exclusive)
        values.append(math.nan if hit is None or hit.kind == "unknown" else hit.score(settings.decay))
    return pa.array(values, pa.float64())


def label_rewards(rows: pa.Table, predicted_answers: Sequence[str], settings: LabelSettings) -> dict[str, pa.Array]:
    """The :func:`label_column` of each of :data:`ANSWERS` for ``rows`` (``wnid``, ``answer_1``,
    ``answer_2``), ``predicted_answers`` being the answer parts of the model's predictions."""
    wnids = rows["wnid"].to_pylist()
    sources = (predicted_answers, rows["answer_1"].to_pylist(), rows["answer_2"].to_pylist())
    return {label_column(answers): _rewards(texts, wnids, settings) for answers, texts in zip(ANSWERS, sources)}


def label_figures(rewards: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example values of each of :data:`FIGURES` over the non-NaN ``rewards``: their means
    are the share named, the share with only an ancestor named, and the mean reward.

    >>> {k: v.tolist() for k, v in label_figures(np.array([1.0, 0.25, 0.0, np.nan])).items()}
    {'named': [1.0, 0.0, 0.0], 'ancestor': [0.0, 1.0, 0.0], 'reward': [1.0, 0.25, 0.0]}
    """
    present = rewards[~np.isnan(rewards)]
    return {
        "named": (present == 1.0).astype(float),
        "ancestor": ((present > 0.0) & (present < 1.0)).astype(float),
        "reward": present,
    }
