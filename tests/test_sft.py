"""imagenet_think.sft: record -> TRL conversational examples, per record and column-wise."""

from __future__ import annotations

import io
import re

import datasets
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenet_think import PROMPT, load_dataset
from imagenet_think.reasoning import KIMI_CLOSE, KIMI_OPEN, THINK_CLOSE, THINK_OPEN, join_reasoning, split_reasoning
from imagenet_think.schema import FEATURES
from imagenet_think.sft import (
    _rows_containing,
    assistant_text,
    flatten_text_content,
    sft_batch,
    sft_features,
    sft_table,
    to_sft_messages,
)


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def record(record_id: str, **pairs) -> dict:
    """A ``default``-config record; ``pairs`` override think/answer/status columns."""
    base = {name: None for name in FEATURES["default"]}
    base.update(
        id=record_id, wnid="n01", label="thing", question=PROMPT, generation=[],
        image={"bytes": png((len(record_id) * 40 % 256, 10, 10)), "path": f"{record_id}.png"},
        think_1="GLM thinks.", answer_1="GLM answers.", status_1="ok",
        think_2="Kimi thinks.", answer_2="Kimi answers.", status_2="ok",
    )
    base.update(pairs)
    return base


RECORDS = [
    record("r0"),
    record("r1", think_1="Fur < 2 cm; 3 > 1.", answer_1="A cat <3", status_2="unclosed_think", answer_2=""),
    record("r2", status_1="missing", think_1=None, answer_1=None, think_2="", answer_2="Only Kimi.", status_2="no_think"),
]


def fixture_dataset() -> datasets.Dataset:
    return datasets.Dataset.from_list(RECORDS, features=FEATURES["default"])


def test_tags_example_is_trl_conversational_shape():
    [example] = to_sft_messages(RECORDS[0], teacher=1)
    assert example == {
        "id": "r0",
        "teacher": 1,
        "images": [RECORDS[0]["image"]],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<think>\nGLM thinks.\n</think>\n\nGLM answers."}]},
        ],
    }


@pytest.mark.parametrize(
    "think, teacher, expected",
    [
        ("tags", 2, "<think>\nKimi thinks.\n</think>\n\nKimi answers."),
        ("native", 1, "<think>\nGLM thinks.</think><answer>GLM answers.</answer>"),
        ("native", 2, f"{KIMI_OPEN}Kimi thinks.{KIMI_CLOSE}Kimi answers."),
        ("none", 1, "GLM answers."),
        ("field", 2, "Kimi answers."),
    ],
)
def test_think_modes_place_the_reasoning(think, teacher, expected):
    [example] = to_sft_messages(RECORDS[0], teacher=teacher, think=think)
    assistant = example["messages"][-1]
    assert assistant["content"] == [{"type": "text", "text": expected}]
    if think == "field":
        assert assistant["reasoning_content"] == "Kimi thinks."
        assert [m["reasoning_content"] for m in example["messages"][:-1]] == [None]
    else:
        assert "reasoning_content" not in assistant


@pytest.mark.parametrize("think", ["tags", "native"])
def test_assistant_text_splits_back_to_the_pair(think):
    for teacher in (1, 2):
        [example] = to_sft_messages(RECORDS[0], teacher=teacher, think=think)
        split = split_reasoning(example["messages"][-1]["content"][0]["text"])
        assert (split.think, split.answer, split.status) == (
            RECORDS[0][f"think_{teacher}"], RECORDS[0][f"answer_{teacher}"], "ok")


def test_both_gives_pair_one_then_pair_two_per_record():
    examples = to_sft_messages(RECORDS[0], teacher="both", think="none")
    assert [(e["teacher"], e["messages"][-1]["content"][0]["text"]) for e in examples] == [
        (1, "GLM answers."), (2, "Kimi answers.")]
    table = sft_table(pa.Table.from_pylist(RECORDS[:2], schema=FEATURES["default"].arrow_schema),
                      teacher="both", on_unusable="skip")
    assert list(zip(table["id"].to_pylist(), table["teacher"].to_pylist())) == [("r0", 1), ("r0", 2), ("r1", 1)]


