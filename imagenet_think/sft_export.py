"""Write SFT-ready data for TRL, LLaMA-Factory or LLaVA (what ``imagenet-think export-sft`` runs).

The examples are those of :mod:`imagenet_think.sft`; this module only reshapes and writes
them into ``out_dir``:

``trl``
    A dataset directory that ``datasets.load_dataset(out_dir)`` reads as itself, from any
    working directory and with no import of this package: ``README.md`` (YAML ``configs`` and
    ``dataset_info``) and ``data/<split>-NNNNN-of-MMMMM-<hash>.parquet`` shards with the
    images embedded, columns ``id``, ``teacher``, ``images`` (``List(Image())``) and
    ``messages`` (:func:`imagenet_think.sft.sft_features`).  The card names the shards, whose
    hash of their content makes a rewritten export never match ``datasets``' cache of the old
    one.  Upload the directory as it is, or ``push_to_hub`` what it loads.
    ``file_format="jsonl"`` writes an image folder instead, for
    readable text and image files: ``metadata.jsonl`` (``{"id", "teacher", "file_names":
    ["images/<id>.<ext>"], "messages"}``), ``images/`` and the card; ``datasets``' image-folder
    loader reads it, resolving the paths against the folder (``teacher`` then comes as
    ``int64``), as its one split ``train``.  Its card declares no ``configs``: ``datasets``
    caches a folder whose card does by the card alone, and would serve another copy's
    image paths.  It is not smaller: the shards' compression stores the image that
    ``teacher="both"`` repeats in adjacent rows about once.
``llamafactory``
    LLaMA-Factory's ``sharegpt`` layout, ``<name>.jsonl`` or ``<name>.parquet``:
    ``{"messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": A}],
    "images": ["images/<id>.<ext>"]}``, plus its entry in ``dataset_info.json``.  Train with
    ``dataset_dir`` set to ``out_dir``.
``llava``
    LLaVA's layout: ``<name>.json`` (one JSON list, what LLaVA's loader reads) or
    ``<name>.jsonl``: ``{"id", "image": "images/<id>.<ext>", "conversations": [{"from": "human",
    "value": "<image>\\nQ"}, {"from": "gpt", "value": A}]}``.  Run LLaVA with
    ``--image_folder`` set to ``out_dir``.

Images are written once per record as ``images/<id>.<ext>`` from the stored bytes (never
re-encoded; the extension comes from the stored path, or from the bytes' signature), or
embedded as they are stored.  Paths in the files are relative to ``out_dir``.  The reasoning
can only go in the text for LLaMA-Factory and LLaVA: ``think="field"`` is for ``trl`` alone.

The export is written in a staging directory beside ``out_dir`` and renamed into place when
whole, so a failed export leaves ``out_dir`` as it was (and the next export removes the staging
directory of one that was killed: :func:`imagenet_think.fileio.staging_dir`).  An ``out_dir`` that is not empty is
refused unless ``overwrite=True``, which replaces a previous export (nothing of it remains),
and only one: a directory holding files that no export writes is never replaced
(:func:`imagenet_think.fileio.check_replaceable`).

>>> llava_record({"id": "r", "messages": [
...     {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Q?"}]},
...     {"role": "assistant", "content": [{"type": "text", "text": "A."}]}]}, ["images/r.jpg"])
{'id': 'r', 'image': 'images/r.jpg', 'conversations': [{'from': 'human', 'value': '<image>\\nQ?'}, {'from': 'gpt', 'value': 'A.'}]}
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_think import fileio, schema
from imagenet_think.fileio import atomic_write, staging_dir
from imagenet_think.images import image_kind
from imagenet_think.sft import (
    DEFAULT_REQUIRE_STATUS,
    UnusablePairError,
    check_options,
    sft_features,
    sft_table,
    teachers_of,
)
from imagenet_think.writer import DEFAULT_MAX_SHARD_BYTES, ShardWriter, is_shard_file, split_sizes

if TYPE_CHECKING:
    import datasets

    from imagenet_think.view.query import Query

FORMATS = ("trl", "llamafactory", "llava")
FILE_FORMATS = {"trl": ("parquet", "jsonl"), "llamafactory": ("jsonl", "parquet"), "llava": ("json", "jsonl")}
"""File formats each format can be written as; the first is the default."""

DEFAULT_NAME = "imagenet_think"
"""Data file name (and ``dataset_info.json`` key) of LLaMA-Factory and LLaVA exports."""

IMAGE_DIR = "images"
TRL_METADATA_FILE = "metadata.jsonl"
"""The data file of the trl image-folder variant (the name ``datasets``' image-folder loader reads)."""

EXPORT_FILES = ("README.md", "dataset_info.json", "dataset_info.json.lock")
EXPORT_SUFFIXES = (".json", ".jsonl", ".parquet")
"""Top-level files an export may leave (besides ``data/*.parquet`` and ``images/``; the lock
file is from older versions): what ``overwrite=True`` is allowed to replace."""

THINK_PLACES = {
    "tags": "in the assistant text: `<think>` reasoning `</think>`, then the answer",
    "native": "in the assistant text, with the teacher's own markers",
    "field": "in the assistant turn's `reasoning_content`; `content` is the answer",
    "none": "left out: the assistant text is the answer",
}
"""Where each ``think`` mode puts the reasoning (for the card)."""

IMAGE_TOKEN = "<image>"
"""The image placeholder LLaMA-Factory and LLaVA expect in the user text."""

LLAMAFACTORY_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Source = Union["datasets.Dataset", "datasets.IterableDataset", pa.Table]


def image_suffix(image: Mapping[str, Any]) -> str:
    """File extension of a stored image: its path's, else the one its bytes' signature says
    (:func:`imagenet_think.images.image_kind`).

    >>> image_suffix({"bytes": b"\\x89PNG\\r\\n\\x1a\\n...", "path": None})
    '.png'
    >>> image_suffix({"bytes": b"...", "path": "n01_1.JPEG"})
    '.JPEG'
    """
    suffix = Path(image.get("path") or "").suffix
    if suffix:
        return suffix
    data = image.get("bytes") or b""
    kind = image_kind(data)
    if kind is None:
        raise ValueError(f"cannot tell the image type: no file extension and unknown bytes {data[:8]!r}")
    return kind[0]


def write_image(image: Mapping[str, Any], out_dir: Path, record_id: str) -> str:
    """Write a stored image as ``images/<record_id><ext>`` under ``out_dir``; return that relative path.

    The stored bytes are written as they are; a path-only image is copied from its file.
    """
    if not _SAFE_ID.fullmatch(record_id or ""):
        raise ValueError(f"record id {record_id!r} cannot name an image file (letters, digits, '.', '_', '-')")
    relative = f"{IMAGE_DIR}/{record_id}{image_suffix(image)}"
    if image.get("bytes") is not None:
        with atomic_write(out_dir / relative, "wb", durable=False) as target:
            target.write(image["bytes"])
    elif image.get("path") and Path(image["path"]).is_file():
        with open(image["path"], "rb") as stored, atomic_write(out_dir / relative, "wb", durable=False) as target:
            shutil.copyfileobj(stored, target)
    else:
        raise ValueError(f"record {record_id!r}: the image has no bytes and its path {image.get('path')!r} is no file")
    return relative


def _turns(example: Mapping[str, Any], image_text: str, separator: str) -> list[tuple[str, str]]:
    """``(role, text)`` of each message, image parts written as ``image_text``."""
    turns = []
    for message in example["messages"]:
        if message.get("reasoning_content") is not None:
            raise ValueError(f"record {example['id']!r}: reasoning in a separate field only fits the trl format")
        texts = [image_text if part["type"] == "image" else part["text"] for part in message["content"]]
        turns.append((message["role"], separator.join(texts)))
    return turns


def llamafactory_record(example: Mapping[str, Any], image_paths: Sequence[str]) -> dict:
    """One example in LLaMA-Factory's ``sharegpt`` layout (``<image>`` glued to the question).

    >>> llamafactory_record({"id": "r", "messages": [
    ...     {"role": "user", "content": [{"type": "text", "text": "Q?"}, {"type": "image", "text": None}]},
    ...     {"role": "assistant", "content": [{"type": "text", "text": "A."}]}]}, ["images/r.jpg"])
    {'messages': [{'role': 'user', 'content': 'Q?<image>'}, {'role': 'assistant', 'content': 'A.'}], 'images': ['images/r.jpg']}
    """
    messages = [{"role": role, "content": text} for role, text in _turns(example, IMAGE_TOKEN, "")]
    return {"messages": messages, "images": list(image_paths)}


def llava_record(example: Mapping[str, Any], image_paths: Sequence[str]) -> dict:
    """One example in LLaVA's layout (``<image>`` on its own line; one image, no system turn)."""
    turns = _turns(example, IMAGE_TOKEN, "\n")
    if turns[0][0] == "system" or len(image_paths) != 1:
        raise ValueError(f"record {example['id']!r}: LLaVA's layout holds one image and no system prompt")
    speaker = {"user": "human", "assistant": "gpt"}
    conversations = [{"from": speaker[role], "value": text} for role, text in turns]
    return {"id": example["id"], "image": image_paths[0], "conversations": conversations}


def trl_record(example: Mapping[str, Any], image_paths: Sequence[str]) -> dict:
    """One example as a row of the trl image folder's ``metadata.jsonl``: the images as paths
    under ``file_names``, which ``datasets``' image-folder loader turns into the ``images``
    column.

    >>> trl_record({"id": "r", "teacher": 2, "images": [None], "messages": []}, ["images/r.jpg"])
    {'id': 'r', 'teacher': 2, 'file_names': ['images/r.jpg'], 'messages': []}
    """
    return {
        "id": example["id"],
        "teacher": example["teacher"],
        "file_names": list(image_paths),
        "messages": example["messages"],
    }


RECORD_WRITERS: dict[str, Callable[[Mapping[str, Any], Sequence[str]], dict]] = {
    "trl": trl_record,
    "llamafactory": llamafactory_record,
    "llava": llava_record,
}


def llamafactory_dataset_info(file_name: str, system_prompt: bool = False) -> dict:
    """The ``dataset_info.json`` entry that makes LLaMA-Factory read ``file_name`` as written here.

    >>> llamafactory_dataset_info("imagenet_think.jsonl")["columns"]
    {'messages': 'messages', 'images': 'images'}
    """
    tags = dict(LLAMAFACTORY_TAGS, **({"system_tag": "system"} if system_prompt else {}))
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": tags,
    }


