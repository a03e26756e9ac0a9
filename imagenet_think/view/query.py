"""What a page of the viewer shows: filters, sort and page from the URL, applied to the index.

A :class:`Query` is parsed from the URL's query string (so a view can be shared) and written
back into links.  :func:`select` filters and sorts the rows of the corpus index (an Arrow table,
see :mod:`imagenet_think.view.corpus`) into a :class:`Selection`: the positions of the records in
order, and the records per status (and per label check) under every filter but ``status=``
(``check=``) itself.  ``export --where QUERY`` reads the same query string
(:func:`parse_where`) and keeps the rows :func:`matches` keeps (:func:`where_mask`), so an export
holds exactly the records the viewer lists.

Parameters: ``status=`` (repeatable: records where a pair has one of them; ``unknown``: a value
outside :data:`schema.STATUSES`, as a newer or foreign file may hold), ``teacher=``
(``glm``/``kimi`` or ``1``/``2``: status, label check and finish reason filters, token count,
text search and sort look at that pair only, and records where it is ``missing`` are left out),
``wnid=``, ``q=`` (text search in reasoning and answers, case-insensitive), ``split=``,
``check=`` (repeatable, :data:`~imagenet_think.view.signals.LABEL_KINDS`: records where a pair's
answer has that label check), ``finish=`` (repeatable, :data:`FINISH_REASONS`: records where a
pair stopped so; ``none``: a pair without a recorded reason; ``other``: a reason outside the
list), ``agree_min=`` / ``agree_max=``
(bounds, inclusive, of the two answers' agreement, 0 to 1; records without two answers are
left out), ``tokens_min=`` / ``tokens_max=`` (bounds, inclusive, of the token count: the
larger of the pairs', or the ``teacher=`` pair's; records without one are left out),
``sort=`` (:data:`SORTS`; default: file order), ``page=`` (from 1) and ``per_page=``.  Numbers
are written in ASCII digits only.

>>> query = Query.from_params({"status": ["unclosed_think"], "teacher": ["kimi"], "page": ["2"]})
>>> query.pairs, query.to_url("/", page=3)
((2,), '/?status=unclosed_think&teacher=kimi&page=3')
>>> import pyarrow as pa
>>> index = pa.table({"id": ["a", "b", "c"], "wnid": ["n1", "n1", "n2"], "split": ["train"] * 3,
...     "status_1": ["ok", "unclosed_think", "ok"], "status_2": ["ok", "ok", "missing"],
...     "think_chars_1": [10, 500, 30], "think_chars_2": [20, 40, None]})
>>> select(index, Query(sort="-think")).positions.tolist(), select(index, Query(teacher=2)).positions.tolist()
([1, 2, 0], [0, 1])
>>> chosen = select(index, Query(status=("unclosed_think",)))
>>> chosen.positions.tolist(), chosen.counts, chosen.before_status
([1], {'ok': 3, 'unclosed_think': 1, 'missing': 1}, 3)
>>> index = index.append_column("num_tokens_1", pa.array([5, 900, None], pa.int32()))
>>> index = index.append_column("num_tokens_2", pa.array([7, 10, None], pa.int32()))
>>> matches(index, parse_where("tokens_min=7&tokens_max=900")).tolist()
[True, True, False]
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Optional
from urllib.parse import parse_qs, urlencode

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think import schema
from imagenet_think.view.signals import LABEL_KINDS

SORTS = {
    "": "file order",
    "-think": "longest reasoning first",
    "think": "shortest reasoning first",
    "-answer": "longest answer first",
    "answer": "shortest answer first",
    "-tokens": "most tokens first",
    "tokens": "fewest tokens first",
    "-agree": "answers agreeing most first",
    "agree": "answers agreeing least first",
}
"""``sort=`` values and what they mean.  Lengths are in characters; a record's length (and
token count) is the larger of its pairs' (with ``teacher=``, that pair's).  Records without a
token count or an agreement score come last either way."""

FINISH_REASONS = ("stop", "length", "abort", "content_filter", "tool_calls", "none", "other")
"""``finish=`` values: the engines' ``finish_reason`` (``length``: cut at the token limit),
``none`` for a pair without one (the published copy records none), and ``other`` for a reason
outside this list (as a newer engine or a foreign file may write; the record page shows it)."""

_NAMED_FINISH_REASONS = FINISH_REASONS[:-2]

SIGNAL_SORTS = ("agree", "-agree")
"""Sorts that need the :mod:`~imagenet_think.view.signals` columns."""

VIEW_ONLY = ("sort", "page", "per_page")
"""Parameters that arrange the viewer's pages rather than choose records (not taken by ``--where``)."""