def test_image_after_question_and_system_prompt():
    [example] = to_sft_messages(RECORDS[0], system_prompt="Think first.", image_placement="after")
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    assert example["messages"][0]["content"] == [{"type": "text", "text": "Think first."}]
    assert [part["type"] for part in example["messages"][1]["content"]] == ["text", "image"]


def test_unusable_status_raises_naming_the_record():
    with pytest.raises(ValueError, match=r"record 'r2': pair 1 \(glm\) has status 'missing'"):
        to_sft_messages(RECORDS[2], teacher=1)
    with pytest.raises(ValueError, match=r"record 'r1': pair 2 \(kimi\) has status 'unclosed_think'"):
        sft_table(pa.Table.from_pylist(RECORDS, schema=FEATURES["default"].arrow_schema), teacher=2)


def test_skip_and_wider_require_status():
    assert to_sft_messages(RECORDS[2], teacher=1, on_unusable="skip") == []
    [example] = to_sft_messages(RECORDS[2], teacher=2, require_status=("ok", "no_think"))
    assert example["messages"][-1]["content"][0]["text"] == "<think>\n\n</think>\n\nOnly Kimi."


def test_null_answer_of_an_accepted_pair_is_an_error_naming_the_record():
    with pytest.raises(ValueError, match=r"record 'r2': answer_1 is null"):
        to_sft_messages(RECORDS[2], teacher=1, require_status=("missing",))


def test_reasoning_with_a_marker_is_refused_with_the_record_id():
    bad = record("r9", think_1=f"I wrote {THINK_CLOSE} too early.")
    with pytest.raises(ValueError, match=r"record 'r9', pair 1: think contains the marker '</think>'"):
        to_sft_messages(bad, think="tags")
    [example] = to_sft_messages(bad, think="field")
    assert example["messages"][-1]["reasoning_content"] == bad["think_1"]


@pytest.mark.parametrize("options", [{"teacher": 3}, {"teacher": True}, {"think": "inline"},
                                     {"image_placement": "middle"}, {"on_unusable": "warn"}])
def test_unknown_options_are_rejected(options):
    with pytest.raises(ValueError, match="must be one of"):
        to_sft_messages(RECORDS[0], **options)


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match="answer_1"):
        to_sft_messages({"id": "x", "image": None, "question": "Q", "think_1": "t", "status_1": "ok"})
    table = pa.Table.from_pylist(RECORDS[:1], schema=FEATURES["default"].arrow_schema).drop_columns(["status_2"])
    with pytest.raises(KeyError, match="status_2"):
        sft_table(table, teacher="both")


def test_null_image_is_an_error_naming_the_record():
    table = pa.Table.from_pylist([record("r5", image=None)], schema=FEATURES["default"].arrow_schema)
    with pytest.raises(ValueError, match="record 'r5': image is null"):
        sft_table(table)


def test_null_question_is_an_error_naming_the_record():
    rows = [record("r4"), record("r5", question=None)]
    table = pa.Table.from_pylist(rows, schema=FEATURES["default"].arrow_schema)
    with pytest.raises(ValueError, match="record 'r5': question is null"):
        sft_table(table, teacher="both")
    with pytest.raises(ValueError, match="record 'r5': question is null"):
        to_sft_messages(rows[1], teacher=2)


