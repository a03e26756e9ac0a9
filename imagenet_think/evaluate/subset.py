"""The deterministic evaluation subset: which corpus rows a model is scored on.

The builder puts a row in ``validation`` when ``hash_unit(id) < validation_fraction``
(:mod:`imagenet_think.split`, CRC-32 of the UTF-8 id).  The evaluation subset is the first
``size`` ids of that validation split, ordered by a *second*, independent hash of the id:

    eval_order_key(id) = int.from_bytes(blake2b(id.encode("utf-8"), digest_size=8,
                                                person=b"imnt-eval"), "big")

ties (never seen in practice) broken by the id itself.  A different hash family matters: CRC-32
is affine, so ordering validation ids by another CRC-32 would correlate with the split hash.
Because membership and order depend on the id alone, the subset is the same on every machine,
for every shard layout, and never intersects the training split.  Growing ``size`` only
appends ids; shrinking ``validation_fraction`` only removes them.

``split="train"`` or ``split="all"`` picks the first ``size`` ids of those rows instead, with
the same order (for tiny corpora such as the bundled sample, whose validation split may be
empty; scores on training rows measure fit, not generalisation).

>>> from imagenet_think.split import is_validation
>>> ids = [f"n01440764_{i}" for i in range(2000)]
>>> subset = select_eval_ids(ids, size=3)
>>> len(subset), all(is_validation(i, 0.01) for i in subset)
(3, True)
>>> select_eval_ids(ids, size=2, split="train")[0] in subset
False
"""

from __future__ import annotations

import hashlib
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think.split import DEFAULT_VALIDATION_FRACTION, check_fraction, validation_mask

EVAL_SPLITS = ("validation", "train", "all")
"""Rows an evaluation may draw from: the validation split (default), the training split, all rows."""

DEFAULT_EVAL_SIZE = 1000


def eval_order_key(row_id: str) -> int:
    """The 64-bit BLAKE2b key that orders ids inside the evaluation subset.

    >>> eval_order_key("a") == eval_order_key("a") != eval_order_key("b")
    True
    """
    return int.from_bytes(hashlib.blake2b(row_id.encode("utf-8"), digest_size=8, person=b"imnt-eval").digest(), "big")


def split_mask(ids: Sequence[str], split: str, validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> pa.Array:
    """Boolean mask of the ids that belong to ``split`` (one of :data:`EVAL_SPLITS`).

    >>> split_mask(["a", "b"], "train", 0.5).to_pylist()
    [True, False]
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {EVAL_SPLITS}")
    check_fraction(validation_fraction)
    if split == "all":
        return pa.array([True] * len(ids), type=pa.bool_())
    mask = validation_mask(ids, validation_fraction)
    return mask if split == "validation" else pc.invert(mask)


def eval_indices(
    ids: Sequence[str],
    size: Optional[int] = DEFAULT_EVAL_SIZE,
    split: str = "validation",
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> list[int]:
    """Positions in ``ids`` of the first ``size`` ids of ``split``, in evaluation order.

    ``size=None`` keeps every id of the split.  Raises ``ValueError`` naming the first null
    id's position or the first duplicate id: such a corpus cannot be scored unambiguously.

    >>> eval_indices(["x", "y", "z"], size=None, split="all") == sorted(range(3), key=lambda i: eval_order_key("xyz"[i]))
    True
    >>> eval_indices(["x", "x"], split="all")
    Traceback (most recent call last):
    ...
    ValueError: the corpus holds id 'x' more than once
    >>> eval_indices(["x", None], split="all")
    Traceback (most recent call last):
    ...
    ValueError: the corpus row at position 1 has a null id
    """
    if size is not None and size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if None in ids:
        raise ValueError(f"the corpus row at position {list(ids).index(None)} has a null id")
    if len(set(ids)) != len(ids):
        seen: set = set()
        duplicate = next(row_id for row_id in ids if row_id in seen or seen.add(row_id))
        raise ValueError(f"the corpus holds id {duplicate!r} more than once")
    mask = split_mask(ids, split, validation_fraction).to_pylist()
    chosen = [i for i, keep in enumerate(mask) if keep]
    chosen.sort(key=lambda i: (eval_order_key(ids[i]), ids[i]))
    return chosen if size is None else chosen[:size]


def select_eval_ids(
    ids: Sequence[str],
    size: Optional[int] = DEFAULT_EVAL_SIZE,
    split: str = "validation",
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> list[str]:
    """The ids :func:`eval_indices` picks, in evaluation order."""
    return [ids[i] for i in eval_indices(ids, size, split, validation_fraction)]


def load_eval_rows(
    source: str,
    size: Optional[int] = DEFAULT_EVAL_SIZE,
    split: str = "validation",
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    columns: Optional[Sequence[str]] = None,
) -> tuple[list[str], pa.Table]:
    """``(corpus ids, eval rows)``: every id of ``source``, and its evaluation subset in order.

    All of the source's splits are read and membership is recomputed from the ids, so the
    subset follows ``validation_fraction`` whatever split layout the source was stored with.
    The rows are an Arrow table of ``columns`` (default: all; images stay undecoded
    ``{"bytes", "path"}`` structs); only those columns (and ``id``) are loaded, so without
    ``image`` in them no image is copied into the Arrow cache.

    >>> ids, rows = load_eval_rows("sample", size=2, split="all", columns=["id", "label"])
    >>> len(ids), rows.column_names, rows["id"].to_pylist() == select_eval_ids(ids, 2, "all")
    (24, ['id', 'label'], True)
    """
    import datasets

    from imagenet_think import load_dataset

    read = None if columns is None else list(dict.fromkeys(["id", *columns]))
    loaded = load_dataset(source, "default", validation_fraction=validation_fraction, decode_images=False, columns=read)
    corpus = datasets.concatenate_datasets([loaded[name] for name in sorted(loaded)])
    ids = corpus.data.column("id").to_pylist()
    if columns is not None:
        corpus = corpus.select_columns(list(columns))
    return ids, corpus.select(eval_indices(ids, size, split, validation_fraction)).with_format("arrow")[:]
