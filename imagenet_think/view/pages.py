"""HTML of the viewer's pages: the record list and one record.

Every text from the corpus is rendered by :mod:`imagenet_think.view.render` (escaped, isolated,
control characters shown; reasoning and answers cut when long and rendered as Markdown without
raw HTML); the pages load only the bundled ``static/view.css`` and ``static/view.js`` (no CDN),
and work without JavaScript.

The answers of the two teachers are shown side by side with the content words they share
marked (:func:`imagenet_think.view.render.shared_words`); the score next to them is the Jaccard
index of their word sets, :func:`imagenet_think.quality.agreement`.  The label check is
:func:`imagenet_think.view.signals.label_check` (what ``check=`` filters on).  A record page
opened with ``q=`` (from a search) marks the hits and opens the reasonings that have one; the
grid shows where the search hit each record (:func:`hit_html`).

>>> badge("ok"), badge("timeout")
('<span class="badge s-ok" title="status ok">ok</span>', '<span class="badge s-unknown" title="status timeout">unknown: <bdi>timeout</bdi></span>')
"""

from __future__ import annotations

import dataclasses
import html
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Optional
from urllib.parse import quote

from imagenet_think import schema
from imagenet_think.view.query import SORTS, UNKNOWN_STATUS, Query, Selection
from imagenet_think.view.render import MAX_SHOWN_CHARS, Marks, attribute, inline, plain, shared_words, text_html
from imagenet_think.view.signals import LABEL_KINDS
from imagenet_think.view.thumbnail import MAX_IMAGE_PIXELS


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


def badge(status: Optional[str], prefix: str = "") -> str:
    """A status as a coloured label; one outside :data:`schema.STATUSES` as ``unknown: VALUE``."""
    if status in schema.STATUSES:
        return f'<span class="badge s-{status}" title="status {status}">{e(prefix)}{status}</span>'
    shown = UNKNOWN_STATUS if status is None else f"{UNKNOWN_STATUS}: {inline(status)}"
    return f'<span class="badge s-{UNKNOWN_STATUS}" title="status {attribute(status)}">{e(prefix)}{shown}</span>'


def _number(value: Optional[int]) -> str:
    return "–" if value is None else f"{value:,}"


def document(title: str, body: str, source: str, problems: Sequence[str] = (), page: str = "") -> str:
    """A whole HTML page around ``body``; ``problems`` (files that could not be read) as a banner."""
    banner = "".join(f'<p class="problem">skipped: {plain(p)}</p>' for p in problems)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{attribute(title)} · ImageNet-Think</title>
<link rel="stylesheet" href="/static/view.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<script src="/static/view.js" defer></script>
</head>
<body data-page="{e(page)}">
<header class="top"><a class="brand" href="/">ImageNet-Think</a><span class="source" title="source">{inline(source)}</span></header>
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


def _choice(name: str, label: str, choices: Mapping[str, str], chosen: Sequence[str]) -> str:
    """A select of one of ``choices``; what a shared URL may hold besides (several values, or
    one not offered, such as ``status=unknown``) stays selectable."""
    values = {"": label, **choices}
    if ",".join(chosen) not in values:
        values[",".join(chosen)] = " or ".join(chosen)
    return f'<select name="{name}" aria-label="{e(label)}">{_options(values, ",".join(chosen))}</select>'


def _bounds(stem: str, label: str, query: Query, step: str, maximum: str = "") -> str:
    """Two number boxes, ``STEM_min`` and ``STEM_max``."""
    params = query.params()
    most = f' max="{maximum}"' if maximum else ""
    boxes = [
        f'<input type="number" name="{stem}_{end}" value="{e(params.get(f"{stem}_{end}", ""))}" min="0"{most} '
        f'step="{step}" placeholder="{end}" aria-label="{e(label)} {end}">'
        for end in ("min", "max")
    ]
    return f'<label class="range">{e(label)} {boxes[0]}–{boxes[1]}</label>'