PIECES = [*"ab <>|/◁▷\n", "think", "é", THINK_OPEN, THINK_CLOSE, KIMI_OPEN, KIMI_CLOSE, "<answer>", "<|begin_of_box|>"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6), st.sampled_from(["tags", "native"]), st.sampled_from([1, 2]))
def test_columnwise_texts_equal_assistant_text_row_by_row(pairs, think, teacher):
    """The vectorised join gives assistant_text's text, or fails where it fails (on a sliced
    table, as Dataset.map batches are)."""
    rows = [record(f"h{i}", **{f"think_{teacher}": t, f"answer_{teacher}": a}) for i, (t, a) in enumerate(pairs)]
    expected = []
    for row in rows:
        try:
            expected.append(assistant_text(row[f"think_{teacher}"], row[f"answer_{teacher}"], think, teacher))
        except ValueError as error:
            expected.append(f"record {row['id']!r}, pair {teacher}: {error}")
            break
    padded = [record("pad", **{f"think_{teacher}": "<◁" * 50, f"answer_{teacher}": "◁<" * 50})] + rows
    table = pa.Table.from_pylist(padded, schema=FEATURES["default"].arrow_schema).slice(1)
    if len(expected) < len(rows) or expected[-1].startswith("record "):
        with pytest.raises(ValueError, match=re.escape(expected[-1])):
            sft_table(table, teacher=teacher, think=think)
    else:
        out = sft_table(table, teacher=teacher, think=think)
        assert [m[-1]["content"][0]["text"] for m in out["messages"].to_pylist()] == expected


def test_marker_prefilter_on_a_sliced_array():
    strings = pa.array(["<<", "a", "x\u25c1y", "b<", "", None, "\u25c1", "\u25c0"]).slice(1)
    assert _rows_containing(strings, (b"<", "\u25c1".encode())).tolist() == [False, True, True, False, False, True, False]


@pytest.mark.parametrize("think", ["tags", "field"])
def test_dataset_map_round_trips_with_undecoded_images(think, tmp_path):
    dataset = fixture_dataset()
    options = {"teacher": "both", "think": think, "on_unusable": "skip"}
    as_arrow = dataset.with_format("arrow").map(
        sft_batch, batched=True, batch_size=2, remove_columns=dataset.column_names, fn_kwargs=options)
    as_dicts = dataset.cast_column("image", datasets.Image(decode=False)).map(
        sft_batch, batched=True, batch_size=2, remove_columns=dataset.column_names, fn_kwargs=options)
    assert as_arrow.features == as_dicts.features == sft_features(think)
    expected = [e for r in RECORDS for e in to_sft_messages(r, **options)]
    rows = as_dicts.to_list()
    assert [r["messages"] for r in rows] == [e["messages"] for e in expected]
    assert [r["images"][0]["bytes"] for r in rows] == [e["images"][0]["bytes"] for e in expected]
    as_arrow.to_parquet(tmp_path / "sft.parquet")
    reloaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "sft.parquet"), split="train")
    assert reloaded.features == sft_features(think)
    assert reloaded[0]["images"][0].size == (8, 6)
    assert reloaded[0]["messages"] == expected[0]["messages"]


def test_decoded_images_in_a_dict_batch_get_a_clear_error():
    with pytest.raises(TypeError, match=r"Image\(decode=False\)"):
        fixture_dataset().map(sft_batch, batched=True, remove_columns=RECORDS[0].keys(), fn_kwargs={"on_unusable": "skip"})


def test_bundled_sample_converts_every_usable_pair():
    sample = load_dataset("sample", split="train")
    usable = sum(s == "ok" for t in (1, 2) for s in sample[f"status_{t}"])
    examples = sample.with_format("arrow").map(
        sft_batch, batched=True, remove_columns=sample.column_names,
        fn_kwargs={"teacher": "both", "think": "native", "on_unusable": "skip"}).with_format(None)
    assert examples.num_rows == usable > 0
    first = examples[0]
    assert isinstance(first["images"][0], Image.Image)
    teacher = first["teacher"]
    row = sample.filter(lambda r: r["id"] == first["id"])[0]
    style = {1: "glm", 2: "kimi"}[teacher]
    assert first["messages"][-1]["content"][0]["text"] == join_reasoning(
        row[f"think_{teacher}"], row[f"answer_{teacher}"], style)


def test_flatten_text_content_keeps_image_turns_as_lists():
    [example] = to_sft_messages(RECORDS[0], think="field", system_prompt="S")
    flat = flatten_text_content(example["messages"])
    assert flat[0] == {"role": "system", "content": "S"}
    assert flat[1]["content"] == example["messages"][1]["content"]
    assert flat[2] == {"role": "assistant", "content": "GLM answers.", "reasoning_content": "GLM thinks."}
