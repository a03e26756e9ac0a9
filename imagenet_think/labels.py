"""ImageNet class labels and WordNet hypernyms, from a vendored table (no download).

Every ImageNet-21k row carries a WordNet noun id (``wnid``).  The table
``data/wordnet_nouns.tsv.gz`` holds, for each ImageNet-21k synset and all of its WordNet 3.0
ancestors, the synset's lemmas and its direct hypernyms (``@`` and instance ``@i`` pointers);
``data/SOURCES.md`` says where it comes from and how to rebuild it.  It is read once, on first
use.

>>> label_for("n02084071")
'dog, domestic dog, Canis familiaris'
>>> [label_for(w) for w in hypernyms("n02084071")[:2]]
['canine, canid', 'domestic animal, domesticated animal']
>>> label_for("n99999999"), hypernyms("n99999999")
('', [])
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources
from typing import Optional

_TABLE = "wordnet_nouns.tsv.gz"


Synsets = dict[str, tuple[tuple[str, ...], str]]
"""``wnid -> (direct hypernym wnids, lemmas joined by ", ")``."""


def parse_table(text: str, source: str = _TABLE) -> Synsets:
    """Parse the table's text (``#`` lines are comments); ``source`` names it in errors.

    >>> parse_table("# header\\nn2\\tn1\\tdog\\nn1\\t\\tanimal, beast\\n")
    {'n2': (('n1',), 'dog'), 'n1': ((), 'animal, beast')}
    """
    table: Synsets = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0] or not fields[2]:
            raise ValueError(f"{source}:{line_no}: expected 'wnid<TAB>parents<TAB>lemmas', got {line!r}")
        wnid, parents, lemmas = fields
        table[wnid] = (tuple(parents.split()), lemmas)
    return table


@functools.lru_cache(maxsize=1)
def _synsets() -> Synsets:
    """The vendored table, parsed once."""
    raw = resources.files("imagenet_think").joinpath("data", _TABLE).read_bytes()
    return parse_table(gzip.decompress(raw).decode("utf-8"))


def label_for(wnid: str) -> str:
    """Human-readable class label (WordNet lemmas joined by ``", "``), ``""`` if unknown.

    >>> label_for("n00005787")
    'benthos'
    """
    entry = _synsets().get(wnid)
    return entry[1] if entry else ""


def lemmas(wnid: str) -> list[str]:
    """The synset's lemmas, most common first; ``[]`` if unknown.

    >>> lemmas("n02084071")
    ['dog', 'domestic dog', 'Canis familiaris']
    """
    label = label_for(wnid)
    return label.split(", ") if label else []


def hypernyms(wnid: str, max_depth: Optional[int] = None) -> list[str]:
    """Ancestor wnids of ``wnid``, nearest first (breadth-first, each once), up to ``entity``.

    ``max_depth=1`` gives the direct hypernyms only.  Unknown ids give ``[]``.

    >>> hypernyms("n02084071", max_depth=1)
    ['n02083346', 'n01317541']
    >>> hypernyms("n02084071")[-1], label_for(hypernyms("n02084071")[-1])
    ('n00001740', 'entity')
    """
    return list(hypernym_depths(wnid, max_depth))


def hypernym_depths(wnid: str, max_depth: Optional[int] = None) -> dict[str, int]:
    """Each ancestor of ``wnid`` with its distance, the fewest hypernym links up from ``wnid``
    (in :func:`hypernyms` order).  Unknown ids give ``{}``.

    >>> {label_for(w): d for w, d in hypernym_depths("n02084071", max_depth=2).items()}
    {'canine, canid': 1, 'domestic animal, domesticated animal': 1, 'carnivore': 2, 'animal, animate being, beast, brute, creature, fauna': 2}
    """
    table = _synsets()
    depths: dict[str, int] = {}
    frontier = list(table[wnid][0]) if wnid in table else []
    depth = 1
    while frontier and (max_depth is None or depth <= max_depth):
        next_frontier = []
        for parent in frontier:
            if parent not in depths:
                depths[parent] = depth
                next_frontier.extend(table[parent][0])
        frontier, depth = next_frontier, depth + 1
    return depths


def synset_ids() -> list[str]:
    """Every wnid of the table: the ImageNet-21k synsets and their ancestors, in table order.

    >>> ids = synset_ids()
    >>> "n02084071" in ids and "n00001740" in ids
    True
    """
    return list(_synsets())
