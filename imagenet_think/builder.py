"""``datasets`` builder for ImageNet-Think Parquet shards (ours or the published copy).

Kept small on purpose: ``datasets`` swaps ``open``/``glob`` inside a builder's module for
fsspec-aware versions.  Reshaping lives in :mod:`imagenet_think.normalize`.

Configs: ``default`` (one row per image, both pairs), ``glm`` and ``kimi`` (one teacher each),
``pairs`` (one row per image and teacher).  Splits: ``train`` and ``validation`` by a hash
of ``id`` (:mod:`imagenet_think.split`).  Files written by :mod:`imagenet_think.writer` record
their split and fraction in the Parquet metadata, so they are read without re-filtering; a file
whose label disagrees with the hash split of one of its ids is refused (:class:`normalize.LayoutError`),
and so is an id found twice in a split (:class:`UniqueIds`): a corpus holds each id once.

>>> ImageNetThinkConfig(name="pairs", validation_fraction=0.05).validation_fraction
0.05
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import datasets
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from imagenet_think import __version__, normalize, schema
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION, check_fraction, check_split_label

try:  # datasets >= 4.4.2
    from datasets.builder import Key
except ImportError:  # pragma: no cover - older datasets take any hashable key

    def Key(file_idx: int, batch_idx: int) -> tuple:  # noqa: N802
        return (file_idx, batch_idx)


DATA_REVISION = "1"
"""Bump when the meaning of stored data changes; part of the cache key with the version."""


@dataclass
class ImageNetThinkConfig(datasets.BuilderConfig):
    """Config of one view of the corpus; ``validation_fraction`` sizes the hash split.

    ``columns`` keeps only those columns of the config, like the packaged Parquet builder's
    option: the others are neither read from ImageNet-Think shards nor written to the Arrow
    cache (``["id", "answer_1"]`` never copies an image).
    """

    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    columns: Optional[list[str]] = None

    def __post_init__(self):
        super().__post_init__()
        schema.check_config(self.name)
        check_fraction(self.validation_fraction)
        if self.columns is not None:
            self.columns = list(schema.features(self.name, tuple(self.columns)))  # checks the names


def builder_hash(data_fingerprint: str = "") -> str:
    """Cache key part: package version, data revision and the caller's data fingerprint."""
    return f"imagenet-think-{__version__}-r{DATA_REVISION}-{data_fingerprint}"


def read_split_metadata(file) -> dict:
    """The ``imagenet_think`` metadata of an open Parquet file, ``{}`` when absent."""
    metadata = pq.read_schema(file).metadata or {}
    return json.loads(metadata[schema.METADATA_KEY]) if schema.METADATA_KEY in metadata else {}


class UniqueIds:
    """The ids of one split read so far, to refuse an id read twice (:class:`normalize.LayoutError`
    naming it and the files holding it): a corpus holds each id once.

    Kept by the builder across its ``_generate_tables`` calls, which streaming makes one per
    file; a file read again (a second pass over a streaming dataset) is not checked again.
    With ``num_proc`` (or several ``DataLoader`` workers) each process checks its own files.
    The check is one ``set.update`` per row group; finding the other file re-reads the ids of
    the files before, only on error.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> for name, ids in (("x.parquet", ["a", "b"]), ("y.parquet", ["c", "a"])):
    ...     pq.write_table(pa.table({"id": ids}), os.path.join(folder, name))
    >>> seen = UniqueIds()
    >>> for name in ("x.parquet", "y.parquet"):
    ...     path = os.path.join(folder, name)
    ...     if seen.start(path):
    ...         seen.add(pq.read_table(path)["id"].to_pylist(), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imagenet_think.normalize.LayoutError: id 'a' is in .../x.parquet and again in .../y.parquet: a corpus holds each id once ...
    """

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.files: list[str] = []

    def start(self, file: str) -> bool:
        """Whether ``file`` is new (its ids are to be checked) rather than read again."""
        if file in self.files:
            return False
        self.files.append(file)
        return True

    def add(self, ids: list[str], file: str) -> None:
        """Add ``ids``, rows of ``file``; raise when one was read before or repeats in ``ids``."""
        before = len(self.ids)
        self.ids.update(ids)
        if len(self.ids) - before != len(ids):
            raise self._repeated(set(ids))

    def _repeated(self, ids: set[str]) -> normalize.LayoutError:
        """The error for an id of ``ids`` read twice: the files read so far are read again, in
        order, up to its second copy."""
        first_copy: dict[str, str] = {}
        for file in self.files:
            for row_id in file_ids(file):
                if row_id in ids and row_id in first_copy:
                    return normalize.LayoutError(
                        f"id {row_id!r} is in {first_copy[row_id]} and again in {file}: a corpus holds each id "
                        "once (two runs of regenerate wrote the same images?); move one copy away"
                    )
                first_copy.setdefault(row_id, file)
        return normalize.LayoutError(f"an id of {self.files[-1]} was read twice (the files changed while read?)")


