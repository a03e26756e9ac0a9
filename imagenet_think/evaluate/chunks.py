"""Resumable work in chunks: one Parquet file per chunk, skipped on rerun when still valid.

Rows ``[k * chunk_size, (k + 1) * chunk_size)`` form chunk ``k``; its result goes to
``<directory>/chunk-<k:05d>.parquet`` by :func:`imagenet_think.fileio.atomic_write`, so a
killed run never leaves a half-written chunk.  The file's schema metadata holds a fingerprint
of everything the result depends on (ids, inputs, settings); a rerun reuses a chunk only when
the fingerprint still matches, and recomputes it otherwise.

>>> import tempfile, pyarrow as pa
>>> calls = []
>>> def square(start, stop):
...     calls.append(start)
...     return pa.table({"x": [i * i for i in range(start, stop)]})
>>> with tempfile.TemporaryDirectory() as tmp:
...     first = run_chunks(5, 2, tmp, lambda start, stop: "v1", square, progress=False)
...     again = run_chunks(5, 2, tmp, lambda start, stop: "v1", square, progress=False)
>>> first["x"].to_pylist(), calls, first.equals(again)
([0, 1, 4, 9, 16], [0, 2, 4], True)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_think.fileio import atomic_write

FINGERPRINT_KEY = b"imagenet_think.chunk_fingerprint"


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex) of ``parts`` written as JSON (lists of strings, numbers, dicts...).

    >>> fingerprint(["a"], {"k": 1}) == fingerprint(["a"], {"k": 1}) != fingerprint(["b"], {"k": 1})
    True
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def chunk_path(directory: Union[str, os.PathLike], index: int) -> Path:
    """Where chunk ``index`` is stored.

    >>> chunk_path("run/scores", 3).name
    'chunk-00003.parquet'
    """
    return Path(directory) / f"chunk-{index:05d}.parquet"


def read_chunk(path: Path, expected: str) -> Optional[pa.Table]:
    """The stored chunk at ``path`` if its fingerprint is ``expected``, else ``None``."""
    if not path.is_file():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    if metadata.get(FINGERPRINT_KEY, b"").decode() != expected:
        return None
    return pq.read_table(path)


def write_chunk(table: pa.Table, path: Path, chunk_fingerprint: str) -> None:
    """Write ``table`` to ``path`` atomically, tagged with ``chunk_fingerprint``."""
    metadata = {**(table.schema.metadata or {}), FINGERPRINT_KEY: chunk_fingerprint.encode()}
    with atomic_write(path, "wb") as handle:
        pq.write_table(table.replace_schema_metadata(metadata), handle)


def run_chunks(
    num_rows: int,
    chunk_size: int,
    directory: Union[str, os.PathLike],
    fingerprint_of: Callable[[int, int], str],
    compute: Callable[[int, int], pa.Table],
    desc: str = "chunks",
    progress: bool = True,
) -> pa.Table:
    """Run ``compute(start, stop)`` on every chunk not already stored; return all chunks joined.

    ``fingerprint_of(start, stop)`` must change whenever ``compute`` would return something
    else.  A progress bar (``tqdm``, counting rows) shows reused rows as already done.
    """
    from tqdm.auto import tqdm

    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be positive, got {chunk_size}")
    tables = []
    with tqdm(total=num_rows, desc=desc, unit="row", disable=not progress) as bar:
        for index, start in enumerate(range(0, num_rows, chunk_size)):
            stop = min(start + chunk_size, num_rows)
            path = chunk_path(directory, index)
            expected = fingerprint_of(start, stop)
            table = read_chunk(path, expected)
            if table is None:
                table = compute(start, stop)
                write_chunk(table, path, expected)
            tables.append(table.replace_schema_metadata(None))
            bar.update(stop - start)
    if not tables:
        raise ValueError("nothing to run: zero rows")
    return pa.concat_tables(tables)
