"""Tests of imagenet_think.reasoning: a table of real-world-like outputs and hypothesis properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    KIMI_CLOSE,
    KIMI_OPEN,
    MARKER_PATTERN,
    STYLES,
    THINK_CLOSE,
    THINK_OPEN,
    ReasoningSplit,
    detect_style,
    join_reasoning,
    split_batch,
    split_reasoning,
    think_markers,
)
from imagenet_think.schema import STATUSES

ALL_MARKERS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, BOX_OPEN, BOX_CLOSE, KIMI_OPEN, KIMI_CLOSE)
REASON = "ρ"  # planted in every reasoning span of the tables below; must never reach an answer

GLM_FULL = (
    "<think>\nGot it, let's look at this image. ρ The animal has orange fur with black stripes.\n</think>"
    "<answer>The image shows a <|begin_of_box|>tiger<|end_of_box|> resting on grass.</answer>"
)

# (name, text, style, finish_reason, status, think, answer)
CASES = [
    ("glm full", GLM_FULL, "auto", "stop", "ok",
     "Got it, let's look at this image. ρ The animal has orange fur with black stripes.",
     "The image shows a tiger resting on grass."),
    ("glm answer tag dropped by vLLM", "<think>ρ stripes</think><answer>A tiger.", "glm", "stop", "ok",
     "ρ stripes", "A tiger."),
    ("glm answer tag dropped, cut by length", "<think>ρ stripes</think><answer>A tiger lies on", "glm", "length",
     "malformed", "ρ stripes", "A tiger lies on"),
    ("glm closed answer with length is complete", "<think>ρ</think><answer>A tiger.</answer>", "glm", "length",
     "ok", "ρ", "A tiger."),
    ("glm opening think in the prompt", "ρ stripes and fur\n</think>\n<answer>\nA tiger.\n</answer>", "auto", None,
     "ok", "ρ stripes and fur", "A tiger."),
    ("glm truncated reasoning", "<think>ρ Let me check the stripes again. ρ Again.", "glm", "length",
     "unclosed_think", "ρ Let me check the stripes again. ρ Again.", ""),
    ("glm truncated reasoning after blank lines", "\n \n<think>ρ Let me check", "glm", "length", "unclosed_think",
     "ρ Let me check", ""),
    ("kimi truncated reasoning after a blank", " ◁think▷ρ stripes", "kimi", "length", "unclosed_think", "ρ stripes", ""),
    ("glm newline after the closing answer tag", "<think>ρ</think><answer>A tiger.</answer>\n", "glm", "stop", "ok",
     "ρ", "A tiger."),
    ("glm empty answer", "<think>ρ done</think><answer></answer>", "glm", "stop", "empty_answer", "ρ done", ""),
    ("glm think closed, nothing after", "<think>ρ done</think>  \n", "auto", "stop", "empty_answer", "ρ done", ""),
    ("glm two boxes", "<think>ρ</think><answer><|begin_of_box|>A<|end_of_box|> or "
     "<|begin_of_box|>B<|end_of_box|></answer>", "glm", None, "malformed", "ρ", "A or B"),
    ("glm unbalanced box", "<think>ρ</think><answer>A <|begin_of_box|>tiger</answer>", "glm", None,
     "malformed", "ρ", "A tiger"),
    ("glm box inside reasoning", "<think>ρ <|begin_of_box|>x<|end_of_box|></think><answer>A tiger.</answer>",
     "glm", None, "malformed", "ρ <|begin_of_box|>x<|end_of_box|>", "A tiger."),
    ("glm zero boxes", "<think>ρ</think><answer>A tiger.</answer>", "glm", None, "ok", "ρ", "A tiger."),
    ("glm text after answer", "<think>ρ</think><answer>A tiger.</answer> extra", "glm", None,
     "malformed", "ρ", "A tiger. extra"),
    ("glm text between think and answer", "<think>ρ</think>so<answer>A tiger.</answer>", "glm", None,
     "malformed", "ρ", "soA tiger."),
    ("glm stray answer closer", "<think>ρ</think>A tiger.</answer>", "glm", None, "malformed", "ρ", "A tiger."),
    ("glm two answer tags", "<think>ρ</think><answer>A</answer><answer>B</answer>", "glm", None,
     "malformed", "ρ", "AB"),
    ("boxed left as is", "<think>ρ</think><answer>\\boxed{tiger}</answer>", "glm", None, "ok", "ρ",
     "\\boxed{tiger}"),
    ("kimi full", "◁think▷ρ Orange fur, black stripes.◁/think▷This is a tiger lying in the grass.", "auto",
     "stop", "ok", "ρ Orange fur, black stripes.", "This is a tiger lying in the grass."),
    ("kimi newlines", "◁think▷\nρ stripes\n◁/think▷\n\nA tiger.\n", "kimi", None, "ok", "ρ stripes", "A tiger."),
    ("kimi truncated reasoning", "◁think▷ρ stripes, stripes, stripes", "kimi", "length", "unclosed_think",
     "ρ stripes, stripes, stripes", ""),
    ("kimi answer cut by length", "◁think▷ρ◁/think▷A tiger lies", "kimi", "length", "malformed", "ρ",
     "A tiger lies"),
    ("kimi missing opener", "ρ stripes◁/think▷A tiger.", "kimi", None, "ok", "ρ stripes", "A tiger."),
    ("kimi empty answer", "◁think▷ρ◁/think▷", "kimi", "stop", "empty_answer", "ρ", ""),
    ("kimi two blocks", "◁think▷ρ◁/think▷◁think▷ρ◁/think▷A tiger.", "kimi", None, "malformed",
     "ρ◁/think▷◁think▷ρ", "A tiger."),
    ("kimi nested", "◁think▷ρ◁think▷ρ◁/think▷ρ◁/think▷A tiger.", "kimi", None, "malformed",
     "ρ◁think▷ρ◁/think▷ρ", "A tiger."),
    ("kimi reopened after answer", "◁think▷ρ◁/think▷A tiger ◁think▷ρ", "kimi", None, "malformed",
     "ρ◁/think▷A tiger ◁think▷ρ", ""),
    ("kimi with glm tags (explicit)", "◁think▷ρ◁/think▷<answer>A tiger.</answer>", "kimi", None, "malformed",
     "ρ", "A tiger."),
    ("mixed styles (auto)", "<think>ρ</think>◁think▷ρ◁/think▷A tiger.", "auto", None, "malformed",
     "ρ</think>◁think▷ρ", "A tiger."),
    ("glm text under kimi style", "<think>ρ</think>A tiger.", "kimi", None, "malformed", "ρ", "A tiger."),
    ("markers under none style", "<think>ρ</think>A tiger.", "none", None, "malformed", "ρ", "A tiger."),
    ("think_tags full", "<think>\nρ Okay, stripes.\n</think>\n\nA tiger.", "auto", None, "ok", "ρ Okay, stripes.",
     "A tiger."),
    ("think_tags several blocks", "<think>ρ</think>first<think>ρ</think>A tiger.", "think_tags", None,
     "malformed", "ρ</think>first<think>ρ", "A tiger."),
    ("stray closer before opener", "</think>ρ<think>ρ", "think_tags", None, "malformed", "</think>ρ<think>ρ", ""),
    ("two closers, missing opener", "ρ</think>ρ</think>A tiger.", "think_tags", None, "malformed",
     "ρ</think>ρ", "A tiger."),
    ("text before opener", "Sure! <think>ρ</think>A tiger.", "think_tags", None, "malformed",
     "Sure! <think>ρ", "A tiger."),
    ("text before unclosed opener", "Sure! <think>ρ", "think_tags", "length", "malformed", "Sure! <think>ρ", ""),
    ("literal closer inside reasoning", "<think>ρ the tag </think> ends thinking ρ</think>A tiger.", "auto", None,
     "malformed", "ρ the tag </think> ends thinking ρ", "A tiger."),
    ("literal kimi marker inside glm answer", "<think>ρ</think><answer>Type ◁/think▷ to stop.</answer>", "glm",
     None, "malformed", "ρ</think><answer>Type", "to stop."),
    ("chinese", "<think>ρ 这是一只老虎，橙色的毛。</think><answer>图中是一只<|begin_of_box|>老虎<|end_of_box|>。</answer>",
     "auto", "stop", "ok", "ρ 这是一只老虎，橙色的毛。", "图中是一只老虎。"),
    ("accents", "◁think▷ρ Un félin à rayures, très âgé.◁/think▷C'est un tigre élégant.", "auto", None, "ok",
     "ρ Un félin à rayures, très âgé.", "C'est un tigre élégant."),
    ("no reasoning", "  A tiger resting on grass.  ", "auto", "stop", "no_think", "", "A tiger resting on grass."),
    ("no reasoning, cut", "A tiger resting on", "auto", "length", "no_think", "", "A tiger resting on"),
    ("no reasoning, answer tags", "<answer>A tiger.</answer>", "glm", None, "no_think", "", "A tiger."),
    ("no reasoning, two boxes", "<|begin_of_box|>A<|end_of_box|><|begin_of_box|>B<|end_of_box|>", "auto", None,
     "malformed", "", "AB"),
    ("empty string", "", "auto", None, "empty_answer", "", ""),
    ("blank string", " \n\t", "glm", None, "empty_answer", "", ""),
    ("none", None, "auto", None, "missing", "", ""),
]


@pytest.mark.parametrize(
    "text, style, finish_reason, status, think, answer",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_split_table(text, style, finish_reason, status, think, answer):
    split = split_reasoning(text, style, finish_reason=finish_reason)
    assert (split.status, split.think, split.answer) == (status, think, answer)
    assert REASON not in split.answer


def test_split_reports_markers_style_and_raw_answer():
    split = split_reasoning(GLM_FULL, keep_raw=True)
    assert split.markers == (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, BOX_OPEN, BOX_CLOSE, ANSWER_CLOSE)
    assert split.style == "glm"
    assert split.raw_answer == GLM_FULL[GLM_FULL.index(ANSWER_OPEN) :]
    assert split_reasoning(GLM_FULL).raw_answer is None
    assert split_reasoning("◁think▷ρ", keep_raw=True).raw_answer == ""


def test_split_is_frozen():
    split = split_reasoning("A tiger.")
    with pytest.raises(AttributeError):
        split.answer = "B"  # type: ignore[misc]


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="unknown reasoning style 'qwen'"):
        split_reasoning("A tiger.", "qwen")
    with pytest.raises(ValueError, match="unknown reasoning style"):
        join_reasoning("", "A tiger.", "auto")


def test_join_rejects_what_cannot_split_back():
    with pytest.raises(ValueError, match="think contains the marker '</think>'"):
        join_reasoning("a </think> b", "A tiger.", "glm")
    with pytest.raises(ValueError, match="answer contains the marker"):
        join_reasoning("a", "A ◁think▷ tiger.", "kimi")
    with pytest.raises(ValueError, match="style 'none'"):
        join_reasoning("a", "A tiger.", "none")


@pytest.mark.parametrize(
    "text, style",
    [(GLM_FULL, "glm"), ("ρ</think>A", "think_tags"), ("◁think▷ρ◁/think▷A", "kimi"), ("A tiger.", "none"),
     ("<think>ρ</think>◁/think▷A", "think_tags")],
)
def test_detect_style(text, style):
    assert detect_style(text) == style


def test_think_markers():
    assert think_markers("glm") == think_markers("think_tags") == (THINK_OPEN, THINK_CLOSE)
    assert think_markers("kimi") == (KIMI_OPEN, KIMI_CLOSE)
    with pytest.raises(ValueError, match="style 'none' has no think markers"):
        think_markers("none")


def test_split_batch_matches_split_reasoning():
    texts = [GLM_FULL, None, "<think>ρ</think><answer>A tiger", "◁think▷ρ"]
    finish_reasons = ["stop", None, "length", "length"]
    columns = split_batch(texts, "auto", finish_reasons)
    splits = [split_reasoning(t, finish_reason=f) for t, f in zip(texts, finish_reasons)]
    assert columns == {
        "think": [s.think for s in splits],
        "answer": [s.answer for s in splits],
        "status": [s.status for s in splits],
    }
    assert columns["status"] == ["ok", "missing", "malformed", "unclosed_think"]


def test_split_batch_checks_its_arguments():
    with pytest.raises(ValueError, match="2 texts but 1 finish reasons"):
        split_batch(["a", "b"], finish_reasons=["stop"])
    with pytest.raises(ValueError, match="unknown reasoning style 'GLM'"):
        split_batch(["a"], "GLM")


def test_split_batch_in_dataset_map():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"raw": [GLM_FULL, None], "finish_reason": ["stop", None]})
    out = ds.map(lambda b: split_batch(b["raw"], "glm", b["finish_reason"]), batched=True)
    assert out["status"] == ["ok", "missing"]
    assert out["answer"][0] == "The image shows a tiger resting on grass."


def test_bundled_sample_columns_are_the_split_of_its_raw_texts():
    import importlib.resources

    import pyarrow.parquet as pq

    from imagenet_think.schema import TEACHER_NAMES

    data = importlib.resources.files("imagenet_think") / "sample" / "data"
    rows = [row for p in data.iterdir() if p.name.endswith(".parquet") for row in pq.read_table(p).drop_columns(["image"]).to_pylist()]
    assert len(rows) == 24
    statuses = set()
    for row in rows:
        for generation in row["generation"]:
            pair = generation["pair"]
            split = split_reasoning(
                generation["raw"], TEACHER_NAMES[pair], finish_reason=row[f"finish_reason_{pair}"]
            )
            assert (split.think, split.answer, split.status) == (
                row[f"think_{pair}"], row[f"answer_{pair}"], row[f"status_{pair}"]
            ), (row["id"], pair)
            statuses.add(split.status)
    assert {"ok", "unclosed_think"} <= statuses


# ---- properties -------------------------------------------------------------------------

marker_free_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("<>/|◁▷think"), max_size=40)
    .map(str.strip)
    .filter(lambda text: not re.search(MARKER_PATTERN, text))
)
content = marker_free_text.filter(bool)


@settings(max_examples=300, deadline=None)
@given(think=content, answer=content, style=st.sampled_from(["glm", "kimi", "think_tags"]))
def test_canonical_text_round_trips(think, answer, style):
    text = join_reasoning(think, answer, style)
    for parse_style in (style, "auto"):
        split = split_reasoning(text, parse_style)
        assert (split.think, split.answer, split.status, split.style) == (think, answer, "ok", style)
    assert join_reasoning(split.think, split.answer, style) == text


pad = st.sampled_from(["", " ", "\n", "\n\n", " \t\n"])


@settings(max_examples=300, deadline=None)
@given(think=content, answer=content, pads=st.lists(pad, min_size=6, max_size=6),
       drop_opener=st.booleans(), drop_answer_close=st.booleans(), boxed=st.booleans())
def test_glm_variants_split_then_join_to_canonical(think, answer, pads, drop_opener, drop_answer_close, boxed):
    """Real GLM output varies in whitespace and missing tags; every variant is ok and joins to the canonical text."""
    body = f"{BOX_OPEN}{answer}{BOX_CLOSE}" if boxed else answer
    text = ("" if drop_opener else pads[0] + THINK_OPEN) + pads[1] + think + pads[2] + THINK_CLOSE + pads[3]
    text += ANSWER_OPEN + pads[4] + body + pads[5] + ("" if drop_answer_close else ANSWER_CLOSE)
    split = split_reasoning(text, "auto", finish_reason="stop")
    assert (split.think, split.answer, split.status) == (think, answer, "ok")
    assert split_reasoning(join_reasoning(split.think, split.answer, "glm")) == split_reasoning(
        join_reasoning(think, answer, "glm")
    )


@settings(max_examples=300, deadline=None)
@given(think=content, answer=content, pads=st.lists(pad, min_size=4, max_size=4), drop_opener=st.booleans())
def test_kimi_variants_split_to_their_parts(think, answer, pads, drop_opener):
    text = ("" if drop_opener else pads[0] + KIMI_OPEN) + pads[1] + think + pads[2] + KIMI_CLOSE + pads[3] + answer
    split = split_reasoning(text)
    assert (split.think, split.answer, split.status, split.style) == (think, answer, "ok", "kimi")


any_text = st.lists(
    st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), st.sampled_from(ALL_MARKERS)),
    max_size=12,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=st.none() | any_text, style=st.sampled_from(["auto", *STYLES]),
       finish_reason=st.sampled_from([None, "stop", "length"]), keep_raw=st.booleans())
def test_no_input_raises_and_results_are_well_formed(text, style, finish_reason, keep_raw):
    split = split_reasoning(text, style, finish_reason=finish_reason, keep_raw=keep_raw)
    assert isinstance(split, ReasoningSplit)
    assert split.status in STATUSES
    assert split.style in STYLES
    assert split.think == split.think.strip() and split.answer == split.answer.strip()
    assert not any(marker in split.answer for marker in (THINK_OPEN, THINK_CLOSE, KIMI_OPEN, KIMI_CLOSE)) or (
        split.status == "malformed"
    )
    assert (split.raw_answer is not None) == keep_raw
    assert split.markers == tuple(re.findall(MARKER_PATTERN, text or ""))
    if split.status == "unclosed_think":
        assert split.answer == ""


def _planted(pieces: list[str]) -> str:
    """Join marker pieces, filling each gap with REASON when it lies inside reasoning, else with 'α'.

    A gap is reasoning when a closing think marker comes anywhere after it, or when an opening
    marker comes before it with no closing marker in between.
    """
    closers, openers = (THINK_CLOSE, KIMI_CLOSE), (THINK_OPEN, KIMI_OPEN)
    out, open_block = [], False
    for index in range(len(pieces) + 1):
        later_close = any(p in closers for p in pieces[index:])
        out.append(REASON if later_close or open_block else "α")
        if index < len(pieces):
            out.append(pieces[index])
            if pieces[index] in openers:
                open_block = True
            elif pieces[index] in closers:
                open_block = False
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.sampled_from(ALL_MARKERS), max_size=8), style=st.sampled_from(["auto", *STYLES]),
       finish_reason=st.sampled_from([None, "stop", "length"]))
def test_reasoning_never_leaks_into_the_answer(pieces, style, finish_reason):
    split = split_reasoning(_planted(pieces), style, finish_reason=finish_reason)
    assert REASON not in split.answer
