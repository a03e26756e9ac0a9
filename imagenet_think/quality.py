"""Row filters for cleaning the corpus; they read text columns only, never images.

Every filter is a :class:`RowFilter`: called with a batch (a dict of column lists, as
``Dataset.filter(batched=True)`` passes it) it returns one ``bool`` per row, ``True`` to keep.
``.columns`` names the columns it reads, so ``Dataset.filter(f, batched=True,
input_columns=list(f.columns))`` never decodes an image; :func:`apply_filters` does exactly that,
for several filters in one pass.

A filter checks every pair named by ``suffixes``: ``PAIRS = ("_1", "_2")`` for the ``default``
config (GLM pair 1 and Kimi pair 2), ``SINGLE = ("",)`` for ``glm``, ``kimi`` and ``pairs``.

>>> batch = {"status_1": ["ok", "ok"], "status_2": ["ok", "unclosed_think"]}
>>> complete()(batch)
[True, False]
>>> batch = {"answer_1": ["A red fox.", "Hi"], "answer_2": ["A small red fox.", "A cat."]}
>>> length_between("answer", min_length=5)(batch)
[True, False]
>>> [round(j, 2) for j in agreement(batch["answer_1"], batch["answer_2"])]
[0.75, 0.0]
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think import labels
from imagenet_think.text import jaccard_index, word_lists

PAIRS = ("_1", "_2")
"""Column suffixes of the two teacher pairs in the ``default`` config."""

SINGLE = ("",)
"""Column suffix of the one pair per row in the ``glm``, ``kimi`` and ``pairs`` configs."""

Batch = Mapping[str, Sequence[Any]]


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """A named, batched row predicate that reads only ``columns``.

    Call it with a batch dict, or with the column lists positionally in ``columns`` order (what
    ``Dataset.filter(..., input_columns=list(f.columns))`` does).

    >>> f = RowFilter("short", ("answer",), lambda b: [len(a) < 5 for a in b["answer"]])
    >>> f({"answer": ["ok", "too long"]}), f(["ok", "too long"])
    ([True, False], [True, False])
    """

    name: str
    columns: tuple[str, ...]
    keep: Callable[[Batch], list[bool]]

    def __call__(self, *batch_or_columns: Any) -> list[bool]:
        if len(batch_or_columns) == 1 and isinstance(batch_or_columns[0], Mapping):
            batch = batch_or_columns[0]
        elif len(batch_or_columns) == len(self.columns):
            batch = dict(zip(self.columns, batch_or_columns, strict=True))
        else:
            raise TypeError(
                f"filter {self.name!r} takes a batch dict or its {len(self.columns)} column(s) "
                f"{', '.join(self.columns)}; got {len(batch_or_columns)} argument(s)"
            )
        missing = [c for c in self.columns if c not in batch]
        if missing:
            raise KeyError(f"filter {self.name!r} needs column(s) {', '.join(missing)}; batch has {', '.join(batch)}")
        return self.keep(batch)


def all_of(*filters: RowFilter) -> RowFilter:
    """One filter that keeps a row when every one of ``filters`` does.

    >>> both = all_of(complete(SINGLE), length_between("answer", min_length=3, suffixes=SINGLE))
    >>> both.columns
    ('status', 'answer')
    >>> both({"status": ["ok", "ok", "malformed"], "answer": ["A fox.", "Hi", "A fox."]})
    [True, False, False]
    """
    if not filters:
        raise ValueError("all_of() needs at least one filter")
    columns = tuple(dict.fromkeys(c for f in filters for c in f.columns))

    def keep(batch: Batch) -> list[bool]:
        verdicts = [f(batch) for f in filters]
        return [all(row) for row in zip(*verdicts, strict=True)]

    return RowFilter(" & ".join(f.name for f in filters), columns, keep)


def apply_filters(dataset: Any, *filters: RowFilter, **filter_kwargs: Any) -> Any:
    """``dataset`` (a ``Dataset`` or ``IterableDataset``) without the rows any filter drops.

    One ``dataset.filter`` pass reading only the filters' columns (images stay undecoded);
    ``filter_kwargs`` go to ``dataset.filter`` (``num_proc``, ``batch_size``...).
    """
    import datasets

    combined = filters[0] if len(filters) == 1 else all_of(*filters)
    require_columns(dataset, combined.columns, f"filter {combined.name!r}")
    # A map-style Dataset formats only the input columns; an IterableDataset decodes every column
    # of the batch, so switch decoding off for the columns the filters do not read, then back on.
    decoded = {}
    if isinstance(dataset, datasets.IterableDataset):
        features = dataset.features or {}
        decoded = {n: f for n, f in features.items() if getattr(f, "decode", False) and n not in combined.columns}
    for name, feature in decoded.items():
        dataset = dataset.cast_column(name, dataclasses.replace(feature, decode=False))
    kept = dataset.filter(combined, batched=True, input_columns=list(combined.columns), **filter_kwargs)
    for name, feature in decoded.items():
        kept = kept.cast_column(name, feature)
    return kept


def require_columns(dataset: Any, columns: Sequence[str], reader: str) -> None:
    """Raise a ``ValueError`` saying what to do when ``dataset`` lacks some of ``columns``.

    Filters default to the ``default`` config's ``*_1`` / ``*_2`` columns; on a one-pair-per-row
    dataset (``glm``, ``kimi``, ``pairs``) the error says to build them with ``SINGLE``.

    >>> import datasets
    >>> pairs = datasets.Dataset.from_dict({"id": ["a"], "teacher": [1], "status": ["ok"]})
    >>> require_columns(pairs, complete().columns, "filter 'complete'")
    Traceback (most recent call last):
    ...
    ValueError: filter 'complete' reads status_1, status_2, which this dataset lacks (it has id, teacher, status): ...
    """
    names = dataset.column_names
    missing = [c for c in columns if names is not None and c not in names]
    if not missing:
        return
    hint = ""
    if {c[: -len(PAIRS[0])] for c in missing if c.endswith(PAIRS)} & set(names):
        hint = (
            ": it has one pair per row (the glm, kimi or pairs config), and filters read both pairs of the default "
            "config unless built with suffixes=quality.SINGLE, e.g. quality.complete(quality.SINGLE); "
            "teachers_agree compares the two pairs of a row, so it needs the default config"
        )
    raise ValueError(f"{reader} reads {', '.join(missing)}, which this dataset lacks (it has {', '.join(names)}){hint}")


def _columns(field: str, suffixes: Sequence[str]) -> tuple[str, ...]:
    return tuple(field + suffix for suffix in suffixes)


def _every(columns: Sequence[str], batch: Batch, test: Callable[[Any], bool]) -> list[bool]:
    return [all(test(value) for value in row) for row in zip(*(batch[c] for c in columns), strict=True)]


def complete(suffixes: Sequence[str] = PAIRS) -> RowFilter:
    """Keep rows whose every pair has status ``ok`` (a closed think block and a non-empty answer).

    >>> complete(SINGLE)({"status": ["ok", "missing", None]})
    [True, False, False]
    """
    columns = _columns("status", suffixes)
    return RowFilter("complete", columns, lambda batch: _every(columns, batch, lambda s: s == "ok"))


def count_tokens(texts: Sequence[Optional[str]], tokenizer: Any) -> list[int]:
    """Token count of each text (``None`` counts as ``""``), without special tokens.

    ``tokenizer`` is a Hugging Face tokenizer (one batched ``__call__``) or any object with an
    ``encode(text)`` method returning a sequence of ids.

    >>> class Whitespace:
    ...     def encode(self, text):
    ...         return text.split()
    >>> count_tokens(["a red fox", None], Whitespace())
    [3, 0]
    """
    texts = [text or "" for text in texts]
    if callable(tokenizer):
        encoded = tokenizer(texts, add_special_tokens=False)
        return [len(ids) for ids in encoded["input_ids"]]
    return [len(tokenizer.encode(text)) for text in texts]


def length_between(
    field: str,
    min_length: int = 0,
    max_length: Optional[int] = None,
    suffixes: Sequence[str] = PAIRS,
    tokenizer: Any = None,
) -> RowFilter:
    """Keep rows whose ``field`` (``"think"`` or ``"answer"``) has ``min_length <= length <= max_length``
    in every pair; length in characters, or in tokens when a ``tokenizer`` is given
    (see :func:`count_tokens`).

    >>> length_between("think", max_length=4, suffixes=SINGLE)({"think": ["abcd", "abcde", None]})
    [True, False, True]
    """
    columns = _columns(field, suffixes)
    unit = "chars" if tokenizer is None else "tokens"

    def keep(batch: Batch) -> list[bool]:
        lengths = [
            [len(text or "") for text in batch[c]] if tokenizer is None else count_tokens(batch[c], tokenizer)
            for c in columns
        ]
        return [all(min_length <= n and (max_length is None or n <= max_length) for n in row) for row in zip(*lengths, strict=True)]

    return RowFilter(f"{field} {unit} in [{min_length}, {max_length}]", columns, keep)


def agreement(texts_1: Sequence[Optional[str]], texts_2: Sequence[Optional[str]]) -> list[float]:
    """Jaccard index of the word sets of each pair of texts (1.0 when both are empty), ``None``
    read as ``""``: :func:`imagenet_think.text.jaccard_index`, as the evaluation's ``jaccard``.

    >>> agreement(["a red fox", ""], ["a grey fox", None])
    [0.5, 1.0]
    >>> agreement(["一只猫坐在木桌上。"], ["一只猫坐在桌子上。"])  # 7 shared ideographs of 9
    [0.7777777777777778]
    """
    return jaccard_index(texts_1, texts_2).tolist()


def teachers_agree(min_jaccard: float = 0.1, field: str = "answer") -> RowFilter:
    """Keep ``default``-config rows whose two pairs' ``field`` texts reach ``min_jaccard``
    word overlap (:func:`agreement`): a cheap guard against one teacher describing another image.

    >>> teachers_agree(0.5)({"answer_1": ["a red fox", "a fox"], "answer_2": ["a grey fox", "a car"]})
    [True, False]
    """
    columns = _columns(field, PAIRS)
    return RowFilter(
        f"{field} agreement >= {min_jaccard}",
        columns,
        lambda batch: [score >= min_jaccard for score in agreement(batch[columns[0]], batch[columns[1]])],
    )


def _head_noun(lemma: str) -> str:
    """``"cup of tea"`` -> ``"cup"``, ``"domestic dog"`` -> ``"dog"``."""
    return lemma.split(" of ", 1)[0].rsplit(" ", 1)[-1]


def label_terms(wnid: str, max_depth: int = 2, label: str = "") -> tuple[str, ...]:
    """Lower-cased words and phrases that count as naming the class ``wnid``.

    The lemmas of the synset and of its WordNet hypernyms up to ``max_depth`` levels up, plus
    each lemma's head noun (last word, or the word before ``" of "``), three letters or more.
    ``label`` (the row's ``label`` column, lemmas joined by ``", "``) stands in for an unknown wnid.

    >>> label_terms("n02084071", max_depth=0)
    ('dog', 'domestic dog', 'canis familiaris', 'familiaris')
    >>> label_terms("n02084071", max_depth=1)[4:]
    ('canine', 'canid', 'domestic animal', 'animal', 'domesticated animal')
    >>> label_terms("n00000000", label="sea slug, nudibranch")
    ('sea slug', 'slug', 'nudibranch')
    """
    known = bool(labels.label_for(wnid))
    synsets = [wnid, *labels.hypernyms(wnid, max_depth=max_depth)] if known else []
    lemma_lists = [labels.lemmas(w) for w in synsets] or [label.split(", ") if label else []]
    terms: dict[str, None] = {}
    for lemma in (lemma.lower() for lemmas_ in lemma_lists for lemma in lemmas_):
        terms[lemma] = None
        head = _head_noun(lemma)
        if len(head) >= 3:
            terms[head] = None
    return tuple(terms)


@functools.lru_cache(maxsize=65536)
def _label_pattern(wnid: str, max_depth: int, label: str) -> Optional[re.Pattern]:
    terms = label_terms(wnid, max_depth, label)
    if not terms:
        return None
    # plural endings: dog -> dogs, fox -> foxes, butterfly -> butterflies
    forms = {*terms, *(t[:-1] + "ies" for t in terms if t.endswith("y"))}
    alternatives = "|".join(re.escape(t) for t in sorted(forms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})(?:s|es)?\b", re.IGNORECASE)


def mentions_label(
    wnid: str, text: Optional[str], max_depth: int = 2, label: str = ""
) -> Optional[bool]:
    """Whether ``text`` names the class ``wnid`` (see :func:`label_terms`), or ``None`` when
    nothing is known about the class.  Matching is case-insensitive on word boundaries and
    accepts plurals in ``-s``, ``-es`` and ``-ies``.

    >>> mentions_label("n02084071", "Two domestic dogs play in the snow.")
    True
    >>> mentions_label("n02084071", "A cat sleeps."), mentions_label("n00000000", "A cat.")
    (False, None)
    """
    pattern = _label_pattern(wnid, max_depth, label)
    if pattern is None:
        return None
    return pattern.search(text or "") is not None


def names_label(field: str = "answer", suffixes: Sequence[str] = PAIRS, max_depth: int = 2) -> RowFilter:
    """Keep rows whose every pair's ``field`` mentions the ImageNet class or one of its WordNet
    hypernyms up to ``max_depth`` (:func:`mentions_label`): a weak label check.  Rows of an
    unknown class with an empty ``label`` are kept (nothing to check against).

    >>> f = names_label(suffixes=SINGLE)
    >>> f({"wnid": ["n02084071", "n02084071", "n0"], "label": ["", "", ""],
    ...    "answer": ["A puppy-like canine.", "A cat.", "Anything."]})
    [True, False, True]
    """
    text_columns = _columns(field, suffixes)

    def keep(batch: Batch) -> list[bool]:
        rows = zip(batch["wnid"], batch["label"], *(batch[c] for c in text_columns), strict=True)
        return [
            all(mentions_label(wnid or "", text, max_depth, label or "") is not False for text in texts)
            for wnid, label, *texts in rows
        ]

    return RowFilter(f"{field} names label", ("wnid", "label", *text_columns), keep)


# --- near-duplicate texts -------------------------------------------------------------------
#
# MinHash over word shingles, banded LSH, greedy keep-first.  Texts are cut into words by
# :func:`imagenet_think.text.word_lists` (lower-cased runs of Unicode letters and digits, each CJK
# ideograph its own word, so punctuation and spacing do not matter); each run of
# ``shingle_size`` consecutive words is one shingle (a shorter text is one shingle).  Words are
# hashed with CRC-32 (stable across processes) and shingles combined in 64-bit arithmetic; the
# ``num_perm`` MinHash functions are multiply-shift hashes with fixed odd multipliers.  Two texts
# whose signatures agree on a share ``>= threshold`` of positions (an estimate of the Jaccard
# index of their shingle sets) are near-duplicates.  Candidates come from ``bands`` LSH bands of
# ``num_perm // bands`` rows; with the defaults (64, 16) a pair at Jaccard 0.8 becomes a candidate
# with probability 0.9998.  In dataset order, a text is flagged when it matches an earlier
# unflagged text, so exactly one text of each group survives.  Everything but the final pass over
# texts that share a bucket is vectorised (Arrow for words, NumPy for hashing).

_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_SHINGLES = 1 << 16


def _word_hashes(texts: Any) -> tuple[np.ndarray, np.ndarray]:
    """CRC-32 of every word of every text (flat, uint64) and each text's offsets into it."""
    split = word_lists(texts)
    encoded = pc.dictionary_encode(split.flatten())
    vocabulary = np.fromiter(
        (zlib.crc32(word.encode("utf-8")) for word in encoded.dictionary.to_pylist()),
        dtype=np.uint64,
        count=len(encoded.dictionary),
    )
    lengths = pc.list_value_length(split).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return vocabulary[encoded.indices.to_numpy(zero_copy_only=False)], offsets


def _shingle_hashes(word_hashes: np.ndarray, offsets: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One uint64 hash per shingle (flat) and each text's offsets into them."""
    lengths = np.diff(offsets)
    counts = np.maximum(lengths - size + 1, 1)
    shingle_offsets = np.concatenate([[0], np.cumsum(counts)])
    position = np.arange(shingle_offsets[-1]) - np.repeat(shingle_offsets[:-1], counts)
    starts = np.repeat(offsets[:-1], counts) + position
    ends = np.repeat(offsets[1:], counts)
    padded = np.concatenate([word_hashes, np.zeros(size, dtype=np.uint64)])
    hashes = np.zeros(len(starts), dtype=np.uint64)
    for j in range(size):
        word = np.where(starts + j < ends, padded[starts + j], np.uint64(0))
        hashes = hashes * _SHINGLE_MIX + word
    return hashes, shingle_offsets


def minhash_signatures(texts: Any, num_perm: int = 64, shingle_size: int = 3, seed: int = 0) -> np.ndarray:
    """``(len(texts), num_perm)`` uint32 MinHash signatures of word shingles (see above).

    ``texts`` is a list of strings or an Arrow string array; ``None`` counts as ``""``.

    >>> sig = minhash_signatures(["A red fox jumps over the dog.", "a red fox jumps over the dog", "Cats."])
    >>> sig.shape, bool((sig[0] == sig[1]).all()), float((sig[0] == sig[2]).mean())
    ((3, 64), True, 0.0)
    """
    shingles, offsets = _shingle_hashes(*_word_hashes(texts), shingle_size)
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(0, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    increments = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    n_texts = len(offsets) - 1
    signatures = np.empty((n_texts, num_perm), dtype=np.uint32)
    first_texts = np.searchsorted(offsets, np.arange(0, offsets[-1], _CHUNK_SHINGLES), side="right") - 1
    bounds = np.unique(np.concatenate([first_texts, [n_texts]]))
    for lo, hi in itertools.pairwise(bounds):
        chunk = shingles[offsets[lo] : offsets[hi]]
        permuted = (multipliers[:, None] * chunk[None, :] + increments[:, None]) >> np.uint64(32)
        signatures[lo:hi] = np.minimum.reduceat(permuted, offsets[lo:hi] - offsets[lo], axis=1).T
    return signatures


def near_duplicates(
    texts: Any, threshold: float = 0.8, num_perm: int = 64, bands: int = 16, shingle_size: int = 3
) -> np.ndarray:
    """Boolean mask: ``True`` for each text that near-duplicates an earlier kept text.

    >>> near_duplicates(["A red fox jumps over the lazy dog.", "A cat.",
    ...                  "a red fox jumps over the lazy dog!", "A red fox jumps over a lazy dog."]).tolist()
    [False, False, True, False]
    """
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    signatures = minhash_signatures(texts, num_perm, shingle_size)
    rows = num_perm // bands
    band_keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    for j in range(rows):
        band_keys = band_keys * _SHINGLE_MIX + signatures[:, j::rows].astype(np.uint64)
    shared = np.zeros(len(signatures), dtype=bool)
    for band in band_keys.T:
        _, inverse, counts = np.unique(band, return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    flagged = np.zeros(len(signatures), dtype=bool)
    buckets: list[dict[int, list[int]]] = [{} for _ in range(bands)]
    for i in np.flatnonzero(shared).tolist():
        keys = band_keys[i].tolist()
        candidates = {c for band, key in enumerate(keys) for c in buckets[band].get(key, ())}
        if any((signatures[c] == signatures[i]).mean() >= threshold for c in candidates):
            flagged[i] = True
            continue
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(i)
    return flagged


def unique_texts(
    dataset: Any,
    field: str = "answer",
    suffixes: Sequence[str] = PAIRS,
    threshold: float = 0.8,
    batch_size: int = 10_000,
) -> RowFilter:
    """A filter on ``id`` that drops rows whose ``field`` text, in any pair, near-duplicates the
    same pair's text in an earlier row of ``dataset`` (:func:`near_duplicates`, per pair).

    Reads ``id`` and the text columns of the whole ``dataset`` once (``Dataset`` or
    ``IterableDataset``, no images); ids must be unique.

    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "answer": ["A red fox.", "A cat.", "a red FOX"]})
    >>> list(apply_filters(ds, unique_texts(ds, suffixes=SINGLE))["id"])
    ['a', 'b']
    """
    columns = _columns(field, suffixes)
    require_columns(dataset, ["id", *columns], "unique_texts")
    batches = list(dataset.select_columns(["id", *columns]).with_format("arrow").iter(batch_size=batch_size))
    # an empty dataset yields no batch at all
    table = pa.concat_tables(batches) if batches else pa.table({c: pa.array([], pa.string()) for c in ["id", *columns]})
    if pc.count_distinct(table["id"]).as_py() != table.num_rows:
        raise ValueError(
            "unique_texts drops rows by id, but ids repeat in this dataset (the pairs config has one row per id "
            "and teacher): use the default config, or glm / kimi with suffixes=quality.SINGLE"
        )
    flagged = np.zeros(table.num_rows, dtype=bool)
    for column in columns:
        flagged |= near_duplicates(table[column], threshold)
    dropped = frozenset(table["id"].filter(pa.array(flagged)).to_pylist())
    return RowFilter(
        f"{field} not a near-duplicate", ("id",), lambda batch: [row_id not in dropped for row_id in batch["id"]]
    )
