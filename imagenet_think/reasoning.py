"""Split a teacher's raw output into reasoning and answer, and join them back.

This is the only module that knows the teachers' markers:

* ``glm`` (GLM-4.1V-Thinking): ``<think>…</think><answer>…</answer>``; the answer may wrap its
  final part in ``<|begin_of_box|>…<|end_of_box|>``.  The opening ``<think>`` may be missing
  (it can sit in the prompt) and ``</answer>`` may be missing (vLLM drops the stop string).
* ``kimi`` (Kimi-VL-Thinking-2506): ``◁think▷…◁/think▷`` then the answer, no answer tag.
* ``think_tags`` (DeepSeek-R1 / Qwen3): ``<think>…</think>`` then the answer.
* ``none``: no reasoning markers at all.

``glm`` and ``think_tags`` share one grammar (answer and box tags are accepted in both); they
differ in what :func:`detect_style` reports and in how :func:`join_reasoning` writes text.

Statuses (from :data:`imagenet_think.schema.STATUSES`):

``ok``
    One well-formed think block, then a non-empty answer.
``no_think``
    No reasoning marker: the whole text is the answer (it may still be reasoning whose special
    tokens were stripped by the engine; nothing in the text can tell).
``unclosed_think``
    One opening think marker (only blanks before it), no other marker: the model was cut while
    reasoning.  The text after the marker is the reasoning; the answer is empty.
``empty_answer``
    Nothing left as answer: the think block closed with nothing (or only tags) after it, or
    the text is empty, blank, or only empty answer tags.
``malformed``
    Anything else: several or nested think blocks, a stray or early closing marker, text before
    the opening marker, markers of another style than the one asked for (any marker at all for
    ``style="none"``; with ``style="auto"``, markers of both the tag and the ``◁▷`` family),
    more than one box, unbalanced or repeated answer / box tags, answer or box tags inside the
    reasoning, text outside ``<answer>…</answer>``, or an answer cut by the token limit (below).
``missing``
    The text is ``None`` (the teacher never produced this pair).

Rules that decide what goes where:

* Whitespace: ``think`` and ``answer`` are stripped (``str.strip``) at both ends; inner
  whitespace is kept.  ``raw_answer`` (``keep_raw=True``) is the answer region verbatim:
  not stripped, with answer and box tags still in it.
* Answer tags (``<answer>``, ``</answer>``) and box markers are removed from ``answer``;
  ``\\boxed{…}`` is plain text and is left as is.
* Truncation: with ``finish_reason="length"``, an ``ok`` answer that no closing ``</answer>``
  proves complete (every ``kimi`` and ``think_tags`` answer; a ``glm`` answer whose
  ``</answer>`` is missing) becomes ``malformed``: the answer was cut.  The partial answer is
  kept, so it can be inspected, but a filter on ``ok`` drops it.  Any other finish reason
  (``"stop"``, ``None``) leaves an unclosed ``<answer>`` ``ok``: vLLM drops the stop string.
  ``no_think`` text stays ``no_think`` whatever the finish reason.
* ``malformed`` never puts reasoning in the answer: the answer is the text after the *last*
  closing think marker (of any style), and only when no opening think marker follows it; with
  no think marker at all it is the whole text; otherwise it is empty.  ``think`` is the text
  before that answer region (the whole text when the answer is empty), inner markers kept,
  one leading opening marker dropped.

>>> split_reasoning("<think>A tabby cat.</think><answer>A <|begin_of_box|>cat<|end_of_box|>")
ReasoningSplit(think='A tabby cat.', answer='A cat', status='ok', markers=('<think>', '</think>', '<answer>', '<|begin_of_box|>', '<|end_of_box|>'), style='glm', raw_answer=None)
>>> split_reasoning("◁think▷Fur, whiskers.◁/think▷A cat.").answer
'A cat.'
>>> split_reasoning("<think>Fur, whiskers, and then", finish_reason="length").status
'unclosed_think'
>>> join_reasoning("Fur.", "A cat.", "kimi")
'◁think▷Fur.◁/think▷A cat.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Optional, Sequence

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
BOX_OPEN = "<|begin_of_box|>"
BOX_CLOSE = "<|end_of_box|>"
KIMI_OPEN = "\u25c1think\u25b7"
KIMI_CLOSE = "\u25c1/think\u25b7"

STYLES = ("glm", "kimi", "think_tags", "none")
"""Output formats :func:`split_reasoning` parses and :func:`join_reasoning` writes."""

_OPENERS = frozenset((THINK_OPEN, KIMI_OPEN))
_CLOSERS = frozenset((THINK_CLOSE, KIMI_CLOSE))
_ANSWER_MARKERS = frozenset((ANSWER_OPEN, ANSWER_CLOSE, BOX_OPEN, BOX_CLOSE))
_TAG_MARKERS = frozenset((THINK_OPEN, THINK_CLOSE, *_ANSWER_MARKERS))
_KIMI_MARKERS = frozenset((KIMI_OPEN, KIMI_CLOSE))
_STYLE_MARKERS = {"glm": _TAG_MARKERS, "think_tags": _TAG_MARKERS, "kimi": _KIMI_MARKERS, "none": frozenset()}
_STYLE_THINK = {"glm": (THINK_OPEN, THINK_CLOSE), "think_tags": (THINK_OPEN, THINK_CLOSE), "kimi": (KIMI_OPEN, KIMI_CLOSE)}

_LEADS = {
    lead: {marker[:3]: marker for marker in family}
    for lead, family in (("<", _TAG_MARKERS), ("\u25c1", _KIMI_MARKERS))
}
"""Markers by their first character, then by their first three (unique within a family)."""

MARKER_PATTERN = "|".join(re.escape(marker) for marker in sorted((*_TAG_MARKERS, *_KIMI_MARKERS)))
"""Regular expression (RE2- and ``re``-compatible) matching any marker of any style."""

_ANSWER_TAG_SEQUENCES = {
    (): False,
    (BOX_OPEN, BOX_CLOSE): False,
    (ANSWER_OPEN,): False,
    (ANSWER_OPEN, BOX_OPEN, BOX_CLOSE): False,
    (ANSWER_OPEN, ANSWER_CLOSE): True,
    (ANSWER_OPEN, BOX_OPEN, BOX_CLOSE, ANSWER_CLOSE): True,
}
"""Every allowed sequence of answer and box tags after the think block, and whether it ends with
``</answer>`` (at most one answer block, at most one box, inside it)."""

_JOIN_FORMATS = {
    "glm": THINK_OPEN + "\n{think}" + THINK_CLOSE + ANSWER_OPEN + "{answer}" + ANSWER_CLOSE,
    "kimi": KIMI_OPEN + "{think}" + KIMI_CLOSE + "{answer}",
    "think_tags": THINK_OPEN + "\n{think}\n" + THINK_CLOSE + "\n\n{answer}",
    "none": "{answer}",
}


@dataclass(frozen=True, slots=True)
class ReasoningSplit:
    """One output split into reasoning and answer.

    ``markers`` lists every marker found in the text, in order; ``style`` is the style the text
    was parsed as (the one asked for, or the detected one with ``style="auto"``);
    ``raw_answer`` is the verbatim answer region, kept only with ``keep_raw=True``.

    >>> ReasoningSplit("", "A cat.", "no_think", (), "none").answer
    'A cat.'
    """

    think: str
    answer: str
    status: str
    markers: tuple[str, ...]
    style: str
    raw_answer: Optional[str] = None


_Token = tuple[str, int, int]
"""A marker occurrence: (marker, start, end)."""

_Fields = tuple[str, str, str, tuple, str, Optional[str]]
"""The fields of a :class:`ReasoningSplit`, in order."""


def _tokens(text: str) -> list[_Token]:
    """Every marker in ``text``, left to right, without overlaps (``str.find`` on lead characters)."""
    tokens: list[_Token] = []
    leads_found = 0
    for lead, by_prefix in _LEADS.items():
        position = text.find(lead)
        leads_found += position >= 0
        while position >= 0:
            marker = by_prefix.get(text[position : position + 3])
            if marker is not None and text.startswith(marker, position):
                tokens.append((marker, position, position + len(marker)))
                position = text.find(lead, position + len(marker))
            else:
                position = text.find(lead, position + 1)
    if leads_found == 2:
        tokens.sort(key=itemgetter(1))
    return tokens


def _check_style(style: str, *extra: str) -> None:
    if style not in STYLES and style not in extra:
        raise ValueError(f"unknown reasoning style {style!r}; expected one of {(*extra, *STYLES)}")


def _style_of(markers: tuple[str, ...]) -> str:
    if not markers:
        return "none"
    if markers[0] in _KIMI_MARKERS:
        return "kimi"
    return "think_tags" if _ANSWER_MARKERS.isdisjoint(markers) else "glm"


def detect_style(text: str) -> str:
    """The style whose markers the text carries: ``glm``, ``kimi``, ``think_tags`` or ``none``.

    Tag-style text is ``glm`` when it has an answer or box tag, else ``think_tags``; text that
    mixes both families gets the family of its first marker.

    >>> detect_style("◁think▷hm◁/think▷A cat.")
    'kimi'
    >>> detect_style("hm</think><answer>A cat.")
    'glm'
    >>> detect_style("<think>hm</think>A cat.")
    'think_tags'
    >>> detect_style("A cat.")
    'none'
    """
    return _style_of(tuple(marker for marker, _, _ in _tokens(text)))


def think_markers(style: str) -> tuple[str, str]:
    """Opening and closing think markers of ``style`` (``glm``, ``kimi``, ``think_tags``).

    >>> think_markers("kimi") == (KIMI_OPEN, KIMI_CLOSE)
    True
    """
    if style not in _STYLE_THINK:
        raise ValueError(f"style {style!r} has no think markers; expected one of {tuple(_STYLE_THINK)}")
    return _STYLE_THINK[style]


def _clean(text: str, start: int, answer_tokens: Sequence[_Token]) -> str:
    """``text[start:]`` without the answer and box tags in ``answer_tokens``, stripped."""
    if not answer_tokens:
        return text[start:].strip()
    pieces = []
    for _, token_start, token_end in answer_tokens:
        pieces.append(text[start:token_start])
        start = token_end
    pieces.append(text[start:])
    return "".join(pieces).strip()


def _malformed(text: str, tokens: Sequence[_Token], markers: tuple, style: str, keep_raw: bool) -> _Fields:
    """The conservative split of a text that breaks its format (see the module docstring)."""
    closes = [index for index, marker in enumerate(markers) if marker in _CLOSERS]
    has_think = bool(closes) or not _OPENERS.isdisjoint(markers)
    if closes and _OPENERS.isdisjoint(markers[closes[-1] :]):
        think_region, start = text[: tokens[closes[-1]][1]], tokens[closes[-1]][2]
        answer_tokens = tokens[closes[-1] + 1 :]
    elif not has_think:
        think_region, start, answer_tokens = "", 0, tokens
    else:
        think_region, start, answer_tokens = text, len(text), ()
    think = think_region.strip()
    for opener in _OPENERS:
        if think.startswith(opener):
            think = think[len(opener) :].strip()
            break
    raw_answer = text[start:] if keep_raw else None
    return think, _clean(text, start, answer_tokens), "malformed", markers, style, raw_answer


def _answer_is_well_formed(text: str, start: int, answer_tokens: Sequence[_Token], names: tuple) -> tuple[bool, bool]:
    """Whether the answer tags ``names`` (at ``answer_tokens``, after ``start``) follow the format,
    and whether ``</answer>`` closes the answer; only blanks may sit outside ``<answer>…</answer>``.
    """
    closed = _ANSWER_TAG_SEQUENCES.get(names)
    if closed is None:
        return False, False
    if names and names[0] == ANSWER_OPEN and text[start : answer_tokens[0][1]].strip():
        return False, False
    if closed and text[answer_tokens[-1][2] :].strip():
        return False, False
    return True, closed


def split_reasoning(
    text: Optional[str],
    style: str = "auto",
    *,
    finish_reason: Optional[str] = None,
    keep_raw: bool = False,
) -> ReasoningSplit:
    """Split ``text`` into reasoning and answer; never raises on any string.

    ``style`` is ``"auto"`` (detect it) or one of :data:`STYLES`; with an explicit style,
    markers of another style make the text ``malformed``.  ``finish_reason`` is the engine's
    (``"stop"``, ``"length"``, ``None``); see the module docstring for every rule.

    >>> split_reasoning("The cat sleeps.<|end_of_box|></think>A cat.", "glm").status
    'malformed'
    >>> split_reasoning("hm</think><answer>A cat.</answer>", "glm", keep_raw=True).raw_answer
    '<answer>A cat.</answer>'
    >>> split_reasoning(None).status
    'missing'
    """
    _check_style(style, "auto")
    return ReasoningSplit(*_split_fields(text, style, finish_reason, keep_raw))


def _split_fields(text: Optional[str], style: str, finish_reason: Optional[str], keep_raw: bool) -> _Fields:
    """The fields of :func:`split_reasoning`'s result, as a tuple (``split_batch`` needs no object)."""
    if text is None:
        return ("", "", "missing", (), "none" if style == "auto" else style, "" if keep_raw else None)
    tokens = _tokens(text)
    markers = tuple([marker for marker, _, _ in tokens])
    if style == "auto":
        style = _style_of(markers)
    if not _STYLE_MARKERS[style].issuperset(markers) or style == "none" and markers:
        return _malformed(text, tokens, markers, style, keep_raw)
    opener, closer = _STYLE_THINK.get(style, (None, None))
    opens, closes = markers.count(opener), markers.count(closer)
    if opens == closes == 0:
        think, start = "", 0
    elif closes == 0 and opens == 1 and len(tokens) == 1 and not text[: tokens[0][1]].strip():
        return (text[tokens[0][2] :].strip(), "", "unclosed_think", markers, style, "" if keep_raw else None)
    elif closes == 1 and opens <= 1 and markers[opens] == closer and (not opens or not text[: tokens[0][1]].strip()):
        think, start = text[tokens[0][2] if opens else 0 : tokens[opens][1]].strip(), tokens[opens][2]
        tokens = tokens[opens + 1 :]
    else:
        return _malformed(text, tokens, markers, style, keep_raw)
    well_formed, closed = _answer_is_well_formed(text, start, tokens, markers[opens + closes :])
    answer = _clean(text, start, tokens)
    if not well_formed:
        status = "malformed"
    elif not answer:
        status = "empty_answer"
    elif not (opens or closes):
        status = "no_think"
    else:
        status = "malformed" if finish_reason == "length" and not closed else "ok"
    return think, answer, status, markers, style, text[start:] if keep_raw else None


