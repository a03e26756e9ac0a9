"""HTML of the viewer's pages: the record list and one record.

Every text from the corpus goes through :func:`html.escape`; the pages load only the bundled
``static/view.css`` and ``static/view.js`` (no CDN), and work without JavaScript.

The answers of the two teachers are shown side by side with the content words they share
marked (:func:`mark_shared`); the score next to them is the Jaccard index of their word sets,
:func:`imagenet_think.quality.agreement`.  The label check is
:func:`imagenet_think.quality.mentions_label`.

>>> mark_shared("A <b>red</b> fox.", "The fox is red")
'A &lt;b&gt;<mark>red</mark>&lt;/b&gt; <mark>fox</mark>.'
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional
from urllib.parse import quote

from imagenet_think import schema
from imagenet_think.view.query import SORTS, Query, Selection

UNMARKED_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with".split()
)
"""Function words left unmarked in :func:`mark_shared` (the agreement score still counts them)."""


def e(value: Any) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def record_url(record_id: str, query: Optional[Query] = None, **changes) -> str:
    """URL of a record page; the list's query rides along for previous/next links.

    >>> record_url("a/b c")
    '/record/a%2Fb%20c'
    """
    path = "/record/" + quote(record_id, safe="")
    return query.to_url(path, **changes) if query else path


def asset_url(kind: str, record_id: str) -> str:
    """URL of a record's ``image`` (stored bytes) or ``thumb`` (thumbnail)."""
    return f"/{kind}/" + quote(record_id, safe="")


def mark_shared(text: str, other: str) -> str:
    """``text`` as HTML with the words that also occur in ``other`` wrapped in ``<mark>``
    (the tokens of the agreement score, :mod:`imagenet_think.text`; :data:`UNMARKED_WORDS` and
    single ASCII characters never marked).

    >>> mark_shared("一只猫 on a mat", "猫 on the mat")
    '一只<mark>猫</mark> on a <mark>mat</mark>'
    """
    from imagenet_think.text import word_spans, word_tokens

    shared = {
        w for w in set(word_tokens(text)) & set(word_tokens(other))
        if (len(w) > 1 or not w.isascii()) and w not in UNMARKED_WORDS
    }
    out, last = [], 0
    for start, end in word_spans(text):
        if text[start:end].lower() in shared:
            out.append(e(text[last:start]) + f"<mark>{e(text[start:end])}</mark>")
            last = end
    out.append(e(text[last:]))
    return "".join(out)


def badge(status: Optional[str], prefix: str = "") -> str:
    """A status as a coloured label."""
    name = status or "unknown"
    return f'<span class="badge s-{e(name)}" title="status {e(name)}">{e(prefix)}{e(name)}</span>'


def _number(value: Optional[int]) -> str:
    return "–" if value is None else f"{value:,}"


def document(title: str, body: str, source: str, problems: Sequence[str] = (), page: str = "") -> str:
    """A whole HTML page around ``body``; ``problems`` (files that could not be read) as a banner."""
    banner = "".join(f'<p class="problem">skipped: {e(p)}</p>' for p in problems)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · ImageNet-Think</title>
<link rel="stylesheet" href="/static/view.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<script src="/static/view.js" defer></script>
</head>
<body data-page="{e(page)}">
<header class="top"><a class="brand" href="/">ImageNet-Think</a><span class="source" title="source">{e(source)}</span></header>
{banner}<main>
{body}
</main>
</body>
</html>
"""


def _options(values: Mapping[str, str], selected: str) -> str:
    return "".join(
        f'<option value="{e(v)}"{" selected" if v == selected else ""}>{e(label)}</option>' for v, label in values.items()
    )


def _filters(query: Query, splits: Sequence[str]) -> str:
    teachers = {"": "both teachers", **{name: f"{name} (pair {p})" for p, name in schema.TEACHER_NAMES.items()}}
    statuses = {"": "any status", **{s: s for s in schema.STATUSES}}
    if len(query.status) > 1:  # several statuses come from a shared URL; keep them selectable
        statuses[",".join(query.status)] = " or ".join(query.status)
    per_page = f'<input type="hidden" name="per_page" value="{query.per_page}">' if "per_page" in query.params() else ""
    split = (
        f'<label>split <select name="split">{_options({"": "all", **{s: s for s in splits}}, query.split)}</select></label>'
        if len(splits) > 1 or query.split
        else ""
    )
    return f"""<form class="filters" method="get" action="/">
