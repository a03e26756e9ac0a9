"""Verifiable rewards for RL on ImageNet-Think: does the answer name the image's WordNet class?

Every image carries a WordNet noun id (``wnid``); :func:`label_reward` checks the *answer part*
of a completion (as :func:`imagenet_think.reasoning.split_reasoning` splits it: GLM tags,
``<answer>`` tags, Kimi ``◁think▷`` markers; an unclosed think has no answer) against the
vendored WordNet table (:mod:`imagenet_think.labels`).  :func:`format_reward` checks the format.
Both follow TRL's reward-function signature; :func:`easyr1_score` and :func:`compute_score` adapt
them to EasyR1 and verl.

**What an answer names** (:func:`named_synsets`).  The text is lower-cased and cut into words
as the lexical metrics cut it (:func:`imagenet_think.text.word_tokens`: runs of letters and
digits, each CJK ideograph a word of its own, so hyphens, apostrophes and spaces all separate
words: ``"hot-dog"`` reads as ``"hot dog"``).  A synset is named where one of its lemmas occurs as
whole words, or the lemma with its head word in the plural (``dogs``, ``foxes``, ``ponies``,
``wolves``, ``women``, ``mice``, ``cacti``, ``birds of prey``...).  Occurrences are found left
to right, longest lemma first, and the words of one occurrence are not read again: ``"hot dog"``
names the sausage, not the dog; ``"dogma"`` is one word and names nothing.  A lemma made only of
function words (articles, determiners, pronouns, conjunctions, prepositions, forms of *be*,
*have*, *do*: :data:`FUNCTION_WORDS`), single characters and numbers names nothing (``"US"``,
``"it"``, ``"OR"``, ``"A"`` for vitamin A, ``"78"``), and one that starts with a function word
is not read where a lemma starts at its second word: ``"a bomb"`` is a bomb, not an A-bomb.
An ambiguous lemma names all its synsets.

**Reward** of an answer for the label ``wnid`` (:func:`label_hit`, then ``decay ** distance``):

* ``1.0`` (``named``) when it names the label or any of its hyponyms (a more specific class is
  right too);
* else ``decay ** d`` (``ancestor``) for the nearest named ancestor at ``d <= max_depth``
  hypernym links up (the fewest links, WordNet having several parents for some synsets);
* else ``0.0`` (``missed``);
* ``0.0`` (``hedged``) with ``exclusive=True`` when the answer also names a *competing* class:
  a synset that is neither the label, an ancestor nor a descendant of it, but shares an
  ancestor with the label within ``max_depth`` links of both ("a cat or a dog" for a dog: both
  are two links below *carnivore*).  Within reach of both, so that a class of the same family
  competes while a remote one that only descends from a general ancestor does not ("a black
  dog on the grass": *grass* and the *Black* person sense of "black" descend from *organism*,
  three links above *dog*, but many links below it).  An occurrence whose lemma also names
  the label, an ancestor or a descendant is read that way and is never a competitor, nor is a
  *modifier*: an occurrence followed at once by another ("black dog", "dog bed"), or by *and* /
  *or* and a modifier ("black and white dog"), describes the one after it.  A predicative
  adjective ("a dog, black") is not recognised as one;
* ``0.0`` (``unknown``) for a wnid the table lacks, with one ``RuntimeWarning`` the first time.

The lemma index (about 90k phrases with their plurals) is built on first use (about 2 s), never at import.

>>> label_reward(["<think>Four legs, a wagging tail.</think><answer>A dog.</answer>"], ["n02084071"])
[1.0]
>>> label_hit("a cat or a dog", "n02084071")
LabelHit(kind='hedged', distance=None)
"""

from __future__ import annotations

import functools
import warnings
from itertools import compress, count, pairwise
from typing import Any, NamedTuple, Optional, Sequence, Union

from imagenet_think import labels
from imagenet_think.reasoning import THINK_CLOSE, THINK_OPEN, split_batch
from imagenet_think.text import re_word_tokens

REWARD_NAME = "imagenet_think_label"
"""Name EasyR1 prints for this reward module."""

REWARD_TYPE = "batch"
"""EasyR1 calls :func:`easyr1_score` once per batch (``verl/workers/reward/function.py``)."""