UNKNOWN_STATUS = "unknown"
"""The ``status=`` value and count of statuses outside :data:`schema.STATUSES` (and of none)."""
STATUS_VALUES = (*schema.STATUSES, UNKNOWN_STATUS)

DEFAULT_PER_PAGE = 48
MAX_PER_PAGE = 500
MAX_QUERY_CHARS = 500

TEACHER_NUMBERS = {**{name: pair for pair, name in schema.TEACHER_NAMES.items()}, **{str(p): p for p in schema.TEACHER_NAMES}}
"""``teacher=`` values: ``glm``/``kimi`` or the pair number."""


class QueryError(ValueError):
    """A URL parameter the viewer does not know, or a value it cannot use."""


@dataclasses.dataclass(frozen=True)
class Query:
    """Filters, sort and page of one view; defaults show every record in file order."""

    status: tuple[str, ...] = ()
    teacher: Optional[int] = None
    wnid: str = ""
    q: str = ""
    split: str = ""
    check: tuple[str, ...] = ()
    finish: tuple[str, ...] = ()
    agree_min: Optional[float] = None
    agree_max: Optional[float] = None
    tokens_min: Optional[int] = None
    tokens_max: Optional[int] = None
    sort: str = ""
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> "Query":
        """Parse ``urllib.parse.parse_qs`` output; raises :class:`QueryError` naming the bad parameter.

        >>> Query.from_params({"status": ["done"]})
        Traceback (most recent call last):
        ...
        imagenet_think.view.query.QueryError: status='done': not a status; use one of ok, no_think, ...
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise QueryError(f"unknown parameter {unknown[0]!r}; the viewer takes {', '.join(sorted(fields))}")
        single = {}
        for name, values in params.items():
            if name not in REPEATABLE and len(values) > 1:
                raise QueryError(f"{name}= given {len(values)} times; give it once")
            single[name] = values[0].strip() if values else ""
        status = _choices(params, "status", STATUS_VALUES, "a status")
        teacher = single.get("teacher", "")
        if teacher and teacher not in TEACHER_NUMBERS:
            raise QueryError(f"teacher={teacher!r}: use one of {', '.join(TEACHER_NUMBERS)}")
        sort = single.get("sort", "")
        if sort not in SORTS:
            raise QueryError(f"sort={sort!r}: use one of {', '.join(s for s in SORTS if s)} (or leave it out for file order)")
        if len(single.get("q", "")) > MAX_QUERY_CHARS:
            raise QueryError(f"q= is {len(single['q'])} characters long; at most {MAX_QUERY_CHARS}")
        agree = _bounds(single, "agree", _fraction)
        tokens = _bounds(single, "tokens", _count)
        return cls(
            status=status,
            teacher=TEACHER_NUMBERS[teacher] if teacher else None,
            wnid=single.get("wnid", ""),
            q=single.get("q", ""),
            split=single.get("split", ""),
            check=_choices(params, "check", LABEL_KINDS, "a label check"),
            finish=_choices(params, "finish", FINISH_REASONS, "a finish reason"),
            agree_min=agree[0],
            agree_max=agree[1],
            tokens_min=tokens[0],
            tokens_max=tokens[1],
            sort=sort,
            page=_positive(single, "page", 1, None),
            per_page=_positive(single, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
        )

    @property
    def pairs(self) -> tuple[int, ...]:
        """The pairs status filter, search and sort look at."""
        return (self.teacher,) if self.teacher else tuple(schema.TEACHER_NAMES)

    @property
    def needs_signals(self) -> bool:
        """Whether this query filters or sorts on the :mod:`~imagenet_think.view.signals` columns.

        >>> Query(check=("missed",)).needs_signals, Query(tokens_min=10).needs_signals
        (True, False)
        """
        return bool(self.check) or self.agree_min is not None or self.agree_max is not None or self.sort in SIGNAL_SORTS

    def without_signals(self) -> "Query":
        """This query less what :attr:`needs_signals`, from its first page.

        >>> Query(check=("missed",), sort="-agree", q="dog", page=3).without_signals().where()
        'q=dog'
        """
        sort = "" if self.sort in SIGNAL_SORTS else self.sort
        return dataclasses.replace(self, check=(), agree_min=None, agree_max=None, sort=sort, page=1)

    def page_count(self, total: int) -> int:
        """Pages of :attr:`per_page` records that ``total`` records fill (the last one partly; at least one).

        >>> Query(per_page=48).page_count(97), Query(per_page=48).page_count(96), Query().page_count(0)
        (3, 2, 1)
        """
        return max(1, -(-total // self.per_page))

    def params(self, **changes) -> dict[str, object]:
        """URL parameters of this query with ``changes`` applied; defaults are left out.

        >>> Query(check=("named", "hedged"), tokens_max=300, page=2).params(page=1, agree_min=0.25)
        {'check': 'named,hedged', 'agree_min': '0.25', 'tokens_max': '300'}
        """
        values = {**self._url_values, **{name: _url_value(name, value) for name, value in changes.items()}}
        return {name: value for name, value in values.items() if value != ""}

    @functools.cached_property
    def _url_values(self) -> dict[str, object]:
        """Every field as the URL writes it, ``""`` for a default (kept: pages build many links)."""
        return {f.name: _url_value(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_url(self, path: str, **changes) -> str:
        """``path`` with this query (``changes`` applied) as its query string."""
        encoded = urlencode(self.params(**changes), safe=",")
        return f"{path}?{encoded}" if encoded else path

    def where(self) -> str:
        """The query string ``export --where`` takes for the records of this view: every
        filter, nothing of :data:`VIEW_ONLY`.

        >>> Query(status=("ok",), q="red fox", sort="-think", page=3).where()
        'status=ok&q=red+fox'
        """
        return urlencode(self.params(sort="", page=1, per_page=DEFAULT_PER_PAGE), safe=",")


REPEATABLE = ("status", "check", "finish")
"""Parameters that may be given several times (or as a comma-separated list)."""


def _url_value(name: str, value: object) -> object:
    """A field of :class:`Query` as its URL parameter writes it; ``""`` for the default."""
    if name in REPEATABLE:
        return ",".join(value)
    if name == "teacher":
        return schema.TEACHER_NAMES.get(value, "")
    if name in ("page", "per_page"):
        return "" if value == {"page": 1, "per_page": DEFAULT_PER_PAGE}[name] else value
    if name.endswith(("_min", "_max")):
        return _text(value)
    return value


def _choices(params: Mapping[str, Sequence[str]], name: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """The values of a :data:`REPEATABLE` parameter, each checked against ``allowed``."""
    values = tuple(dict.fromkeys(v.strip() for value in params.get(name, ()) for v in value.split(",") if v.strip()))
    for value in values:
        if value not in allowed:
            raise QueryError(f"{name}={value!r}: not {what}; use one of {', '.join(allowed)}")
    return values


def _fraction(name: str, text: str) -> float:
    if not re.fullmatch(r"[0-9]*\.?[0-9]+|[0-9]+\.", text) or float(text) > 1:
        raise QueryError(f"{name}={text!r}: give a number from 0 to 1, such as 0.25")
    return float(text)


def _count(name: str, text: str) -> int:
    if not re.fullmatch("[0-9]{1,12}", text):
        raise QueryError(f"{name}={text!r}: give a whole number from 0")
    return int(text)


def _bounds(single: Mapping[str, str], stem: str, parse) -> tuple:
    """``(stem_min, stem_max)`` parsed with ``parse``; ``None`` where not given."""
    low, high = (parse(f"{stem}_{end}", single[f"{stem}_{end}"]) if single.get(f"{stem}_{end}") else None for end in ("min", "max"))
    if low is not None and high is not None and low > high:
        raise QueryError(f"{stem}_min={_text(low)} is above {stem}_max={_text(high)}")
    return low, high


def _text(value: Optional[float]) -> str:
    """A bound as the URL writes it: ``""`` for none, ``0.25``, ``1``, ``300``."""
    return "" if value is None else repr(value).removesuffix(".0")


def parse_where(text: str) -> Query:
    """The records ``export --where TEXT`` keeps: ``TEXT`` is a viewer URL's query string
    (``status=ok&teacher=kimi&q=dog``), or the whole URL; :data:`VIEW_ONLY` parameters are
    refused, since an export keeps every matching record in file order.

    >>> parse_where("http://127.0.0.1:8000/?teacher=kimi&q=red+fox").q
    'red fox'
    >>> parse_where("status=ok&sort=-think")
    Traceback (most recent call last):
    ...
    imagenet_think.view.query.QueryError: sort= arranges the viewer's pages; an export keeps every matching record in file order: leave it out
    """
    text = text.strip()
    if "?" in text:  # a URL copied from the browser
        text = text.split("?", 1)[1]
    params = parse_qs(text, keep_blank_values=True)
    for name in VIEW_ONLY:
        if name in params:
            raise QueryError(f"{name}= arranges the viewer's pages; an export keeps every matching record in file order: leave it out")
    keys = [f.name for f in dataclasses.fields(Query) if f.name not in VIEW_ONLY]
    unknown = sorted(set(params) - set(keys))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; use {', '.join(keys)}")
    return Query.from_params(params)


def _positive(single: Mapping[str, str], name: str, default: int, maximum: Optional[int]) -> int:
    text = single.get(name, "")
    if not text:
        return default
    if not re.fullmatch("[0-9]{1,18}", text) or int(text) < 1:  # str.isdigit takes "²" and "٣" too
        raise QueryError(f"{name}={text!r}: give a whole number from 1")
    if maximum is not None and int(text) > maximum:
        raise QueryError(f"{name}={text}: at most {maximum}")
    return int(text)


def _any(masks: list[pa.ChunkedArray]) -> np.ndarray:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_kleene(result, mask)
    return pc.fill_null(result, False).to_numpy(zero_copy_only=False)


def _value_masks(
    index: pa.Table, query: Query, field: str, values: Sequence[str], rest: str = ""
) -> dict[str, np.ndarray]:
    """Per value of ``values``: the rows where one of the query's pairs has ``field`` (the
    column ``FIELD_P``) equal to it; with ``rest``, under that name too the rows where a pair
    has a value outside ``values`` or none.  One ``index_in`` per pair for all the values.

    >>> index = pa.table({"status_1": ["ok", "timeout"], "status_2": ["ok", None]})
    >>> {k: v.tolist() for k, v in _value_masks(index, Query(), "status", ("ok", "missing"), "unknown").items()}
    {'ok': [True, False], 'missing': [False, False], 'unknown': [False, True]}
    """
    codes = [  # per pair, each row's value as its place in values; others and nulls: len(values)
        pc.fill_null(pc.index_in(index[f"{field}_{p}"], value_set=pa.array(values, pa.string())), len(values)).to_numpy()
        for p in query.pairs
    ]
    names = (*values, rest) if rest else tuple(values)
    return {name: functools.reduce(np.logical_or, [c == k for c in codes]) for k, name in enumerate(names)}


def _finished(index: pa.Table, pair: int, reasons: Sequence[str]) -> pa.ChunkedArray:
    """Rows whose pair ``pair`` stopped for one of ``reasons`` (``none``: exists, no reason
    recorded; ``other``: a reason outside :data:`FINISH_REASONS`).

    >>> index = pa.table({"finish_reason_1": ["stop", "eos_token", None], "status_1": ["ok"] * 3})
    >>> [_finished(index, 1, [r]).to_pylist() for r in ("stop", "other", "none")]
    [[True, False, False], [False, True, False], [False, False, True]]
    """
    column = index[f"finish_reason_{pair}"]
    mask = pc.is_in(column, pa.array([r for r in reasons if r in _NAMED_FINISH_REASONS], pa.string()))
    if "none" in reasons:
        mask = pc.or_(mask, pc.and_(pc.is_null(column), pc.not_equal(index[f"status_{pair}"], "missing")))
    if "other" in reasons:
        mask = pc.or_(mask, pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, pa.array(_NAMED_FINISH_REASONS)))))
    return mask


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column as floats, NaN for null."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _larger(index: pa.Table, query: Query, field: str) -> np.ndarray:
    """Per row: the larger ``field`` of the query's pairs; NaN where every one is null."""
    return np.fmax.reduce([_numbers(index[f"{field}_{p}"]) for p in query.pairs])


