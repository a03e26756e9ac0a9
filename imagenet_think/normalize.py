"""Turn Arrow tables of either on-disk layout into the typed schema of a config.

Two layouts are accepted:

* the ImageNet-Think layout (every column of ``schema.features("default")``), written by
  :mod:`imagenet_think.writer` and by ``regenerate``: only cast;
* the published six-column layout of the Hub copy (``image, question, think_1, answer_1,
  think_2, answer_2``): ``id`` comes from the image file name (``n04004000_n04004000_1000.JPEG``)
  and ``wnid`` from the id, ``label`` from :mod:`imagenet_think.labels`, ``model_*`` from
  :data:`schema.TEACHERS`, and ``status_*`` from the texts (columns that still hold teacher
  markers are re-split with :func:`imagenet_think.reasoning.split_reasoning`).

Everything works on whole tables (one Parquet row group at a time) with Arrow compute; Python
loops touch only the ids and the rare rows that still carry markers.  Texts are trimmed of
Unicode whitespace at both ends.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import table_cast

from imagenet_think import schema


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
    if names.issuperset(schema.features("default")):
        return "imagenet-think"
    missing = [c for c in schema.PUBLISHED_COLUMNS if c not in names]
    if not missing:
        return "published"
    raise LayoutError(
        f"{source}: missing column(s) {', '.join(missing)} for the published layout "
        f"({', '.join(schema.PUBLISHED_COLUMNS)}); found {', '.join(sorted(names)) or 'no columns'}. "
        "Is this an ImageNet-Think Parquet file?"
    )


def row_ids(table: pa.Table, source: str, first_row: int = 0) -> list[str]:
    """The ``id`` of every row: its ``id`` column, or derived from the image file name.

    ``source`` and ``first_row`` (index of the table's first row in its file) name a row
    with no usable id in the :class:`LayoutError`.
    """
    if "id" in table.column_names:
        ids = table["id"].to_pylist()
        problem = "null id"
    else:
        names = pc.struct_field(table["image"], "path").to_pylist()
        ids = [_id_from_name(name) if name else None for name in names]
        problem = "image has no file name, so no id can be derived (published rows carry names like n04004000_n04004000_1000.JPEG)"
    if None in ids:
        raise LayoutError(f"{source}: row {first_row + ids.index(None)}: {problem}")
    return ids


def _id_from_name(name: str) -> str:
    wnid = schema.wnid_from_name(name)
    return schema.record_id(wnid, name) if wnid else name.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def to_default(table: pa.Table, ids: list[str], layout: Optional[str] = None) -> pa.Table:
    """Return ``table`` in the ``default`` config's Arrow schema; ``ids`` are its
    :func:`row_ids` (used by the published layout).

    With ``layout="imagenet-think"`` given, ``table`` may hold only some of the ``default``
    columns (read with :func:`source_columns`): those are cast, in the config's order.
    """
    if (layout or layout_of(table.column_names, "table")) == "imagenet-think":
        present = tuple(name for name in schema.features("default") if name in table.column_names)
        return table_cast(table.select(list(present)), schema.arrow_schema("default", present))
    return _from_published(table, ids)


def _teachers(config: str) -> tuple[int, ...]:
    return (schema.CONFIG_TEACHER[config],) if config in schema.CONFIG_TEACHER else tuple(schema.TEACHER_NAMES)


def source_columns(config: str, columns: Optional[Sequence[str]] = None) -> list[str]:
    """The ``default`` columns :func:`project` needs to give ``columns`` of ``config``
    (all when ``None``); ``id`` first, which the hash split always reads.

    >>> source_columns("glm", ["answer", "teacher"])
    ['id', 'answer_1', 'status_1']
    >>> source_columns("default", ["think_2"])
    ['id', 'think_2']
    """
    if columns is None:
        return list(schema.features("default"))
    needed = dict.fromkeys(["id"])
    for name in columns:
        if config == "default" or name in schema.IDENTITY_COLUMNS:
            needed[name] = None
        elif name in schema.PAIR_FIELDS:
            needed.update(dict.fromkeys(f"{name}_{pair}" for pair in _teachers(config)))
    if config != "default":  # the missing-pair filter
        needed.update(dict.fromkeys(f"status_{pair}" for pair in _teachers(config)))
    return list(needed)


def _has_marker(column: pa.ChunkedArray) -> pa.ChunkedArray:
    from imagenet_think.reasoning import MARKER_PATTERN

    return pc.fill_null(pc.match_substring_regex(column, MARKER_PATTERN), False)


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


def _statuses(think: pa.ChunkedArray, answer: pa.ChunkedArray, style: str) -> tuple:
    """Clean think/answer and a status per row of an already split published pair.

    Status from emptiness (``ok``, ``no_think``, ``empty_answer``, ``missing``), computed on
    whole columns.  Rows whose columns still hold teacher markers are rebuilt into raw text
    with :func:`_rejoin` and re-split, so stray tags never survive and reasoning never moves
    into the answer.
    """
    t = pc.utf8_trim_whitespace(pc.fill_null(think, ""))
    a = pc.utf8_trim_whitespace(pc.fill_null(answer, ""))
    has_t, has_a = pc.not_equal(t, ""), pc.not_equal(a, "")
    status = pc.case_when(
        pc.make_struct(pc.and_(has_t, has_a), has_a, has_t),
        pa.scalar("ok"), pa.scalar("no_think"), pa.scalar("empty_answer"), pa.scalar("missing"),
    )
    marked = pc.or_(_has_marker(think), _has_marker(answer))
    if not pc.any(marked).as_py():
        return t, a, status
    from imagenet_think.reasoning import split_reasoning, think_markers

    opener, closer = think_markers(style)
    think_l, answer_l, status_l = t.to_pylist(), a.to_pylist(), status.to_pylist()
    raw_t, raw_a = think.to_pylist(), answer.to_pylist()
    for i in pc.indices_nonzero(marked).to_pylist():
        result = split_reasoning(_rejoin(raw_t[i] or "", raw_a[i] or "", opener, closer), style=style)
        think_l[i], answer_l[i], status_l[i] = result.think, result.answer, result.status
    return think_l, answer_l, status_l


def _from_published(table: pa.Table, ids: list[str]) -> pa.Table:
    from imagenet_think.labels import label_for

    wnids = [schema.wnid_from_name(row_id) or "" for row_id in ids]
    n = table.num_rows
    columns = {
        "id": ids,
        "wnid": wnids,
        "label": [label_for(w) if w else "" for w in wnids],
        "image": table["image"],
        "question": table["question"],
    }
    for pair, style in schema.TEACHER_NAMES.items():
        think, answer, status = _statuses(table[f"think_{pair}"], table[f"answer_{pair}"], style)
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
    target = schema.arrow_schema("default")
    columns["generation"] = pa.array([[]] * n, type=target.field("generation").type)
    arrays = [pa.array(columns[f.name], type=f.type) if isinstance(columns[f.name], list) else columns[f.name] for f in target]
    return table_cast(pa.table(arrays, names=target.names), target)


def project(table: pa.Table, config: str, columns: Optional[Sequence[str]] = None) -> pa.Table:
    """Reshape a ``default`` table into ``config`` (``default``, ``pairs``, ``glm``, ``kimi``),
    keeping ``columns`` of it (all when ``None``; ``table`` needs :func:`source_columns`).

    ``pairs`` has one row per image and teacher, teacher 1 first; in ``pairs``, ``glm`` and
    ``kimi``, pairs with status ``missing`` are dropped.
    """
    keep = None if columns is None else tuple(columns)
    target = schema.arrow_schema(config, keep)
    if config == "default":
        return table.select(target.names)
    parts, present = [], []
    for pair in _teachers(config):
        arrays = []
        for name in target.names:
            if name == "teacher":
                arrays.append(pa.repeat(pa.scalar(pair, pa.int8()), table.num_rows))
            else:
                arrays.append(table[name if name in schema.IDENTITY_COLUMNS else f"{name}_{pair}"])
        parts.append(pa.table(arrays, schema=target))
        present.append(pc.not_equal(table[f"status_{pair}"], "missing"))
    if len(parts) == 1:
        return parts[0].filter(present[0])
    n = table.num_rows
    order = pa.array([i + k * n for i in range(n) for k in range(len(parts))], pa.int64())
    return pa.concat_tables(parts).take(order).filter(pa.concat_arrays([p.combine_chunks() for p in present]).take(order))


def split_filter(
    table: pa.Table, ids: list[str], keep_validation: Optional[bool], fraction: float
) -> tuple[pa.Table, list[str]]:
    """Keep the rows (and their ids) of one hash split; ``None`` keeps all."""
    if keep_validation is None:
        return table, ids
    from imagenet_think.split import validation_mask

    mask = validation_mask(ids, fraction)
    if not keep_validation:
        mask = pc.invert(mask)
    return table.filter(mask), [i for i, keep in zip(ids, mask.to_pylist(), strict=True) if keep]