def join_reasoning(think: str, answer: str, style: str) -> str:
    """Write ``think`` and ``answer`` in ``style``'s canonical form (inverse of :func:`split_reasoning`).

    Canonical forms: ``glm`` ``<think>\\n{think}</think><answer>{answer}</answer>``; ``kimi``
    ``◁think▷{think}◁/think▷{answer}``; ``think_tags`` ``<think>\\n{think}\\n</think>\\n\\n{answer}``;
    ``none`` ``{answer}`` (``think`` must then be empty).  For stripped, marker-free, non-empty
    ``think`` and ``answer``, ``split_reasoning(join_reasoning(t, a, s), s)`` gives back ``t``
    and ``a`` with status ``ok``, and joining that split gives back the same text.

    >>> join_reasoning("Fur.", "A cat.", "glm")
    '<think>\\nFur.</think><answer>A cat.</answer>'
    >>> split_reasoning(join_reasoning("Fur.", "A cat.", "think_tags")).answer
    'A cat.'
    """
    _check_style(style)
    if style == "none" and think:
        raise ValueError("style 'none' has no place for reasoning, but think is not empty")
    for name, part in (("think", think), ("answer", answer)):
        found = _tokens(part)
        if found:
            raise ValueError(f"{name} contains the marker {found[0][0]!r}; joining it would not split back")
    return _JOIN_FORMATS[style].format(think=think, answer=answer)


def split_batch(
    texts: Sequence[Optional[str]],
    style: str = "auto",
    finish_reasons: Optional[Sequence[Optional[str]]] = None,
) -> dict[str, list]:
    """Split a column of texts into ``think``, ``answer`` and ``status`` columns.

    Made for ``Dataset.map(batched=True)``: ``ds.map(lambda b: split_batch(b["raw"]), batched=True)``.
    ``None`` texts get status ``missing``.

    >>> split_batch(["◁think▷hm◁/think▷A cat.", None])
    {'think': ['hm', ''], 'answer': ['A cat.', ''], 'status': ['ok', 'missing']}
    """
    if finish_reasons is None:
        finish_reasons = [None] * len(texts)
    elif len(finish_reasons) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(finish_reasons)} finish reasons")
    _check_style(style, "auto")
    thinks, answers, statuses = [], [], []
    for text, finish_reason in zip(texts, finish_reasons, strict=True):
        think, answer, status, _, _, _ = _split_fields(text, style, finish_reason, False)
        thinks.append(think)
        answers.append(answer)
        statuses.append(status)
    return {"think": thinks, "answer": answers, "status": statuses}

