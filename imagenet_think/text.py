"""Words of a text and the Jaccard index of two texts: the one tokenizer of the lexical
evaluation metrics (ROUGE, Jaccard, overlap, TF-IDF) and of the quality filters.

Rule: Unicode NFC normalisation, lowercase, then every CJK ideograph is a token of its own and
every maximal run of other Unicode letters and digits is a token; everything else (punctuation,
underscores, whitespace, combining marks left after NFC, symbols) separates tokens.  No stemming,
no stop words.

* NFC first, so a word spelt with precomposed letters (``café``, U+00E9) and the same word in
  decomposed form (``cafe`` + U+0301, as macOS file names and some tokenizers' decoders write
  it) are one token; without it the combining accent would split the second into ``cafe``.

* CJK ideographs are the code points BERT's ``BasicTokenizer._is_chinese_char`` calls Chinese
  (:data:`CJK_RANGES`: the CJK Unified Ideographs blocks, extensions A-E and the compatibility
  ideographs); Chinese is written without spaces, so without this a whole sentence would be one
  token.  Hiragana, katakana and hangul are not in these ranges and stay runs, as in BERT.
* On ASCII text the tokens are exactly ``rouge-score``'s default tokenizer (lowercase, runs of
  ``[a-z0-9]``), so ROUGE scores equal ``rouge_score.rouge_scorer.RougeScorer``'s there.  On
  other text they differ by design: rouge-score replaces every character outside ``[a-z0-9]``
  with a space, so ``café`` is its ``caf`` and a Chinese answer has no tokens at all.

The work is done on whole Arrow arrays (:func:`word_lists`), so a batch of texts costs a few
vectorised string kernels; :func:`word_tokens` is the same rule for one text, and
:func:`word_spans` says where its tokens lie in the text as given.

>>> word_tokens("A Tabby-cat, 2 ears_up; café!")
['a', 'tabby', 'cat', '2', 'ears', 'up', 'café']
>>> word_tokens("cafe\u0301") == word_tokens("caf\u00e9") == ["caf\u00e9"]
True
>>> word_tokens("一只猫坐在木桌上。GLM-4.1V")
['一', '只', '猫', '坐', '在', '木', '桌', '上', 'glm', '4', '1v']
>>> jaccard({"a", "b", "c"}, {"b", "c", "d"})
0.5
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
"""Inclusive code-point ranges of the ideographs that are one token each (BERT's ``_is_chinese_char``)."""

_CJK_CLASS = "".join(f"\\x{{{low:X}}}-\\x{{{high:X}}}" for low, high in CJK_RANGES)
_CJK_PATTERN = f"([{_CJK_CLASS}])"  # RE2 syntax (Arrow's regex engine)
_SEPARATOR_PATTERN = r"[^\p{L}\p{N}]+"

_CJK_CHARS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)
_SPAN = re.compile(f"[{_CJK_CHARS}]|(?:(?![{_CJK_CHARS}])[^\\W_])+")  # Python's re: where the tokens lie

TOKENIZER = "nfc+words+cjk"
"""Name of this rule, recorded with evaluation results (earlier runs: ``words+cjk``, without
NFC; before that CJK runs were kept whole)."""

Texts = Union[Sequence[Optional[str]], pa.Array, pa.ChunkedArray]


