"""Turn corpus records into SFT examples in TRL's conversational vision format.

One example is one (image, question, teacher answer) triple::

    {"id": ..., "teacher": 1,
     "images": [image],
     "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                               {"type": "text", "text": question}]},
                  {"role": "assistant", "content": [{"type": "text", "text": answer}]}]}

``images`` holds the record's image untouched (a ``PIL.Image`` or the Arrow struct
``{"bytes", "path"}``); the one image placeholder in the user turn matches it.  Every content
part has the keys ``type`` and ``text`` (``text`` is ``None`` for the image part) because an
Arrow list of structs needs one struct type; chat templates test ``type`` first, so the extra
key changes nothing they render.

Where the teacher's reasoning goes is ``think``:

``"tags"``
    ``<think>\\n{think}\\n</think>\\n\\n{answer}`` in the assistant text (the DeepSeek-R1 / Qwen3
    convention, :func:`imagenet_think.reasoning.join_reasoning` style ``think_tags``).
``"native"``
    the teacher's own markers: GLM ``<think>…</think><answer>…</answer>``, Kimi
    ``◁think▷…◁/think▷…`` (styles ``glm`` and ``kimi``).
``"field"``
    the answer alone in ``content`` and the reasoning in the message key ``reasoning_content``,
    which transformers' reasoning-aware templates (Qwen3, Qwen3.5) render; Qwen2.5-VL, GLM-4.1V
    and Kimi-VL templates ignore it, so the reasoning would be dropped there.  Every message
    then carries the key (``None`` outside the assistant turn).
``"none"``
    the answer alone.

``teacher`` is ``1`` (GLM-4.1V-9B-Thinking), ``2`` (Kimi-VL-A3B-Thinking-2506) or ``"both"``,
which gives two examples per record (pair 1 then pair 2), so every function returns a list
or table of examples, never a single one.

Only pairs whose ``status_<teacher>`` is in ``require_status`` (default ``("ok",)``) are
usable.  Any other pair raises :class:`UnusablePairError` (a ``ValueError``) naming the record
id, unless ``on_unusable="skip"``, which drops that pair.

:func:`sft_table` is the column-oriented path (Arrow in, Arrow out, images passed through as
stored structs, never decoded); :func:`sft_batch` wraps it for ``Dataset.map(batched=True)``;
:func:`to_sft_messages` converts one record.

>>> record = {"id": "n01_1", "image": {"bytes": b"...", "path": "n01_1.jpg"}, "question": "What is it?",
...           "think_1": "Fur, whiskers.", "answer_1": "A cat.", "status_1": "ok"}
>>> [example] = to_sft_messages(record, teacher=1)
>>> example["messages"][1]["content"][0]["text"]
'<think>\\nFur, whiskers.\\n</think>\\n\\nA cat.'
>>> example["images"] == [record["image"]]
True
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    KIMI_CLOSE,
    KIMI_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    join_reasoning,
)
from imagenet_think.schema import TEACHER_NAMES, arrow_schema

if TYPE_CHECKING:
    import datasets

THINK_MODES = ("tags", "native", "field", "none")
IMAGE_PLACEMENTS = ("before", "after")
ON_UNUSABLE = ("raise", "skip")
DEFAULT_REQUIRE_STATUS = ("ok",)

Teacher = Union[int, str]



class UnusablePairError(ValueError):
    """A pair's status is not in ``require_status`` (or no pair is usable at all): the
    error that ``require_status`` and ``on_unusable`` answer."""


def teachers_of(teacher: Teacher) -> tuple[int, ...]:
    """The pair numbers that ``teacher`` selects.

    >>> teachers_of("both"), teachers_of(2)
    ((1, 2), (2,))
    """
    if teacher == "both":
        return tuple(TEACHER_NAMES)
    if isinstance(teacher, int) and not isinstance(teacher, bool) and teacher in TEACHER_NAMES:
        return (teacher,)
    raise ValueError(f"`teacher` must be one of {(*TEACHER_NAMES, 'both')}, got {teacher!r}")


def check_options(teacher: Teacher, think: str, image_placement: str = "before", on_unusable: str = "raise") -> None:
    """Raise ``ValueError`` on an option value :func:`sft_table` does not know.

    >>> check_options("both", "thoughts")
    Traceback (most recent call last):
    ValueError: `think` must be one of ('tags', 'native', 'field', 'none'), got 'thoughts'
    """
    teachers_of(teacher)
    _check_choice("think", think, THINK_MODES)
    _check_choice("image_placement", image_placement, IMAGE_PLACEMENTS)
    _check_choice("on_unusable", on_unusable, ON_UNUSABLE)


def sft_features(think: str = "tags") -> datasets.Features:
    """``datasets.Features`` of the examples made with ``think``.

    >>> sorted(sft_features("field")["messages"].feature)
    ['content', 'reasoning_content', 'role']
    """
    return _sft_features(think).copy()


@functools.lru_cache(maxsize=None)
def _sft_features(think: str) -> datasets.Features:
    import datasets

    _check_choice("think", think, THINK_MODES)
    string = datasets.Value("string")
    message = {"role": string, "content": [{"type": string, "text": string}]}
    if think == "field":
        message["reasoning_content"] = string
    return datasets.Features(
        {
            "id": string,
            "teacher": datasets.Value("int8"),
            "images": datasets.List(datasets.Image()),
            "messages": [message],
        }
    )


@functools.lru_cache(maxsize=None)
def _sft_schema(think: str) -> pa.Schema:
    return _sft_features(think).arrow_schema


def assistant_text(think: Optional[str], answer: Optional[str], mode: str, teacher: int) -> str:
    """The assistant turn's text for one pair (for ``"field"``: the answer; the reasoning goes elsewhere).

    >>> assistant_text("Fur.", "A cat.", "native", 2)
    '◁think▷Fur.◁/think▷A cat.'
    >>> assistant_text("Fur.", "A cat.", "none", 1)
    'A cat.'
    """
    if answer is None:
        raise ValueError("the pair has no answer (null)")
    if mode in ("field", "none"):
        return answer
    style = "think_tags" if mode == "tags" else TEACHER_NAMES[teacher]
    return join_reasoning(think or "", answer, style)


def sft_table(
    table: pa.Table,
    teacher: Teacher = 1,
    think: str = "tags",
    system_prompt: Optional[str] = None,
    image_placement: str = "before",
    require_status: Sequence[str] = DEFAULT_REQUIRE_STATUS,
    on_unusable: str = "raise",
) -> pa.Table:
    """SFT examples of the ``default``-config rows in ``table``, as an Arrow table.

    Reads the columns ``id``, ``image``, ``question`` and ``think_<t>``, ``answer_<t>``,
    ``status_<t>`` of each selected teacher ``t``; returns the columns ``id``, ``teacher``,
    ``images`` and ``messages`` typed by :func:`sft_features` (its schema carries the
    ``huggingface`` metadata, so ``datasets`` reads ``images`` as ``Image``).  With
    ``teacher="both"`` the two examples of a record are adjacent, pair 1 first.

    >>> rows = {"id": ["a", "b"], "image": [{"bytes": b"1", "path": None}] * 2, "question": ["Q?"] * 2,
    ...         "think_1": ["T", "T"], "answer_1": ["A", "A"], "status_1": ["ok", "unclosed_think"]}
    >>> out = sft_table(pa.table(rows), teacher=1, think="none", on_unusable="skip")
    >>> out["id"].to_pylist(), out["messages"][0][1]["content"][0]["text"].as_py()
    (['a'], 'A')
    """
    check_options(teacher, think, image_placement, on_unusable)
    _check_columns(table.column_names, teachers_of(teacher))
    schema = _sft_schema(think)
    pieces = []
    for t in teachers_of(teacher):
        rows = _usable_rows(table, t, require_status, on_unusable)
        if len(rows):
            usable = table if len(rows) == table.num_rows else table.take(rows)
            _check_not_null(usable, ("image", "question", f"answer_{t}"))
            reasoning = _array(usable, f"think_{t}") if think == "field" else None
            pieces.append((t, rows, _assistant_texts(usable, t, think), reasoning))
    if not pieces:
        return schema.empty_table()
    source_rows = np.concatenate([rows for _, rows, _, _ in pieces])
    teachers = np.concatenate([np.full(len(rows), t, np.int8) for t, rows, _, _ in pieces])
    order = np.lexsort((teachers, source_rows))
    texts = pa.concat_arrays([texts for _, _, texts, _ in pieces])
    reasoning = pa.concat_arrays([r for _, _, _, r in pieces]) if think == "field" else None
    examples = _examples(
        table, source_rows[order], teachers[order], (texts, order), reasoning, system_prompt, image_placement
    )
    return examples.cast(schema)


def sft_batch(batch: Union[pa.Table, Mapping[str, list]], **options: Any) -> pa.Table:
    """:func:`sft_table` for ``Dataset.map(batched=True)``; ``options`` are its keyword arguments.

    ``batch`` is a ``pa.Table`` (``dataset.with_format("arrow")``, the fast path) or a dict
    of columns whose images are undecoded ``{"bytes", "path"}`` dicts (cast the column to
    ``Image(decode=False)`` first).  The result is a ``pa.Table``, which ``Dataset.map``
    accepts in either case.  Drop the input columns (``remove_columns``): the output has its
    own row count.  ``map`` keeps the input's format, so reset it to get decoded images::

        ds.with_format("arrow").map(sft_batch, batched=True, remove_columns=ds.column_names,
                                    fn_kwargs={"teacher": "both"}).with_format(None)

    >>> batch = {"id": ["a"], "image": [{"bytes": b"1", "path": None}], "question": ["Q?"],
    ...          "think_2": ["T"], "answer_2": ["A"], "status_2": ["ok"]}
    >>> sft_batch(batch, teacher=2).column_names
    ['id', 'teacher', 'images', 'messages']
    """
    if not isinstance(batch, pa.Table):
        batch = _table_from_columns(batch, teachers_of(options.get("teacher", 1)))
    return sft_table(batch, **options)


def to_sft_messages(
    record: Mapping[str, Any],
    teacher: Teacher = 1,
    think: str = "tags",
    system_prompt: Optional[str] = None,
    image_placement: str = "before",
    require_status: Sequence[str] = DEFAULT_REQUIRE_STATUS,
    on_unusable: str = "raise",
) -> list[dict]:
    """The SFT examples of one ``default``-config record: a list of one or two dicts.

    The record's ``image`` goes into ``images`` as it is (decoded or not).  Options are
    those of :func:`sft_table`; with ``on_unusable="skip"`` the list can be empty.

    >>> record = {"id": "r", "image": None, "question": "Q?", "think_1": "T", "answer_1": "A",
    ...           "status_1": "ok", "think_2": "U", "answer_2": "B", "status_2": "ok"}
    >>> [(e["teacher"], e["messages"][-1]["content"][0]["text"]) for e in
    ...  to_sft_messages(record, teacher="both", think="native")]
    [(1, '<think>\\nT</think><answer>A</answer>'), (2, '◁think▷U◁/think▷B')]
    >>> to_sft_messages(record, think="field", system_prompt="Be brief.")[0]["messages"][0]
    {'role': 'system', 'content': [{'type': 'text', 'text': 'Be brief.'}], 'reasoning_content': None}
    """
    teachers = teachers_of(teacher)
    text_record = {**record, "image": {"bytes": None, "path": None}}
    table = _table_from_columns({name: [value] for name, value in text_record.items()}, teachers)
    examples = sft_table(table, teacher, think, system_prompt, image_placement, require_status, on_unusable)
    return [{**example, "images": [record.get("image")]} for example in examples.to_pylist()]


def flatten_text_content(messages: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Messages whose text-only ``content`` lists are joined into plain strings.

    For templates that print ``content`` as is, such as GLM-4.1V-Thinking's, which renders a
    list of parts as its Python repr in system and assistant turns.  Turns with an image keep
    their list.  ``None`` values are dropped, as transformers does before rendering.

    >>> flatten_text_content([{"role": "assistant", "content": [{"type": "text", "text": "A"}],
    ...                        "reasoning_content": None}])
    [{'role': 'assistant', 'content': 'A'}]
    """
    flattened = []
    for message in messages:
        message = {key: value for key, value in message.items() if value is not None}
        content = message.get("content")
        if isinstance(content, list) and all(part.get("type") == "text" for part in content):
            message["content"] = "".join(part.get("text") or "" for part in content)
        flattened.append(message)
    return flattened