FUNCTION_WORDS = frozenset(
    # articles and determiners
    "a an the this that these those some any each every either neither no all both few many much more most "
    "other another such what which whose "
    # pronouns
    "i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself "
    "we us our ours ourselves they them their theirs themselves one ones oneself who whom whoever whatever "
    "whichever someone somebody something anyone anybody anything everyone everybody everything nobody nothing none "
    # conjunctions
    "and or but nor so yet if because although though while whereas unless since as than whether when where "
    # prepositions
    "about above across after against along amid among around at before behind below beneath beside besides "
    "between beyond by despite down during except for from in inside into like near of off on onto out outside "
    "over past per round through throughout till to toward towards under underneath until up upon via with "
    "within without "
    # forms of be, have, do
    "am is are was were be been being have has had having do does did".split()
)
"""Words that never name a synset on their own (a lemma made only of these names nothing)."""


_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "mouse": "mice", "louse": "lice",
    "goose": "geese", "foot": "feet", "tooth": "teeth", "ox": "oxen", "die": "dice", "criterion": "criteria",
    "phenomenon": "phenomena",
}  # fmt: skip

_REASONING_KEYS = ("reasoning_content", "thinking")
"""Message keys under which a chat template's response parser puts the reasoning it took out of
``content`` (TRL 1.16 ``chat_template_utils``: ``reasoning_content`` for Qwen3-style schemas,
``thinking`` for LFM2.5)."""

Completion = Union[str, Sequence[dict]]
"""A completion as TRL passes it: plain text, or conversational ``[{"role": "assistant", "content": ...}]``."""


class LabelHit(NamedTuple):
    """What an answer names of a label: ``kind`` is ``named`` (the label or a hyponym,
    ``distance`` 0), ``ancestor`` (the nearest named ancestor, ``distance`` links up),
    ``hedged`` (a competing class named, ``exclusive`` only), ``missed`` or ``unknown`` (the
    wnid is not in the table); ``distance`` is ``None`` but for ``named`` and ``ancestor``.

    >>> LabelHit("ancestor", 2).score(decay=0.5)
    0.25
    """

    kind: str
    distance: Optional[int]

    def score(self, decay: float = 0.5) -> float:
        """The reward: 1.0 named, ``decay ** distance`` for an ancestor, else 0.0."""
        return decay**self.distance if self.kind in ("named", "ancestor") else 0.0


def _plurals(word: str) -> set[str]:
    """English plural forms of one lower-case word (over-generating is harmless: non-words never occur).

    >>> sorted(_plurals("fox")), sorted(_plurals("pony")), sorted(_plurals("wolf")), sorted(_plurals("alga"))
    (['foxes', 'foxs'], ['ponies'], ['wolfs', 'wolves'], ['algae', 'algas'])
    """
    if not word.isalpha() or len(word) < 2:
        return set()
    forms = {word + "s"}
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(word + "es")
    if word.endswith("y") and word[-2] not in "aeiou":
        forms = {word[:-1] + "ies"}
    if word.endswith("f"):
        forms.add(word[:-1] + "ves")
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    if word.endswith("man"):
        forms.add(word[:-3] + "men")
    if len(word) >= 4:
        for singular, plural in (("us", "i"), ("um", "a"), ("is", "es"), ("ex", "ices"), ("ix", "ices"), ("a", "ae")):
            if word.endswith(singular):
                forms.add(word[: -len(singular)] + plural)
    if word in _IRREGULAR_PLURALS:
        forms.add(_IRREGULAR_PLURALS[word])
    return forms


def _forms(words: tuple[str, ...]) -> set[tuple[str, ...]]:
    """A lemma's words and its plural forms: the last word, or the word before ``of``, pluralised."""
    heads = {len(words) - 1}
    if "of" in words[1:]:
        heads.add(words.index("of", 1) - 1)
    forms = {words}
    for head in heads:
        forms.update(words[:head] + (plural,) + words[head + 1 :] for plural in _plurals(words[head]))
    return forms


def _names_nothing(words: tuple[str, ...]) -> bool:
    """Whether a phrase is made only of function words, single characters and numbers."""
    return all(word in FUNCTION_WORDS or len(word) == 1 or word.isdigit() for word in words)


