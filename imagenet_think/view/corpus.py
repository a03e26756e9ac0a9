"""A local corpus as the viewer reads it: a small index in memory, everything else from the files.

The files are the Parquet files the loader finds for a source (:func:`imagenet_think.loading.
resolve_source`): the bundled ``sample``, a Hub-layout directory, a directory in the published
six-column layout, or a ``regenerate`` output still being written (``data/train-SSSSS-NNNNN.parquet``).

The index holds, per record, its ``id``, ``wnid``, ``label``, ``split``, file and row, and per
pair the ``status``, reasoning and answer lengths in characters and ``num_tokens``: about 110
bytes a record.  It is built one Parquet row group at a time, from the text and status columns
only, and kept per file under the file's size and modification time, so :meth:`Corpus.refresh`
reads only the files that are new or changed since the last look.  Published-layout files are
normalised (ids, labels, statuses) by :mod:`imagenet_think.normalize`, exactly as the loader does.

Records, images and text searches read the files again, one row group and only the columns
needed; image row groups and search results are kept in bounded memory caches (requests
arriving together for one row group or one search wait for a single read).  Nothing is ever
written.

>>> corpus = Corpus("sample")
>>> snapshot = corpus.refresh(strict=True)
>>> snapshot.index.num_rows, snapshot.splits
(24, ('train', 'validation'))
>>> record = corpus.record(snapshot, snapshot.position_of("n07753592_n07753592_1000"))
>>> record["label"], record["status_1"], record["row"]
('banana', 'ok', 0)
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imagenet_think import normalize, schema
from imagenet_think.view.cache import BoundedCache

PAIR_COLUMNS = tuple(f"{field}_{p}" for p in schema.TEACHER_NAMES for field in ("status", "think", "answer", "num_tokens"))
INDEX_SOURCE_COLUMNS = ("id", "wnid", "label", *PAIR_COLUMNS)
"""Columns read to build the index (texts only to measure them)."""

RECORD_COLUMNS = tuple(name for name in schema.features("default") if name != "image")
"""Columns of a record page; the image is served on its own."""

INDEX_SCHEMA = pa.schema(
    [pa.field(name, pa.string()) for name in ("id", "wnid", "label")]
    + [
        pa.field(f"{name}_{p}", pa.string() if name == "status" else pa.int32())
        for p in schema.TEACHER_NAMES
        for name in ("status", "think_chars", "answer_chars")
    ]
    + [pa.field(f"num_tokens_{p}", pa.int32()) for p in schema.TEACHER_NAMES]
)
"""Columns of a file's index: one row per record."""

IMAGE_CACHE_BYTES = 96 * 2**20
SEARCH_CACHE_BYTES = 32 * 2**20


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One Parquet file of the corpus, with its footer and its part of the index."""

    path: str
    split: str
    size: int
    mtime_ns: int
    layout: str
    metadata: pq.FileMetaData = dataclasses.field(repr=False, compare=False)
    index: Optional[pa.Table] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def key(self) -> tuple:
        return (self.path, self.size, self.mtime_ns)

    def is_current(self) -> bool:
        """Whether the file on disk is still the one indexed (same size and modification time)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)

    @functools.cached_property
    def starts(self) -> list[int]:
        """First row of each row group, then the file's row count."""
        sizes = [self.metadata.row_group(i).num_rows for i in range(self.metadata.num_row_groups)]
        return [0, *itertools.accumulate(sizes)]

    def read(self, row_group: int, columns: Sequence[str], parquet: Optional[pq.ParquetFile] = None) -> pa.Table:
        """``columns`` (names of the ``default`` config) of one row group, normalised; ``parquet``
        is the file already open (else it is opened with the known footer).

        Published-layout files get ids, labels and statuses from :mod:`imagenet_think.normalize`;
        their image bytes are read only when ``"image"`` is asked for.
        """
        try:
            parquet = parquet or pq.ParquetFile(self.path, metadata=self.metadata)
            if self.layout == "imagenet-think":
                return parquet.read_row_group(row_group, columns=list(columns))
            image = "image" if "image" in columns else "image.path"
            raw = parquet.read_row_group(row_group, columns=[image, *schema.PUBLISHED_COLUMNS[1:]])
            ids = normalize.row_ids(raw, self.path, self.starts[row_group])
            return normalize.to_default(raw, ids).select(list(columns))
        except (pa.ArrowException, OSError) as err:
            raise normalize.LayoutError(f"{self.path}: cannot read row group {row_group} ({err})") from err

    def row_groups(self, columns: Sequence[str]) -> Iterator[pa.Table]:
        """:meth:`read` of every row group in turn, the file opened once."""
        try:
            parquet = pq.ParquetFile(self.path, metadata=self.metadata)
        except (pa.ArrowException, OSError) as err:
            raise normalize.LayoutError(f"{self.path}: cannot read Parquet data ({err})") from err
        with parquet:
            for group in range(self.metadata.num_row_groups):
                yield self.read(group, columns, parquet)

    def locate(self, row: int) -> tuple[int, int]:
        """``(row group, row within it)`` of the file's row ``row``."""
        group = bisect.bisect_right(self.starts, row) - 1
        return group, row - self.starts[group]

    def search(self, text: str, columns: Sequence[str]) -> np.ndarray:
        """Per row: whether one of ``columns`` contains ``text`` (ignoring case)."""
        masks = [np.zeros(0, dtype=bool)]
        for table in self.row_groups(columns):
            hits = [pc.fill_null(pc.match_substring(table[c], text, ignore_case=True), False) for c in columns]
            masks.append(np.logical_or.reduce([h.to_numpy(zero_copy_only=False) for h in hits]))
        return np.concatenate(masks)