def export_sft(
    source: Source,
    out_dir: Union[str, os.PathLike],
    format: str = "trl",
    teacher: Union[int, str] = 1,
    think: str = "tags",
    file_format: Optional[str] = None,
    name: Optional[str] = None,
    split: str = "train",
    system_prompt: Optional[str] = None,
    image_placement: str = "before",
    require_status: Sequence[str] = DEFAULT_REQUIRE_STATUS,
    on_unusable: str = "raise",
    limit: Optional[int] = None,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    source_name: Optional[str] = None,
    batch_size: int = 256,
    progress: bool = False,
    where: Optional[str] = None,
) -> dict:
    """Write the SFT examples of ``source`` (``default``-config records) into ``out_dir``.

    ``source`` is a ``datasets.Dataset``, ``IterableDataset`` or ``pa.Table``; ``limit``
    keeps its first records.  ``split`` names the trl export's split; ``name`` the data file
    of the others (default :data:`DEFAULT_NAME`); ``max_shard_bytes`` sizes trl Parquet
    shards; ``source_name`` is how the trl card names the source.  ``where`` (the viewer's query
    string, :func:`imagenet_think.view.query.parse_where`: ``"status=ok&q=dog"``) keeps the
    records ``imagenet-think view`` lists for it, as records of the split ``split``; ``limit``
    then counts those.  ``out_dir`` must be absent
    or empty unless ``overwrite`` (then a previous export there is replaced).  Returns counts
    and the path written (the directory for trl, else the data file):
    ``{"records", "examples", "images", "path"}``, where ``images`` counts distinct records
    with an exported example.
    """
    from imagenet_think.view.query import parse_where

    file_format, data_file = check_request(format, file_format, name, split, think, system_prompt)
    check_options(teacher, think, image_placement, on_unusable)
    query = parse_where(where) if where else None
    if limit is not None and limit < 0:
        raise ValueError(f"`limit` must be >= 0, got {limit}")
    target = Path(out_dir).resolve()
    check_replaceable(target, overwrite)
    options = dict(
        teacher=teacher, think=think, system_prompt=system_prompt, image_placement=image_placement,
        require_status=tuple(require_status), on_unusable=on_unusable,
    )
    counts = {"records": 0, "examples": 0}
    image_ids: set[str] = set()

    from tqdm.auto import tqdm

    with staging_dir(target) as staging:
        with _example_writer(staging, format, file_format, data_file, split, max_shard_bytes) as write, tqdm(
            total=None if query else _length(source, limit), unit="record", desc=f"export-sft {format}",
            disable=not progress,
        ) as bar:
            for batch in _batches(source, batch_size, limit, query, split):
                examples = sft_table(batch, **options)
                counts["records"] += batch.num_rows
                counts["examples"] += examples.num_rows
                bar.update(batch.num_rows)
                image_ids.update(examples.column("id").to_pylist())
                write(examples)
            if not counts["examples"]:
                raise UnusablePairError(
                    f"no usable pairs among {counts['records']} records: nothing to export; "
                    f"widen `require_status={tuple(require_status)}`"
                )
        if format == "trl":
            skipped = counts["records"] * len(teachers_of(teacher)) - counts["examples"]
            settings = _card_settings(options, split, source_name, skipped, query.where() if query else None)
            _write_trl_card(staging, file_format, split, think, counts["examples"], settings)
        elif format == "llamafactory":
            entry = llamafactory_dataset_info(data_file, system_prompt is not None)
            with atomic_write(staging / "dataset_info.json") as handle:
                handle.write(json.dumps({name or DEFAULT_NAME: entry}, ensure_ascii=False, indent=2) + "\n")
        move_into_place(staging, target, overwrite)
    path = Path(out_dir) if format == "trl" else Path(out_dir) / data_file
    return {**counts, "images": len(image_ids), "path": str(path)}