def _within(values: np.ndarray, low: Optional[float], high: Optional[float]) -> np.ndarray:
    keep = ~np.isnan(values)
    if low is not None:
        keep &= values >= low
    if high is not None:
        keep &= values <= high
    return keep


def _masks(
    index: pa.Table, query: Query, text_match: Optional[np.ndarray], by_value: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None
) -> dict[str, np.ndarray]:
    """The rows each filter of ``query`` keeps, by parameter (filters not in use left out);
    ``by_value``: the :func:`_value_masks` of ``status`` and ``check`` when already computed."""
    masks = {}
    if query.split:
        masks["split"] = _any([pc.equal(index["split"], query.split)])
    if query.wnid:
        masks["wnid"] = _any([pc.equal(index["wnid"], query.wnid)])
    if query.teacher:
        masks["teacher"] = _any([pc.not_equal(index[f"status_{query.teacher}"], "missing")])
    if text_match is not None:
        masks["q"] = text_match
    if query.finish:
        masks["finish"] = _any([_finished(index, p, query.finish) for p in query.pairs])
    if query.agree_min is not None or query.agree_max is not None:
        masks["agree"] = _within(_numbers(index["agreement"]), query.agree_min, query.agree_max)
    if query.tokens_min is not None or query.tokens_max is not None:
        masks["tokens"] = _within(_larger(index, query, "num_tokens"), query.tokens_min, query.tokens_max)
    for name, values, rest in (("status", schema.STATUSES, UNKNOWN_STATUS), ("check", LABEL_KINDS, "")):
        chosen = getattr(query, name)
        if chosen:
            value_masks = (by_value or {}).get(name) or _value_masks(index, query, name, values, rest)
            masks[name] = np.logical_or.reduce([value_masks[v] for v in chosen])
    return masks