def _filters(query: Query, splits: Sequence[str], finish_reasons: Sequence[str] = (), class_value: str = "") -> str:
    teachers = {"": "both teachers", **{name: f"{name} (pair {p})" for p, name in schema.TEACHER_NAMES.items()}}
    per_page = f'<input type="hidden" name="per_page" value="{query.per_page}">' if "per_page" in query.params() else ""
    split = (
        f'<label>split <select name="split">{_options({"": "all", **{s: s for s in splits}}, query.split)}</select></label>'
        if len(splits) > 1 or query.split
        else ""
    )
    reasons = {r: f"finish {r}" for r in dict.fromkeys([*finish_reasons, *query.finish])}
    quality = query.check or query.finish or any(k in query.params() for k in ("agree_min", "agree_max", "tokens_min", "tokens_max"))
    return f"""<form class="filters" method="get" action="/">
<input type="search" name="q" value="{e(query.q)}" placeholder="search reasoning and answers" aria-label="text search">
{_choice("status", "any status", {s: s for s in schema.STATUSES}, query.status)}
<select name="teacher" aria-label="teacher">{_options(teachers, schema.TEACHER_NAMES.get(query.teacher, ""))}</select>
<select name="sort" aria-label="sort">{_options(SORTS, query.sort)}</select>
<input type="search" name="class" value="{attribute(class_value)}" placeholder="class name or wnid" list="class-options" autocomplete="off" aria-label="class">
<datalist id="class-options"></datalist>
{split}{per_page}<button type="submit">Apply</button> <a class="reset" href="/">reset</a>
<details class="quality"{" open" if quality else ""}><summary>quality filters</summary>
{_choice("check", "any label check", {k: f"label {k}" for k in LABEL_KINDS}, query.check)}
{_choice("finish", "any finish reason", reasons, query.finish)}
{_bounds("agree", "answers agree", query, "any", "1")}
{_bounds("tokens", "tokens", query, "1")}
</details>
</form>"""


def _chips(query: Query, counts: Mapping[str, int], total: int) -> str:
    current = set(query.status)
    chips = [f'<a class="chip{"" if current else " on"}" href="{e(query.to_url("/", status=(), page=1))}">all <b>{total:,}</b></a>']
    for status, count in counts.items():
        on = " on" if status in current else ""
        url = query.to_url("/", status=(status,), page=1)
        title = ' title="a status this viewer does not know"' if status == UNKNOWN_STATUS else ""
        chips.append(f'<a class="chip s-{e(status)}{on}" href="{e(url)}"{title}>{e(status)} <b>{count:,}</b></a>')
    whose = f"pair {query.teacher}" if query.teacher else "either pair"
    return f'<nav class="chips" aria-label="records per status ({whose})">{"".join(chips)}</nav>'


def _check_chips(query: Query, selection: Selection) -> str:
    """Records per label check, as links that filter on it (when the checks are computed)."""
    if not selection.check_counts and not query.check:
        return ""
    current = set(query.check)
    chips = [f'<a class="chip{"" if current else " on"}" href="{e(query.to_url("/", check=(), page=1))}">any label check <b>{selection.before_check:,}</b></a>']
    for kind, count in selection.check_counts.items():
        on = " on" if kind in current else ""
        url = query.to_url("/", check=(kind,), page=1)
        chips.append(f'<a class="chip c-{e(kind)}{on}" title="{e(CHECK_TEXTS[kind][1])}" href="{e(url)}">{e(kind)} <b>{count:,}</b></a>')
    whose = f"pair {query.teacher}" if query.teacher else "either pair"
    return f'<nav class="chips checks" aria-label="records per label check ({whose})">{"".join(chips)}</nav>'


