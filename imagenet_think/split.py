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
from typing import Iterable

import pyarrow as pa

DEFAULT_VALIDATION_FRACTION = 0.01


def hash_unit(row_id: str) -> float:
    """CRC-32 of ``row_id`` (UTF-8) scaled into [0, 1)."""
    return zlib.crc32(row_id.encode("utf-8")) / 4294967296.0


def is_validation(row_id: str, fraction: float = DEFAULT_VALIDATION_FRACTION) -> bool:
    """Whether ``row_id`` belongs to the validation split for ``fraction``."""
    return hash_unit(row_id) < fraction


def validation_mask(ids: Iterable[str], fraction: float = DEFAULT_VALIDATION_FRACTION) -> pa.Array:
    """Boolean Arrow mask, True for ids in the validation split.

    >>> validation_mask(["a", "b"], 0.5).to_pylist()
    [False, True]
    """
    limit = fraction * 4294967296.0
    crc32 = zlib.crc32
    return pa.array([crc32(i.encode("utf-8")) < limit for i in ids], type=pa.bool_())


def check_fraction(fraction: float) -> float:
    """Validate a validation fraction, returning it.

    >>> check_fraction(1.5)
    Traceback (most recent call last):
    ...
    ValueError: validation_fraction must be in [0, 1), got 1.5
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    return fraction
