"""Hub-layout shard writer and exporter (``imagenet-think export`` calls :func:`export_hub_layout`).

A corpus directory looks like the Hub copy of a well-kept dataset::

    out/
      README.md                               # YAML configs + full dataset_info, then the card
      data/train-00000-of-00004.parquet       # image bytes embedded, HF features in metadata
      data/validation-00000-of-00001.parquet

``datasets.load_dataset(out)`` reads it with typed features and no import of this package.
:func:`write_shard` is the one place corpus shards are written (``regenerate`` uses it
too); :func:`write_card` recomputes the card from the shards present, so a rewritten
directory never serves datasets' stale cache.  :class:`ShardWriter` writes a stream of
tables of any schema as one split's shards (``export-sft --format trl`` uses it).

>>> shard_name("train", 3, 12)
'train-00003-of-00012.parquet'
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_think import schema
from imagenet_think.fileio import atomic_write, check_replaceable, staging_dir
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION, check_fraction, check_split_label, split_parts

if TYPE_CHECKING:
    import datasets

    from imagenet_think.view.query import Query

ROWS_PER_ROW_GROUP = 100
"""Rows per Parquet row group (``datasets`` uses 100 for image datasets)."""

DEFAULT_MAX_SHARD_BYTES = 500 * 2**20

COMPRESSION = "zstd"


def shard_name(split: str, index: int, total: int, fingerprint: Optional[str] = None) -> str:
    """File name of shard ``index`` of ``total`` for ``split`` (``fingerprint`` ends the stem).

    >>> shard_name("train", 0, 2, fingerprint="9f0c")
    'train-00000-of-00002-9f0c.parquet'
    """
    stem = f"{split}-{index:05d}-of-{total:05d}"
    return f"{stem}-{fingerprint}.parquet" if fingerprint else f"{stem}.parquet"


def write_shard(
    table: pa.Table,
    path: Union[str, os.PathLike],
    split: Optional[str] = None,
    validation_fraction: Optional[float] = None,
) -> Path:
    """Write ``table`` (``default`` config rows) to ``path`` atomically; return the path.

    The table is cast to the ``default`` schema (HF features in the ``huggingface``
    metadata key); ``split``/``validation_fraction`` are recorded so the builder can trust
    the file's split, after checking that every id hashes to ``split`` at that fraction
    (``ValueError`` naming the path and the first stray row otherwise; nothing is written).
    Written with :func:`imagenet_think.fileio.atomic_write`: a crash leaves either the old
    file or the new one, never half.
    """
    from datasets.table import embed_table_storage, table_cast

    path = Path(path)
    target = schema.arrow_schema("default")
    metadata = dict(target.metadata)
    if split is not None:
        check_split_label(table["id"].to_pylist(), split, validation_fraction, str(path))
        metadata[schema.METADATA_KEY] = json.dumps({"split": split, "validation_fraction": validation_fraction})
    table = embed_table_storage(table_cast(table.select(target.names), target))
    table = table.replace_schema_metadata(metadata)
    with atomic_write(path, "wb") as f:
        pq.write_table(table, f, row_group_size=ROWS_PER_ROW_GROUP, compression=COMPRESSION)
    return path


def is_shard_file(path: Path) -> bool:
    """Whether ``path``, in the ``data/`` directory of an export, is what an export writes
    there: a Parquet file (not a link).

    >>> is_shard_file(Path("data/train-00000-of-00001.parquet")), is_shard_file(Path("data/mine.txt"))
    (False, False)
    """
    return path.suffix == ".parquet" and path.is_file() and not path.is_symlink()


class ShardWriter:
    """Write a stream of Arrow tables as the shards ``<split>-NNNNN-of-MMMMM.parquet`` of one split.

    Images are embedded (``datasets.table.embed_table_storage``, as ``push_to_hub`` does) and
    the first table's schema, with its ``huggingface`` features metadata, is every shard's.
    A shard is closed once it holds about ``max_shard_bytes`` of Arrow data; shards carry a
    provisional name until :meth:`close` knows their count and :attr:`fingerprint`, a hash of
    the split's shard files that ends every name, so a card naming ``<split>-*-<fingerprint>``
    changes whenever the data do (``datasets`` keys its cache of a local directory on the card
    alone).  Write into a staging directory: the shards of an unfinished split are not a
    dataset yet (on an error they are removed).

    >>> import tempfile
    >>> data = Path(tempfile.mkdtemp()) / "data"
    >>> with ShardWriter(data, "train", max_shard_bytes=8) as shards:
    ...     shards.write(pa.table({"n": [1]}))
    ...     shards.write(pa.table({"n": [2, 3]}))
    >>> [path.name.replace(shards.fingerprint, "F") for path in shards.paths], shards.num_rows
    (['train-00000-of-00002-F.parquet', 'train-00001-of-00002-F.parquet'], 3)
    """

    def __init__(
        self, data_dir: Union[str, os.PathLike], split: str, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    ):
        self.data_dir, self.split, self.max_shard_bytes = Path(data_dir), split, max_shard_bytes
        self.paths: list[Path] = []
        self.num_rows = 0
        self.fingerprint: Optional[str] = None
        self._parquet: Optional[pq.ParquetWriter] = None
        self._shard_bytes = 0

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows, in a new shard if the current one is full (no rows: nothing)."""
        from datasets.table import embed_table_storage

        if table.num_rows == 0:
            return
        if self._parquet is not None and self._shard_bytes >= self.max_shard_bytes:
            self._close_shard()
        table = embed_table_storage(table)
        if self._parquet is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.paths.append(self.data_dir / f"{self.split}-{len(self.paths):05d}.parquet.partial")
            self._parquet = pq.ParquetWriter(self.paths[-1], table.schema, compression=COMPRESSION)
            self._shard_bytes = 0
        self._parquet.write_table(table.cast(self._parquet.schema), row_group_size=ROWS_PER_ROW_GROUP)
        self._shard_bytes += table.nbytes
        self.num_rows += table.num_rows

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; return their paths."""
        import xxhash

        self._close_shard()
        digest = xxhash.xxh3_64()
        for path in self.paths:
            with open(path, "rb") as shard:
                for block in iter(lambda: shard.read(1 << 24), b""):
                    digest.update(block)
        self.fingerprint = digest.hexdigest()
        total = len(self.paths)
        final = [self.data_dir / shard_name(self.split, i, total, self.fingerprint) for i in range(total)]
        for provisional, path in zip(self.paths, final, strict=True):
            os.replace(provisional, path)
        self.paths = final
        return final

    def _close_shard(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, error_type: Any, *_: Any) -> None:
        if error_type is None:
            self.close()
            return
        self._close_shard()
        for path in self.paths:
            path.unlink(missing_ok=True)


def write_split_shards(
    table: pa.Table,
    data_dir: Union[str, os.PathLike],
    index: int = 0,
    total: int = 1,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> list[Path]:
    """Write shard ``index`` of ``total`` of each hash split of ``table`` under ``data_dir``.

    Rows go to ``train-…`` or ``validation-…`` by the hash of their ``id``
    (:mod:`imagenet_think.split`), each file labelled with its split; a split with no rows in
    ``table`` gets no file.  Returns the paths written, train first.
    """
    paths = []
    for split, rows in split_parts(table, check_fraction(validation_fraction)):
        if rows.num_rows:
            paths.append(write_shard(rows, Path(data_dir) / shard_name(split, index, total), split, validation_fraction))
    return paths


def split_sizes(
    out_dir: Union[str, os.PathLike], footers: Optional[Mapping[Path, pq.FileMetaData]] = None
) -> dict[str, dict[str, int]]:
    """Per split: rows, uncompressed bytes and file bytes of ``out_dir/data/*.parquet``
    (``footers``: metadata of files already read, by path, not read again)."""
    sizes: dict[str, dict[str, int]] = {}
    for file in sorted(Path(out_dir, "data").glob("*.parquet")):
        split = file.name.split("-", 1)[0]
        meta = (footers or {}).get(file) or pq.read_metadata(file)
        entry = sizes.setdefault(split, {"num_examples": 0, "num_bytes": 0, "download_size": 0})
        entry["num_examples"] += meta.num_rows
        entry["num_bytes"] += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        entry["download_size"] += file.stat().st_size
    return sizes


def write_card(
    out_dir: Union[str, os.PathLike], footers: Optional[Mapping[Path, pq.FileMetaData]] = None, **card_info
) -> Path:
    """(Re)write ``out_dir/README.md`` from the shards present; return its path.

    ``footers`` are the metadata of shards already read (see :func:`split_sizes`);
    ``card_info`` goes to :func:`imagenet_think.card.render_card` (``pretty_name``,
    ``source``, ``note``...).
    """
    from imagenet_think.card import render_card

    out_dir = Path(out_dir)
    sizes = split_sizes(out_dir, footers)
    if not sizes:
        raise FileNotFoundError(f"{out_dir}/data holds no *.parquet shard: nothing to describe")
    readme = out_dir / "README.md"
    with atomic_write(readme) as f:
        f.write(render_card(sizes, **card_info))
    return readme


Corpus = Union[str, "datasets.Dataset", "datasets.DatasetDict", "datasets.IterableDataset", "datasets.IterableDatasetDict"]
"""What :func:`export_hub_layout` exports: a source name or a dataset already loaded."""


def is_saved_dataset(path: Union[str, os.PathLike]) -> bool:
    """Whether ``path`` is a directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return Path(path, "state.json").is_file() or Path(path, "dataset_dict.json").is_file()


def corpus_splits(source: Corpus, validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> dict[str, Any]:
    """The splits of ``source`` by name, each a ``Dataset`` or ``IterableDataset``.

    ``source`` is a source name (``"sample"``, a corpus directory, a Hub id: loaded with
    :func:`imagenet_think.load_dataset` and ``validation_fraction``), a directory written by
    ``save_to_disk``, a ``DatasetDict`` / ``IterableDatasetDict``, or one ``Dataset`` /
    ``IterableDataset`` (its split name, ``train`` when it has none).

    >>> import datasets
    >>> list(corpus_splits(datasets.Dataset.from_dict({"id": ["a"]}, split="validation")))
    ['validation']
    """
    import datasets

    if isinstance(source, (str, os.PathLike)):
        if is_saved_dataset(source):
            return corpus_splits(datasets.load_from_disk(str(source)), validation_fraction)
        from imagenet_think.loading import load_dataset

        source = load_dataset(str(source), validation_fraction=validation_fraction, decode_images=False)
    if isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return {str(name): split for name, split in source.items()}
    if isinstance(source, (datasets.Dataset, datasets.IterableDataset)):
        return {str(source.split or "train"): source}
    raise TypeError(
        f"cannot export a {type(source).__name__}: pass a source name or directory, a Dataset, DatasetDict or IterableDataset"
    )


def _default_rows(batch: pa.Table, split: str, first_row: int) -> pa.Table:
    """``batch`` as ``default``-config rows (the published six columns are normalised)."""
    from imagenet_think import normalize

    try:
        layout = normalize.layout_of(batch.column_names, f"split {split!r}")
    except normalize.LayoutError as err:
        raise ValueError(
            f"split {split!r}: export writes the default config (one row per image, both pairs, columns "
            f"{', '.join(schema.features('default'))}), or the published six columns; this dataset has "
            f"{', '.join(batch.column_names)}. Load it with the default config."
        ) from err
    if layout == "imagenet-think":
        return batch
    return normalize.to_default(batch, normalize.row_ids(batch, f"split {split!r}", first_row))


def corpus_batches(
    splits: Mapping[str, Any],
    limit: Optional[int] = None,
    batch_size: int = 10 * ROWS_PER_ROW_GROUP,
    desc: str = "export",
    progress: bool = True,
    where: Optional["Query"] = None,
) -> Iterator[pa.Table]:
    """``default``-config Arrow batches of every dataset of ``splits`` in turn (``Dataset`` or
    ``IterableDataset``, :func:`corpus_splits`; ``limit`` rows of each at most, of those
    ``where`` keeps: the records ``imagenet-think view`` lists for that query), images as
    stored structs, the published six columns normalised; a progress bar per split
    (``"<desc> <split>"``) unless ``progress=False``.  The sample's 24 rows are 23 ``train``
    rows and one ``validation`` row:

    >>> splits = corpus_splits("sample")
    >>> [batch.num_rows for batch in corpus_batches(splits, limit=3, progress=False)]
    [3, 1]
    """
    import datasets
    from tqdm.auto import tqdm

    if where is not None:
        from imagenet_think.view.query import keep_where

    for name, dataset in splits.items():
        total = None if isinstance(dataset, datasets.IterableDataset) else len(dataset)
        if where is None:
            total = limit if total is None else total if limit is None else min(total, limit)
        with tqdm(desc=f"{desc} {name}", unit="row", total=total, disable=not progress) as bar:
            batches = _normalised_batches(dataset, name, batch_size, limit if where is None else None, bar)
            yield from batches if where is None else keep_where(batches, where, name, limit)


def _normalised_batches(dataset: Any, split: str, batch_size: int, limit: Optional[int], bar: Any) -> Iterator[pa.Table]:
    """``default``-config batches of ``dataset`` (its first ``limit`` rows), counted on ``bar``."""
    read = 0
    for batch in dataset.with_format("arrow").iter(batch_size=batch_size):
        if limit is not None:
            if read >= limit:
                break
            batch = batch.slice(0, limit - read)  # normalise no row that is not kept
        batch = _default_rows(batch, split, read)
        read += batch.num_rows
        bar.update(batch.num_rows)
        if batch.num_rows:
            yield batch


def _write_splits(
    splits: Mapping[str, Any],
    data_dir: Path,
    validation_fraction: float,
    max_shard_bytes: int,
    limit: Optional[int],
    where: Optional["Query"] = None,
) -> dict[str, list[Path]]:
    """Write the rows of every dataset of ``splits`` (``Dataset`` or ``IterableDataset``; ``limit``
    rows of each at most, of those ``where`` keeps) as shards of about ``max_shard_bytes`` (Arrow
    bytes) into ``data_dir``.

    Each row goes to the split its id hashes to at ``validation_fraction``, whichever split it
    came in: the published copy is one ``train`` split holding ids of both, and a file whose
    label disagrees with its ids is refused by the loader.  Each shard records its split and
    the fraction (:func:`write_shard`).  Returns each split's shards, named without their total.
    """
    written: dict[str, list[Path]] = {"train": [], "validation": []}
    pending: dict[str, list[pa.Table]] = {"train": [], "validation": []}

    def flush(split: str) -> None:
        path = data_dir / f"{split}-{len(written[split]):05d}.parquet"
        written[split].append(write_shard(pa.concat_tables(pending[split]), path, split, validation_fraction))
        pending[split] = []

    for batch in corpus_batches(splits, limit, where=where):
        for split, part in split_parts(batch, validation_fraction):
            row_bytes = max(1, part.nbytes // max(1, part.num_rows))
            while part.num_rows:
                room = max_shard_bytes - sum(table.nbytes for table in pending[split])
                take = max(1, room // row_bytes)
                pending[split].append(part.slice(0, take))
                part = part.slice(take)
                if sum(table.nbytes for table in pending[split]) >= max_shard_bytes:
                    flush(split)
    for split, tables in pending.items():
        if tables:
            flush(split)
    return written


def export_hub_layout(
    source: Corpus,
    out_dir: Union[str, os.PathLike],
    *,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
    limit: Optional[int] = None,
    where: Optional[str] = None,
    push_to_hub: Optional[str] = None,
    **card_info,
) -> Path:
    """Write ``source`` to ``out_dir`` in Hub layout; return the card's path.

    ``source`` is anything :func:`corpus_splits` takes: ``"sample"``, a corpus directory, a Hub
    id, a ``save_to_disk`` directory, or a loaded ``Dataset`` / ``DatasetDict`` /
    ``IterableDataset`` of ``default``-config rows, e.g. after
    :func:`imagenet_think.quality.apply_filters`.  Shards hold about ``max_shard_bytes`` of
    Arrow data; ``where`` (the viewer's query string, :func:`imagenet_think.view.query.parse_where`:
    ``"status=ok&q=dog"``) keeps the records ``imagenet-think view`` lists for it; ``limit`` keeps
    the first rows of each split; every row lands in the split its id
    hashes to at ``validation_fraction`` (the loader's split), whatever split it came in.  Everything is written in a
    staging directory next to ``out_dir`` and moved into place at the end; an existing
    ``out_dir/data`` is only replaced with ``overwrite=True``, and only when it holds nothing
    but Parquet files (:func:`imagenet_think.fileio.check_replaceable`); so is an existing
    ``out_dir/README.md``.  ``push_to_hub`` names a Hub
    dataset repo to upload the result to; access is checked before any work.

    >>> import imagenet_think, tempfile
    >>> from imagenet_think import quality
    >>> ds = imagenet_think.load_dataset("sample", split="train")
    >>> clean = quality.apply_filters(ds, quality.complete())
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     readme = export_hub_layout(clean, tmp + "/clean")
    ...     split_sizes(readme.parent)["train"]["num_examples"] == len(clean) < len(ds)
    True
    """
    from imagenet_think.view.query import parse_where

    check_fraction(validation_fraction)
    query = parse_where(where) if where else None
    if push_to_hub:
        check_hub_access(push_to_hub)
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir / "data", overwrite, is_shard_file)
    if (out_dir / "README.md").exists() and not overwrite:
        raise FileExistsError(f"{out_dir}/README.md exists: pass `overwrite=True` to replace it with this export's card")
    splits = corpus_splits(source, validation_fraction)
    with staging_dir(out_dir) as staging:
        shards_by_split = _write_splits(splits, staging / "data", validation_fraction, max_shard_bytes, limit, query)
        for split, shards in shards_by_split.items():
            for index, shard in enumerate(shards):
                shard.rename(shard.with_name(shard_name(split, index, len(shards))))
        if not (staging / "data").exists():
            raise ValueError(f"{_describe(source)}: no rows to export" + (f" (none matches --where {where!r})" if where else ""))
        out_dir.mkdir(parents=True, exist_ok=True)
        if (out_dir / "data").exists():
            check_replaceable(out_dir / "data", overwrite, is_shard_file)  # as it is now, after the export
            shutil.rmtree(out_dir / "data")
        os.replace(staging / "data", out_dir / "data")
    card_info.setdefault("source", source if isinstance(source, str) else None)
    readme = write_card(out_dir, validation_fraction=validation_fraction, where=query.where() if query else None, **card_info)
    if push_to_hub:
        upload(out_dir, push_to_hub)
    return readme


def _describe(source: Corpus) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"the {type(source).__name__}"


def check_hub_access(repo: str) -> None:
    """Fail before any work when ``repo`` cannot be pushed to: the Hub unreachable, no token,
    or a token the Hub refuses."""
    from huggingface_hub import HfApi, get_token

    from imagenet_think.loading import hub_reachable

    if not hub_reachable():
        raise ConnectionError(
            f"cannot push to {repo}: the Hugging Face Hub is unreachable (HF_HUB_OFFLINE=1 or no network); "
            "nothing was written. Export without --push-to-hub, then upload the directory from a machine online"
        )
    if get_token() is None:
        raise PermissionError(f"cannot push to {repo}: not logged in to the Hugging Face Hub (run `hf auth login` or set HF_TOKEN)")
    try:
        HfApi().whoami()
    except Exception as err:  # HTTP and network errors of several libraries
        raise PermissionError(f"cannot push to {repo}: the Hub refused the token ({type(err).__name__}: {err})") from err


def upload(out_dir: Union[str, os.PathLike], repo: str, commit_message: str = "Upload with imagenet-think export") -> None:
    """Upload ``README.md`` and ``data/*.parquet`` of ``out_dir`` to the Hub dataset ``repo``
    (created if needed) in one commit that also deletes the repo's other ``data/*.parquet``."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(
        repo_id=repo,
        folder_path=str(out_dir),
        repo_type="dataset",
        allow_patterns=["README.md", "data/*.parquet"],
        delete_patterns=["data/*.parquet"],
        commit_message=commit_message,
    )
