"""Deterministic train/validation assignment from a hash of the row ``id``.

The published corpus has only a ``train`` split.  Every row goes to ``validation`` when the
CRC-32 of its UTF-8 ``id``, scaled to [0, 1), is below ``validation_fraction``; the choice
depends on the id alone, so it is stable across machines, shard layouts and versions.

>>> round(hash_unit("n01440764_n01440764_10026"), 4)
0.0024
>>> is_validation("n01440764_n01440764_10026", 0.01)
True
"""

from __future__ import annotations

import zlib
from typing import Iterable, Optional, Sequence

import pyarrow as pa

DEFAULT_VALIDATION_FRACTION = 0.01
CRC32_RANGE = 4294967296.0  # 2**32: CRC-32 values are in [0, CRC32_RANGE)


def hash_unit(row_id: str) -> float:
    """CRC-32 of ``row_id`` (UTF-8) scaled into [0, 1)."""
    return zlib.crc32(row_id.encode("utf-8")) / CRC32_RANGE


def is_validation(row_id: str, fraction: float = DEFAULT_VALIDATION_FRACTION) -> bool:
    """Whether ``row_id`` belongs to the validation split for ``fraction``."""
    return hash_unit(row_id) < fraction


def validation_mask(ids: Iterable[str], fraction: float = DEFAULT_VALIDATION_FRACTION) -> pa.Array:
    """Boolean Arrow mask, True for ids in the validation split.

    >>> validation_mask(["a", "b"], 0.5).to_pylist()
    [False, True]
    """
    limit = fraction * CRC32_RANGE
    crc32 = zlib.crc32
    return pa.array([crc32(i.encode("utf-8")) < limit for i in ids], type=pa.bool_())


def split_parts(table: pa.Table, fraction: float = DEFAULT_VALIDATION_FRACTION) -> tuple[tuple[str, pa.Table], ...]:
    """``(("train", rows), ("validation", rows))``: the rows of ``table`` by the split their
    ``id`` hashes to at ``fraction`` (:func:`validation_mask`), each in table order.

    >>> [round(hash_unit(i), 2) for i in "abc"]
    [0.91, 0.44, 0.03]
    >>> [(split, rows["id"].to_pylist()) for split, rows in split_parts(pa.table({"id": ["a", "b", "c"]}), 0.5)]
    [('train', ['a']), ('validation', ['b', 'c'])]
    """
    import pyarrow.compute as pc

    mask = validation_mask(table["id"].to_pylist(), fraction)
    return ("train", table.filter(pc.invert(mask))), ("validation", table.filter(mask))


def split_of(row_id: str, fraction: float = DEFAULT_VALIDATION_FRACTION) -> str:
    """``"validation"`` or ``"train"``: the split ``row_id`` hashes to at ``fraction``.

    >>> split_of("n01440764_n01440764_10026"), split_of("n01440764_n01440764_10026", 0.001)
    ('validation', 'train')
    """
    return "validation" if is_validation(row_id, fraction) else "train"


def check_split_label(ids: Sequence[str], split: str, fraction: Optional[float], where: str, first_row: int = 0) -> None:
    """Raise ``ValueError`` naming ``where`` unless every id of ``ids`` hashes to ``split``.

    ``ids`` are rows of a file labelled ``split`` at ``fraction`` (row ``first_row`` first);
    a label that disagrees with an id would put the row in both splits, or in the wrong one.

    >>> check_split_label(["b"], "validation", 0.5, "x.parquet")
    >>> check_split_label(["a", "b"], "train", 0.5, "x.parquet", first_row=10)
    Traceback (most recent call last):
    ...
    ValueError: x.parquet: labelled split 'train' (validation_fraction 0.5), but row 11 (id 'b') hashes to 'validation'
    """
    if split not in ("train", "validation") or fraction is None:
        raise ValueError(f"{where}: split label {split!r} at validation_fraction {fraction!r} is not a hash split")
    limit = check_fraction(fraction) * CRC32_RANGE
    wanted = split == "validation"
    hashes = map(zlib.crc32, map(str.encode, ids))  # min/max over C iterators: ~0.1 us an id
    if not ids or (max(hashes) < limit if wanted else min(hashes) >= limit):
        return
    bad = next(i for i, is_val in enumerate(validation_mask(ids, fraction).to_pylist()) if is_val != wanted)
    raise ValueError(
        f"{where}: labelled split {split!r} (validation_fraction {fraction}), but row {first_row + bad} "
        f"(id {ids[bad]!r}) hashes to {split_of(ids[bad], fraction)!r}"
    )


def check_fraction(fraction: float) -> float:
    """Validate a validation fraction, returning it.

    >>> check_fraction(1.5)
    Traceback (most recent call last):
    ...
    ValueError: `validation_fraction` must be in [0, 1), got 1.5
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"`validation_fraction` must be in [0, 1), got {fraction}")
    return fraction