class _Named:
    """What one occurrence of a phrase names: ``synsets``, and (computed on first use, as few
    phrases ever occur) ``above()``, every ancestor of any of them with its fewest links up from
    one of them, so a label in ``above()`` means a hyponym of it is named."""

    __slots__ = ("synsets", "_above", "_within")

    def __init__(self, synsets: frozenset[str]) -> None:
        self.synsets = synsets
        self._above: Optional[dict[str, int]] = None
        self._within: dict[int, frozenset[str]] = {}

    def __repr__(self) -> str:
        return "<_INSIDE>" if not self.synsets else f"<names {sorted(self.synsets)}>"

    def within(self, max_depth: int) -> frozenset[str]:
        """The ancestors at most ``max_depth`` links up from one of the synsets."""
        if max_depth not in self._within:
            self._within[max_depth] = frozenset(a for a, depth in self.above().items() if depth <= max_depth)
        return self._within[max_depth]

    def above(self) -> dict[str, int]:
        if self._above is None:
            found: dict[str, int] = {}
            for wnid in self.synsets:
                for ancestor, depth in labels.hypernym_depths(wnid).items():
                    found[ancestor] = min(depth, found.get(ancestor, depth))
            self._above = found
        return self._above


class _Index(NamedTuple):
    words: dict[str, _Named]
    """One-word phrases."""
    phrases: dict[tuple[str, ...], _Named]
    """Phrases of two words or more, by their words."""
    lengths: dict[tuple[str, str], tuple[int, ...]]
    """First two words -> the lengths of the ``phrases`` that start with them, longest first."""


@functools.lru_cache(maxsize=1)
def _index() -> _Index:
    """The phrase index of every lemma of the vendored table (built once, on first use)."""
    table = labels._synsets()
    found: dict[tuple[str, ...], set[str]] = {}
    for wnid, (_, joined) in table.items():
        for lemma in joined.split(", "):
            for form in _forms(tuple(re_word_tokens(lemma))):
                if form and not _names_nothing(form):
                    found.setdefault(form, set()).add(wnid)
    shared: dict[frozenset[str], _Named] = {}
    named = {form: shared.setdefault(frozenset(wnids), _Named(frozenset(wnids))) for form, wnids in found.items()}
    phrases = {form: value for form, value in named.items() if len(form) > 1}
    lengths: dict[tuple[str, ...], set[int]] = {}
    for form in phrases:
        lengths.setdefault(form[:2], set()).add(len(form))
    return _Index(
        {form[0]: value for form, value in named.items() if len(form) == 1},
        phrases,
        {start: tuple(sorted(found, reverse=True)) for start, found in lengths.items()},
    )


_INSIDE = _Named(frozenset())
"""Marks the words after the first of a phrase's occurrence (it names nothing)."""

COORDINATORS = frozenset(("and", "or"))
"""Words that join modifiers: "a brown and white dog"."""


def _occurrences(text: str) -> tuple[list[str], list[Optional[_Named]]]:
    """``text``'s words and, by word, what the occurrence of a phrase starting there names
    (``None``: no phrase starts there; :data:`_INSIDE`: a later word of one).

    At each word the longest phrase that starts there is read first; the words of an occurrence
    are not read again.  A phrase that starts with a function word (``A-bomb``, ``AND gate``) is
    not read where a phrase starts at its second word (``bomb``, ``gate``).  Only positions whose
    first two words start some longer phrase are visited one by one; one-word phrases are looked
    up in one pass.

    >>> words, found = _occurrences("two hot dogs")
    >>> [labels.label_for(min(n.synsets)) if n not in (None, _INSIDE) else n for n in found]
    [None, 'hotdog, hot dog, red hot', <_INSIDE>]
    """
    words_index, phrases, lengths = _index()
    words = re_word_tokens(text)
    found = list(map(words_index.get, words))
    covered_to = 0
    for position in compress(count(), map(lengths.__contains__, pairwise(words))):
        if position < covered_to:
            continue
        if words[position] in FUNCTION_WORDS and (
            words[position + 1] in words_index or tuple(words[position + 1 : position + 3]) in lengths
        ):
            continue  # "a bomb", "and gates": not "A-bomb", "AND gate"
        for length in lengths[words[position], words[position + 1]]:
            phrase = tuple(words[position : position + length])
            named = phrases.get(phrase)
            if named is not None:
                found[position : position + len(phrase)] = (named,) + (_INSIDE,) * (len(phrase) - 1)
                covered_to = position + len(phrase)
                break
    return words, found


