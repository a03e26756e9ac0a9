"""Corpus text as HTML on the viewer's pages: escaped, isolated, control characters shown, long
texts cut, Markdown rendered without raw HTML, words marked.

Texts come from model output and from files anyone may have written, so nothing in them may
become markup, change how the text around it is displayed, or cost unbounded work:

* **Short texts** (ids, labels, file names, models): :func:`inline` escapes them, shows every
  character that does not print as a visible stand-in (:func:`visible`: ``␀`` for NUL,
  ``\\u202e`` for a right-to-left override, ...) and isolates them in ``<bdi>``, so an id never
  displays as something else and never reorders the text around it; :func:`attribute` is the
  same for attribute values (stand-ins without markup).
* **Reasoning and answers** go through :func:`text_html`, in this order:

  1. *cut*: a text longer than :data:`MAX_SHOWN_CHARS` is cut (at a line break or space near
     the limit) before anything is parsed, so the work and the page stay bounded; the page
     links the whole text (``?full=1`` and the JSON API);
  2. *Markdown*: markdown-it-py parses what is left with a fixed list of rules
     (:data:`MARKDOWN_RULES`: emphasis, headings, lists, quotes, code, tables, rules); raw HTML,
     links, images and link definitions are not among them, so they stay text;
  3. *text nodes*: the renderer hands every piece of text (never a tag or attribute it made) to
     :class:`Marks`, which escapes it, marks search hits and the words the other answer shares
     (at most :data:`MAX_MARKS` of each per text) and shows control characters (C0/C1 controls
     but tab and line breaks, and the bidirectional embeddings, overrides and isolates) visibly;
  4. the page puts the result in an element with ``dir="auto"``, isolating its direction.

>>> inline("nul\\x00id\\u202eLTR")
'<bdi>nul<span class="ctl" title="U+0000">␀</span>id<span class="ctl" title="U+202E">\\\\u202e</span>LTR</bdi>'
>>> text_html("**A fox**, a <b>fox</b>.\\n\\n- red", Marks(shared={"fox"}))[0]
'<p><strong>A <mark>fox</mark></strong>, a &lt;b&gt;<mark>fox</mark>&lt;/b&gt;.</p>\\n<ul>\\n<li>red</li>\\n</ul>\\n'
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Collection
from typing import Any, Optional

from imagenet_think.text import word_spans, word_tokens

MAX_SHOWN_CHARS = 30_000
"""Characters of one text shown on a record page before it is cut (about 8,000 tokens)."""

MAX_MARKS = 1_000
"""Most search hits, and most shared words, marked in one text."""

UNMARKED_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with".split()
)
"""Function words never marked as shared (the agreement score still counts them)."""

MARKDOWN_RULES = (
    "heading", "lheading", "list", "blockquote", "code", "fence", "hr", "table",
    "emphasis", "strikethrough", "backticks", "escape", "entity", "newline",
)
"""The markdown-it rules enabled (on top of paragraphs and text); ``html_block``,
``html_inline``, ``link``, ``image``, ``autolink``, ``reference`` and ``linkify`` are not."""

_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufdd0]")
"""Characters :class:`Marks` shows visibly in texts: C0 and C1 controls but tab, line feed and
carriage return; the bidirectional embeddings, overrides and isolates; U+FDD0, the stand-in
for NUL while Markdown is parsed (markdown-it would turn NUL into U+FFFD), shown as ``␀`` (a
noncharacter: no text exchanged holds it)."""

_NUL_WHILE_PARSED = "\ufdd0"  # a noncharacter: Unicode keeps it for uses like this one


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _control_span(char: str) -> str:
    """A character that does not print, as a marked visible stand-in: the Control Pictures
    block for C0 controls and DEL (␀ ␁ ... ␟ ␡), a Python-style escape for the others."""
    code = ord(char)
    shown = chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else _escaped(char)
    return f'<span class="ctl" title="U+{code:04X}">{html.escape(shown)}</span>'


def visible(text: str) -> str:
    """``text`` escaped for HTML, each character that does not print (controls, format
    characters such as bidirectional overrides, separators but the space) as a visible stand-in.

    >>> visible("a\\tb\\u2066<c>")
    'a<span class="ctl" title="U+0009">␉</span>b<span class="ctl" title="U+2066">\\\\u2066</span>&lt;c&gt;'
    """
    if text.isprintable():
        return html.escape(text)
    return "".join(html.escape(c) if c.isprintable() else _control_span(c) for c in text)


def inline(value: Any) -> str:
    """A short text (id, label, file name) as isolated HTML: :func:`visible` inside ``<bdi>``.

    >>> inline("n01440764_1"), inline(None)
    ('<bdi>n01440764_1</bdi>', '<bdi></bdi>')
    """
    return f"<bdi>{visible('' if value is None else str(value))}</bdi>"


def printable(value: Any) -> str:
    """A text with each character that does not print as a ``\\u…`` escape, not HTML-escaped
    (for values a script or a form shows as they are, such as the class box's suggestions).

    >>> printable("ban\\u202eana"), printable(None)
    ('ban\\\\u202eana', '')
    """
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def attribute(value: Any) -> str:
    """A text for an attribute value: escaped, characters that do not print as ``\\u…`` escapes
    (:func:`printable`).

    >>> attribute('a"\\u202eb')
    'a&quot;\\\\u202eb'
    """
    return html.escape(printable(value), quote=True)


def shared_words(text: str, other: str) -> frozenset[str]:
    """The words of ``text`` that ``other`` has too, as the agreement score tokenizes them
    (:mod:`imagenet_think.text`), less :data:`UNMARKED_WORDS` and single ASCII characters.

    >>> sorted(shared_words("一只猫 on a mat", "猫 on the mat"))
    ['mat', '猫']
    """
    return frozenset(
        w for w in set(word_tokens(text)) & set(word_tokens(other))
        if (len(w) > 1 or not w.isascii()) and w not in UNMARKED_WORDS
    )


class Marks:
    """Turns the text nodes of one text into HTML: escaped, search hits marked ``<mark
    class="hit">``, words of ``shared`` (lowercase) marked ``<mark>``, control characters shown.
    Words are compared in Unicode NFC, so a word spelt with decomposed accents (``e`` +
    U+0301) is the same word as its precomposed spelling, as the tokenizer counts it.

    At most ``limit`` hits and ``limit`` shared words are marked in all the nodes of one text;
    :attr:`hits` and :attr:`shared_marked` count those placed, :attr:`capped` says whether more
    were left unmarked.

    >>> marks = Marks(shared={"red"}, search="fox", limit=1)
    >>> marks.html("red fox, red Fox\\x07")
    '<mark>red</mark> <mark class="hit">fox</mark>, red Fox<span class="ctl" title="U+0007">␇</span>'
    >>> marks.hits, marks.shared_marked, marks.capped
    (1, 1, True)
    """

    def __init__(self, shared: Collection[str] = frozenset(), search: str = "", limit: int = MAX_MARKS):
        self.shared = frozenset(unicodedata.normalize("NFC", word) for word in shared)
        self.search = re.compile(re.escape(search), re.IGNORECASE) if search else None
        self.limit = limit
        self.hits = 0
        self.shared_marked = 0
        self.capped = False

    def html(self, content: str) -> str:
        """One text node as HTML."""
        spans: list[tuple[int, int, str]] = []
        if self.search:
            for match in self.search.finditer(content):
                if self.hits == self.limit:
                    self.capped = True
                    break
                spans.append((*match.span(), ' class="hit"'))
                self.hits += 1
        if self.shared:
            hits = iter(spans.copy())
            hit = next(hits, None)
            for start, end in word_spans(content):
                if unicodedata.normalize("NFC", content[start:end]).lower() not in self.shared:
                    continue
                while hit is not None and hit[1] <= start:
                    hit = next(hits, None)
                if hit is not None and hit[0] < end:  # inside a search hit: that mark shows it
                    continue
                if self.shared_marked == self.limit:
                    self.capped = True
                    break
                spans.append((start, end, ""))
                self.shared_marked += 1
            spans.sort()
        out, last = [], 0
        for start, end, attributes in spans:
            out.append(plain(content[last:start]) + f"<mark{attributes}>{plain(content[start:end])}</mark>")
            last = end
        out.append(plain(content[last:]))
        return "".join(out)


def plain(text: str) -> str:
    """A text for a block with ``white-space: pre-wrap``: escaped, its control characters shown
    (but tab and line breaks) and its bidirectional controls shown instead of obeyed.

    >>> plain("<a>\\n\\u202eb")
    '&lt;a&gt;\\n<span class="ctl" title="U+202E">\\\\u202e</span>b'
    """
    return _TEXT_CONTROLS.sub(lambda match: _control_span(match.group().replace(_NUL_WHILE_PARSED, "\x00")), html.escape(text))


def cut(text: str, limit: Optional[int] = MAX_SHOWN_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters (``None``: no limit), at the last line break
    (or else space) in the final tenth when there is one.

    >>> cut("x" * 20 + " yz", 22), cut("x" * 23, 22) == "x" * 22, cut("short", 22)
    ('xxxxxxxxxxxxxxxxxxxx', True, 'short')
    """
    if limit is None or len(text) <= limit:
        return text
    piece = text[:limit]
    for separator in ("\n", " "):
        at = piece.rfind(separator, limit - limit // 10 - 1)
        if at > 0:
            return piece[:at]
    return piece


def _node(self: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
    return env["marks"].html(tokens[idx].content)


def _code(self: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
    return f"<code>{env['marks'].html(tokens[idx].content)}</code>"


def _code_block(self: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
    return f"<pre><code>{env['marks'].html(tokens[idx].content)}</code></pre>\n"


def _cell(tag: str):
    def render(self: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
        return f"<{tag}>"  # without the alignment markdown-it writes as a style attribute (CSP forbids those)

    return render


@functools.lru_cache(maxsize=1)
def markdown() -> Any:
    """The viewer's markdown-it parser: :data:`MARKDOWN_RULES` only, no raw HTML, single line
    breaks kept, every text node rendered by the ``Marks`` in the render environment."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("zero", {"html": False, "breaks": True}).enable(list(MARKDOWN_RULES))
    rules = {"text": _node, "code_inline": _code, "code_block": _code_block, "fence": _code_block,
             "th_open": _cell("th"), "td_open": _cell("td")}
    for name, rule in rules.items():
        parser.add_render_rule(name, rule)
    return parser


def text_html(
    text: str, marks: Marks, markdown_text: bool = True, limit: Optional[int] = MAX_SHOWN_CHARS
) -> tuple[str, int]:
    """A reasoning, answer or raw output as HTML (see the module docstring for the order of
    the steps), and how many of its characters it shows (``limit=None``: all of them);
    ``markdown_text=False`` keeps the text as it is (for ``white-space: pre-wrap``).

    >>> text_html("# Title\\nline one\\nline two", Marks())
    ('<h1>Title</h1>\\n<p>line one<br>\\nline two</p>\\n', 25)
    >>> text_html("<script>x</script>\\x00 tail", Marks(), markdown_text=False, limit=20)
    ('&lt;script&gt;x&lt;/script&gt;<span class="ctl" title="U+0000">␀</span>', 19)
    """
    shown = cut(text, limit)
    if not markdown_text:
        return marks.html(shown), len(shown)
    return markdown().render(shown.replace("\x00", _NUL_WHILE_PARSED), {"marks": marks}), len(shown)