def _all(masks: Mapping[str, np.ndarray], rows: int, leave_out: str = "") -> np.ndarray:
    """Rows every mask but ``leave_out`` keeps."""
    kept = np.ones(rows, dtype=bool)
    for name, mask in masks.items():
        if name != leave_out:
            kept &= mask
    return kept


def matches(index: pa.Table, query: Query, text_match: Optional[np.ndarray] = None) -> np.ndarray:
    """Per row of ``index``: whether every filter of ``query`` keeps it (what :func:`select`
    lists, before sorting); ``text_match`` is the text search's result (see :func:`select`).

    ``index`` holds the columns the filters read: ``status_P``, ``wnid``, ``split``,
    ``finish_reason_P``, ``num_tokens_P``, and with :attr:`Query.needs_signals` the
    :data:`~imagenet_think.view.signals.SIGNAL_SCHEMA` columns.
    """
    return _all(_masks(index, query, text_match), index.num_rows)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The records a query selects: their index positions in order, and the per-status counts
    over the records every filter but ``status=`` keeps (``before_status`` of them); when the
    index holds the label checks, the same per label check under every filter but ``check=``."""

    positions: np.ndarray
    counts: dict[str, int]
    before_status: int
    check_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    before_check: int = 0

    @property
    def total(self) -> int:
        return len(self.positions)

    def page(self, query: Query) -> np.ndarray:
        """Positions of the records on the query's page (empty past the last page)."""
        first = (query.page - 1) * query.per_page
        return self.positions[first : first + query.per_page]


