"""Turn Arrow tables of either on-disk layout into the typed schema of a config.

Two layouts are accepted:

* the ImageNet-Think layout (every column of ``schema.FEATURES["default"]``), written by
  :mod:`imagenet_think.writer` and by ``regenerate``: only cast;
* the published six-column layout of the Hub copy (``image, question, think_1, answer_1,
  think_2, answer_2``): ``id`` and ``wnid`` come from the image file name
  (``n04004000_n04004000_1000.JPEG``), ``label`` from :mod:`imagenet_think.labels`,
  ``model_*`` from :data:`schema.TEACHERS`, and ``status_*`` from the texts (columns that still
  hold teacher markers are re-split with :func:`imagenet_think.reasoning.split_reasoning`).

Everything works on whole tables (one Parquet row group at a time); Python loops touch only
the file names and the rare rows that still carry markers.
"""

from __future__ import annotations

from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import table_cast

from imagenet_think import schema

_STYLE = {1: "glm", 2: "kimi"}


class LayoutError(ValueError):
    """A Parquet file (or one of its rows) does not fit either known layout."""


def layout_of(column_names: list[str], source: str) -> str:
    """``"imagenet-think"`` or ``"published"``; raises :class:`LayoutError` naming ``source``.

    >>> layout_of(list(schema.PUBLISHED_COLUMNS), "x.parquet")
    'published'
    >>> layout_of(["image", "question"], "x.parquet")
    Traceback (most recent call last):
    ...
    imagenet_think.normalize.LayoutError: x.parquet: missing column(s) think_1, answer_1, think_2, answer_2 ...
    """
    names = set(column_names)
    if names.issuperset(schema.FEATURES["default"]):
        return "imagenet-think"
    missing = [c for c in schema.PUBLISHED_COLUMNS if c not in names]
    if not missing:
        return "published"
    raise LayoutError(
        f"{source}: missing column(s) {', '.join(missing)} for the published layout "
        f"({', '.join(schema.PUBLISHED_COLUMNS)}); found {', '.join(sorted(names)) or 'no columns'}. "
        "Is this an ImageNet-Think Parquet file?"
    )


def to_default(table: pa.Table, source: str, first_row: int = 0) -> pa.Table:
    """Return ``table`` in the ``default`` config's Arrow schema.

    ``source`` and ``first_row`` (index of the table's first row in its file) only serve
    error messages.
    """
    if layout_of(table.column_names, source) == "imagenet-think":
        return table_cast(table.select(list(schema.FEATURES["default"])), schema.arrow_schema("default"))
    return _from_published(table, source, first_row)


