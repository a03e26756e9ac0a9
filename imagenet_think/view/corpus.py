"""A local corpus as the viewer reads it: a small index in memory, everything else from the files.

The files are the Parquet files the loader finds for a source (:func:`imagenet_think.loading.
resolve_source`): the bundled ``sample``, a Hub-layout directory, a directory in the published
six-column layout, or a ``regenerate`` output still being written (``data/train-SSSSS-NNNNN.parquet``).

The index holds, per record, its ``id``, ``wnid``, ``label``, ``split``, file and row, and per
pair the ``status``, reasoning and answer lengths in characters, ``num_tokens`` and
``finish_reason``: about 120 bytes a record.  It is built one Parquet row group at a time, from the text and status columns
only, and kept per file under the file's size and modification time, so :meth:`Corpus.refresh`
reads only the files that are new or changed since the last look.  Published-layout files are
normalised (ids, labels, statuses) by :mod:`imagenet_think.normalize`, exactly as the loader does.

Records, images and text searches read the files again, one row group and only the columns
needed; image row groups, search results and search hits are kept in bounded memory caches
(requests arriving together for one row group, one search or one page's hits wait for a single
read).  The quality signals (answer agreement and label checks,
:mod:`imagenet_think.view.signals`) are computed per file on first use, in worker processes,
and kept with the file's index.  Nothing is ever
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
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imagenet_think import normalize, schema
from imagenet_think.view.cache import BoundedCache
from imagenet_think.view.query import hit_snippet, search_columns, text_hits
from imagenet_think.view.signals import SIGNAL_SCHEMA, SOURCE_COLUMNS, signal_table

PAIR_COLUMNS = tuple(
    f"{field}_{p}" for p in schema.TEACHER_NAMES for field in ("status", "think", "answer", "num_tokens", "finish_reason")
)
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
    + [pa.field(f"finish_reason_{p}", pa.string()) for p in schema.TEACHER_NAMES]
)
"""Columns of a file's index: one row per record."""

IMAGE_CACHE_BYTES = 96 * 2**20
SEARCH_CACHE_BYTES = 32 * 2**20
HITS_CACHE_BYTES = 4 * 2**20
SIGNAL_WORKER_NICENESS = 10
"""How much lower the priority of the worker processes computing signals is than the server's."""

logger = logging.getLogger(__name__)


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
        """Per row: whether one of ``columns`` contains ``text`` (ignoring case, :func:`text_hits`)."""
        return np.concatenate([np.zeros(0, dtype=bool), *(text_hits(t, text, columns) for t in self.row_groups(columns))])


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
        columns |= {f"{field}_{p}": table[f"{field}_{p}"] for field in ("num_tokens", "finish_reason") for p in schema.TEACHER_NAMES}
        parts.append(pa.table(columns).cast(INDEX_SCHEMA))
    return dataclasses.replace(data_file, index=pa.concat_tables(parts).combine_chunks())


def file_signals(path: str, split: str, layout: str) -> pa.Table:
    """The :data:`~imagenet_think.view.signals.SIGNAL_SCHEMA` columns of every record of one
    file, one row group at a time (what a worker process of :meth:`Corpus.signals` runs)."""
    stat = os.stat(path)
    data_file = DataFile(path, split, stat.st_size, stat.st_mtime_ns, layout, pq.read_metadata(path))
    return pa.concat_tables([SIGNAL_SCHEMA.empty_table(), *map(signal_table, data_file.row_groups(SOURCE_COLUMNS))])


def _start_worker(niceness: int, viewer: int) -> None:
    """Set up a worker process of :meth:`Corpus.signals`: lower its priority, and end it as soon
    as the viewer process ``viewer`` is gone, even killed (a worker waiting for tasks would
    otherwise never notice)."""
    os.nice(niceness)

    def watch() -> None:
        while os.getppid() == viewer:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="watch-viewer", daemon=True).start()


def _no_signals(rows: int) -> pa.Table:
    return pa.table({field.name: pa.nulls(rows, field.type) for field in SIGNAL_SCHEMA})


