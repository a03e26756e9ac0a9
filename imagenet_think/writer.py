"""Hub-layout shard writer and exporter (also the ``export`` subcommand).

A corpus directory looks like the Hub copy of a well-kept dataset::

    out/
      README.md                               # YAML configs + full dataset_info, then the card
      data/train-00000-of-00004.parquet       # image bytes embedded, HF features in metadata
      data/validation-00000-of-00001.parquet

``datasets.load_dataset(out)`` reads it with typed features and no import of this package.
:func:`write_shard` is the one place corpus shards are written (``regenerate`` uses it
too); :func:`write_card` recomputes the card from the shards present, so a rewritten
directory never serves datasets' stale cache.

>>> shard_name("train", 3, 12)
'train-00003-of-00012.parquet'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Optional, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imagenet_think import schema
from imagenet_think.builder import METADATA_KEY
from imagenet_think.fileio import atomic_write
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION, check_fraction, check_split_label, validation_mask

ROWS_PER_ROW_GROUP = 100
"""Rows per Parquet row group (``datasets`` uses 100 for image datasets)."""

DEFAULT_MAX_SHARD_BYTES = 500 * 2**20


def shard_name(split: str, index: int, total: int) -> str:
    """File name of shard ``index`` of ``total`` for ``split``."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


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
        metadata[METADATA_KEY] = json.dumps({"split": split, "validation_fraction": validation_fraction})
    table = embed_table_storage(table_cast(table.select(target.names), target))
    table = table.replace_schema_metadata(metadata)
    with atomic_write(path, "wb") as f:
        pq.write_table(table, f, row_group_size=ROWS_PER_ROW_GROUP, compression="zstd")
    return path


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
    mask = validation_mask(table["id"].to_pylist(), check_fraction(validation_fraction))
    paths = []
    for split, rows in (("train", table.filter(pc.invert(mask))), ("validation", table.filter(mask))):
        if rows.num_rows:
            paths.append(write_shard(rows, Path(data_dir) / shard_name(split, index, total), split, validation_fraction))
    return paths


def split_sizes(out_dir: Union[str, os.PathLike]) -> dict[str, dict[str, int]]:
    """Per split: rows, uncompressed bytes and file bytes of ``out_dir/data/*.parquet``."""
    sizes: dict[str, dict[str, int]] = {}
    for file in sorted(Path(out_dir, "data").glob("*.parquet")):
        split = file.name.split("-", 1)[0]
        meta = pq.read_metadata(file)
        entry = sizes.setdefault(split, {"num_examples": 0, "num_bytes": 0, "download_size": 0})
        entry["num_examples"] += meta.num_rows
        entry["num_bytes"] += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        entry["download_size"] += file.stat().st_size
    return sizes


def write_card(out_dir: Union[str, os.PathLike], **card_info) -> Path:
    """(Re)write ``out_dir/README.md`` from the shards present; return its path.

    ``card_info`` goes to :func:`imagenet_think.card.render_card` (``pretty_name``,
    ``source``, ``sample_note``...).
    """
    from imagenet_think.card import render_card

    out_dir = Path(out_dir)
    sizes = split_sizes(out_dir)
    if not sizes:
        raise FileNotFoundError(f"{out_dir}/data holds no *.parquet shard: nothing to describe")
    readme = out_dir / "README.md"
    with atomic_write(readme) as f:
        f.write(render_card(sizes, **card_info))
    return readme


def export_hub_layout(
    source: str,
    out_dir: Union[str, os.PathLike],
    *,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
    limit: Optional[int] = None,
    **card_info,
) -> Path:
    """Write ``source`` (``"sample"``, a directory, a Hub id) to ``out_dir`` in Hub layout.

    Shards are sized to about ``max_shard_bytes`` of Parquet data.  Everything is written in
    a staging directory next to ``out_dir`` and moved into place at the end; an existing
    ``out_dir/data`` is only replaced with ``overwrite=True``.
    """
    from tqdm.auto import tqdm

    from imagenet_think.loading import load_dataset

    out_dir = Path(out_dir).resolve()
    if (out_dir / "data").exists() and any((out_dir / "data").iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}/data already holds files; pass overwrite=True (--overwrite) to replace them")
    splits = load_dataset(source, validation_fraction=validation_fraction, decode_images=False)
    staging = out_dir.with_name(f".{out_dir.name}.staging-{uuid.uuid4().hex[:8]}")
    try:
        for split, dataset in splits.items():
            if limit is not None:
                dataset = dataset.select(range(min(limit, len(dataset))))
            if len(dataset) == 0:
                continue
            total = max(1, -(-dataset.data.nbytes // max_shard_bytes))
            for index in tqdm(range(total), desc=f"export {split}", unit="shard"):
                shard = dataset.shard(total, index, contiguous=True)
                write_shard(shard.data.table, staging / "data" / shard_name(split, index, total), split, validation_fraction)
        if not (staging / "data").exists():
            raise ValueError(f"{source}: no rows to export")
        out_dir.mkdir(parents=True, exist_ok=True)
        if (out_dir / "data").exists():
            shutil.rmtree(out_dir / "data")
        os.replace(staging / "data", out_dir / "data")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    card_info.setdefault("source", source)
    return write_card(out_dir, validation_fraction=validation_fraction, **card_info)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think export``."""
    parser.add_argument("source", help='"sample", a corpus directory, or a Hub dataset id')
    parser.add_argument("out_dir", help="directory to write (README.md + data/*.parquet)")
    parser.add_argument("--validation-fraction", type=float, default=DEFAULT_VALIDATION_FRACTION, help="hash split size")
    parser.add_argument("--max-shard-mb", type=float, default=DEFAULT_MAX_SHARD_BYTES / 2**20, help="target shard size")
    parser.add_argument("--limit", type=int, help="export at most N rows per split")
    parser.add_argument("--pretty-name", default="ImageNet-Think", help="title of the dataset card")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing data/ directory")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think export``."""
    readme = export_hub_layout(
        args.source,
        args.out_dir,
        validation_fraction=args.validation_fraction,
        max_shard_bytes=int(args.max_shard_mb * 2**20),
        overwrite=args.overwrite,
        limit=args.limit,
        pretty_name=args.pretty_name,
    )
    counts = ", ".join(f"{split}: {size['num_examples']} rows" for split, size in split_sizes(readme.parent).items())
    print(f"wrote {readme.parent} ({counts})")
    return 0