def shell_quote(text: str) -> str:
    """``text`` as one word of a shell command that can be shown and copied as it is:
    :func:`shlex.quote` when every character prints, else ANSI-C quoting (``$'...'``, bash and
    zsh) with the characters that do not print (controls, bidirectional overrides) written as
    escapes, so what the page shows is exactly what runs and nothing in it reorders the line.

    >>> shell_quote("runs/my corpus"), shell_quote("a\\u202eb's\\tc")
    ("'runs/my corpus'", "$'a\\\\u202eb\\\\'s\\\\tc'")
    """
    if text.isprintable():
        return shlex.quote(text)
    named = {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r"}

    def escaped(char: str) -> str:
        code = ord(char)
        if char in named or char.isprintable():
            return named.get(char, char)
        return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return "$'" + "".join(map(escaped, text)) + "'"


def export_commands(source: str, query: Query) -> list[str]:
    """The commands that export the records of this view (``--where`` = :meth:`Query.where`):
    in Hub layout, and as SFT data of the view's teacher (or GLM) and split (or ``train``).

    >>> export_commands("runs/my corpus", Query(status=("ok",), teacher=2, q="red fox"))[0]
    "imagenet-think export 'runs/my corpus' OUT --where 'status=ok&teacher=kimi&q=red+fox'"
    """
    where = query.where()
    option = f" --where {shell_quote(where)}" if where else ""
    sft = f"imagenet-think export-sft {shell_quote(source)} --format trl --out OUT"
    sft += f" --teacher {query.teacher}" if query.teacher else ""
    sft += f" --split {shell_quote(query.split)}" if query.split else ""
    return [f"imagenet-think export {shell_quote(source)} OUT{option}", sft + option]


def _export(source: str, query: Query, total: int) -> str:
    lines = "".join(
        f'<div class="command"><input type="text" readonly value="{e(c)}" aria-label="command" id="export-{i}">'
        f'<button type="button" class="copy" data-copy="export-{i}">copy</button></div>'
        for i, c in enumerate(export_commands(source, query))
    )
    ordered = " (in file order; the sort is the viewer's)" if query.sort else ""
    return f"""<details class="export"><summary>export these {total:,} records</summary>
<p class="muted">In Hub layout, or as SFT data{ordered}:</p>{lines}</details>"""


def _pager(query: Query, total: int) -> str:
    pages = query.page_count(total)
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


def hit_html(hit: Mapping[str, str]) -> str:
    """A text search hit (:func:`imagenet_think.view.query.hit_snippet`) as HTML: where, then the
    match marked in its context.

    The snippet is corpus text: rendered by :func:`~imagenet_think.view.render.plain` (escaped,
    control characters and bidirectional controls shown instead of obeyed) in a ``<bdi>`` that
    isolates its direction.

    >>> hit_html({"field": "answer_2", "before": "a <b>", "match": "Fox", "after": "\\u202e."})
    '<p class="hit"><span class="where">kimi answer</span> <bdi>a &lt;b&gt;<mark>Fox</mark><span class="ctl" title="U+202E">\\\\u202e</span>.</bdi></p>'
    """
    field, pair = hit["field"].rsplit("_", 1)
    where = f'{schema.TEACHER_NAMES[int(pair)]} {"reasoning" if field == "think" else field}'
    snippet = f'{plain(hit["before"])}<mark>{plain(hit["match"])}</mark>{plain(hit["after"])}'
    return f'<p class="hit"><span class="where">{e(where)}</span> <bdi>{snippet}</bdi></p>'


def _card(row: Mapping[str, Any], query: Query) -> str:
    pairs = []
    for pair, name in schema.TEACHER_NAMES.items():
        think = row.get(f"think_chars_{pair}")
        tokens = row.get(f"num_tokens_{pair}")
        check = row.get(f"check_{pair}")
        pairs.append(
            f'<li>{badge(row[f"status_{pair}"], name + " ")}'
            + (f' <span class="check-kind c-{e(check)}" title="label check">{e(check)}</span>' if check else "")
            + f' <span class="len" title="reasoning length">{_number(think)} ch'
            + (f" · {tokens:,} tok" if tokens is not None else "")
            + "</span></li>"
        )
    label = row["label"] or row["wnid"] or "no label"
    agreement = row.get("agreement")
    agree = f'<span class="agree" title="agreement of the two answers">agree {agreement:.2f}</span>' if agreement is not None else ""
    hit = hit_html(row["hit"]) if row.get("hit") else ""
    return f"""<article class="card" data-id="{attribute(row["id"])}">
<a class="thumb" href="{e(record_url(row["id"], query))}"><img src="{e(asset_url("thumb", row["id"]))}" alt="" loading="lazy" width="240" height="240"></a>
<div class="card-body">
<a class="record-id" href="{e(record_url(row["id"], query))}">{inline(row["id"])}</a>
<a class="label" href="{e(query.to_url("/", wnid=row["wnid"], page=1))}" title="{attribute(row["wnid"])}">{inline(label)}</a>
<ul class="pairs">{"".join(pairs)}</ul>{agree}{hit}
</div>
</article>"""


def list_page(
    source: str,
    query: Query,
    rows: Sequence[Mapping[str, Any]],
    selection: Selection,
    splits: Sequence[str],
    problems: Sequence[str] = (),
    finish_reasons: Sequence[str] = (),
    class_value: str = "",
) -> str:
    """The paged record grid (``rows`` are the index rows of the page, with the text search's
    ``hit`` and the signals when known) under the filter form, the per-status (and label
    check) counts and the commands that export the selection.  ``finish_reasons`` are the
    corpus' (for the form); ``class_value`` shows the ``wnid=`` class in the class box."""
    if rows:
        empty = ""
    elif not splits:  # a regenerate output before its first file
        empty = '<p class="empty">No rows written yet: reload to see them as the run writes its files.</p>'
    else:
        empty = '<p class="empty">No records here. <a href="/">Show all records</a>.</p>'
    cards = "\n".join(_card(row, query) for row in rows)
    pager = _pager(query, selection.total)
    body = f"""{_filters(query, splits, finish_reasons, class_value)}
{_chips(query, selection.counts, selection.before_status)}
{_check_chips(query, selection)}
{pager}
<section class="grid">
{cards}
</section>
{empty}{pager}
{_export(source, query, selection.total)}
<p class="keys"><kbd>/</kbd> search · <kbd>←</kbd> <kbd>→</kbd> previous and next page</p>"""
    return document("records", body, source, problems, page="list")


def computing_page(
    source: str, query: Query, progress: Any, splits: Sequence[str], problems: Sequence[str] = (),
    finish_reasons: Sequence[str] = (), class_value: str = "",
) -> str:
    """What the list shows while the quality signals its filters need are being computed
    (``progress``: ``done`` and ``total`` records); the response makes it reload itself."""
    share = progress.done / progress.total if progress.total else 1.0
    body = f"""{_filters(query, splits, finish_reasons, class_value)}
<p class="computing" role="status">Computing the answer agreement and label checks of {progress.total:,} records
(once, then kept): {progress.done:,} done ({share:.0%}). This page reloads by itself;
<a href="{e(query.without_signals().to_url("/"))}">without these filters</a>
the records show now.</p>"""
    return document("computing", body, source, problems, page="computing")


def pick_class_page(source: str, query: Query, text: str, candidates: Sequence[Any]) -> str:
    """The classes a typed name stands for (``candidates``, :class:`~imagenet_think.view.classes.ClassMatch`),
    each a link to the list of that class; or that none matches."""
    if candidates:
        items = "".join(
            f'<li><a href="{e(query.to_url("/", wnid=m.wnid, page=1))}">{inline(m.label)}</a> <code>{inline(m.wnid)}</code>'
            f' <span class="muted">{f"a kind of {e(m.kind_of)} · " if m.kind_of else ""}'
            f'{f"{m.records:,} records" if m.records else "not in this corpus"}</span></li>'
            for m in candidates
        )
        body = f'<section class="pick"><h1>“{inline(text)}” names {len(candidates)} classes</h1><ul>{items}</ul>'
    else:
        body = f'<section class="pick"><h1>No class is named “{inline(text)}”</h1>'
    body += f'<p><a href="{e(query.to_url("/", page=1))}">Back to the records</a></p></section>'
    return document("pick a class", body, source, page="pick")


CHECK_TEXTS = {
    "named": ("yes", "✓ names the class"),
    "ancestor": ("partly", "≈ names an ancestor class only"),
    "hedged": ("no", "✗ also names a competing class"),
    "missed": ("no", "✗ does not name the class"),
    "unknown": ("unknown", "class not in WordNet"),
}
"""How the record page words each label check (:data:`~imagenet_think.view.signals.LABEL_KINDS`)."""


def _check(hit: Any, query: Query) -> str:
    """A label check as a link to the records whose answers check the same."""
    tone, text = CHECK_TEXTS[hit.kind]
    if hit.kind == "ancestor":
        text += f", {hit.distance} level{'s' if hit.distance > 1 else ''} up"
    url = query.to_url("/", check=(hit.kind,), page=1)
    return f'<a class="check {tone}" data-check="{e(hit.kind)}" href="{e(url)}" title="records with this label check">{e(text)}</a>'


@dataclasses.dataclass(frozen=True)
class _Whole:
    """Where the whole of a record's texts is: the page with ``full=1`` and the JSON API;
    ``limit``: the characters shown of each text (``None``: all)."""

    page: str
    json: str
    limit: Optional[int]


def _text_cell(text: str, marks: Marks, whole: _Whole, markdown_text: bool = True) -> str:
    """A reasoning, answer or raw output (``markdown_text=False``) in an element that isolates
    its direction, with the notes it needs: cut (and links to all of it), marks capped, the
    search matching only past the part shown."""
    if not text:
        return '<span class="muted">(empty)</span>'
    body, shown = text_html(text, marks, markdown_text, limit=whole.limit)
    notes = ""
    if shown < len(text):
        notes += (
            f'<p class="more">cut: {shown:,} of {len(text):,} characters shown · '
            f'<a class="show-all" href="{e(whole.page)}">show all</a> · <a href="{e(whole.json)}">as JSON</a></p>'
        )
    if marks.capped:
        notes += f'<p class="more">only the first {marks.limit:,} matches of each kind are marked</p>'
    if marks.search and not marks.hits and marks.search.search(text):
        notes += '<p class="more">the search matches past the part shown</p>'
    if markdown_text:
        return f'<div class="md" dir="auto">{body}</div>{notes}'
    return f'<pre class="text" dir="auto">{body}</pre>{notes}'


def _generation(entries: Sequence[Mapping[str, Any]], whole: _Whole) -> str:
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
<dt>engine</dt><dd>{inline(entry.get("engine") or "–")}</dd>
<dt>revision</dt><dd>{inline(entry.get("revision") or "–")}</dd>
<dt>sampling</dt><dd><pre class="json" dir="auto">{plain(sampling)}</pre></dd>
</dl>
<details class="raw"><summary>raw output · {len(raw):,} characters</summary>{_text_cell(raw, Marks(), whole, markdown_text=False)}</details>"""
        )
    return "".join(parts)


def _figure(record_id: str, image: Mapping[str, Any]) -> str:
    """The stored image, or (over the pixel limit) why it is not shown and a link to its file."""
    url = e(asset_url("image", record_id))
    size = f' · {image["width"]}×{image["height"]} pixels' if image.get("width") else ""
    caption = (
        f'{inline(image.get("path") or "no file name")} · {_number(image.get("bytes"))} bytes · '
        f'{e(image.get("format") or "unknown format")}{size}'
    )
    if image.get("too_large"):
        return (
            f'<figure class="full"><p class="refused">image not shown: {e(image["too_large"])} '
            f'(the viewer decodes at most {MAX_IMAGE_PIXELS:,})</p>'
            f'<figcaption>{caption} · <a href="{url}">open the stored file</a></figcaption></figure>'
        )
    return (
        f'<figure class="full"><a href="{url}"><img id="record-image" src="{url}" alt="image of record '
        f'{attribute(record_id)}"></a><figcaption>{caption}</figcaption></figure>'
    )


def record_page(
    source: str,
    record: Mapping[str, Any],
    image: Mapping[str, Any],
    query: Query,
    place: tuple[Optional[int], int, Optional[str], Optional[str]],
    problems: Sequence[str] = (),
    full: bool = False,
) -> str:
    """One record: image, facts, then per pair its model, status, reasoning, answer and generation.

    ``image`` is ``{"path", "bytes", "format", "width", "height", "too_large"}`` (sizes only);
    ``place`` is ``(index of the record in the query's selection or None, selection size,
    previous id, next id)``; ``full`` shows long texts whole instead of cut.
    """
    from imagenet_think.quality import agreement
    from imagenet_think.view.signals import label_check

    k, total, previous, following = place
    nav = [f'<a rel="up" href="{e(query.to_url("/", page=(k // query.per_page) + 1 if k is not None else query.page))}">↑ list</a>']
    nav.append(f'<span class="shown">record {k + 1:,} of {total:,}</span>' if k is not None else '<span class="shown">not in this selection</span>')
    if previous is not None:
        nav.append(f'<a rel="prev" href="{e(record_url(previous, query))}">← previous</a>')
    if following is not None:
        nav.append(f'<a rel="next" href="{e(record_url(following, query))}">next →</a>')
    page_url = record_url(record["id"], query)
    whole = _Whole(
        page=f'{page_url}{"&" if "?" in page_url else "?"}full=1',
        json="/api/record/" + quote(record["id"], safe=""),
        limit=None if full else MAX_SHOWN_CHARS,
    )
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
            _check(label_check(answers[p], record["wnid"] or ""), query)
            if answers[p]
            else '<span class="check unknown">no answer</span>'
        )
        for p in pairs
    )
    head = f"""<nav class="recnav">{" ".join(nav)}</nav>
<section class="record-head">
{_figure(record["id"], image)}
<div class="about">
<h1 class="record-id">{inline(record["id"])}</h1>
<dl class="facts">
<dt>class</dt><dd><a href="{e(query.to_url("/", wnid=record["wnid"], page=1))}">{inline(record["label"] or "no label")}</a> <code>{inline(record["wnid"])}</code></dd>
<dt>split</dt><dd>{inline(record["split"])}</dd>
<dt>file</dt><dd><code>{inline(record["file"])}</code> row {record["row"]:,}</dd>
<dt>question</dt><dd class="question">{_text_cell(record["question"] or "", Marks(), whole, markdown_text=False)}</dd>
<dt>answers agree</dt><dd>{agree}</dd>
<dt>label check</dt><dd>{checks}</dd>
</dl>
</div>
</section>"""
    cells = []  # pair by pair: the layout puts each pair in its column, or one after the other when narrow
    for p in pairs:
        name = e(schema.TEACHER_NAMES[p])
        think = record.get(f"think_{p}") or ""
        tokens = record.get(f"num_tokens_{p}")
        other = next(answers[q] for q in pairs if q != p)
        think_marks = Marks(search=query.q)
        think_html = _text_cell(think, think_marks, whole)
        is_open = " open" if think_marks.search and think_marks.search.search(think) else ""
        answer_html = _text_cell(answers[p], Marks(shared=shared_words(answers[p], other), search=query.q), whole)
        entries = [g for g in record.get("generation") or [] if g.get("pair") == p]
        cells += [
            f"""<header class="pair-head pair-{p}"><h2>{name} <span class="model">{inline(record.get(f"model_{p}") or "")}</span></h2>
{badge(record.get(f"status_{p}"))} <span class="finish">finish reason <b>{inline(record.get(f"finish_reason_{p}") or "–")}</b></span>
{f'<span class="tokens">{tokens:,} tokens</span>' if tokens is not None else ""}</header>""",
            f"""<details class="reasoning pair-{p}" data-pair="{p}"{is_open}><summary><span class="who">{name}</span> reasoning · {len(think):,} characters</summary>
<div class="text think" data-pair="{p}">{think_html}</div></details>""",
            f"""<div class="answer-cell pair-{p}"><h3><span class="who">{name}</span> answer · {len(answers[p]):,} characters</h3>
<div class="text answer" data-pair="{p}">{answer_html}</div></div>""",
            f'<details class="generation pair-{p}"><summary><span class="who">{name}</span> generation settings</summary>'
            f"{_generation(entries, whole)}</details>",
        ]
    keys = (
        '<p class="keys"><kbd>←</kbd> <kbd>→</kbd> previous and next record · <kbd>u</kbd> back to the list · '
        "<kbd>e</kbd> open or close both reasonings</p>"
    )
    grid = "\n".join(cells)
    body = f'{head}\n<section class="pairs-grid">\n{grid}\n</section>\n{keys}'
    return document(record["id"], body, source, problems, page="record")


def error_page(source: str, status: int, message: str) -> str:
    """A short page saying what went wrong."""
    body = f'<section class="error"><h1>{status}</h1><p>{plain(message)}</p><p><a href="/">Back to the records</a></p></section>'
    return document(f"error {status}", body, source, page="error")
