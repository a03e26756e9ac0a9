"""Classes by name: the suggestions of the viewer's class box, and a typed name as a ``wnid``.

Candidates are the classes of the corpus first (their ``wnid``, the ``label`` their records
carry and their WordNet lemmas), then every other synset of the vendored WordNet table
(:mod:`imagenet_think.labels`: the ImageNet-21k classes and their ancestors).  A name matches a
class when one of its lemmas equals it, starts with it, has a word starting with it, or
contains it (in that order of rank), ignoring case; a ``wnid`` anywhere in the text
(``banana · n07753592``) picks that class.

>>> present = {"n07753592": ("banana", 2)}
>>> [(m.wnid, m.label, m.records) for m in suggest("BANA", present, limit=1)]
[('n07753592', 'banana', 2)]
>>> [m.option for m in suggest("cran", {}, limit=2)]  # the bird, then the machine
['crane · n02012849', 'crane · n03126707']
>>> [[m.wnid for m in resolve(name, present)] for name in ("banana", "crane · n03126707", "crane")][:2]
[['n07753592'], ['n03126707']]
>>> [m.wnid for m in resolve("crane", present)][:2]  # two classes named so: the user picks
['n02012849', 'n03126707']
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Optional

import pyarrow as pa

from imagenet_think import labels
from imagenet_think.view.render import printable

WNID = re.compile(r"\bn[0-9]{8}\b")
"""A WordNet noun id as ImageNet writes it."""

SUGGESTIONS = 20
"""Suggestions the JSON endpoint gives by default."""


@dataclasses.dataclass(frozen=True)
class ClassMatch:
    """A class matching a name: its ``wnid``, label, and how many records of the corpus have it."""

    wnid: str
    label: str
    records: int

    @property
    def option(self) -> str:
        """How the class box shows it: the label's first lemma and the wnid (``banana · n07753592``),
        characters that do not print (in a corpus' own labels) written as escapes
        (:func:`~imagenet_think.view.render.printable`), so an option shows what it is.

        >>> ClassMatch("n07753592", "ban\\u202eana, plantain", 2).option
        'ban\\\\u202eana · n07753592'
        """
        return f"{printable(self.label.split(', ')[0])} · {printable(self.wnid)}"

    @property
    def kind_of(self) -> str:
        """The first lemma of its nearest WordNet hypernym, telling apart classes of one name.

        >>> ClassMatch("n02012849", "crane", 0).kind_of, ClassMatch("n03126707", "crane", 0).kind_of
        ('wading bird', 'lifting device')
        """
        parents = labels.hypernyms(self.wnid, max_depth=1)
        return labels.lemmas(parents[0])[0] if parents else ""


def corpus_classes(index: pa.Table) -> dict[str, tuple[str, int]]:
    """``wnid -> (label, records)`` of a corpus index, most records first (the label of the
    first record of each class).

    >>> corpus_classes(pa.table({"wnid": ["n2", "n1", "n2"], "label": ["dog", "cat", "dog"]}))
    {'n2': ('dog', 2), 'n1': ('cat', 1)}
    """
    grouped = index.select(["wnid", "label"]).group_by("wnid", use_threads=False).aggregate(
        [("label", "first"), ("wnid", "count")]
    )
    rows = zip(grouped["wnid"].to_pylist(), grouped["label_first"].to_pylist(), grouped["wnid_count"].to_pylist(), strict=True)
    return {w: (label or labels.label_for(w), n) for w, label, n in sorted(rows, key=lambda r: -r[2]) if w}


@functools.lru_cache(maxsize=1)
def _wordnet() -> tuple[list[str], list[str]]:
    """Every lemma of the table, lower-cased, and the wnid of each (a synset once per lemma)."""
    pairs = [(lemma.lower(), w) for w in labels.synset_ids() for lemma in labels.lemmas(w)]
    return [lemma for lemma, _ in pairs], [w for _, w in pairs]


def _rank(name: str, lemmas: Iterable[str]) -> Optional[tuple[int, int]]:
    """How well the best of ``lemmas`` matches ``name``: 0 it is ``name``, 1 starts with it,
    2 has a word starting with it, 3 contains it; then the shorter lemma first.

    >>> _rank("dog", ["hot dog", "dogfish"]), _rank("cat", ["dog"])
    ((1, 7), None)
    """
    ranks = []
    for lemma in lemmas:
        at = lemma.find(name)
        if at < 0:
            continue
        if lemma == name:
            rank = 0
        elif at == 0:
            rank = 1
        elif re.search(rf"(?<![^\W_]){re.escape(name)}", lemma):
            rank = 2
        else:
            rank = 3
        ranks.append((rank, len(lemma)))
    return min(ranks, default=None)


@functools.lru_cache(maxsize=None)  # one per class of the corpus: asked again at every keystroke of the class box
def _lemmas(wnid: str, label: str) -> frozenset[str]:
    return frozenset(lemma.lower() for lemma in (*label.split(", "), *labels.lemmas(wnid)) if lemma)


def suggest(text: str, present: Mapping[str, tuple[str, int]], limit: int = SUGGESTIONS) -> list[ClassMatch]:
    """Classes matching ``text``: those of the corpus (``present``, see :func:`corpus_classes`)
    by rank then records, then the other WordNet synsets by rank; ``limit`` at most."""
    name = " ".join(text.lower().split())
    if not name:
        return [ClassMatch(w, label, n) for w, (label, n) in list(present.items())[:limit]]
    wnid = WNID.search(name)
    if wnid and (wnid.group() in present or labels.label_for(wnid.group())):
        label, records = present.get(wnid.group(), (labels.label_for(wnid.group()), 0))
        return [ClassMatch(wnid.group(), label, records)]
    found = []
    for w, (label, records) in present.items():
        rank = _rank(name, _lemmas(w, label))
        if rank is not None:
            found.append((rank[0], -records, rank[1], ClassMatch(w, label, records)))
    matches = [match for *_, match in sorted(found, key=lambda f: f[:3])]
    if len(matches) < limit:
        lemmas, wnids = _wordnet()
        containing: dict[str, list[str]] = {}  # wnid -> its lemmas holding the name, in table order
        for i in (i for i, lemma in enumerate(lemmas) if name in lemma):
            if wnids[i] not in present:
                containing.setdefault(wnids[i], []).append(lemmas[i])
        others = sorted((_rank(name, found), w) for w, found in containing.items())
        matches += [ClassMatch(w, labels.label_for(w), 0) for _, w in others]
    return matches[:limit]


def resolve(text: str, present: Mapping[str, tuple[str, int]]) -> list[ClassMatch]:
    """The classes a typed name stands for: the one it names (a wnid in the text, the only
    class with that lemma, those of the corpus first, or the only candidate), else every
    candidate, best first (several: the user picks one; none: nothing matches)."""
    candidates = suggest(text, present)
    name = " ".join(text.lower().split())
    if not candidates or WNID.search(name):
        return candidates[:1]
    exact = [m for m in candidates if name in _lemmas(m.wnid, m.label)]
    in_corpus = [m for m in exact if m.records]
    if len(in_corpus) == 1 or (not in_corpus and len(exact) == 1):
        return (in_corpus or exact)[:1]
    return candidates