def _counts(value_masks: Mapping[str, np.ndarray], base: np.ndarray) -> dict[str, int]:
    """Rows of ``base`` per value (:func:`_value_masks`), zeros left out."""
    counted = {v: int(np.count_nonzero(mask & base)) for v, mask in value_masks.items()}
    return {v: n for v, n in counted.items() if n}


def _sort_key(index: pa.Table, query: Query) -> np.ndarray:
    field = query.sort.lstrip("-")
    if field == "agree":
        return _numbers(index["agreement"])
    if field == "tokens":
        return _larger(index, query, "num_tokens")
    return np.maximum.reduce([pc.fill_null(index[f"{field}_chars_{p}"], 0).to_numpy() for p in query.pairs])


def select(index: pa.Table, query: Query, text_match: Optional[np.ndarray] = None) -> Selection:
    """Filter and sort the rows of ``index`` (a corpus index table); ``text_match`` is the
    text search's result, a boolean per row, computed by the caller.

    A record counts once for each status one of its pairs (or the ``teacher=`` pair) has;
    statuses in :data:`STATUS_VALUES` order, zeros left out; label checks likewise.  Sorting
    is stable: equal keys keep file order, records without a key come last.
    """
    by_value = {"status": _value_masks(index, query, "status", schema.STATUSES, rest=UNKNOWN_STATUS)}
    if "check_1" in index.column_names:
        by_value["check"] = _value_masks(index, query, "check", LABEL_KINDS)
    masks = _masks(index, query, text_match, by_value)
    base = _all(masks, index.num_rows, leave_out="status")
    counts = _counts(by_value["status"], base)
    check_counts, before_check = {}, 0
    if "check" in by_value:
        check_base = _all(masks, index.num_rows, leave_out="check")
        check_counts, before_check = _counts(by_value["check"], check_base), int(check_base.sum())
    positions = np.flatnonzero(_all(masks, index.num_rows))
    if query.sort:
        key = _sort_key(index, query)[positions]
        positions = positions[np.argsort(-key if query.sort.startswith("-") else key, kind="stable")]  # NaN last
    return Selection(positions, counts, int(base.sum()), check_counts, before_check)