def _check_choice(name: str, value: Any, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}")


def _check_columns(available: Sequence[str], teachers: Sequence[int]) -> list[str]:
    """The columns :func:`sft_table` reads for ``teachers``; ``KeyError`` naming those not ``available``."""
    names = ["id", "image", "question"] + [f"{c}_{t}" for t in teachers for c in ("think", "answer", "status")]
    missing = [name for name in names if name not in available]
    if missing:
        raise KeyError(f"the records lack the columns {missing} (expected the 'default' config)")
    return names


def _table_from_columns(columns: Mapping[str, list], teachers: Sequence[int]) -> pa.Table:
    """The columns :func:`sft_table` reads, typed by the ``default`` config."""
    names = _check_columns(list(columns), teachers)
    schema = pa.schema([arrow_schema("default").field(name) for name in names])
    try:
        return pa.table({name: columns[name] for name in names}, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise TypeError(
            "could not read the records as Arrow; images must be undecoded {'bytes', 'path'} dicts: "
            "cast the column with Image(decode=False) or use dataset.with_format('arrow')"
            f" ({error})"
        ) from error


def _record_ids(table: pa.Table, rows: np.ndarray) -> list:
    return table.column("id").take(pa.array(rows)).to_pylist()


def _usable_rows(table: pa.Table, teacher: int, require_status: Sequence[str], on_unusable: str) -> np.ndarray:
    """Indices of the rows whose pair ``teacher`` may be used; raises on others when asked to."""
    status = table.column(f"status_{teacher}")
    usable = pc.fill_null(pc.is_in(status, value_set=pa.array(list(require_status), pa.string())), False)
    usable = usable.to_numpy(zero_copy_only=False)
    if on_unusable == "raise" and not usable.all():
        first = int(np.flatnonzero(~usable)[0])
        [record_id] = _record_ids(table, np.array([first]))
        raise UnusablePairError(
            f"record {record_id!r}: pair {teacher} ({TEACHER_NAMES[teacher]}) has status "
            f"{status[first].as_py()!r}, not one of `require_status={tuple(require_status)}`; "
            "widen `require_status` to use it, or skip such pairs (`on_unusable='skip'`)"
        )
    return np.flatnonzero(usable)


def _interleave(picks: Sequence[tuple[pa.Array, np.ndarray]]) -> pa.Array:
    """Row-major merge of ``(array, indices)`` picks of equal length: for each position ``i``,
    ``array[indices[i]]`` of every pick in turn."""
    bases = np.cumsum([0] + [len(array) for array, _ in picks[:-1]])
    order = np.stack([base + indices for base, (_, indices) in zip(bases, picks, strict=True)], axis=1).ravel()
    return pa.concat_arrays([array for array, _ in picks]).take(pa.array(order))


def _array(table: pa.Table, name: str) -> pa.Array:
    """Column ``name`` of ``table`` as one array, copied only when it has several chunks."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _take(array: pa.Array, indices: np.ndarray) -> pa.Array:
    """``array.take(indices)``, without the copy when ``indices`` picks every row in order."""
    if len(indices) == len(array) and np.array_equal(indices, np.arange(len(array))):
        return array
    return array.take(pa.array(indices))


def _check_not_null(table: pa.Table, names: Sequence[str]) -> None:
    for name in names:
        nulls = pc.is_null(table.column(name)).to_numpy(zero_copy_only=False)
        if nulls.any():
            [record_id] = _record_ids(table, np.flatnonzero(nulls)[:1])
            raise ValueError(f"record {record_id!r}: {name} is null")


@functools.lru_cache(maxsize=None)
def _join_pieces(style: str) -> tuple[str, str, str]:
    """``join_reasoning``'s text around think and answer for ``style``: ``(before, between, after)``.

    Read off :func:`join_reasoning` itself, so the vectorised join cannot drift from it.

    >>> _join_pieces("think_tags")
    ('<think>\\n', '\\n</think>\\n\\n', '')
    """
    joined = join_reasoning("\x00", "\x01", style)
    before, rest = joined.split("\x00")
    between, after = rest.split("\x01")
    return before, between, after


def _rows_containing(strings: pa.Array, needles: Sequence[bytes]) -> np.ndarray:
    """Boolean mask of the rows of a string array whose UTF-8 bytes contain any of ``needles``."""
    strings = strings.cast(pa.string())
    offsets = np.frombuffer(strings.buffers()[1], np.int32)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(strings.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    hits = np.zeros(len(strings), bool)
    for needle in needles:
        starts = np.flatnonzero(data[: max(len(data) - len(needle) + 1, 0)] == needle[0])
        for shift, byte in enumerate(needle[1:], 1):
            starts = starts[data[starts + shift] == byte]
        hits[np.searchsorted(offsets, starts + offsets[0], side="right") - 1] = True
    return hits


_MARKERS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, BOX_OPEN, BOX_CLOSE, KIMI_OPEN, KIMI_CLOSE)
_MARKER_LEADS = tuple(sorted({marker[0].encode() for marker in _MARKERS}))
"""First characters of every reasoning marker (``<`` and ``◁``): text without them holds no marker."""


def _assistant_texts(rows: pa.Table, teacher: int, mode: str) -> pa.Array:
    """:func:`assistant_text` of every row, joined column-wise.

    Rows whose think or answer could hold a marker (they contain ``<`` or ``◁``) go through
    :func:`assistant_text` one by one, so they get its checks and its errors.
    """
    answers = _array(rows, f"answer_{teacher}").cast(pa.string())
    if mode in ("field", "none"):
        return answers
    thinks = pc.fill_null(_array(rows, f"think_{teacher}").cast(pa.string()), "")
    before, between, after = _join_pieces("think_tags" if mode == "tags" else TEACHER_NAMES[teacher])
    texts = pc.binary_join_element_wise(before, thinks, between, answers, after, "")
    suspects = _rows_containing(thinks, _MARKER_LEADS) | _rows_containing(answers, _MARKER_LEADS)
    if not suspects.any():
        return texts
    exact = []
    for i in np.flatnonzero(suspects):
        try:
            exact.append(assistant_text(thinks[i].as_py(), answers[i].as_py(), mode, teacher))
        except ValueError as error:
            [record_id] = _record_ids(rows, np.array([i]))
            raise ValueError(f"record {record_id!r}, pair {teacher}: {error}") from error
    return pc.replace_with_mask(texts, pa.array(suspects), pa.array(exact, pa.string()))


def _examples(
    table: pa.Table,
    rows: np.ndarray,
    teachers: np.ndarray,
    texts: tuple[pa.Array, np.ndarray],
    reasoning: Optional[pa.Array],
    system_prompt: Optional[str],
    placement: str,
) -> pa.Table:
    """Example ``i`` pairs record ``rows[i]`` of ``table`` with pair ``teachers[i]``; its
    assistant text is ``texts[0][texts[1][i]]`` and its reasoning (``"field"``) is picked alike."""
    count = len(rows)
    same = np.zeros(count, np.intp)
    no_text = (pa.nulls(1, pa.string()), same)
    question = (_array(table, "question").cast(pa.string()), rows)
    user = [("image", no_text), ("text", question)]
    if placement == "after":
        user.reverse()
    turns = [("user", user), ("assistant", [("text", texts)])]
    if system_prompt is not None:
        turns.insert(0, ("system", [("text", (pa.array([system_prompt], pa.string()), same))]))

    part_types = [kind for _, turn_parts in turns for kind, _ in turn_parts]
    parts = pa.StructArray.from_arrays(
        [
            pa.array(part_types).take(pa.array(np.tile(np.arange(len(part_types)), count))),
            _interleave([pick for _, turn_parts in turns for _, pick in turn_parts]),
        ],
        names=["type", "text"],
    )
    parts_per_message = np.tile([len(turn_parts) for _, turn_parts in turns], count)
    content_offsets = pa.array(np.concatenate([[0], np.cumsum(parts_per_message)]), pa.int32())
    content = pa.ListArray.from_arrays(content_offsets, parts)
    roles = pa.array([role for role, _ in turns]).take(pa.array(np.tile(np.arange(len(turns)), count)))
    fields, names = [roles, content], ["role", "content"]
    if reasoning is not None:
        fields.append(_interleave([no_text] * (len(turns) - 1) + [(reasoning, texts[1])]))
        names.append("reasoning_content")
    messages = pa.StructArray.from_arrays(fields, names=names)
    images = _take(_array(table, "image"), rows)
    return pa.table(
        {
            "id": _take(_array(table, "id"), rows),
            "teacher": pa.array(teachers),
            "images": pa.ListArray.from_arrays(pa.array(np.arange(count + 1), pa.int32()), images),
            "messages": pa.ListArray.from_arrays(
                pa.array(np.arange(0, count * len(turns) + 1, len(turns)), pa.int32()), messages
            ),
        }
    )