<input type="search" name="q" value="{e(query.q)}" placeholder="search reasoning and answers" aria-label="text search">
<select name="status" aria-label="status">{_options(statuses, ",".join(query.status))}</select>
<select name="teacher" aria-label="teacher">{_options(teachers, schema.TEACHER_NAMES.get(query.teacher, ""))}</select>
<select name="sort" aria-label="sort">{_options(SORTS, query.sort)}</select>
<input type="text" name="wnid" value="{e(query.wnid)}" placeholder="wnid" size="10" aria-label="wnid">
{split}{per_page}<button type="submit">Apply</button> <a class="reset" href="/">reset</a>
</form>"""


def _chips(query: Query, counts: Mapping[str, int], total: int) -> str:
    current = set(query.status)
    chips = [f'<a class="chip{"" if current else " on"}" href="{e(query.to_url("/", status=(), page=1))}">all <b>{total:,}</b></a>']
    for status, count in counts.items():
        on = " on" if status in current else ""
        url = query.to_url("/", status=(status,), page=1)
        chips.append(f'<a class="chip s-{e(status)}{on}" href="{e(url)}">{e(status)} <b>{count:,}</b></a>')
    whose = f"pair {query.teacher}" if query.teacher else "either pair"
    return f'<nav class="chips" aria-label="records per status ({whose})">{"".join(chips)}</nav>'


def _pager(query: Query, total: int) -> str:
    pages = max(1, -(-total // query.per_page))
    first = (query.page - 1) * query.per_page
    shown = f"{first + 1:,}–{min(first + query.per_page, total):,} of {total:,}" if first < total else f"none of {total:,}"
    links = []
    if query.page > 1:
        links.append(f'<a rel="prev" href="{e(query.to_url("/", page=query.page - 1))}">← previous</a>')
    numbers = sorted({1, pages, *range(max(1, query.page - 2), min(pages, query.page + 2) + 1)})
    last = 0
    for number in numbers:
        if number > last + 1:
            links.append('<span class="gap">…</span>')
        cls = ' class="here" aria-current="page"' if number == query.page else ""
        links.append(f'<a{cls} href="{e(query.to_url("/", page=number))}">{number}</a>')
        last = number
    if query.page < pages:
        links.append(f'<a rel="next" href="{e(query.to_url("/", page=query.page + 1))}">next →</a>')
    return f'<nav class="pager"><span class="shown">records {shown}</span> {" ".join(links)}</nav>'


def _card(row: Mapping[str, Any], query: Query) -> str:
    pairs = []
    for pair, name in schema.TEACHER_NAMES.items():
        think = row.get(f"think_chars_{pair}")
        pairs.append(
            f'<li>{badge(row[f"status_{pair}"], name + " ")} <span class="len" title="reasoning length">'
            f"{_number(think)} ch</span></li>"
        )
    label = row["label"] or row["wnid"] or "no label"
    return f"""<article class="card" data-id="{e(row["id"])}">
<a class="thumb" href="{e(record_url(row["id"], query))}"><img src="{e(asset_url("thumb", row["id"]))}" alt="" loading="lazy" width="240" height="240"></a>
<div class="card-body">
<a class="record-id" href="{e(record_url(row["id"], query))}">{e(row["id"])}</a>
<a class="label" href="{e(query.to_url("/", wnid=row["wnid"], page=1))}" title="{e(row["wnid"])}">{e(label)}</a>
<ul class="pairs">{"".join(pairs)}</ul>
</div>
</article>"""


def list_page(
    source: str,
    query: Query,
    rows: Sequence[Mapping[str, Any]],
    selection: Selection,
    splits: Sequence[str],
    problems: Sequence[str] = (),
) -> str:
    """The paged record grid (``rows`` are the index rows of the page) under the filter form
    and the per-status counts."""
    if rows:
        empty = ""
    elif not splits:  # a regenerate output before its first file
        empty = '<p class="empty">No rows written yet: reload to see them as the run writes its files.</p>'
    else:
        empty = '<p class="empty">No records here. <a href="/">Show all records</a>.</p>'
    cards = "\n".join(_card(row, query) for row in rows)
    pager = _pager(query, selection.total)
    body = f"""{_filters(query, splits)}
{_chips(query, selection.counts, selection.before_status)}
{pager}
<section class="grid">
{cards}
</section>
{empty}{pager}
<p class="keys"><kbd>/</kbd> search · <kbd>←</kbd> <kbd>→</kbd> previous and next page</p>"""
    return document("records", body, source, problems, page="list")


def _check(verdict: Optional[bool]) -> str:
    if verdict is None:
        return '<span class="check unknown" title="the class has no WordNet lemmas to look for">class unknown</span>'
    if verdict:
        return '<span class="check yes">✓ names the class</span>'
    return '<span class="check no">✗ does not name the class</span>'


def _generation(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return '<p class="muted">no generation record (published copy)</p>'
    parts = []
    for entry in entries:
        try:
            sampling = json.dumps(json.loads(entry.get("sampling") or "{}"), indent=2, ensure_ascii=False)
        except ValueError:
            sampling = entry.get("sampling") or ""
        raw = entry.get("raw") or ""
        parts.append(
            f"""<dl class="facts small">