def search_columns(pairs: Sequence[int]) -> tuple[str, ...]:
    """The text columns ``q=`` searches: reasoning and answer of each of ``pairs``."""
    return tuple(f"{field}_{p}" for p in pairs for field in ("think", "answer"))


def text_hits(table: pa.Table, text: str, columns: Sequence[str]) -> np.ndarray:
    """Per row of ``table``: whether one of ``columns`` contains ``text``, ignoring case.

    >>> text_hits(pa.table({"a": ["A Red fox", None], "b": ["x", "red"]}), "RED", ["a"]).tolist()
    [True, False]
    """
    hits = [pc.fill_null(pc.match_substring(table[c], text, ignore_case=True), False) for c in columns]
    return np.logical_or.reduce([h.to_numpy(zero_copy_only=False) for h in hits])


SNIPPET_CONTEXT = 70
"""Characters of context :func:`hit_snippet` keeps on each side of a match (whole words)."""


def hit_snippet(texts: Mapping[str, Optional[str]], text: str, columns: Sequence[str]) -> Optional[dict[str, str]]:
    """Where the text search ``text`` hit a record: the first of ``columns`` (of ``texts``)
    containing it, ignoring case, as ``{"field", "before", "match", "after"}`` with about
    :data:`SNIPPET_CONTEXT` characters of context cut at word boundaries (``…`` where cut) and
    whitespace runs made single spaces; ``None`` when no column contains it.

    >>> hit_snippet({"think_1": "No.", "answer_1": "It is a RED fox."}, "red", ["think_1", "answer_1"])
    {'field': 'answer_1', 'before': 'It is a ', 'match': 'RED', 'after': ' fox.'}
    >>> hit_snippet({"answer_1": "x " * 100 + "fox " + "y " * 100}, "fox", ["answer_1"])["before"][:4]
    '… x '
    """
    pattern = re.compile(re.escape(text), re.IGNORECASE)
    for column in columns:
        found = pattern.search(texts.get(column) or "")
        if found is None:
            continue
        whole = texts[column]
        start, end = found.span()
        before = whole[max(0, start - SNIPPET_CONTEXT) : start]
        after = whole[end : end + SNIPPET_CONTEXT]
        if start > SNIPPET_CONTEXT:  # cut: leave out the word cut in two
            words = before.split(None, 1)
            before = "… " + (words[1] if len(words) > 1 else before)
        if end + SNIPPET_CONTEXT < len(whole):
            words = after.rsplit(None, 1)
            after = (words[0] if len(words) > 1 else after) + " …"
        return {"field": column, "before": _spaced(before), "match": _spaced(whole[start:end]), "after": _spaced(after)}
    return None


