"""Our SFT messages rendered through the real chat templates of the models they train.

Rendering goes through transformers' own machinery: ``PreTrainedTokenizerFast.apply_chat_template``
of a small tokenizer built here, carrying the vendored template (see
``tests/data/chat_templates/SOURCES.md``).  Each test compares the whole rendered text, so any
change in where the image, the question, the reasoning or the answer land shows up.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagenet_think import PROMPT
from imagenet_think.reasoning import KIMI_CLOSE, KIMI_OPEN
from imagenet_think.sft import flatten_text_content, to_sft_messages

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"

RECORDED_SHA256 = {
    "qwen2_5_vl.jinja": "4df95d05455c2a6f762616492bba63d0f9bef904ef47daabad35f5715d6d2e4e",
    "glm4_1v_thinking.jinja": "5232dbe7ee947df4d2009f2b262b70a22d4f2d2f0590e2af4ef2a78096171e90",
}
"""``sha256(json.dumps(template))`` as recorded next to the Hub revisions in SOURCES.md."""

SPECIAL_TOKENS = {
    "qwen2_5_vl.jinja": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"],
    "glm4_1v_thinking.jinja": ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                               "<|begin_of_image|>", "<|image|>", "<|end_of_image|>"],
}

RECORD = {
    "id": "n02123045_n02123045_1",
    "image": {"bytes": b"\xff\xd8\xff", "path": "n02123045_n02123045_1.JPEG"},
    "question": PROMPT,
    "think_1": "Striped fur, whiskers.",
    "answer_1": "A tabby cat on a sofa.",
    "status_1": "ok",
    "think_2": "Pointed ears.",
    "answer_2": "A cat.",
    "status_2": "ok",
}


def tokenizer_with(template_name: str):
    """A byte-level tokenizer whose special tokens are the template's, with the template set."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS[template_name])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, chat_template=(TEMPLATES / template_name).read_text(encoding="utf-8"))


def render(template_name: str, messages: list) -> str:
    return tokenizer_with(template_name).apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize("name", sorted(RECORDED_SHA256))
def test_vendored_templates_match_their_recorded_hash(name):
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    assert hashlib.sha256(json.dumps(text).encode()).hexdigest() == RECORDED_SHA256[name]


def test_qwen2_5_vl_puts_the_image_before_the_question_and_the_think_in_the_assistant_turn():
    [example] = to_sft_messages(RECORD, teacher=1, think="tags")
    assert render("qwen2_5_vl.jinja", example["messages"]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{PROMPT}<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nStriped fur, whiskers.\n</think>\n\nA tabby cat on a sofa.<|im_end|>\n"
    )


def test_qwen2_5_vl_image_after_question_and_our_system_prompt():
    [example] = to_sft_messages(RECORD, teacher=2, think="native", system_prompt="Be precise.",
                                image_placement="after")
    assert render("qwen2_5_vl.jinja", example["messages"]) == (
        "<|im_start|>system\nBe precise.<|im_end|>\n"
        f"<|im_start|>user\n{PROMPT}<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
        f"<|im_start|>assistant\n{KIMI_OPEN}Pointed ears.{KIMI_CLOSE}A cat.<|im_end|>\n"
    )


def test_qwen2_5_vl_tokenizes_one_image_placeholder_per_image():
    [example] = to_sft_messages(RECORD, teacher=1)
    tokenizer = tokenizer_with("qwen2_5_vl.jinja")
    ids = tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=False)
    assert ids.count(tokenizer.convert_tokens_to_ids("<|image_pad|>")) == len(example["images"]) == 1


def test_glm4_1v_with_text_turns_as_strings():
    [example] = to_sft_messages(RECORD, teacher=1, think="native", system_prompt="Be precise.")
    assert render("glm4_1v_thinking.jinja", flatten_text_content(example["messages"])) == (
        "[gMASK]<sop><|system|>\nBe precise."
        f"<|user|>\n<|begin_of_image|><|image|><|end_of_image|>{PROMPT}"
        "<|assistant|>\n<think>\nStriped fur, whiskers.</think><answer>A tabby cat on a sofa.</answer>"
    )


def test_glm4_1v_prints_a_list_of_parts_as_python_repr():
    """Why flatten_text_content exists: GLM-4.1V's template prints assistant content as is."""
    [example] = to_sft_messages(RECORD, teacher=1, think="none")
    rendered = render("glm4_1v_thinking.jinja", example["messages"])
    assert rendered.endswith("<|assistant|>\n[{'type': 'text', 'text': 'A tabby cat on a sofa.'}]")


@pytest.mark.parametrize("name", sorted(RECORDED_SHA256))
def test_reasoning_field_is_dropped_by_templates_that_ignore_it(name):
    [example] = to_sft_messages(RECORD, teacher=1, think="field")
    rendered = render(name, flatten_text_content(example["messages"]))
    assert "A tabby cat on a sofa." in rendered
    assert "Striped fur" not in rendered


def test_reasoning_field_lands_in_think_tags_with_a_reasoning_aware_template():
    """Qwen3.5's template, as shipped in the trl wheel, renders ``reasoning_content``."""
    trl = pytest.importorskip("trl")
    template = (Path(trl.__file__).parent / "chat_templates" / "qwen3_5_think.jinja").read_text(encoding="utf-8")
    tokenizer = tokenizer_with("qwen2_5_vl.jinja")
    [example] = to_sft_messages(RECORD, teacher=1, think="field")
    rendered = tokenizer.apply_chat_template(example["messages"], tokenize=False, chat_template=template)
    assert rendered.endswith(
        "<|im_start|>assistant\n<think>\nStriped fur, whiskers.\n</think>\n\nA tabby cat on a sofa.<|im_end|>\n")
    assert f"<|vision_start|><|image_pad|><|vision_end|>{PROMPT}" in rendered
