"""Write SFT-ready files for TRL, LLaMA-Factory or LLaVA: the ``export-sft`` subcommand.

The examples are those of :mod:`imagenet_think.sft`; this module only reshapes and writes
them into ``out_dir``:

``trl``
    ``<name>.jsonl``: ``{"id", "teacher", "images": ["images/<id>.<ext>"], "messages"}`` with
    TRL's conversational messages, or ``<name>.parquet`` with the images embedded (typed
    ``List(Image())``, so ``datasets.load_dataset("parquet", ...)`` decodes them).
``llamafactory``
    LLaMA-Factory's ``sharegpt`` layout, ``<name>.jsonl`` or ``<name>.parquet``:
    ``{"messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": A}],
    "images": ["images/<id>.<ext>"]}``, plus its entry in ``dataset_info.json`` (merged into an
    existing file).  Train with ``dataset_dir`` set to ``out_dir``.
``llava``
    LLaVA's layout: ``<name>.json`` (one JSON list, what LLaVA's loader reads) or
    ``<name>.jsonl``: ``{"id", "image": "images/<id>.<ext>", "conversations": [{"from": "human",
    "value": "<image>\\nQ"}, {"from": "gpt", "value": A}]}``.  Run LLaVA with
    ``--image_folder`` set to ``out_dir``.

Images are written once per record as ``images/<id>.<ext>`` from the stored bytes (never
re-encoded; the extension comes from the stored path, or from the bytes' signature).
Paths in the files are relative to ``out_dir``.  The reasoning can only go in the text for
LLaMA-Factory and LLaVA: ``think="field"`` is for ``trl`` alone.

Every file appears whole or not at all (:func:`imagenet_think.fileio.atomic_write`), and
``dataset_info.json`` is updated under an exclusive lock (:func:`update_dataset_info`), so
several exports into one directory keep each other's entries.

>>> llava_record({"id": "r", "messages": [
...     {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Q?"}]},
...     {"role": "assistant", "content": [{"type": "text", "text": "A."}]}]}, ["images/r.jpg"])
{'id': 'r', 'image': 'images/r.jpg', 'conversations': [{'from': 'human', 'value': '<image>\\nQ?'}, {'from': 'gpt', 'value': 'A.'}]}
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_think import schema
from imagenet_think.cli import add_source_argument
from imagenet_think.fileio import atomic_write
from imagenet_think.images import image_kind
from imagenet_think.sft import (
    DEFAULT_REQUIRE_STATUS,
    IMAGE_PLACEMENTS,
    THINK_MODES,
    check_options,
    sft_table,
)

if TYPE_CHECKING:
    import datasets

FORMATS = ("trl", "llamafactory", "llava")
FILE_FORMATS = {"trl": ("jsonl", "parquet"), "llamafactory": ("jsonl", "parquet"), "llava": ("json", "jsonl")}
"""File formats each format can be written as; the first is the default."""

IMAGE_DIR = "images"
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
    """One example in TRL's conversational layout, images given as paths."""
    return {
        "id": example["id"],
        "teacher": example["teacher"],
        "images": list(image_paths),
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


def update_dataset_info(out_dir: Union[str, os.PathLike], name: str, entry: Mapping[str, Any]) -> Path:
    """Set ``name`` to ``entry`` in ``out_dir/dataset_info.json``, keeping its other entries.

    The read-modify-write holds an exclusive ``flock`` on ``dataset_info.json.lock`` (created
    beside it and left there), so concurrent updates, from any process, never lose an entry.
    ``flock`` is POSIX-only and advisory: it guards against other calls of this function, and
    may not hold across machines on some network file systems.
    """
    path = Path(out_dir) / "dataset_info.json"
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        info[name] = dict(entry)
        with atomic_write(path) as handle:
            handle.write(json.dumps(info, ensure_ascii=False, indent=2) + "\n")
    return path


def export_sft(
    source: Source,
    out_dir: Union[str, os.PathLike],
    format: str = "trl",
    teacher: Union[int, str] = 1,
    think: str = "tags",
    file_format: Optional[str] = None,
    name: str = "imagenet_think",
    system_prompt: Optional[str] = None,
    image_placement: str = "before",
    require_status: Sequence[str] = DEFAULT_REQUIRE_STATUS,
    on_unusable: str = "raise",
    limit: Optional[int] = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict:
    """Write the SFT examples of ``source`` (``default``-config records) into ``out_dir``.

    ``source`` is a ``datasets.Dataset``, ``IterableDataset`` or ``pa.Table``; ``limit``
    keeps its first records.  Returns counts and the path written:
    ``{"records", "examples", "images", "path"}``, where ``images`` counts distinct records
    with an exported example (files written, or images embedded in the Parquet file).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    file_format = file_format or FILE_FORMATS[format][0]
    if file_format not in FILE_FORMATS[format]:
        raise ValueError(f"the {format} format is written as {FILE_FORMATS[format]}, not {file_format!r}")
    if think == "field" and format != "trl":
        raise ValueError("think='field' keeps the reasoning in a separate key, which only the trl format carries")
    if format == "llava" and system_prompt is not None:
        raise ValueError("LLaVA's layout has no system turn: drop system_prompt")
    options = dict(
        teacher=teacher, think=think, system_prompt=system_prompt, image_placement=image_placement,
        require_status=tuple(require_status), on_unusable=on_unusable,
    )
    check_options(teacher, think, image_placement, on_unusable)
    out_dir = Path(out_dir)
    embed = format == "trl" and file_format == "parquet"
    (out_dir if embed else out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.{file_format}"
    counts = {"records": 0, "examples": 0}
    image_ids: set[str] = set()

    from datasets.table import embed_table_storage
    from tqdm.auto import tqdm

    with _writing(path, file_format) as writer, tqdm(
        total=_length(source, limit), unit="record", desc=f"export-sft {format}", disable=not progress
    ) as bar:
        for batch in _batches(source, batch_size, limit):
            examples = sft_table(batch, **options)
            counts["records"] += batch.num_rows
            counts["examples"] += examples.num_rows
            bar.update(batch.num_rows)
            if embed:
                writer.write_table(embed_table_storage(examples))
                image_ids.update(examples.column("id").to_pylist())
                continue
            rows = []
            for example in examples.to_pylist():
                paths = [_image_path(image, out_dir, example["id"], image_ids) for image in example["images"]]
                rows.append(RECORD_WRITERS[format](example, paths))
            writer.write_rows(rows)
        if not counts["examples"]:
            raise ValueError(f"no usable pairs among {counts['records']} records: nothing to export")
    if format == "llamafactory":
        update_dataset_info(out_dir, name, llamafactory_dataset_info(path.name, system_prompt is not None))
    return {**counts, "images": len(image_ids), "path": str(path)}


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


def _batches(source: Source, batch_size: int, limit: Optional[int]) -> Iterator[pa.Table]:
    """Arrow batches of ``source`` with the images as stored structs (never decoded)."""
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think export-sft``."""
    add_source_argument(parser)
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--teacher", default="1", choices=[*map(str, schema.TEACHER_NAMES), "both"],
                        help="1 = GLM-4.1V-9B-Thinking, 2 = Kimi-VL-A3B-Thinking-2506, both = one example each")
    parser.add_argument("--think", default="tags", choices=THINK_MODES,
                        help="where the reasoning goes: <think> tags, the teacher's own markers, "
                             "reasoning_content (trl only) or nowhere")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=None, help="export only the first N records")
    parser.add_argument("--file-format", default=None,
                        help="trl: jsonl (image files) or parquet (embedded images); llamafactory: jsonl or "
                             "parquet; llava: json or jsonl (default: the first)")
    parser.add_argument("--name", default="imagenet_think", help="data file name and dataset_info.json key")
    parser.add_argument("--system-prompt", default=None)
    parser.add_argument("--image-placement", default="before", choices=IMAGE_PLACEMENTS)
    parser.add_argument("--require-status", nargs="+", default=list(DEFAULT_REQUIRE_STATUS),
                        choices=[s for s in schema.STATUSES if s != "missing"], metavar="STATUS",
                        help="pair statuses to use (default: ok)")
    parser.add_argument("--strict", action="store_true",
                        help="stop with an error at the first pair whose status is not required "
                             "(default: skip such pairs and report how many were skipped)")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think export-sft``."""
    from imagenet_think.loading import load_dataset

    source = load_dataset(args.source, split=args.split)
    try:
        summary = export_sft(
            source,
            args.out,
            format=args.format,
            teacher="both" if args.teacher == "both" else int(args.teacher),
            think=args.think,
            file_format=args.file_format,
            name=args.name,
            system_prompt=args.system_prompt,
            image_placement=args.image_placement,
            require_status=args.require_status,
            on_unusable="raise" if args.strict else "skip",
            limit=args.limit,
            progress=True,
        )
    except ValueError as error:
        raise ValueError(f"{error} (options: --require-status, --strict)") from error
    pairs = summary["records"] * (2 if args.teacher == "both" else 1)
    print(
        f"wrote {summary['examples']} examples from {summary['records']} records "
        f"({summary['images']} images) to {summary['path']}; skipped {pairs - summary['examples']} pairs "
        f"whose status is not in {', '.join(args.require_status)}"
    )
    return 0