def _spaced(text: str) -> str:
    """Runs of whitespace as single spaces (ends kept as a space)."""
    return re.sub(r"\s+", " ", text)


def keep_where(batches: Iterable[pa.Table], query: Query, split: str, limit: Optional[int] = None) -> Iterator[pa.Table]:
    """The rows of ``batches`` (``default``-config records of the split ``split``) that the
    viewer lists under ``query`` (:func:`where_mask`), the first ``limit`` of them at most;
    batches left empty are dropped, and none is read once ``limit`` rows are kept.

    >>> table = pa.table({"wnid": ["n1", "n2", "n3"], "status_1": ["ok", "malformed", "malformed"], "status_2": ["ok"] * 3,
    ...     "think_1": [""] * 3, "answer_1": [""] * 3, "think_2": [""] * 3, "answer_2": [""] * 3})
    >>> [b["wnid"].to_pylist() for b in keep_where([table, table], parse_where("status=malformed"), "train", limit=3)]
    [['n2', 'n3'], ['n2']]
    """
    kept = 0
    for batch in batches:
        batch = batch.filter(pa.array(where_mask(batch, query, split)))
        batch = batch if limit is None else batch.slice(0, limit - kept)
        kept += batch.num_rows
        if batch.num_rows:
            yield batch
        if limit is not None and kept >= limit:
            return


def where_mask(table: pa.Table, query: Query, split: str) -> np.ndarray:
    """Per row of ``table`` (``default``-config records of the split ``split``): whether the
    viewer lists it under ``query`` (:func:`matches`, with the text search of :func:`text_hits`
    and the signals of :func:`~imagenet_think.view.signals.signal_table` computed here).

    >>> table = pa.table({"wnid": ["n1", "n2"], "status_1": ["ok", "ok"], "status_2": ["ok", "malformed"],
    ...     "think_1": ["", ""], "answer_1": ["A red fox.", "A cat."], "think_2": ["", ""], "answer_2": ["", ""]})
    >>> where_mask(table, parse_where("status=malformed"), "train").tolist(), where_mask(table, parse_where("q=FOX"), "train").tolist()
    ([False, True], [True, False])
    """
    index = table
    if query.split:
        index = index.append_column("split", pa.array([split] * table.num_rows, pa.string()))
    if query.needs_signals:
        from imagenet_think.view.signals import signal_table

        signals = signal_table(table)
        for name in signals.column_names:
            index = index.append_column(name, signals[name])
    hits = text_hits(table, query.q, search_columns(query.pairs)) if query.q else None
    return matches(index, query, hits)
