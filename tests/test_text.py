"""imagenet_think.text: the one tokenizer (CJK ideographs apart) and the Jaccard index."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think.text import CJK_RANGES, jaccard, jaccard_index, word_lists, word_spans, word_tokens

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
    # letters that stay one character under NFC (presentation forms such as U+FB2C decompose
    # into a letter and combining marks, which separate tokens)
    letters = [chr(cp) for cp in range(0x2E80, 0x2FA20) if chr(cp).isalpha() and len(unicodedata.normalize("NFC", chr(cp))) == 1]
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


def test_a_word_and_its_decomposed_spelling_are_one_token():
    composed = "Un café crème, déjà vu à Zürich"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and len(decomposed) == len(composed) + 6  # six accents apart
    assert word_tokens(decomposed) == word_tokens(composed) == ["un", "café", "crème", "déjà", "vu", "à", "zürich"]
    assert jaccard_index([composed], [decomposed]).tolist() == [1.0]
    hangul = "\u1100\u1161 \u1102\u1161"  # conjoining jamo that NFC composes into 가 나
    assert word_tokens(hangul) == ["가", "나"]


def test_jaccard_index_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError):
        jaccard_index(["a b", "c"], ["a b"])


# Unicode as Python's own tables know it (Arrow's regex tables are newer: code points unassigned
# for Python are letters for Arrow), composed and decomposed alike.
unicode_text = st.text(st.characters(blacklist_categories=("Cs", "Cn")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(unicode_text | unicode_text.map(lambda t: unicodedata.normalize("NFD", t)) | st.sampled_from(
    ["Cafe\u0301 au lait", "\u1100\u1161\u11a8 x", "a\u0301\u0327b 猫\u0301", "q\u0303 \u0f73\u0f40"]
))
def test_word_spans_hold_exactly_the_tokens_of_word_tokens(text):
    spans = list(word_spans(text))
    assert [word_tokens(text[start:end]) for start, end in spans] == [[token] for token in word_tokens(text)]
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # in order, apart