def check_request(
    format: str, file_format: Optional[str], name: Optional[str], split: str, think: str, system_prompt: Optional[str]
) -> tuple[str, str]:
    """Check the options of an export that :func:`imagenet_think.sft.check_options` does not;
    return the file format (the format's default for ``None``) and where the data go, relative
    to the export.

    >>> check_request("trl", None, None, "train", "field", None)
    ('parquet', 'data')
    >>> check_request("llava", "jsonl", "cats", "train", "tags", None)
    ('jsonl', 'cats.jsonl')
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}, got {format!r}")
    file_format = file_format or FILE_FORMATS[format][0]
    if file_format not in FILE_FORMATS[format]:
        raise ValueError(
            f"the {format} format is written as {' or '.join(FILE_FORMATS[format])}, not `file_format={file_format!r}`"
        )
    if think == "field" and format != "trl":
        raise ValueError("`think='field'` keeps the reasoning in a separate key, which only the trl format carries")
    if format == "llava" and system_prompt is not None:
        raise ValueError("LLaVA's layout has no system turn: drop `system_prompt`")
    if format == "trl" and name is not None:
        raise ValueError("the trl format writes a dataset directory whose files datasets names: drop `name`")
    if format == "trl" and file_format == "jsonl" and split != "train":
        raise ValueError(
            f"the trl image folder (jsonl) holds one split, 'train': export `split={split!r}` with `file_format='parquet'`"
        )
    if format == "trl" and not re.fullmatch(r"\w+", split):
        raise ValueError(
            f"`split={split!r}` cannot name the export's split (letters, digits, '_'); use `limit` to export part of one"
        )
    if name is not None and not _SAFE_ID.fullmatch(name):
        raise ValueError(f"`name={name!r}` cannot name a data file (letters, digits, '.', '_', '-')")
    if format == "trl":
        return file_format, ("data" if file_format == "parquet" else TRL_METADATA_FILE)
    return file_format, f"{name or DEFAULT_NAME}.{file_format}"


def check_replaceable(out_dir: Union[str, os.PathLike], overwrite: bool) -> None:
    """Raise ``FileExistsError`` unless an export may go to ``out_dir``: absent or empty, or,
    with ``overwrite``, holding nothing but a previous export (:func:`is_export_entry`)."""
    fileio.check_replaceable(out_dir, overwrite, is_export_entry)


def is_export_entry(path: Path) -> bool:
    """Whether ``path``, an entry of an export directory, is something an export writes: the
    card, a data file, ``data/`` holding only Parquet shards or ``images/`` holding only files."""
    if path.is_symlink():
        return False
    if path.is_dir():
        if path.name not in ("data", IMAGE_DIR):
            return False
        plain = is_shard_file if path.name == "data" else _is_plain_file
        return all(plain(child) for child in path.iterdir())
    return path.is_file() and (path.name in EXPORT_FILES or path.suffix in EXPORT_SUFFIXES)


def _is_plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def move_into_place(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Rename ``staging`` to ``out_dir``.  With ``overwrite`` the export there is first renamed
    aside, and removed once the new one is in place; if another export lands in between, it
    is replaced the same way, so concurrent exports leave the last one whole."""
    while True:
        aside = None
        if overwrite and out_dir.exists():
            check_replaceable(out_dir, overwrite)
            aside = out_dir.with_name(f".{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(out_dir, aside)
            except FileNotFoundError:  # another export moved it first
                aside = None
        try:
            os.rename(staging, out_dir)
        except OSError as error:
            taken = error.errno in (errno.ENOTEMPTY, errno.EEXIST)
            if aside is not None and not taken:
                os.rename(aside, out_dir)
            elif aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
            if taken and overwrite:
                continue
            if taken:
                raise fileio.not_empty_error(out_dir) from error
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return


@contextlib.contextmanager
def _example_writer(
    directory: Path, format: str, file_format: str, data_file: str, split: str, max_shard_bytes: int
) -> Iterator[Callable[[pa.Table], None]]:
    """A function that writes a table of SFT examples into ``directory`` as ``format``."""
    if format == "trl" and file_format == "parquet":
        with ShardWriter(directory / data_file, split, max_shard_bytes) as shards:
            yield shards.write
        return
    image_ids: set[str] = set()

    def write(examples: pa.Table) -> None:
        rows = []
        for example in examples.to_pylist():
            paths = [_image_path(image, directory, example["id"], image_ids) for image in example["images"]]
            rows.append(RECORD_WRITERS[format](example, paths))
        writer.write_rows(rows)

    with _writing(directory / data_file, file_format) as writer:
        yield write


def _write_trl_card(
    directory: Path, file_format: str, split: str, think: str, num_examples: int, settings: Mapping[str, str]
) -> None:
    """``README.md`` of a trl export: its config names the Parquet shards (whose names change
    with their content, see :class:`~imagenet_think.writer.ShardWriter`) typed by
    :func:`sft_features`; an image folder gets no config (``datasets`` infers it)."""
    from imagenet_think.card import render_sft_card

    if file_format == "parquet":
        shards = [f"data/{shard.name}" for shard in sorted((directory / "data").glob("*.parquet"))]
        card = render_sft_card(split_sizes(directory), settings, features=sft_features(think),
                               data_files=[{"split": split, "path": shards}])
    else:
        files = [directory / TRL_METADATA_FILE, *(directory / IMAGE_DIR).iterdir()]
        size = {"num_examples": num_examples, "num_bytes": 0, "download_size": sum(f.stat().st_size for f in files)}
        card = render_sft_card({split: size}, settings)
    with atomic_write(directory / "README.md") as handle:
        handle.write(card)


def _card_settings(
    options: Mapping[str, Any], split: str, source_name: Optional[str], skipped: int, where: Optional[str] = None
) -> dict[str, str]:
    """The rows of the trl card's settings table (``where``: the query that chose the records)."""
    teachers = teachers_of(options["teacher"])
    names = ", ".join(f"{t} = `{schema.TEACHERS[t]}`" for t in teachers)
    system_prompt = options["system_prompt"]
    return {
        "source": f"`{source_name}`, split `{split}`" if source_name else f"split `{split}`",
        "teacher": names + (" (one example each, pair 1 first)" if len(teachers) > 1 else ""),
        "reasoning": THINK_PLACES[options["think"]],
        "image": f"{options['image_placement']} the question",
        "system prompt": "none" if system_prompt is None else json.dumps(system_prompt, ensure_ascii=False),
        "pairs used": f"status {' or '.join(options['require_status'])}; {skipped} other pairs skipped",
        **({"records": f"those `imagenet-think view` lists for `{where}` (`--where`)"} if where else {}),
    }


def _image_path(image: Mapping[str, Any], out_dir: Path, record_id: str, written: set) -> str:
    """Relative path of the record's image, written on first use (``written`` holds the ids done)."""
    if record_id not in written:
        written.add(record_id)
        return write_image(image, out_dir, record_id)
    return f"{IMAGE_DIR}/{record_id}{image_suffix(image)}"


def _length(source: Source, limit: Optional[int]) -> Optional[int]:
    try:
        total = len(source)
    except TypeError:
        return limit
    return total if limit is None else min(total, limit)


def _batches(
    source: Source, batch_size: int, limit: Optional[int], where: Optional["Query"] = None, split: str = "train"
) -> Iterator[pa.Table]:
    """Arrow batches of ``source`` with the images as stored structs (never decoded): its first
    ``limit`` records, of those ``where`` keeps (:func:`imagenet_think.view.query.where_mask`)."""
    if where is not None:
        from imagenet_think.view.query import keep_where

        yield from keep_where(_batches(source, batch_size, None), where, split, limit)
        return
    if isinstance(source, pa.Table):
        table = source if limit is None else source.slice(0, limit)
        yield from (pa.Table.from_batches([b]) for b in table.to_batches(max_chunksize=batch_size))
        return
    import datasets

    if isinstance(source, datasets.IterableDataset) and limit is not None:
        source = source.take(limit)
    elif limit is not None:
        source = source.select(range(min(limit, len(source))))
    yield from source.with_format("arrow").iter(batch_size=batch_size)


class _Writer:
    """Append rows to an open file as JSON Lines, one JSON list or Parquet; :meth:`close` ends the file."""

    def __init__(self, handle: Any, file_format: str):
        self.handle, self.file_format = handle, file_format
        self.count = 0
        self.parquet: Optional[pq.ParquetWriter] = None
        if file_format == "json":
            handle.write("[")

    def write_rows(self, rows: list[dict]) -> None:
        if self.file_format == "parquet":
            self.write_table(pa.Table.from_pylist(rows))
            return
        for row in rows:
            line = json.dumps(row, ensure_ascii=False)
            if self.file_format == "json":
                line = ("\n" if self.count == 0 else ",\n") + line
            else:
                line += "\n"
            self.handle.write(line)
            self.count += 1

    def write_table(self, table: pa.Table) -> None:
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.handle, table.schema)
        self.parquet.write_table(table.cast(self.parquet.schema))

    def close(self) -> None:
        if self.file_format == "json":
            self.handle.write("\n]\n")
        if self.parquet is not None:
            self.parquet.close()


@contextlib.contextmanager
def _writing(path: Path, file_format: str) -> Iterator[_Writer]:
    """A :class:`_Writer` into ``path``, which appears whole when the block ends, or not at all on error."""
    with atomic_write(path, "wb" if file_format == "parquet" else "w") as handle:
        writer = _Writer(handle, file_format)
        try:
            yield writer
        finally:
            writer.close()
