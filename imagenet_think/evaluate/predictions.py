"""Model predictions to score: read from a file, checked against the corpus, split into parts.

A predictions file is JSON Lines (``.jsonl``, ``.json``) or Parquet (``.parquet``) with one
record per image: ``id`` (the corpus row id) and the model's raw output in ``prediction``
(aliases, first found wins: ``output``, ``text``, ``raw``).  An optional ``finish_reason``
(``"stop"``, ``"length"``) lets :func:`imagenet_think.reasoning.split_reasoning` tell a cut
answer from a complete one.  Errors name the file and the 1-based line (JSONL) or 0-based
row (Parquet) of the offending record.

:func:`generate_predictions` produces the same columns by running a model of
:mod:`imagenet_think.regenerate.models` on the corpus images through an engine of
:mod:`imagenet_think.regenerate.engines`, with the paper's prompt.

>>> import json, tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp, "p.jsonl")
...     _ = path.write_text(json.dumps({"id": "n1_a", "output": "<think>hm</think>A cat."}) + "\\n")
...     found = read_predictions(path)
>>> found.table.column_names, found.table["prediction"].to_pylist()
(['id', 'prediction', 'finish_reason', 'position'], ['<think>hm</think>A cat.'])
>>> split_predictions(found.table, "auto")["answer"].to_pylist()
['A cat.']
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Optional, Union

import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think.fileio import atomic_write

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("prediction", "output", "text", "raw")
"""Accepted names of the raw-output column, in order of preference."""

PREDICTION_SCHEMA = pa.schema(
    [("id", pa.string()), ("prediction", pa.string()), ("finish_reason", pa.string()), ("position", pa.int64())]
)
"""Columns of :attr:`Predictions.table`; ``position`` is the record's line (JSONL) or row (Parquet)."""


class PredictionError(ValueError):
    """A predictions file that cannot be scored; the message names file, line or row, and id."""


@dataclass(frozen=True)
class Predictions:
    """The records of one predictions file, in file order.

    ``unit`` is ``"line"`` (JSONL, 1-based) or ``"row"`` (Parquet, 0-based): what
    ``table["position"]`` counts.
    """

    path: Path
    unit: str
    table: pa.Table

    def where(self, index: int) -> str:
        """``"<file> line N"`` or ``"<file> row N"`` for record ``index`` of the table."""
        return f"{self.path} {self.unit} {self.table['position'][index].as_py()}"


def _pick_column(names: Collection[str], where: str) -> str:
    for name in PREDICTION_COLUMNS:
        if name in names:
            return name
    raise PredictionError(f"{where}: no prediction column; expected one of {', '.join(PREDICTION_COLUMNS)}")