def _modifies(words: list[str], found: list[Optional[_Named]], position: int) -> bool:
    """Whether the occurrence at ``position`` modifies the one after it: followed at once by
    another occurrence ("black dog", "dog bed"), or by *and* / *or* and a modifier ("brown and
    white dog").

    >>> words, found = _occurrences("a brown and white dog or a cat")
    >>> [(word, _modifies(words, found, i)) for i, word in enumerate(words) if found[i] not in (None, _INSIDE)]
    [('brown', True), ('white', True), ('dog', False), ('cat', False)]
    """
    end = position + 1
    while end < len(found) and found[end] is _INSIDE:
        end += 1
    if end < len(found) and found[end] is not None:
        return True
    after = end + 1
    return (
        after < len(found) and words[end] in COORDINATORS and found[after] not in (None, _INSIDE)
        and _modifies(words, found, after)
    )


def named_synsets(text: str) -> set[str]:
    """The wnids of every synset ``text`` names (see the module docstring).

    >>> [labels.label_for(w) for w in named_synsets("Two hot-dogs, no dogma.")]
    ['hotdog, hot dog, red hot']
    """
    return set().union(*(named.synsets for named in filter(None, _occurrences(text)[1])))


@functools.lru_cache(maxsize=65536)
def _label_view(wnid: str, max_depth: int) -> tuple[dict[str, int], frozenset[str], frozenset[str]]:
    """The label's ancestors with their distances, as a set, and those at most ``max_depth``
    links up (what a competing class descends from)."""
    up = labels.hypernym_depths(wnid)
    return up, frozenset(up), frozenset(ancestor for ancestor, depth in up.items() if depth <= max_depth)


def label_hit(answer: str, wnid: str, *, max_depth: int = 3, exclusive: bool = True) -> LabelHit:
    """What ``answer`` names of the class ``wnid`` (rules in the module docstring).

    Args:
        answer: the answer text (no reasoning in it: :func:`label_reward` splits completions).
        wnid: the label's WordNet noun id.
        max_depth: farthest ancestor that still earns a partial reward, and how far up a
            shared ancestor makes another class a competitor.
        exclusive: whether naming a competing class makes the answer ``hedged``.

    Returns:
        A :class:`LabelHit` ``(kind, distance)``.

    Example:
        >>> label_hit("A beagle.", "n02084071"), label_hit("Some canine.", "n02084071")
        (LabelHit(kind='named', distance=0), LabelHit(kind='ancestor', distance=1))
        >>> label_hit("A dog and a cat.", "n02084071", exclusive=False), label_hit("A car.", "n02084071")
        (LabelHit(kind='named', distance=0), LabelHit(kind='missed', distance=None))
    """
    if wnid not in labels._synsets():
        return LabelHit("unknown", None)
    up, up_set, near = _label_view(wnid, max_depth)
    named, nearest = False, None
    words, found = _occurrences(answer)
    for position, occurrence in zip(compress(count(), found), filter(None, found), strict=True):
        if occurrence is _INSIDE:
            continue
        synsets = occurrence.synsets
        if wnid in synsets or wnid in occurrence.above():
            named = True
        elif not up_set.isdisjoint(synsets):
            depth = min(up[synset] for synset in synsets if synset in up)
            if depth <= max_depth and (nearest is None or depth < nearest):
                nearest = depth
        elif exclusive and not near.isdisjoint(occurrence.within(max_depth)) and not _modifies(words, found, position):
            return LabelHit("hedged", None)
    if named:
        return LabelHit("named", 0)
    return LabelHit("missed", None) if nearest is None else LabelHit("ancestor", nearest)