def file_ids(file: str) -> list[str]:
    """The row ids of a Parquet file of either layout (see :func:`normalize.row_ids`)."""
    with open(file, "rb") as f:
        parquet = pq.ParquetFile(f)
        table = parquet.read(columns=["id"] if "id" in parquet.schema_arrow.names else ["image"])
    return normalize.row_ids(table, file)


class ImageNetThink(datasets.ArrowBasedBuilder):
    """Arrow-based builder yielding one table per Parquet row group."""

    BUILDER_CONFIG_CLASS = ImageNetThinkConfig
    BUILDER_CONFIGS = [ImageNetThinkConfig(name=name) for name in schema.CONFIGS]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unique_ids: dict[tuple, UniqueIds] = {}  # per split: (keep_validation, labelled)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="ImageNet-21k images with two (thinking, answer) pairs from two reasoning VLMs.",
            features=schema.features(self.config.name, self._columns),
            homepage=f"https://huggingface.co/datasets/{schema.HUB_REPO}",
            license="cc-by-4.0 (texts); ImageNet terms, non-commercial research only (images)",
            citation=schema.CITATION,
        )

    @property
    def _columns(self) -> Optional[tuple[str, ...]]:
        return None if self.config.columns is None else tuple(self.config.columns)

    def _split_generators(self, dl_manager):
        if not self.config.data_files:
            raise FileNotFoundError("no Parquet files given: pass a directory holding *.parquet or data_files=")
        files_by_split = {str(k): list(v) for k, v in dl_manager.download(self.config.data_files).items()}
        fraction = check_fraction(self.config.validation_fraction)
        presplit = set(files_by_split) <= set(schema.SPLITS) and all(
            self._split_metadata(f) == {"split": split, "validation_fraction": fraction}
            for split, files in files_by_split.items()
            for f in files
        )
        if presplit:
            return [
                datasets.SplitGenerator(name=split, gen_kwargs={"files": files, "keep_validation": None, "labelled": split})
                for split, files in files_by_split.items()
            ]
        every_file = [f for files in files_by_split.values() for f in files]
        generators = [
            datasets.SplitGenerator(name="train", gen_kwargs={"files": every_file, "keep_validation": False, "labelled": None})
        ]
        if fraction > 0:
            generators.append(
                datasets.SplitGenerator(
                    name="validation", gen_kwargs={"files": every_file, "keep_validation": True, "labelled": None}
                )
            )
        return generators

    def _split_metadata(self, file: str) -> dict:
        try:
            with open(file, "rb") as f:
                return read_split_metadata(f)
        except (pa.ArrowInvalid, OSError) as err:
            raise normalize.LayoutError(f"{file}: not a readable Parquet file ({err})") from err

    def _generate_tables(self, files, keep_validation, labelled):
        """Tables of ``files``: the rows of one hash split (``keep_validation``), or every row of
        files whose metadata labels them ``labelled``, after checking each id hashes there."""
        fraction = self.config.validation_fraction
        unique = self._unique_ids.setdefault((keep_validation, labelled), UniqueIds())
        for file_idx, file in enumerate(files):
            check = unique.start(file)
            with open(file, "rb") as f:
                try:
                    fragment = ds.ParquetFileFormat().make_fragment(f)
                    layout = normalize.layout_of(fragment.physical_schema.names, file)
                    if not fragment.row_groups:
                        continue
                    first_row = 0
                    read = normalize.source_columns(self.config.name, self._columns) if layout == "imagenet-think" else None
                    batches = fragment.to_batches(
                        columns=read, batch_size=fragment.row_groups[0].num_rows, batch_readahead=0, fragment_readahead=0
                    )
                    for batch_idx, batch in enumerate(batches):
                        table = pa.Table.from_batches([batch])
                        ids = normalize.row_ids(table, file, first_row)
                        if labelled is not None:
                            try:
                                check_split_label(ids, labelled, fraction, file, first_row)
                            except ValueError as err:
                                raise normalize.LayoutError(
                                    f"{err}; the file would leak rows across splits: re-export it with "
                                    "`imagenet-think export` (which labels each file by its ids)"
                                ) from None
                        first_row += table.num_rows
                        table, ids = normalize.split_filter(table, ids, keep_validation, fraction)
                        if check:
                            unique.add(ids, file)
                        table = normalize.to_default(table, ids, layout)
                        yield Key(file_idx, batch_idx), normalize.project(table, self.config.name, self._columns)
                except (pa.ArrowInvalid, OSError) as err:
                    raise normalize.LayoutError(f"{file}: cannot read Parquet data ({err})") from err