@dataclasses.dataclass(frozen=True)
class SignalProgress:
    """How far the computation of the signals of a snapshot has come, in records."""

    done: int
    total: int


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

    @functools.cached_property
    def keys(self) -> tuple:
        """The files' keys: what anything computed from this snapshot's records is kept under."""
        return tuple(f.key for f in self.files)

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
        self._hits = BoundedCache(HITS_CACHE_BYTES, size=lambda page: sum(100 + sum(map(len, (hit or {}).values())) for hit in page))
        self._signals: dict[tuple, pa.Table] = {}  # per file key, kept while the file is current
        self._signal_jobs: dict[tuple, Future] = {}
        self._signal_pool: Optional[ProcessPoolExecutor] = None
        self._joined_signals: Optional[tuple[tuple, pa.Table]] = None
        self._signal_lock = threading.Lock()

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
        columns = search_columns(pairs)

        def one_file(data_file: DataFile) -> np.ndarray:
            key = (*data_file.key, text.casefold(), columns)
            return self._searches.get_or_make(key, lambda: data_file.search(text, columns))

        with ThreadPoolExecutor(self.workers) as pool:
            masks = list(pool.map(one_file, snapshot.files))
        return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)

    def rows(self, snapshot: Snapshot, positions: Sequence[int], columns: Sequence[str]) -> list[dict[str, Any]]:
        """``columns`` of the records at ``positions``, in that order; each row group is read
        once, several at a time."""
        groups: dict[tuple, tuple[DataFile, int, list[tuple[int, int]]]] = {}
        for i, position in enumerate(positions):
            data_file, row = snapshot.locate(int(position))
            group, offset = data_file.locate(row)
            groups.setdefault((data_file.key, group), (data_file, group, []))[2].append((i, offset))

        def read(job: tuple[DataFile, int, list[tuple[int, int]]]) -> list[tuple[int, dict]]:
            data_file, group, wanted = job
            taken = data_file.read(group, columns).take([offset for _, offset in wanted]).to_pylist()
            return [(i, row) for (i, _), row in zip(wanted, taken, strict=True)]

        found: list[Any] = [None] * len(positions)
        with ThreadPoolExecutor(self.workers) as pool:
            for part in pool.map(read, groups.values()):
                for i, row in part:
                    found[i] = row
        return found

    def hits(self, snapshot: Snapshot, positions: Sequence[int], text: str, pairs: tuple[int, ...]) -> list[Optional[dict]]:
        """Where the text search ``text`` hit each record at ``positions`` (:func:`hit_snippet`
        over the reasoning and answers of ``pairs``; ``None`` where it did not), kept per page
        in a bounded cache (requests arriving together for one page wait for a single read)."""
        columns = search_columns(pairs)
        records = []
        for position in positions:
            data_file, row = snapshot.locate(int(position))
            records.append((*data_file.key, row))
        return self._hits.get_or_make(
            (text.casefold(), columns, tuple(records)),
            lambda: [hit_snippet(texts, text, columns) for texts in self.rows(snapshot, positions, columns)],
        )

    def signals(self, snapshot: Snapshot, wait: float = 0.0) -> Union[pa.Table, SignalProgress]:
        """The :data:`~imagenet_think.view.signals.SIGNAL_SCHEMA` columns of every record of
        ``snapshot`` in index order, or, while they are being computed, how far that has come.

        The first call starts one task per file (:func:`file_signals`) in :attr:`workers`
        worker processes of lower priority (the server stays responsive); results are kept
        per file, so after a refresh only new or changed files are computed.  Waits up to
        ``wait`` seconds for the tasks still running.  A file whose task fails has no signals
        (null; logged).
        """
        keys = snapshot.keys
        with self._signal_lock:
            if self._joined_signals is not None and self._joined_signals[0] == keys:
                return self._joined_signals[1]
            running = []
            for data_file in snapshot.files:
                if data_file.key not in self._signals:
                    if data_file.key not in self._signal_jobs:
                        job = self._pool().submit(file_signals, data_file.path, data_file.split, data_file.layout)
                        self._signal_jobs[data_file.key] = job
                    running.append(self._signal_jobs[data_file.key])
        if running and wait > 0:
            wait_for(running, timeout=wait)
        with self._signal_lock:
            for data_file in snapshot.files:
                job = self._signal_jobs.get(data_file.key)
                if job is not None and job.done():
                    self._signals[data_file.key] = self._collect(data_file, job)
                    del self._signal_jobs[data_file.key]
            if any(key not in self._signals for key in keys):
                done = sum(f.index.num_rows for f in snapshot.files if f.key in self._signals)
                return SignalProgress(done, snapshot.index.num_rows)
            self._signals = {key: self._signals[key] for key in keys}  # forget files gone or changed
            joined = pa.concat_tables([SIGNAL_SCHEMA.empty_table(), *(self._signals[key] for key in keys)])
            self._joined_signals = (keys, joined)
            return joined

    def ready_signals(self, snapshot: Snapshot) -> Optional[pa.Table]:
        """The signals of ``snapshot`` when :meth:`signals` has them all, else ``None`` (starts nothing)."""
        joined = self._joined_signals
        return joined[1] if joined is not None and joined[0] == snapshot.keys else None

    def _pool(self) -> ProcessPoolExecutor:
        if self._signal_pool is None:
            self._signal_pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(SIGNAL_WORKER_NICENESS, os.getpid()),
            )
        return self._signal_pool

    def _collect(self, data_file: DataFile, job: Future) -> pa.Table:
        """A finished task's signals, or nulls (logged) when it failed or the file changed."""
        rows = data_file.index.num_rows
        try:
            table = job.result()
        except Exception as err:  # a broken file or a killed worker: that file has no signals
            logger.warning("signals of %s: %s: %s", data_file.path, type(err).__name__, err)
            if isinstance(err, BrokenProcessPool):
                self._signal_pool = None  # a fresh pool for the next files
            return _no_signals(rows)
        if table.num_rows != rows:
            logger.warning("signals of %s: the file changed while they were computed", data_file.path)
            return _no_signals(rows)
        return table

    def close(self) -> None:
        """Stop the worker processes of :meth:`signals` (tasks not started are dropped)."""
        with self._signal_lock:
            pool, self._signal_pool = self._signal_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