def _read_jsonl(path: Path) -> pa.Table:
    ids, texts, reasons, lines = [], [], [], []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path} line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise PredictionError(
                    f"{where}: not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                    "write predictions files as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PredictionError(f"{where}: not valid JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise PredictionError(f"{where}: expected a JSON object, got {type(record).__name__}")
            column = _pick_column(record, where)
            ids.append(record.get("id"))
            texts.append(record[column])
            reasons.append(record.get("finish_reason"))
            lines.append(number)
    try:
        return pa.table([ids, texts, reasons, lines], schema=PREDICTION_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        bad = next(
            (i for i, values in enumerate(zip(ids, texts, reasons, strict=True)) if not all(isinstance(v, (str, type(None))) for v in values)),
            None,
        )
        place = f"{path} line {lines[bad]}" if bad is not None else str(path)
        raise PredictionError(f"{place}: id, prediction and finish_reason must be strings ({err})") from err


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as err:
        raise PredictionError(f"{path}: not a readable Parquet file ({err})") from None
    column = _pick_column(names, str(path))
    if "id" not in names:
        raise PredictionError(f"{path}: no 'id' column (columns: {', '.join(names)})")
    wanted = ["id", column] + (["finish_reason"] if "finish_reason" in names else [])
    table = pq.read_table(path, columns=wanted)
    reasons = table["finish_reason"] if "finish_reason" in names else pa.nulls(table.num_rows, pa.string())
    try:
        columns = [table["id"].cast(pa.string()), table[column].cast(pa.string()), reasons.cast(pa.string())]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise PredictionError(f"{path}: id, {column} and finish_reason must be strings ({err})") from err
    for name, values in zip(("id", column, "finish_reason"), columns, strict=True):
        _check_utf8(values, f"{path} column {name!r}")
    return pa.table([*columns, pa.array(range(table.num_rows), pa.int64())], schema=PREDICTION_SCHEMA)


def _check_utf8(values: pa.ChunkedArray, where: str) -> None:
    """Raise :class:`PredictionError` naming the first row of a string column that is not UTF-8."""
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        for row, raw in enumerate(values.cast(pa.binary()).to_pylist()):
            try:
                (raw or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise PredictionError(f"{where} row {row}: not UTF-8 text ({raw[:20]!r}...)") from None
        raise


def read_predictions(path: Union[str, os.PathLike]) -> Predictions:
    """Read and check a predictions file (every record has a string id and output; ids unique)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionError(f"{path}: no such predictions file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        found = Predictions(path, "line", _read_jsonl(path))
    elif suffix == ".parquet":
        found = Predictions(path, "row", _read_parquet(path))
    else:
        raise PredictionError(f"{path}: unknown predictions format {suffix!r}; expected .jsonl, .json or .parquet")
    if found.table.num_rows == 0:
        raise PredictionError(f"{path}: no predictions in the file")
    first_seen: dict = {}
    ids, texts = found.table["id"].to_pylist(), found.table["prediction"].to_pylist()
    for index, (row_id, text) in enumerate(zip(ids, texts, strict=True)):
        if row_id is None:
            raise PredictionError(f"{found.where(index)}: missing id")
        if text is None:
            raise PredictionError(f"{found.where(index)}: id {row_id!r} has no prediction (null)")
        if row_id in first_seen:
            earlier = found.table["position"][first_seen[row_id]].as_py()
            raise PredictionError(f"{found.where(index)}: id {row_id!r} already predicted at {found.unit} {earlier}")
        first_seen[row_id] = index
    return found


def check_ids(predictions: Predictions, corpus_ids: Collection[str], source: str) -> None:
    """Raise :class:`PredictionError` naming every prediction (up to five) whose id the corpus lacks."""
    missing = [i for i, row_id in enumerate(predictions.table["id"].to_pylist()) if row_id not in corpus_ids]
    if missing:
        shown = "; ".join(f"{predictions.where(i)}: id {predictions.table['id'][i].as_py()!r}" for i in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise PredictionError(
            f"{len(missing)} prediction id(s) are not in the corpus {source!r}: {shown}{more}. "
            "Check SOURCE, or that the ids are corpus row ids (<wnid>_<file stem>)."
        )


def split_predictions(table: pa.Table, style: str = "auto") -> pa.Table:
    """``think``, ``answer`` and ``status`` of each raw ``prediction`` (``finish_reason`` used if present).

    >>> split_predictions(pa.table({"prediction": ["◁think▷hm◁/think▷A cat."]}))["status"].to_pylist()
    ['ok']
    """
    from imagenet_think.reasoning import split_batch

    reasons = table["finish_reason"].to_pylist() if "finish_reason" in table.column_names else None
    return pa.table(split_batch(table["prediction"].to_pylist(), style, reasons))


GENERATED_SCHEMA = pa.schema(
    [("id", pa.string()), ("prediction", pa.string()), ("finish_reason", pa.string()),
     ("num_tokens", pa.int64()), ("error", pa.string())]
)
"""Columns of generated predictions; ``prediction`` is null and ``error`` set for a failed request."""


def generate_predictions(
    rows: pa.Table,
    run_dir: Union[str, os.PathLike],
    spec: Any,
    engine: str = "transformers",
    engine_options: Optional[Mapping[str, Any]] = None,
    chunk_size: int = 256,
    progress: bool = True,
) -> pa.Table:
    """Run ``spec`` (a :class:`~imagenet_think.regenerate.models.ModelSpec`) on the ``image`` of each row.

    Outputs are stored chunk by chunk in ``<run_dir>/predictions/`` (a rerun with the same
    model, engine, options and ids reuses them; the model is loaded only if a chunk is
    missing), then written whole to ``<run_dir>/predictions.jsonl``, readable by
    :func:`read_predictions`; failed requests go to ``<run_dir>/generation_errors.jsonl``
    instead.  Returns the successful predictions (``id``, ``prediction``, ``finish_reason``).
    ``engine_options`` go to :func:`imagenet_think.regenerate.engines.make_engine`.
    """
    from imagenet_think import PROMPT
    from imagenet_think.evaluate.chunks import fingerprint, run_chunks
    from imagenet_think.regenerate.engines import Request, make_engine

    ids = rows["id"].to_pylist()
    engine_options = dict(engine_options or {})
    recorded = {key: value for key, value in engine_options.items() if key != "batch_size"}
    opened: list = []

    def fingerprint_of(start: int, stop: int) -> str:
        return fingerprint(spec.to_dict(), engine, recorded, PROMPT, ids[start:stop])

    def compute(start: int, stop: int) -> pa.Table:
        if not opened:
            try:
                opened.append(make_engine(engine, spec, **engine_options))
            except TypeError as err:
                raise ValueError(f"the {engine} engine does not take these options {sorted(engine_options)}: {err}") from err
        images = rows["image"].slice(start, stop - start).to_pylist()
        results = opened[0].generate([Request(row_id, image, PROMPT) for row_id, image in zip(ids[start:stop], images, strict=True)])
        columns = [[getattr(r, name) for r in results] for name in ("id", "raw", "finish_reason", "num_tokens", "error")]
        return pa.table(columns, schema=GENERATED_SCHEMA)

    try:
        generated = run_chunks(len(ids), chunk_size, Path(run_dir) / "predictions", fingerprint_of, compute, "generating", progress)
    finally:
        for handle in opened:
            handle.close()
    failed = generated["error"].is_valid()
    if pc.any(failed).as_py():
        logger.warning("%d of %d requests failed; see %s", pc.sum(failed).as_py(), len(ids), Path(run_dir) / "generation_errors.jsonl")
    succeeded = generated.filter(pc.invert(failed))
    _write_jsonl(succeeded.select(["id", "prediction", "finish_reason", "num_tokens"]), Path(run_dir) / "predictions.jsonl")
    _write_jsonl(generated.filter(failed).select(["id", "error"]), Path(run_dir) / "generation_errors.jsonl")
    return succeeded.select(["id", "prediction", "finish_reason"])


def _write_jsonl(table: pa.Table, path: Path) -> None:
    with atomic_write(path) as handle:
        for record in table.to_pylist():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