def word_lists(texts: Texts) -> pa.ListArray:
    """The tokens of every text as an Arrow list array (``None`` has no tokens).

    >>> word_lists(["Two cats.", None, " ... ", "猫和狗"]).to_pylist()
    [['two', 'cats'], [], [], ['猫', '和', '狗']]
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    array = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
    lowered = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(array, ""), form="NFC"))
    spaced = pc.replace_substring_regex(lowered, _CJK_PATTERN, r" \1 ")
    words = pc.split_pattern(pc.utf8_trim(pc.replace_substring_regex(spaced, _SEPARATOR_PATTERN, " "), " "), " ")
    flat = pc.list_flatten(words)  # a text without tokens is [""] here
    keep = pc.not_equal(flat, "")
    owners = pc.filter(pc.list_parent_indices(words), keep).to_numpy(zero_copy_only=False)
    counts = np.bincount(owners, minlength=len(words))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    return pa.ListArray.from_arrays(offsets, pc.filter(flat, keep))


def word_tokens(text: str) -> list[str]:
    """The tokens of one text (see the module docstring).

    >>> word_tokens("Ein Bär — CAFÉ_au-lait 42")
    ['ein', 'bär', 'café', 'au', 'lait', '42']
    """
    return word_lists([text])[0].as_py()


_ASCII_WORDS = str.maketrans({chr(c): " " if not chr(c).isalnum() else chr(c).lower() for c in range(128)})
"""ASCII text to lower-case words separated by spaces, in one ``str.translate``."""


def re_word_tokens(text: str) -> list[str]:
    """:func:`word_tokens` of one text with Python's ``re`` instead of Arrow (faster on one short
    text; ASCII text, in one ``str.translate``, several times faster still).

    >>> re_word_tokens("一只猫, GLM-4.1V") == word_tokens("一只猫, GLM-4.1V")
    True
    >>> re_word_tokens("A hot-dog, Cassin's kingbird; Ærø-ferry, cafe\u0301")
    ['a', 'hot', 'dog', 'cassin', 's', 'kingbird', 'ærø', 'ferry', 'café']
    """
    if text.isascii():
        return text.translate(_ASCII_WORDS).split()
    return _SPAN.findall(unicodedata.normalize("NFC", text).lower())


def word_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where the tokens of :func:`word_tokens` lie in ``text``: (start, end) offsets, in order,
    one per token, each slice holding exactly its token (``word_tokens(text[start:end])`` is
    that one token).  A text that is not in NFC is mapped through its NFC form: a span then
    covers the decomposed letters and accents that compose into its token.

    >>> text = "一只猫, GLM-4.1V"
    >>> [text[start:end] for start, end in word_spans(text)]
    ['一', '只', '猫', 'GLM', '4', '1V']
    >>> decomposed = "Cafe\u0301 au lait"
    >>> [decomposed[start:end] for start, end in word_spans(decomposed)] == ["Cafe\u0301", "au", "lait"]
    True
    """
    if unicodedata.is_normalized("NFC", text):
        return (match.span() for match in _SPAN.finditer(text))
    pieces = _nfc_pieces(text)
    normalized = "".join(composed for _, _, composed in pieces)
    owner = [k for k, (_, _, composed) in enumerate(pieces) for _ in composed]  # piece of each normalized char
    matches = (match.span() for match in _SPAN.finditer(normalized))
    return ((pieces[owner[start]][0], pieces[owner[end - 1]][1]) for start, end in matches)


def _nfc_pieces(text: str) -> list[tuple[int, int, str]]:
    """``text`` cut into pieces ``(start, end, NFC of text[start:end])`` whose NFC forms, joined,
    are the NFC form of ``text``: a new piece starts at a character that combines with nothing
    before it (a starter that neither composes with the piece so far nor is reordered into it)."""
    pieces: list[tuple[int, int, str]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index < len(text):
            char = text[index]
            if unicodedata.combining(char):
                continue
            current = unicodedata.normalize("NFC", text[start:index])
            if unicodedata.normalize("NFC", current + char) != current + unicodedata.normalize("NFC", char):
                continue
        pieces.append((start, index, unicodedata.normalize("NFC", text[start:index])))
        start = index
    return pieces


def jaccard(tokens_1: Collection[Any], tokens_2: Collection[Any]) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two token sets (any iterables are made sets); 1.0 when both are empty.

    >>> jaccard(word_tokens("a red fox"), word_tokens("A grey fox!")), jaccard([], [])
    (0.5, 1.0)
    """
    a, b = set(tokens_1), set(tokens_2)
    return len(a & b) / len(a | b) if a or b else 1.0


def jaccard_index(texts_1: Texts, texts_2: Texts) -> np.ndarray:
    """:func:`jaccard` of the word sets of each pair of texts (``None`` counts as ``""``).

    >>> jaccard_index(["a b c", ""], ["b c d", " ... "]).tolist()
    [0.5, 1.0]
    """
    pairs = zip(word_lists(texts_1).to_pylist(), word_lists(texts_2).to_pylist(), strict=True)
    return np.array([jaccard(a, b) for a, b in pairs], dtype=float)
