"""The output directory of a regeneration run: what is done, and the one writer of new rows.

The output directory is the truth.  Rows go to ``data/train-<shard>-<seq>.parquet`` through
:func:`imagenet_think.writer.write_shard` (temp file, fsync, rename), so a file is either
whole or absent.  On start, the ids already done are read back from every
``data/*.parquet`` present, whatever wrote them: a rerun after a crash (SIGKILL included)
skips them and loses or duplicates nothing.  Next to the data, ``regenerate/`` holds per
shard index:

``lock-<shard>``
    ``flock``-ed by the process writing that shard index (its pid inside), before it writes
    anything else: a second process on the same shard index refuses to start (and writes
    nothing) instead of writing the same files.
``manifest-<shard>.jsonl``
    One line ``{"file": ..., "ids": [...]}`` per Parquet file this shard index wrote, appended
    and fsync'd after the file's rename; rebuilt from the Parquet files on start.
``failures-<shard>.jsonl``
    One line ``{"id", "source", "error", "attempts"}`` per item that still failed after
    ``max_attempts`` (unreadable image, an error answered by the teacher).  Those ids are
    skipped by later runs unless ``retry_failed``; an id written since (``--retry-failed``)
    loses its line, and an id that failed again keeps only its latest.
``partial-<shard>.jsonl``
    The answers of one teacher for images whose row was not completed (the run stopped, the
    other teacher failed for good): one line ``{"id", "pair", "settings", "finish_reason",
    "num_tokens", "generation"}`` each, written when the run ends (all at once, fsync'd; a
    SIGKILLed run keeps none).  A later run uses an answer instead of asking its teacher
    again when ``settings`` (:func:`answer_settings`: model, revision, sampling, prompts) are
    still the teacher's; lines of ids written since are dropped.

and for the whole output directory

``sharding.json``
    ``{"num_shards": N}``: the sharding of every process writing this directory, recorded by
    the first one (:func:`record_sharding`).  Shard ``i`` of ``N`` and shard ``j`` of ``M != N``
    share ids, so processes with another ``--num-shards`` are refused: one output directory
    holds one sharding.  An id found in two files anyway (:func:`completed_ids`) is an error.
``rejected.jsonl``
    One line ``{"source", "reason"}`` per candidate the selection skipped (unreadable, corrupt,
    too small, not a regular file), so every candidate is accounted for.

:class:`ShardWriter` writes one shard index's rows and failures;
:class:`~imagenet_think.regenerate.scheduler.Scheduler` decides what goes in them.  Work is
split over processes by a hash of ``id`` (:func:`shard_of`), so any number of processes (a
SLURM array, one per GPU) share one output directory without talking.

>>> shard_of("n01440764_n01440764_10026", 4) in range(4)
True
>>> shard_file_name(3, 12)
'train-00003-00012.parquet'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from imagenet_think import PROMPT, schema
from imagenet_think.fileio import atomic_write, fsync_dir
from imagenet_think.regenerate.sources import ImageItem

if TYPE_CHECKING:
    from imagenet_think.regenerate.engines.base import Result
    from imagenet_think.regenerate.models import ModelSpec

logger = logging.getLogger(__name__)

STATE_DIR = "regenerate"
"""Directory of manifests and failure logs inside the output directory."""

_SHARD_FILE = re.compile(r"^train-(\d{5})-(\d{5})\.parquet$")


def shard_of(row_id: str, num_shards: int) -> int:
    """Which of ``num_shards`` processes handles ``row_id`` (BLAKE2b of the id; independent
    of the CRC-32 train/validation split).

    >>> [shard_of(i, 3) for i in ("a", "b", "c", "d")]
    [2, 2, 2, 1]
    """
    digest = hashlib.blake2b(row_id.encode("utf-8"), digest_size=8, person=b"imnt-shard").digest()
    return int.from_bytes(digest, "big") % num_shards


def check_shard(num_shards: int, shard_index: int) -> None:
    """Raise a clear error unless ``0 <= shard_index < num_shards``.

    >>> check_shard(4, 4)
    Traceback (most recent call last):
    ...
    ValueError: shard index must be in [0, 4), got 4
    """
    if num_shards < 1:
        raise ValueError(f"number of shards must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index must be in [0, {num_shards}), got {shard_index}")


def partition(items: Sequence[ImageItem], num_shards: int, shard_index: int) -> list[ImageItem]:
    """The items of shard ``shard_index``, in their original order."""
    check_shard(num_shards, shard_index)
    return [item for item in items if shard_of(item.id, num_shards) == shard_index]


def shard_file_name(shard_index: int, seq: int) -> str:
    """Name of the ``seq``-th Parquet file written by shard ``shard_index``."""
    return f"train-{shard_index:05d}-{seq:05d}.parquet"


def data_files(out_dir: Union[str, os.PathLike]) -> list[Path]:
    """Every ``data/*.parquet`` of ``out_dir``, sorted (temporary files never match)."""
    return sorted(Path(out_dir, "data").glob("*.parquet"))


def ids_by_file(out_dir: Union[str, os.PathLike], footers: Optional[dict[Path, Any]] = None) -> dict[Path, list[str]]:
    """The ``id`` column of every Parquet file present; an unreadable file or a null id is a
    ``ValueError`` naming the file (and row).  ``footers``, when given, receives each file's
    Parquet metadata, read with its ids (the card needs no second read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = {}
    for file in data_files(out_dir):
        try:
            with pq.ParquetFile(file) as parquet:
                ids = parquet.read(columns=["id"]).column("id").to_pylist()
                if footers is not None:
                    footers[file] = parquet.metadata
        except (pa.ArrowInvalid, OSError, KeyError) as error:
            raise ValueError(f"{file}: cannot read its id column ({error}); move the file away and rerun") from error
        if None in ids:
            raise ValueError(f"{file}: row {ids.index(None)} has a null id; move the file away and rerun")
        found[file] = ids
    return found


def completed_ids(files: Mapping[Path, list[str]]) -> set[str]:
    """Ids present in ``files``; an id written twice (in two files, or twice in one) is a
    ``ValueError`` naming the files that hold copies and an example id (rows are never deleted
    here: the user chooses which copy goes).

    >>> sorted(completed_ids({Path("a"): ["x", "y"], Path("b"): ["z"]}))
    ['x', 'y', 'z']
    >>> completed_ids({Path("out/data/a"): ["x", "y"], Path("out/data/b"): ["y"]})
    Traceback (most recent call last):
    ...
    ValueError: 1 id is written twice in out/data, e.g. 'y' in a and b (runs with different --num-shards on one OUT_DIR?): move the files of one run away (a rerun generates again the images only they held)
    """
    done: set[str] = set()
    total = 0
    for ids in files.values():
        done.update(ids)
        total += len(ids)
    if len(done) != total:
        raise ValueError(duplicates_message(files))
    return done


def duplicates_message(files: Mapping[Path, list[str]]) -> str:
    """What :func:`completed_ids` says of ids written twice: how many, one of them and the files
    holding it, and what to do."""
    holders: dict[str, list[str]] = {}
    for file, ids in files.items():
        for row_id in ids:
            holders.setdefault(row_id, []).append(file.name)
    repeated = sorted(row_id for row_id, names in holders.items() if len(names) > 1)
    example = repeated[0]
    where = " and ".join(holders[example])
    folder = next(iter(files)).parent
    count = f"{len(repeated)} id{'s are' if len(repeated) > 1 else ' is'}"
    return (
        f"{count} written twice in {folder}, e.g. {example!r} in {where} (runs with different --num-shards on one "
        "OUT_DIR?): move the files of one run away (a rerun generates again the images only they held)"
    )


def next_seq(files: Iterable[Path], shard_index: int) -> int:
    """The first file number of ``shard_index`` not yet used.

    >>> next_seq([Path("data/train-00001-00004.parquet"), Path("data/train-00002-00009.parquet")], 1)
    5
    """
    used = [int(m.group(2)) for f in files if (m := _SHARD_FILE.match(f.name)) and int(m.group(1)) == shard_index]
    return max(used, default=-1) + 1


def remove_stale_temp_files(out_dir: Union[str, os.PathLike], shard_index: int) -> list[Path]:
    """Delete the temporary files a killed writer of ``shard_index`` left in ``data/``."""
    stale = sorted(Path(out_dir, "data").glob(f".train-{shard_index:05d}-*.tmp"))
    for file in stale:
        file.unlink(missing_ok=True)
    return stale


def append_json_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and fsync it (see :func:`append_json_lines`)."""
    append_json_lines(path, [record])


def append_json_lines(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append JSON lines and fsync them (and the directory, when the file is new); a torn
    line left by a crash is closed first, so it never swallows these."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
    with open(path, "a+b") as handle:
        created = handle.seek(0, os.SEEK_END) == 0
        if not created:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)


def read_json_lines(path: Path) -> list[dict]:
    """JSON lines of ``path``; torn lines (a crash mid-append) are skipped with a warning."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s:%d: skipping a torn line %r", path, number, line[:80])
    return records


def manifest_path(out_dir: Union[str, os.PathLike], shard_index: int) -> Path:
    """``out_dir/regenerate/manifest-<shard>.jsonl``."""
    return Path(out_dir, STATE_DIR, f"manifest-{shard_index:05d}.jsonl")


def failures_path(out_dir: Union[str, os.PathLike], shard_index: int) -> Path:
    """``out_dir/regenerate/failures-<shard>.jsonl``."""
    return Path(out_dir, STATE_DIR, f"failures-{shard_index:05d}.jsonl")


def partial_path(out_dir: Union[str, os.PathLike], shard_index: int) -> Path:
    """``out_dir/regenerate/partial-<shard>.jsonl``."""
    return Path(out_dir, STATE_DIR, f"partial-{shard_index:05d}.jsonl")


def lock_path(out_dir: Union[str, os.PathLike], shard_index: int) -> Path:
    """``out_dir/regenerate/lock-<shard>``."""
    return Path(out_dir, STATE_DIR, f"lock-{shard_index:05d}")


def sharding_path(out_dir: Union[str, os.PathLike]) -> Path:
    """``out_dir/regenerate/sharding.json``."""
    return Path(out_dir, STATE_DIR, "sharding.json")


def recorded_shards(out_dir: Union[str, os.PathLike]) -> Optional[int]:
    """The ``num_shards`` recorded in :func:`sharding_path`, ``None`` when there is no record."""
    path = sharding_path(out_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return int(record["num_shards"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a sharding record ({error}); it should read {{\"num_shards\": N}}") from None


def check_sharding(out_dir: Union[str, os.PathLike], num_shards: int, files: Mapping[Path, list[str]]) -> Optional[int]:
    """Raise a ``ValueError`` unless ``num_shards`` is this output directory's sharding: the
    recorded one, or, with no record yet, one that puts every id of each ``train-<shard>-*``
    file present in that shard.  Returns the recorded ``num_shards`` (``None``: no record).
    Reads only.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> record_sharding(out, 2, {}), check_sharding(out, 2, {})
    (2, 2)
    >>> check_sharding(out, 3, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... was written with --num-shards 2 (recorded in .../regenerate/sharding.json), not 3: ...
    """
    recorded = recorded_shards(out_dir)
    if recorded is not None:
        if recorded != num_shards:
            raise ValueError(
                f"{out_dir} was written with --num-shards {recorded} (recorded in {sharding_path(out_dir)}), not {num_shards}: "
                f"one OUT_DIR holds one sharding; use --num-shards {recorded} (or another OUT_DIR; to change it, delete "
                "that file once no process writes OUT_DIR)"
            )
        return recorded
    for file, ids in files.items():
        match = _SHARD_FILE.match(file.name)
        if not match:
            continue
        shard = int(match.group(1))
        stray = next((row_id for row_id in ids if shard_of(row_id, num_shards) != shard), None)
        if stray is not None:
            raise ValueError(
                f"{file} (shard {shard}) holds {stray!r}, which --num-shards {num_shards} puts in shard "
                f"{shard_of(stray, num_shards)}: {out_dir} was written with another --num-shards; use that one"
            )
    return None


def record_sharding(out_dir: Union[str, os.PathLike], num_shards: int, files: Mapping[Path, list[str]]) -> int:
    """Check ``num_shards`` (:func:`check_sharding`) and record it when there is no record yet;
    of two processes recording at once, the first wins and the other is checked against it."""
    if check_sharding(out_dir, num_shards, files) is not None:
        return num_shards
    path = sharding_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".sharding-{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"num_shards": num_shards}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # atomic, and fails when another process recorded first
        except FileExistsError:
            return record_sharding(out_dir, num_shards, files)
        fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)
    return num_shards


def rejected_path(out_dir: Union[str, os.PathLike]) -> Path:
    """``out_dir/regenerate/rejected.jsonl``."""
    return Path(out_dir, STATE_DIR, "rejected.jsonl")


def record_rejected(out_dir: Union[str, os.PathLike], skipped: Sequence[tuple[str, str]]) -> Path:
    """Write the selection's skipped candidates (``(source, reason)`` pairs) to
    :func:`rejected_path`, replacing the last run's; atomic, so shard processes writing the
    same selection at once are safe."""
    path = rejected_path(out_dir)
    with atomic_write(path) as handle:
        for source, reason in skipped:
            handle.write(json.dumps({"source": source, "reason": reason}, ensure_ascii=False) + "\n")
    return path


def rebuild_manifest(out_dir: Union[str, os.PathLike], shard_index: int, files: Mapping[Path, list[str]]) -> Path:
    """Rewrite the manifest of ``shard_index`` from its Parquet files present (atomically)."""
    path = manifest_path(out_dir, shard_index)
    with atomic_write(path) as handle:
        for file, ids in files.items():
            match = _SHARD_FILE.match(file.name)
            if match and int(match.group(1)) == shard_index:
                handle.write(json.dumps({"file": f"data/{file.name}", "ids": ids}) + "\n")
    return path


def prune_json_lines(path: Path, written: Collection[str], key: tuple[str, ...] = ("id",)) -> dict[tuple, dict]:
    """Rewrite the JSON lines of ``path`` (atomically, when that changes them) without the
    records of ids now ``written``, keeping only the latest record of each ``key``; returns
    those left, by key.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp(), "f.jsonl")
    >>> append_json_lines(path, [{"id": "a", "n": 1}, {"id": "b", "n": 1}, {"id": "a", "n": 2}])
    >>> prune_json_lines(path, {"b"}), read_json_lines(path)
    ({('a',): {'id': 'a', 'n': 2}}, [{'id': 'a', 'n': 2}])
    """
    records = read_json_lines(path)
    latest: dict[tuple, dict] = {}
    for record in records:
        name = tuple(record[field] for field in key)
        latest.pop(name, None)
        latest[name] = record
    kept = {name: record for name, record in latest.items() if record["id"] not in written}
    if len(kept) != len(records):
        with atomic_write(path) as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in kept.values())
    return kept


def prune_failures(out_dir: Union[str, os.PathLike], shard_index: int, written: Collection[str]) -> set[str]:
    """Rewrite the failures file of ``shard_index`` without the ids now ``written``, keeping
    only the latest record of every other id; returns the ids it still lists.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> for i, attempt in (("a", 1), ("b", 1), ("a", 2)):
    ...     append_json_line(failures_path(out, 0), {"id": i, "source": i, "error": "e", "attempts": attempt})
    >>> prune_failures(out, 0, {"b"}), read_json_lines(failures_path(out, 0))[0]["attempts"]
    ({'a'}, 2)
    """
    return {row_id for (row_id,) in prune_json_lines(failures_path(out_dir, shard_index), written)}


def answer_settings(spec: "ModelSpec", revision: str, sampling: Mapping[str, Any]) -> str:
    """A digest of what a teacher's answer depends on besides the image: model, revision,
    sampling, system prompt and prompt.  An answer kept under other settings is never reused.

    >>> from imagenet_think.regenerate.models import get_model
    >>> glm = get_model("glm")
    >>> answer_settings(glm, "main", {"max_tokens": 8}) == answer_settings(glm, "main", {"max_tokens": 9})
    False
    """
    settings = {
        "model": spec.model_id,
        "revision": revision,
        "sampling": dict(sampling),
        "system_prompt": spec.system_prompt,
        "prompt": PROMPT,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def answer_record(row_id: str, pair: int, settings: str, result: "Result", generation: Mapping[str, Any]) -> dict[str, Any]:
    """A line of :func:`partial_path`: ``pair``'s ``result`` for ``row_id`` and its ``generation``
    entry (which holds the raw output), under ``settings`` (:func:`answer_settings`)."""
    return {
        "id": row_id,
        "pair": pair,
        "settings": settings,
        "finish_reason": result.finish_reason,
        "num_tokens": result.num_tokens,
        "generation": dict(generation),
    }


def kept_answer(record: Mapping[str, Any]) -> tuple["Result", dict[str, Any]]:
    """The result and ``generation`` entry of an :func:`answer_record`.

    >>> from imagenet_think.regenerate.engines.base import Result
    >>> result = Result("a", raw="<think>t</think>x", finish_reason="stop", num_tokens=3)
    >>> kept_answer(answer_record("a", 2, "s", result, {"raw": result.raw}))[0]
    Result(id='a', raw='<think>t</think>x', finish_reason='stop', num_tokens=3, error=None)
    """
    from imagenet_think.regenerate.engines.base import Result

    generation = dict(record["generation"])
    result = Result(record["id"], raw=generation["raw"], finish_reason=record["finish_reason"], num_tokens=record["num_tokens"])
    return result, generation


def failed_ids(out_dir: Union[str, os.PathLike]) -> set[str]:
    """Ids recorded in any ``failures-*.jsonl`` of ``out_dir``."""
    return {record["id"] for path in sorted(Path(out_dir, STATE_DIR).glob("failures-*.jsonl")) for record in read_json_lines(path)}


def missing_pair(pair: int) -> dict[str, Any]:
    """Columns of a pair no teacher produced (status ``missing``, empty strings).

    >>> missing_pair(2)["status_2"], missing_pair(2)["think_2"]
    ('missing', '')
    """
    return {
        f"model_{pair}": "",
        f"think_{pair}": "",
        f"answer_{pair}": "",
        f"status_{pair}": "missing",
        f"finish_reason_{pair}": None,
        f"num_tokens_{pair}": None,
    }


def pair_columns(pair: int, spec: "ModelSpec", result: "Result") -> dict[str, Any]:
    """Columns of ``pair`` from a teacher's result, split in the teacher's reasoning style."""
    split = result.split(spec.reasoning_style)
    return {
        f"model_{pair}": spec.model_id,
        f"think_{pair}": split.think,
        f"answer_{pair}": split.answer,
        f"status_{pair}": split.status,
        f"finish_reason_{pair}": result.finish_reason,
        f"num_tokens_{pair}": result.num_tokens,
    }


def build_row(item: ImageItem, image: bytes, pairs: Mapping[int, dict[str, Any]], generation: list[dict]) -> dict:
    """One ``default``-config row: identity, the image, each pair's columns (missing pairs
    filled in) and the ``generation`` entries.

    >>> item = ImageItem("n1_a", "n1", "", "file", "/x/a.jpg", suffix=".jpg")
    >>> row = build_row(item, b"...", {}, [])
    >>> row["image"], row["status_1"], row["question"][:6]
    ({'bytes': b'...', 'path': 'n1_a.jpg'}, 'missing', 'Please')
    """
    row = {"id": item.id, "wnid": item.wnid, "label": item.label, "image": {"bytes": image, "path": item.file_name}}
    row["question"] = PROMPT
    for pair in schema.TEACHERS:
        row.update(pairs.get(pair) or missing_pair(pair))
    row["generation"] = generation
    return row


@dataclass
class Plan:
    """What one process will do: its share of the selection, minus what is done or failed.

    ``written`` is the id column of every Parquet file present when the plan was made
    (:func:`ids_by_file`), for :class:`ShardWriter` to start from without reading it again;
    ``footers`` their Parquet metadata, for the card.
    """

    selected: int
    num_shards: int
    shard_index: int
    mine: int
    done: int
    failed: int
    todo: list[ImageItem]
    teachers: Mapping[int, "ModelSpec"]
    skipped_sources: int = 0
    written: Mapping[Path, list[str]] = field(default_factory=dict)
    footers: Mapping[Path, Any] = field(default_factory=dict)

    def max_tokens(self) -> int:
        """Upper bound of generated tokens: each todo item times each teacher's ``max_tokens``."""
        return len(self.todo) * sum(spec.sampling["max_tokens"] for spec in self.teachers.values())

    def describe(self) -> str:
        """Human-readable plan (``--dry-run`` prints it)."""
        teachers = ", ".join(f"pair {p}: {s.name} ({s.model_id})" for p, s in sorted(self.teachers.items()))
        lines = [
            f"images selected:   {self.selected:,} ({self.skipped_sources:,} candidates skipped: too small or unreadable)",
            f"shard:             {self.shard_index} of {self.num_shards} -> {self.mine:,} images",
            f"already written:   {self.done:,}",
            f"failed before:     {self.failed:,}",
            f"to generate:       {len(self.todo):,} images x {len(self.teachers)} teachers",
            f"teachers:          {teachers}",
            f"tokens at most:    {self.max_tokens():,} (each teacher's max_tokens; real outputs are shorter)",
        ]
        return "\n".join(lines)


def make_plan(
    items: Sequence[ImageItem],
    out_dir: Union[str, os.PathLike],
    teachers: Mapping[int, "ModelSpec"],
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    retry_failed: bool = False,
    max_items: Optional[int] = None,
    skipped_sources: int = 0,
    written: Optional[Mapping[Path, list[str]]] = None,
    footers: Optional[Mapping[Path, Any]] = None,
    done: Optional[set[str]] = None,
) -> Plan:
    """The :class:`Plan` for this process; reads (never writes) ``out_dir``.  ``written`` and
    ``footers``: the id columns and Parquet metadata of the files present, when already read
    (:attr:`ShardWriter.written`), else read now; ``done``: :func:`completed_ids` of
    ``written``, when already made."""
    mine = partition(items, num_shards, shard_index)
    if written is None:
        footers = {}
        written = ids_by_file(out_dir, footers)
    if done is None:
        done = completed_ids(written)
    failed = set() if retry_failed else failed_ids(out_dir) - done
    todo = [item for item in mine if item.id not in done and item.id not in failed]
    if max_items is not None:
        todo = todo[:max_items]
    return Plan(
        selected=len(items),
        num_shards=num_shards,
        shard_index=shard_index,
        mine=len(mine),
        done=sum(item.id in done for item in mine),
        failed=sum(item.id in failed for item in mine),
        todo=todo,
        teachers=dict(teachers),
        skipped_sources=skipped_sources,
        written=written,
        footers=footers or {},
    )


@dataclass
class RunStats:
    """Counts of a run: rows written and images failed (by the writer), tokens generated (by
    the scheduler), files written."""

    written: int = 0
    failed: int = 0
    tokens: int = 0
    files: list[Path] = field(default_factory=list)


class ShardLockedError(OSError):
    """Another process is writing the same shard index of the same output directory: this one
    could not proceed (exit status 1; it is no bad input)."""

    exit_status = 1


class ShardWriter:
    """Writes the rows and failures of one shard index of ``out_dir``.

    :meth:`open` (or ``with``) takes the shard's lock (:func:`lock_path`; a second writer gets
    :class:`ShardLockedError`) before anything else, reads the id columns of the Parquet files
    present (:attr:`written`, with their metadata in :attr:`footers`; unless given as
    ``written``), checks ``num_shards`` against the directory's sharding and records it
    (:func:`record_sharding`; ``None``: no check), removes the temporary files a killed writer
    left, rebuilds the manifest, numbers new files after this shard's own and reads the answers
    kept for rows not written (:attr:`kept_answers`, by ``(id, pair)``: :func:`partial_path`).
    :meth:`add` buffers a finished row and writes ``rows_per_file`` of them at a time as one
    atomic Parquet file; :meth:`fail` logs an item that failed for good; :meth:`keep_answers`
    records answers of rows left incomplete; :meth:`close` writes the rows left (whatever ended
    the run: complete rows are never lost) and releases the lock.  One thread at a time may call it.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with ShardWriter(out, shard_index=2) as writer:
    ...     writer.fail(ImageItem("n1_a", "n1", "", "file", "/x/a.jpg"), "cannot read image", attempts=3)
    >>> [(r["id"], r["attempts"]) for r in read_json_lines(failures_path(out, 2))]
    [('n1_a', 3)]
    """

    def __init__(
        self,
        out_dir: Union[str, os.PathLike],
        shard_index: int = 0,
        rows_per_file: int = 1000,
        written: Optional[Mapping[Path, list[str]]] = None,
        num_shards: Optional[int] = None,
    ):
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be at least 1, got {rows_per_file}")
        self.out_dir = Path(out_dir)
        self.shard_index = shard_index
        self.num_shards = num_shards
        self.rows_per_file = rows_per_file
        self.stats = RunStats()
        self.written: Mapping[Path, list[str]] = written or {}
        self.footers: dict[Path, Any] = {}
        self._read = written is None
        self._buffer: list[dict] = []
        self._seq = 0
        self._failed_ids: set[str] = set()
        self.kept_answers: dict[tuple[str, int], dict] = {}
        self._lock_fd: Optional[int] = None

    def open(self) -> "ShardWriter":
        """Lock the shard and read the state it continues from."""
        self._lock()
        try:
            if self._read:
                self.written = ids_by_file(self.out_dir, self.footers)
            files = self.written
            if self.num_shards is not None:
                record_sharding(self.out_dir, self.num_shards, files)
            for stale in remove_stale_temp_files(self.out_dir, self.shard_index):
                logger.info("removed temporary file %s left by an interrupted run", stale)
            rebuild_manifest(self.out_dir, self.shard_index, files)
            self._seq = next_seq(files, self.shard_index)
            written = {i for ids in files.values() for i in ids}
            self._failed_ids = prune_failures(self.out_dir, self.shard_index, written)
            self.kept_answers = prune_json_lines(partial_path(self.out_dir, self.shard_index), written, ("id", "pair"))
        except BaseException:
            self._unlock()
            raise
        return self

    def _lock(self) -> None:
        import fcntl

        path = lock_path(self.out_dir, self.shard_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise ShardLockedError(
                f"shard {self.shard_index} of {self.out_dir} is being written by another process "
                f"({f'pid {holder}, ' if holder else ''}lock {path}): let it finish, or give this one another --shard-index"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)  # no pid left behind to be read as a holder's
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def add(self, row: dict) -> None:
        """Buffer a finished row; write a file when ``rows_per_file`` are buffered."""
        self._buffer.append(row)
        if len(self._buffer) >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows (if any) as one file."""
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self._write(rows)

    def fail(self, item: ImageItem, error: str, attempts: int) -> None:
        """Log ``item`` to the failures file: it failed for good after ``attempts`` tries."""
        logger.warning("giving up on %s (%s) after %d attempts: %s", item.id, item.source, attempts, error)
        record = {"id": item.id, "source": item.source, "error": error, "attempts": attempts}
        append_json_line(failures_path(self.out_dir, self.shard_index), record)
        self._failed_ids.add(item.id)
        self.stats.failed += 1

    def keep_answers(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append :func:`answer_record` lines for later runs (one fsync for all)."""
        if records:
            append_json_lines(partial_path(self.out_dir, self.shard_index), records)
            logger.info("kept %d answers of rows left incomplete for the next run", len(records))

    def close(self) -> None:
        """Write the rows left and release the lock."""
        try:
            self.flush()
        finally:
            self._unlock()

    def __enter__(self) -> "ShardWriter":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        from imagenet_think.writer import write_shard

        table = pa.Table.from_pylist(rows, schema=schema.arrow_schema("default"))
        path = write_shard(table, self.out_dir / "data" / shard_file_name(self.shard_index, self._seq))
        self._seq += 1
        ids = [row["id"] for row in rows]
        append_json_line(manifest_path(self.out_dir, self.shard_index), {"file": f"data/{path.name}", "ids": ids})
        self.stats.written += len(rows)
        self.stats.files.append(path)
        if self._failed_ids.intersection(ids):  # failed before, written now (--retry-failed)
            self._failed_ids = prune_failures(self.out_dir, self.shard_index, set(ids))
        if self.kept_answers and any((i, pair) in self.kept_answers for i in ids for pair in schema.TEACHERS):  # used now
            self.kept_answers = prune_json_lines(partial_path(self.out_dir, self.shard_index), set(ids), ("id", "pair"))