def _ids_from_images(images: pa.ChunkedArray, source: str, first_row: int) -> tuple[list[str], list[str]]:
    ids, wnids = [], []
    for offset, path in enumerate(pc.struct_field(images, "path").to_pylist()):
        if not path:
            raise LayoutError(
                f"{source}: row {first_row + offset}: image has no file name, so no id can be derived "
                "(published rows carry names like n04004000_n04004000_1000.JPEG)"
            )
        wnid = schema.wnid_from_name(path) or ""
        ids.append(schema.record_id(wnid, path) if wnid else path.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        wnids.append(wnid)
    return ids, wnids


def _has_marker(column: pa.ChunkedArray) -> list[bool]:
    from imagenet_think.reasoning import MARKER_PATTERN

    return pc.fill_null(pc.match_substring_regex(column, MARKER_PATTERN), False).to_pylist()


def _rejoin(think: str, answer: str, opener: str, closer: str) -> str:
    """Raw text of a split pair: think wrapped in the markers it lacks, then the answer.

    The closing marker is added only before a non-empty answer, so reasoning cut at the
    token limit (opener, no closer, no answer) stays unclosed.

    >>> _rejoin("Round", "", "<think>", "</think>")
    '<think>Round'
    >>> _rejoin("A.</think><think>B.", "C", "<think>", "</think>")
    '<think>A.</think><think>B.</think>C'
    """
    if think.strip():
        if not think.lstrip().startswith(opener):
            think = opener + think
        if answer.strip() and not think.rstrip().endswith(closer):
            think += closer
    return think + answer


def _statuses(think: pa.ChunkedArray, answer: pa.ChunkedArray, style: str) -> tuple[list, list, list]:
    """Clean think/answer and a status per row of an already split published pair.

    Rows whose columns still hold teacher markers are rebuilt into raw text with
    :func:`_rejoin` and re-split, so stray tags never survive and reasoning never moves into
    the answer.
    """
    thinks, answers, statuses = [], [], []
    rows = zip(think.to_pylist(), answer.to_pylist(), _has_marker(think), _has_marker(answer))
    for t, a, t_marked, a_marked in rows:
        t, a = t or "", a or ""
        if t_marked or a_marked:
            from imagenet_think.reasoning import split_reasoning, think_markers

            result = split_reasoning(_rejoin(t, a, *think_markers(style)), style=style)
            t, a, status = result.think, result.answer, result.status
        else:
            t, a = t.strip(), a.strip()
            status = "ok" if t and a else "no_think" if a else "empty_answer" if t else "missing"
        thinks.append(t)
        answers.append(a)
        statuses.append(status)
    return thinks, answers, statuses


def _from_published(table: pa.Table, source: str, first_row: int) -> pa.Table:
    from imagenet_think.labels import label_for

    ids, wnids = _ids_from_images(table["image"], source, first_row)
    n = table.num_rows
    columns = {
        "id": ids,
        "wnid": wnids,
        "label": [label_for(w) if w else "" for w in wnids],
        "image": table["image"],
        "question": table["question"],
    }
    for pair in (1, 2):
        think, answer, status = _statuses(table[f"think_{pair}"], table[f"answer_{pair}"], _STYLE[pair])
        columns.update(
            {
                f"model_{pair}": pa.repeat(schema.TEACHERS[pair], n),
                f"think_{pair}": think,
                f"answer_{pair}": answer,
                f"status_{pair}": status,
                f"finish_reason_{pair}": pa.nulls(n, pa.string()),
                f"num_tokens_{pair}": pa.nulls(n, pa.int32()),
            }
        )
    columns["generation"] = pa.array([[]] * n, type=schema.arrow_schema("default").field("generation").type)
    target = schema.arrow_schema("default")
    arrays = [pa.array(columns[f.name], type=f.type) if isinstance(columns[f.name], list) else columns[f.name] for f in target]
    return table_cast(pa.table(arrays, names=target.names), target)


def project(table: pa.Table, config: str) -> pa.Table:
    """Reshape a ``default`` table into ``config`` (``default``, ``pairs``, ``glm``, ``kimi``).

    ``pairs`` has one row per image and teacher, teacher 1 first; pairs with status
    ``missing`` are dropped.
    """
    if config == "default":
        return table
    teachers = (schema.CONFIG_TEACHER[config],) if config in schema.CONFIG_TEACHER else (1, 2)
    target = schema.arrow_schema(config)
    parts = []
    for pair in teachers:
        columns = {name: table[name] for name in ("id", "wnid", "label", "image", "question")}
        columns["teacher"] = pa.repeat(pa.scalar(pair, pa.int8()), table.num_rows)
        for name in ("model", "think", "answer", "status", "finish_reason", "num_tokens"):
            columns[name] = table[f"{name}_{pair}"]
        parts.append(pa.table([columns[f.name] for f in target], schema=target))
    if len(parts) == 1:
        out = parts[0]
    else:
        n = table.num_rows
        order = pa.array([i + k * n for i in range(n) for k in range(len(parts))], pa.int64())
        out = pa.concat_tables(parts).take(order)
    return out.filter(pc.not_equal(out["status"], "missing"))


def validation_filter(table: pa.Table, keep_validation: Optional[bool], fraction: float) -> pa.Table:
    """Keep the rows of one hash split (``None`` keeps all)."""
    if keep_validation is None:
        return table
    from imagenet_think.split import validation_mask

    mask = validation_mask(table["id"].to_pylist(), fraction)
    return table.filter(mask if keep_validation else pc.invert(mask))
