"""imagenet_think.text: the one tokenizer (CJK ideographs apart) and the Jaccard index."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think.text import CJK_RANGES, jaccard, jaccard_index, word_lists, word_tokens

ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def bert_is_chinese_char():
    try:  # transformers >= 5 keeps the slow BERT tokenizer here
        from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer
    except ImportError:  # pragma: no cover - transformers 4
        from transformers.models.bert.tokenization_bert import BasicTokenizer
    return BasicTokenizer()._is_chinese_char


@settings(max_examples=200, deadline=None)
@given(ascii_text)
def test_word_tokens_equal_rouge_score_tokenizer_on_ascii(text):
    from rouge_score import tokenize

    assert word_tokens(text) == tokenize.tokenize(text, None)


def test_unicode_letters_and_digits_form_runs():
    assert word_tokens("Ein Bär — CAFÉ_au-lait 42 ½") == ["ein", "bär", "café", "au", "lait", "42", "½"]
    assert word_tokens("ねこが好き") == ["ねこが", "好", "き"]  # kana stay runs; 好 is an ideograph


def test_each_cjk_ideograph_is_a_token_exactly_where_bert_says_chinese():
    is_chinese = bert_is_chinese_char()
    letters = [chr(cp) for cp in range(0x2E80, 0x2FA20) if chr(cp).isalpha()]
    got = word_lists([c + c for c in letters]).to_pylist()
    split_apart = {c for c, tokens in zip(letters, got) if len(tokens) == 2}
    assert split_apart == {c for c in letters if is_chinese(ord(c))}
    assert all(len(tokens) == 1 for c, tokens in zip(letters, got) if c not in split_apart)  # one run
    ours = {cp for low, high in CJK_RANGES for cp in range(low, high + 1)}
    assert ours == {cp for cp in range(0x30000) if is_chinese(cp)}  # unassigned code points included


def test_the_chinese_sentence_is_its_characters():
    assert word_tokens("一只猫坐在木桌上。") == list("一只猫坐在木桌上")
    assert word_tokens("GLM说：a cat坐着") == ["glm", "说", "a", "cat", "坐", "着"]


def test_word_lists_keeps_one_list_per_text_and_reads_arrow():
    texts = pa.chunked_array([["A b", None], ["", "!?", "x"]])
    assert word_lists(texts).to_pylist() == [["a", "b"], [], [], [], ["x"]]
    assert word_lists([]).to_pylist() == []


def test_jaccard_by_hand():
    # {a, tabby, cat, sits, on, wooden, table} and {the, cat, is, on, a, table}: 4 shared of 9
    assert jaccard(word_tokens("A tabby cat sits on a wooden table"), word_tokens("The cat is on a table")) == 4 / 9
    assert jaccard([], []) == 1.0 and jaccard(["a"], []) == 0.0
    assert jaccard_index(["一只猫坐在木桌上。", None], ["一只猫坐在桌子上。", ""]).tolist() == [7 / 9, 1.0]


def test_quality_does_not_import_the_evaluation():
    code = "import sys, imagenet_think.quality; print(sorted(m for m in sys.modules if m.startswith('imagenet_think.evaluate')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("text", ["", "   ", "_-_", "\u0301"])
def test_texts_without_letters_or_digits_have_no_tokens(text):
    assert word_tokens(text) == []
