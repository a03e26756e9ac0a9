"""What a page of the viewer shows: filters, sort and page from the URL, applied to the index.

A :class:`Query` is parsed from the URL's query string (so a view can be shared) and written
back into links.  :func:`select` filters and sorts the rows of the corpus index (an Arrow table,
see :mod:`imagenet_think.view.corpus`) into a :class:`Selection`: the positions of the records in
order, and the records per status under every filter but ``status=`` itself.

Parameters: ``status=`` (repeatable: records where a pair has one of them; ``unknown``: a value
outside :data:`schema.STATUSES`, as a newer or foreign file may hold), ``teacher=``
(``glm``/``kimi`` or ``1``/``2``: status filter, text search and sort look at that pair only, and
records where it is ``missing`` are left out), ``wnid=``, ``q=`` (text search in reasoning and
answers, case-insensitive), ``split=``, ``sort=`` (``think``/``-think``: by reasoning length,
shortest/longest first; ``answer``/``-answer`` likewise; default: file order), ``page=`` (from 1)
and ``per_page=`` (ASCII digits only).

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
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Optional
from urllib.parse import urlencode

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think import schema

SORTS = {
    "": "file order",
    "-think": "longest reasoning first",
    "think": "shortest reasoning first",
    "-answer": "longest answer first",
    "answer": "shortest answer first",
}
"""``sort=`` values and what they mean.  Lengths are in characters; a record's length is the
longer of its pairs' (with ``teacher=``, that pair's)."""

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
            if name != "status" and len(values) > 1:
                raise QueryError(f"{name}= given {len(values)} times; give it once")
            single[name] = values[0].strip() if values else ""
        status = tuple(dict.fromkeys(s.strip() for value in params.get("status", ()) for s in value.split(",") if s.strip()))
        for value in status:
            if value not in STATUS_VALUES:
                raise QueryError(f"status={value!r}: not a status; use one of {', '.join(STATUS_VALUES)}")
        teacher = single.get("teacher", "")
        if teacher and teacher not in TEACHER_NUMBERS:
            raise QueryError(f"teacher={teacher!r}: use one of {', '.join(TEACHER_NUMBERS)}")
        sort = single.get("sort", "")
        if sort not in SORTS:
            raise QueryError(f"sort={sort!r}: use one of {', '.join(s for s in SORTS if s)} (or leave it out for file order)")
        if len(single.get("q", "")) > MAX_QUERY_CHARS:
            raise QueryError(f"q= is {len(single['q'])} characters long; at most {MAX_QUERY_CHARS}")
        return cls(
            status=status,
            teacher=TEACHER_NUMBERS[teacher] if teacher else None,
            wnid=single.get("wnid", ""),
            q=single.get("q", ""),
            split=single.get("split", ""),
            sort=sort,
            page=_positive(single, "page", 1, None),
            per_page=_positive(single, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
        )

    @property
    def pairs(self) -> tuple[int, ...]:
        """The pairs status filter, search and sort look at."""
        return (self.teacher,) if self.teacher else tuple(schema.TEACHER_NAMES)

    def params(self, **changes) -> dict[str, object]:
        """URL parameters of this query with ``changes`` applied; defaults are left out."""
        query = dataclasses.replace(self, **changes)
        values = {
            "status": ",".join(query.status),
            "teacher": schema.TEACHER_NAMES.get(query.teacher, ""),
            "wnid": query.wnid,
            "q": query.q,
            "split": query.split,
            "sort": query.sort,
            "page": query.page if query.page != 1 else "",
            "per_page": query.per_page if query.per_page != DEFAULT_PER_PAGE else "",
        }
        return {name: value for name, value in values.items() if value != ""}

    def to_url(self, path: str, **changes) -> str:
        """``path`` with this query (``changes`` applied) as its query string."""
        encoded = urlencode(self.params(**changes))
        return f"{path}?{encoded}" if encoded else path


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


def _base_mask(index: pa.Table, query: Query, text_match: Optional[np.ndarray]) -> np.ndarray:
    """Rows that pass every filter but ``status=``."""
    mask = np.ones(index.num_rows, dtype=bool)
    if query.split:
        mask &= _any([pc.equal(index["split"], query.split)])
    if query.wnid:
        mask &= _any([pc.equal(index["wnid"], query.wnid)])
    if query.teacher:
        mask &= _any([pc.not_equal(index[f"status_{query.teacher}"], "missing")])
    if text_match is not None:
        mask &= text_match
    return mask


@dataclasses.dataclass(frozen=True)
class Selection:
    """The records a query selects: their index positions in order, and the per-status counts
    over the records every filter but ``status=`` keeps (``before_status`` of them)."""

    positions: np.ndarray
    counts: dict[str, int]
    before_status: int

    @property
    def total(self) -> int:
        return len(self.positions)

    def page(self, query: Query) -> np.ndarray:
        """Positions of the records on the query's page (empty past the last page)."""
        first = (query.page - 1) * query.per_page
        return self.positions[first : first + query.per_page]


def select(index: pa.Table, query: Query, text_match: Optional[np.ndarray] = None) -> Selection:
    """Filter and sort the rows of ``index`` (a corpus index table); ``text_match`` is the
    text search's result, a boolean per row, computed by the caller.

    A record counts once for each status one of its pairs (or the ``teacher=`` pair) has;
    statuses in :data:`STATUS_VALUES` order, zeros left out.  Sorting is stable: equal
    lengths keep file order.
    """
    base = _base_mask(index, query, text_match)
    known = pa.array(schema.STATUSES)
    codes = [  # per pair, the status's place in STATUS_VALUES; unknown values and nulls the last
        pc.fill_null(pc.index_in(index[f"status_{p}"], value_set=known), len(schema.STATUSES)).to_numpy()
        for p in query.pairs
    ]
    statuses = {s: functools.reduce(np.logical_or, [c == k for c in codes]) & base for k, s in enumerate(STATUS_VALUES)}
    counts = {s: int(m.sum()) for s, m in statuses.items() if m.any()}
    mask = np.logical_or.reduce([statuses[s] for s in query.status]) if query.status else base
    positions = np.flatnonzero(mask)
    if query.sort:
        field = query.sort.lstrip("-")
        lengths = [pc.fill_null(index[f"{field}_chars_{p}"], 0).to_numpy() for p in query.pairs]
        key = np.maximum.reduce(lengths)[positions]
        positions = positions[np.argsort(-key if query.sort.startswith("-") else key, kind="stable")]
    return Selection(positions, counts, int(base.sum()))