def completion_text(completion: Completion) -> str:
    """The text of one completion: a string as is; for a conversation, the last assistant
    message's ``content`` (a string, or a list of ``{"type": "text", "text": ...}`` parts,
    joined), with reasoning a response parser put in ``reasoning_content`` / ``thinking`` put
    back in front as ``<think>…</think>``.

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "A dog."}]}])
    'A dog.'
    >>> completion_text([{"role": "assistant", "content": "A dog.", "reasoning_content": "Fur."}])
    '<think>Fur.</think>A dog.'
    """
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
    if not messages:
        return ""
    message = messages[-1]
    content = message.get("content") or ""
    if not isinstance(content, str):
        content = "".join(part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "text")
    reasoning = next((message[key] for key in _REASONING_KEYS if message.get(key)), None)
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{content}" if isinstance(reasoning, str) else content


_unknown_reported = False


def _report_unknown(wnid: str) -> None:
    """Warn about the first unknown wnid of the process; later ones are not reported."""
    global _unknown_reported
    if not _unknown_reported:
        _unknown_reported = True
        warnings.warn(
            f"label_reward: wnid {wnid!r} is not in the vendored WordNet table, so its completions score 0.0 "
            "(pass the dataset's 'wnid' column, not 'label'); further unknown wnids are not reported",
            RuntimeWarning,
            stacklevel=3,
        )


def _check(decay: float, max_depth: int) -> None:
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if max_depth < 0:
        raise ValueError(f"max_depth must be at least 0, got {max_depth}")


def label_reward(
    completions: Sequence[Completion],
    wnid: Union[str, Sequence[str]],
    *,
    decay: float = 0.5,
    max_depth: int = 3,
    exclusive: bool = True,
    **kwargs: Any,
) -> list[float]:
    """Reward of each completion for naming its image's WordNet class (rules in the module docstring).

    Only the answer part counts (:func:`imagenet_think.reasoning.split_reasoning`): a think block
    that names the class earns nothing, an unclosed think scores 0.0.

    Args:
        completions: the completions, plain strings or conversational message lists
            (:func:`completion_text`).
        wnid: the label of each completion (TRL passes the dataset's ``wnid`` column), or one
            wnid for all.
        decay: reward factor per hypernym link when only an ancestor is named.
        max_depth: farthest ancestor rewarded; also the reach of competing classes.
        exclusive: score 0.0 when the answer names a competing class.
        **kwargs: other dataset columns and trainer arguments, ignored.

    Returns:
        One float in [0, 1] per completion.

    Example:
        >>> label_reward([[{"role": "assistant", "content": "◁think▷A puppy?◁/think▷A canine."}],
        ...               [{"role": "assistant", "content": "<think>It is a dog.</think><answer>A cat.</answer>"}]],
        ...              wnid=["n02084071", "n02084071"])
        [0.5, 0.0]
    """
    _check(decay, max_depth)
    wnids = [wnid] * len(completions) if isinstance(wnid, str) else list(wnid)
    if len(wnids) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(wnids)} wnids")
    answers = split_batch([completion_text(completion) for completion in completions])["answer"]
    return _label_scores(answers, wnids, decay, max_depth, exclusive)