def index_file(path: str, split: str) -> DataFile:
    """Read the index of one file; raises :class:`normalize.LayoutError` naming it when it is not
    an ImageNet-Think Parquet file."""
    from imagenet_think.stats import measure_table

    stat = os.stat(path)
    try:
        metadata = pq.read_metadata(path)
        layout = normalize.layout_of(metadata.schema.to_arrow_schema().names, path)
    except (pa.ArrowException, OSError) as err:
        raise normalize.LayoutError(f"{path}: not a readable Parquet file ({err})") from err
    data_file = DataFile(path, split, stat.st_size, stat.st_mtime_ns, layout, metadata)
    parts = [INDEX_SCHEMA.empty_table()]
    for table in data_file.row_groups(INDEX_SOURCE_COLUMNS):
        measured = measure_table(table, with_agreement=False)
        columns = {name: table[name] for name in ("id", "wnid", "label")} | {n: measured[n] for n in measured.column_names}
        columns |= {f"num_tokens_{p}": table[f"num_tokens_{p}"] for p in schema.TEACHER_NAMES}
        parts.append(pa.table(columns).cast(INDEX_SCHEMA))
    return dataclasses.replace(data_file, index=pa.concat_tables(parts).combine_chunks())


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The corpus as of one look at its files: the files, the joined index, and the files that
    could not be read (one message each)."""

    fingerprint: str
    files: tuple[DataFile, ...]
    index: pa.Table
    problems: tuple[str, ...] = ()

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.split for f in self.files))

    def position_of(self, record_id: str) -> Optional[int]:
        """Index position of the first record with ``id`` ``record_id``, ``None`` when absent."""
        position = pc.index(self.index["id"], record_id).as_py() if self.index.num_rows else -1
        return None if position < 0 else position

    def locate(self, position: int) -> tuple[DataFile, int]:
        """The file holding the record at ``position`` and its row in that file."""
        return self.files[self.index["file"][position].as_py()], self.index["row"][position].as_py()


def _join(files: list[DataFile]) -> pa.Table:
    parts = []
    for number, data_file in enumerate(files):
        n = data_file.index.num_rows
        parts.append(
            data_file.index.append_column("split", pa.repeat(data_file.split, n))
            .append_column("file", pa.repeat(pa.scalar(number, pa.int32()), n))
            .append_column("row", pa.array(np.arange(n, dtype=np.int64)))
        )
    if parts:
        return pa.concat_tables(parts)
    return pa.schema([*INDEX_SCHEMA, ("split", pa.string()), ("file", pa.int32()), ("row", pa.int64())]).empty_table()


def local_files(source: str) -> tuple[dict[str, list[str]], str]:
    """Parquet files by split of a local source, and their fingerprint (see
    :func:`imagenet_think.loading.resolve_source`); a Hub source is refused with what to do.
    A ``regenerate`` output that has no Parquet file yet (its run is starting) has none."""
    from imagenet_think import loading
    from imagenet_think.regenerate.runner import STATE_DIR

    if source == "sample" or (source not in loading.SOURCE_ALIASES and os.path.isdir(source)):
        try:
            return loading.resolve_source(source)
        except FileNotFoundError:
            if source != "sample" and os.path.isdir(os.path.join(source, STATE_DIR)):
                return {}, "no files yet"
            raise
    hub = f" (for a Hub dataset, run `imagenet-think export {source} DIR` and view DIR)" if loading.is_corpus_source(source) else ""
    raise FileNotFoundError(f"{source}: no such directory; view serves 'sample' or a local corpus directory{hub}")


class Corpus:
    """A source's index, refreshed from its files on demand, and reads of single records."""

    def __init__(self, source: str, workers: Optional[int] = None):
        self.source = source
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._snapshot: Optional[Snapshot] = None
        self._files: dict[tuple, DataFile] = {}
        self._lock = threading.Lock()
        self._images = BoundedCache(IMAGE_CACHE_BYTES)
        self._searches = BoundedCache(SEARCH_CACHE_BYTES)

    def refresh(self, strict: bool = False) -> Snapshot:
        """Look at the files again; index only new or changed ones.

        A file that cannot be read raises :class:`normalize.LayoutError` with ``strict``; otherwise
        it is left out and named in :attr:`Snapshot.problems` (a later refresh tries it again).
        """
        with self._lock:
            problems = []
            try:
                by_split, fingerprint = local_files(self.source)
            except FileNotFoundError as err:
                if strict or self._snapshot is None:
                    raise
                by_split, fingerprint = {}, ""
                problems.append(str(err))
            if self._snapshot is not None and self._snapshot.fingerprint == fingerprint and not self._snapshot.problems:
                return self._snapshot
            jobs = [(path, split, strict) for split, paths in by_split.items() for path in paths]
            with ThreadPoolExecutor(self.workers) as pool:  # Parquet decoding runs outside the GIL
                results = list(pool.map(lambda job: self._indexed(*job), jobs))
            files = [data_file for data_file in results if isinstance(data_file, DataFile)]
            problems += [problem for problem in results if isinstance(problem, str)]
            self._files = {f.key: f for f in files}
            self._snapshot = Snapshot(fingerprint, tuple(files), _join(files), tuple(problems))
            return self._snapshot

    def _indexed(self, path: str, split: str, strict: bool) -> Union[DataFile, str]:
        """The file's index (reused when the file is unchanged), or what is wrong with it."""
        try:
            stat = os.stat(path)
            known = self._files.get((path, stat.st_size, stat.st_mtime_ns))
            if known is not None and known.split == split:
                return known
            return index_file(path, split)
        except (normalize.LayoutError, OSError) as err:
            if strict:
                raise
            return str(err)

    @property
    def root(self) -> str:
        """The corpus directory."""
        from imagenet_think.loading import sample_dir

        return str(sample_dir()) if self.source == "sample" else self.source

    def relative(self, path: str) -> str:
        """``path`` relative to the corpus directory.

        >>> Corpus("sample").relative(os.path.join(Corpus("sample").root, "data", "x.parquet"))
        'data/x.parquet'
        """
        return os.path.relpath(path, self.root)

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (refreshing first if there is none)."""
        return self._snapshot or self.refresh()

    def record(self, snapshot: Snapshot, position: int) -> dict[str, Any]:
        """The record at ``position`` as a ``default``-config row without its image, plus where it
        lives (``split``, ``file``, ``row``)."""
        data_file, row = snapshot.locate(position)
        group, offset = data_file.locate(row)
        values = data_file.read(group, RECORD_COLUMNS).slice(offset, 1).to_pylist()[0]
        return {**values, "split": data_file.split, "file": data_file.path, "row": row}

    def image(self, snapshot: Snapshot, position: int) -> dict[str, Any]:
        """``{"bytes", "path"}`` of the record's image as stored."""
        data_file, row = snapshot.locate(position)
        group, offset = data_file.locate(row)
        column = self._images.get_or_make(
            (*data_file.key, group), lambda: data_file.read(group, ("image",))["image"].combine_chunks()
        )
        return column[offset].as_py()

    def search(self, snapshot: Snapshot, text: str, pairs: tuple[int, ...]) -> np.ndarray:
        """Per index row: whether the reasoning or answer of one of ``pairs`` contains ``text``
        (ignoring case).  Reads those text columns of every file once per text; results are
        cached per file, so after a refresh only new files are searched."""
        columns = tuple(f"{field}_{p}" for p in pairs for field in ("think", "answer"))

        def one_file(data_file: DataFile) -> np.ndarray:
            key = (*data_file.key, text.casefold(), columns)
            return self._searches.get_or_make(key, lambda: data_file.search(text, columns))

        with ThreadPoolExecutor(self.workers) as pool:
            masks = list(pool.map(one_file, snapshot.files))
        return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