<dt>engine</dt><dd>{e(entry.get("engine") or "–")}</dd>
<dt>revision</dt><dd>{e(entry.get("revision") or "–")}</dd>
<dt>sampling</dt><dd><pre class="json">{e(sampling)}</pre></dd>
</dl>
<details class="raw"><summary>raw output · {len(raw):,} characters</summary><pre class="text">{e(raw)}</pre></details>"""
        )
    return "".join(parts)


def record_page(
    source: str,
    record: Mapping[str, Any],
    image: Mapping[str, Any],
    query: Query,
    place: tuple[Optional[int], int, Optional[str], Optional[str]],
    problems: Sequence[str] = (),
) -> str:
    """One record: image, facts, then per pair its model, status, reasoning, answer and generation.

    ``image`` is ``{"path", "bytes", "format"}`` (sizes only); ``place`` is ``(index of the record
    in the query's selection or None, selection size, previous id, next id)``.
    """
    from imagenet_think.quality import agreement, mentions_label

    k, total, previous, following = place
    nav = [f'<a rel="up" href="{e(query.to_url("/", page=(k // query.per_page) + 1 if k is not None else query.page))}">↑ list</a>']
    nav.append(f'<span class="shown">record {k + 1:,} of {total:,}</span>' if k is not None else '<span class="shown">not in this selection</span>')
    if previous is not None:
        nav.append(f'<a rel="prev" href="{e(record_url(previous, query))}">← previous</a>')
    if following is not None:
        nav.append(f'<a rel="next" href="{e(record_url(following, query))}">next →</a>')
    pairs = list(schema.TEACHER_NAMES)
    answers = {p: record.get(f"answer_{p}") or "" for p in pairs}
    if all(answers.values()):
        score = agreement([answers[1]], [answers[2]])[0]
        agree = f'{score:.2f} <span class="muted">Jaccard index of the two answers\' word sets; shared words are marked</span>'
    else:
        agree = '– <span class="muted">needs two non-empty answers</span>'
    checks = " ".join(
        f'<span class="who">{e(schema.TEACHER_NAMES[p])}</span> '
        + (
            _check(mentions_label(record["wnid"] or "", answers[p], label=record["label"] or ""))
            if answers[p]
            else '<span class="check unknown">no answer</span>'
        )
        for p in pairs
    )
    size = image.get("bytes")
    caption = f'{e(image.get("path") or "no file name")} · {_number(size)} bytes · {e(image.get("format") or "unknown format")}'
    head = f"""<nav class="recnav">{" ".join(nav)}</nav>
<section class="record-head">
<figure class="full"><a href="{e(asset_url("image", record["id"]))}"><img id="record-image" src="{e(asset_url("image", record["id"]))}" alt="image of record {e(record["id"])}"></a><figcaption>{caption}</figcaption></figure>
<div class="about">
<h1 class="record-id">{e(record["id"])}</h1>
<dl class="facts">
<dt>class</dt><dd><a href="{e(query.to_url("/", wnid=record["wnid"], page=1))}">{e(record["label"] or "no label")}</a> <code>{e(record["wnid"])}</code></dd>
<dt>split</dt><dd>{e(record["split"])}</dd>
<dt>file</dt><dd><code>{e(record["file"])}</code> row {record["row"]:,}</dd>
<dt>question</dt><dd class="question">{e(record["question"])}</dd>
<dt>answers agree</dt><dd>{agree}</dd>
<dt>label check</dt><dd>{checks}</dd>
</dl>
</div>
</section>"""
    cells = {"head": [], "think": [], "answer": [], "generation": []}
    for p in pairs:
        name = schema.TEACHER_NAMES[p]
        think = record.get(f"think_{p}") or ""
        tokens = record.get(f"num_tokens_{p}")
        other = next(answers[q] for q in pairs if q != p)
        cells["head"].append(
            f"""<header class="pair-head pair-{p}"><h2>{e(name)} <span class="model">{e(record.get(f"model_{p}") or "")}</span></h2>
{badge(record.get(f"status_{p}"))} <span class="finish">finish reason <b>{e(record.get(f"finish_reason_{p}") or "–")}</b></span>
{f'<span class="tokens">{tokens:,} tokens</span>' if tokens is not None else ""}</header>"""
        )
        cells["think"].append(
            f"""<details class="reasoning pair-{p}" data-pair="{p}"><summary>reasoning · {len(think):,} characters</summary>
<div class="text think">{e(think) or '<span class="muted">(empty)</span>'}</div></details>"""
        )
        answer_html = mark_shared(answers[p], other) if answers[p] else '<span class="muted">(empty)</span>'
        cells["answer"].append(
            f"""<div class="answer-cell pair-{p}"><h3>answer · {len(answers[p]):,} characters</h3>
<div class="text answer" data-pair="{p}">{answer_html}</div></div>"""
        )
        entries = [g for g in record.get("generation") or [] if g.get("pair") == p]
        cells["generation"].append(
            f'<details class="generation pair-{p}"><summary>generation settings</summary>{_generation(entries)}</details>'
        )
    grid = "\n".join(cell for row in cells.values() for cell in row)
    keys = (
        '<p class="keys"><kbd>←</kbd> <kbd>→</kbd> previous and next record · <kbd>u</kbd> back to the list · '
        "<kbd>e</kbd> open or close both reasonings</p>"
    )
    body = f'{head}\n<section class="pairs-grid">\n{grid}\n</section>\n{keys}'
    return document(record["id"], body, source, problems, page="record")


def error_page(source: str, status: int, message: str) -> str:
    """A short page saying what went wrong."""
    body = f'<section class="error"><h1>{status}</h1><p>{e(message)}</p><p><a href="/">Back to the records</a></p></section>'
    return document(f"error {status}", body, source, page="error")