def _label_scores(answers: Sequence[str], wnids: Sequence[str], decay: float, max_depth: int, exclusive: bool) -> list[float]:
    """:func:`label_reward` of answers already split from their reasoning (one warning for an unknown wnid)."""
    hits = [label_hit(answer, str(label), max_depth=max_depth, exclusive=exclusive) for answer, label in zip(answers, wnids, strict=True)]
    for hit, label in zip(hits, wnids, strict=True):
        if hit.kind == "unknown":
            _report_unknown(str(label))
            break
    return [hit.score(decay) for hit in hits]


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 for each completion with a closed reasoning part and a non-empty answer (status ``ok``), else 0.0.

    Args:
        completions: plain strings or conversational message lists (:func:`completion_text`).
        **kwargs: dataset columns and trainer arguments, ignored.

    Returns:
        One float per completion.

    Example:
        >>> format_reward(["<think>Fur.</think><answer>A dog.</answer>", "<think>Fur, whiskers and", "A dog."])
        [1.0, 0.0, 0.0]
    """
    return _format_scores(split_batch([completion_text(completion) for completion in completions])["status"])


def _format_scores(statuses: Sequence[str]) -> list[float]:
    """:func:`format_reward` of completions already split (their ``split_batch`` statuses)."""
    return [1.0 if status == "ok" else 0.0 for status in statuses]


def easyr1_score(
    reward_inputs: Sequence[dict[str, Any]],
    format_weight: float = 0.1,
    decay: float = 0.5,
    max_depth: int = 3,
    exclusive: bool = True,
) -> list[dict[str, float]]:
    """EasyR1 batch score function: ``worker.reward.reward_function=/path/to/rewards.py:easyr1_score``.

    Checked against EasyR1 ``b44b311`` (hiyouga/EasyR1, ``verl/workers/reward/function.py``):
    ``AutoRewardManager`` loads the file with ``importlib`` and, since :data:`REWARD_TYPE` is
    ``"batch"``, calls the function once with a list of ``{"response", "response_length",
    "ground_truth"}`` dicts (``ground_truth`` is the dataset's answer column: the wnid) and
    ``worker.reward.reward_function_kwargs`` as keywords; it reads ``overall`` of each returned
    dict as the reward and logs every key.  Responses are decoded with
    ``worker.reward.skip_special_tokens`` (default true): keep it true only if the think markers
    are not special tokens of the model.

    Args:
        reward_inputs: EasyR1's reward inputs.
        format_weight: weight of :func:`format_reward` in ``overall`` (as EasyR1's math example).
        decay, max_depth, exclusive: as in :func:`label_reward`.

    Returns:
        ``{"overall", "format", "accuracy"}`` per input: ``overall = (1 - format_weight) *
        accuracy + format_weight * format``, ``accuracy`` the :func:`label_reward`.

    Example:
        >>> easyr1_score([{"response": "<think>Fur.</think>A dog.", "response_length": 9, "ground_truth": "n02084071"}])
        [{'overall': 1.0, 'format': 1.0, 'accuracy': 1.0}]
    """
    _check(decay, max_depth)
    split = split_batch([reward_input["response"] for reward_input in reward_inputs])  # once for both scores
    formats = _format_scores(split["status"])
    wnids = [reward_input["ground_truth"] for reward_input in reward_inputs]
    accuracies = _label_scores(split["answer"], wnids, decay, max_depth, exclusive)
    return [
        {"overall": (1.0 - format_weight) * accuracy + format_weight * fmt, "format": fmt, "accuracy": accuracy}
        for fmt, accuracy in zip(formats, accuracies, strict=True)
    ]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Optional[dict] = None,
    format_weight: float = 0.1,
    decay: float = 0.5,
    max_depth: int = 3,
    exclusive: bool = True,
    **kwargs: Any,
) -> dict[str, float]:
    """verl custom reward: ``custom_reward_function.path=pkg://imagenet_think.rewards``
    (or this file's path) with ``custom_reward_function.name=compute_score``.

    Checked against verl ``b178a3c`` (volcengine/verl): ``verl/trainer/ppo/reward.py``
    ``get_custom_reward_fn`` loads the function and merges ``custom_reward_function.reward_kwargs``
    into each call; ``verl/workers/reward_manager/naive.py`` calls it with the keywords
    ``data_source``, ``solution_str`` (the response decoded without special tokens),
    ``ground_truth`` (``reward_model.ground_truth`` of the row: the wnid) and ``extra_info``, and
    takes a float, or a dict whose ``score`` is the reward (every key is logged).

    Args:
        data_source, extra_info: verl's, ignored.
        solution_str: the response.
        ground_truth: the wnid.
        format_weight, decay, max_depth, exclusive: as in :func:`easyr1_score`.
        **kwargs: anything else verl passes, ignored.

    Returns:
        ``{"score", "format", "accuracy"}``, ``score`` as ``overall`` in :func:`easyr1_score`.

    Example:
        >>> compute_score("imagenet_think", "<think>Fur.</think>A canine.", "n02084071")
        {'score': 0.55, 'format': 1.0, 'accuracy': 0.5}
    """
    scores = easyr1_score([{"response": solution_str, "ground_truth": ground_truth}], format_weight, decay, max_depth, exclusive)
    overall, fmt, accuracy = scores[0].values()
    return {"score": overall, "format": fmt, "accuracy": accuracy}
