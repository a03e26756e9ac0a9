"""How ``imagenet-think view`` shows corpus texts: Markdown without raw HTML, long texts cut,
marks capped and only in text, bidirectional and control characters shown instead of obeyed,
search hits marked.  Real servers on 127.0.0.1; pages parsed with the standard library."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from imagenet_think.view.render import MAX_MARKS, MAX_SHOWN_CHARS
from tests.test_view import api, get, parse_html, sample_rows, serving, words, write_rows

HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Characters that must never reach a page as they are: controls, bidirectional overrides."""


def corpus(tmp_path, *rows: dict) -> object:
    """A one-file corpus of ``rows`` (sample rows changed as a test needs) and a few plain ones."""
    out = tmp_path / "corpus"
    write_rows(out / "data" / "train-00000-of-00001.parquet", [*rows, *sample_rows()[5:8]])
    return out


def record_page(server, record_id: str, query: str = "") -> tuple[str, object]:
    status, _, body = get(server, "/record/" + quote(record_id, safe="") + query)
    assert status == 200, body[:500]
    return body.decode(), parse_html(body.decode())


# --- Markdown, and no raw HTML ever -------------------------------------------------------

HOSTILE = """# Heading
**bold** _em_ ~~gone~~ `code <b>x</b>`

<script>window.__xss = 3</script>
<div onclick="window.__xss = 4">a raw HTML block</div>

<img src=x onerror="window.__xss = 5"> and <b onmouseover="window.__xss = 6">inline HTML</b>
[click](javascript:window.__xss=7) [site](http://example.com/) <javascript:alert(1)> <http://example.com/>
![tracker](http://example.com/t.png) ![local](/image/n07753592_n07753592_1000)
[ref]: javascript:alert(1)

[ref] and <!-- a comment --> and &lt;script&gt;

1. one
2. two

> quoted

```python
print("<hi>")
```

| a | b |
|:--|--:|
| <i>x</i> | 2 |
"""

MARKUP = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "code", "pre", "ul", "ol", "li",
          "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "mark", "span"}
"""Every element Markdown may produce in a text; ``a``, ``img``, ``div``, ``script`` ... never."""


def test_markdown_is_rendered_and_no_raw_html_link_or_image_passes(tmp_path):
    row = dict(sample_rows()[0], think_1=HOSTILE, think_2=HOSTILE, answer_1=HOSTILE, answer_2=HOSTILE)
    with serving(corpus(tmp_path, row)) as server:
        _, page = record_page(server, row["id"])
    texts = page.find_all("div", class_="md")
    assert len(texts) == 4  # two reasonings, two answers
    for text in texts:
        assert text.attrs == {"class": "md", "dir": "auto"}
        for element in text.find_all():
            assert element.tag in MARKUP, element.tag
            allowed = {"span": {"class", "title"}, "mark": {"class"}}.get(element.tag, set())
            assert set(element.attrs) <= allowed, (element.tag, element.attrs)
        assert [h.text() for h in text.find_all("h1")] == ["Heading"]
        assert [s.text() for s in text.find_all("strong")][-1] == "bold" and text.find("em").text() == "em"
        assert [c.text() for c in text.find_all("code")] == ["code <b>x</b>", 'print("<hi>")\n']
        assert [li.text() for li in text.find("ol").find_all("li")] == ["one", "two"]
        assert [td.text() for td in text.find_all("td")] == ["<i>x</i>", "2"]
        shown = words(text.text())
        for literal in ('<script>window.__xss = 3</script>', '<div onclick="window.__xss = 4">a raw HTML block</div>',
                        '<img src=x onerror="window.__xss = 5">', "[click](javascript:window.__xss=7)",
                        "![tracker](http://example.com/t.png)", "[ref]: javascript:alert(1)", "<!-- a comment -->",
                        "&lt;script&gt;".replace("&lt;", "<").replace("&gt;", ">")):
            assert literal in shown, literal
    # the whole page: only its own script, only the record's image, links only to this server
    assert [s.attrs for s in page.find_all("script")] == [{"src": "/static/view.js", "defer": None}]
    assert [i.attrs["src"] for i in page.find_all("img")] == ["/image/" + row["id"]]
    assert all(a.attrs["href"].startswith("/") for a in page.find_all("a"))
    assert not [e for e in page.find_all() if any(name.startswith("on") or name == "style" for name in e.attrs)]
    assert "javascript:" not in "".join(str(e.attrs) for e in page.find_all())


# --- long texts -------------------------------------------------------------------------------


def long_text(characters: int, offset: int = 0) -> str:
    """Words from a 50-word vocabulary, ``characters`` long or a little longer."""
    vocabulary = [f"w{k:02d}x" for k in range(50)]
    count = characters // 4 + 1
    return " ".join(vocabulary[(i + offset) % 50] for i in range(count))


def test_long_texts_are_cut_with_links_to_all_of_it_and_marks_are_capped(tmp_path):
    megabyte = 2**20
    sample = sample_rows()[0]
    row = dict(
        sample, id=sample["wnid"] + "_long",
        think_1=long_text(megabyte), think_2=long_text(megabyte, 7),
        answer_1=long_text(megabyte, 3), answer_2=long_text(megabyte, 11),
        generation=[dict(g, raw=long_text(megabyte, 5)) for g in sample["generation"]],
    )
    texts = {"think_1": row["think_1"], "think_2": row["think_2"], "answer_1": row["answer_1"], "answer_2": row["answer_2"]}
    with serving(corpus(tmp_path, row)) as server:
        small = len(get(server, "/record/" + quote(sample_rows()[5]["id"]))[2])
        html, page = record_page(server, row["id"])
        full_html, full_page = record_page(server, row["id"], "?full=1")
        assert api(server, "/api/record/" + row["id"])["think_1"] == row["think_1"]
        status, _, body = get(server, "/record/" + row["id"] + "?full=2")
        assert status == 400 and "full=&#x27;2&#x27;: give full=1" in body.decode()
    raws = len(row["generation"])
    # a page of a normal record, plus at most MAX_SHOWN_CHARS of each long text (ASCII words: a
    # character a byte) and MAX_MARKS shared-word marks in each answer
    bound = small + (4 + raws) * MAX_SHOWN_CHARS + 2 * MAX_MARKS * len("<mark></mark>")
    assert len(html.encode()) < bound < 8 * megabyte // 20
    for field, text in texts.items():
        cell = page.find("div", class_=field[:-2], data_pair=field[-1])
        shown = words(cell.find("div", class_="md").text())
        assert words(text).startswith(shown) and 0.9 * MAX_SHOWN_CHARS <= len(shown) <= MAX_SHOWN_CHARS
        notes = [words(note.text()) for note in cell.find_all("p", class_="more")]
        assert notes[0] == f"cut: {len(shown):,} of {len(text):,} characters shown · show all · as JSON"
        assert cell.find("a", class_="show-all").attrs["href"] == f"/record/{row['id']}?full=1"
        if field.startswith("answer"):
            assert len(cell.find_all("mark")) == MAX_MARKS
            assert notes[1:] == [f"only the first {MAX_MARKS:,} matches of each kind are marked"]
    # ?full=1: every text whole, the marks still capped
    for field, text in texts.items():
        cell = full_page.find("div", class_=field[:-2], data_pair=field[-1])
        assert words(cell.find("div", class_="md").text()) == words(text)
    assert "cut: " not in full_html and full_html.count("<mark>") == 2 * MAX_MARKS


# --- characters that change what is displayed ------------------------------------------------


def test_control_and_bidirectional_characters_are_shown_not_obeyed(tmp_path):
    sample = sample_rows()[0]
    row = dict(
        sample, id="n07753592_nul\x00id\u202eLTR", label="ba\u202enana\x07",
        think_1="think \x00 and \u202ereversed, \u2066isolated\u2069 \x1b[31m red",
        answer_1="**bold\u202e** &#x202e; an entity, \x00 a NUL", model_1="m\u202eodel",
    )
    with serving(corpus(tmp_path, row)) as server:
        assert api(server, "/api/record/" + quote(row["id"], safe=""))["id"] == row["id"]  # the data as stored
        html, page = record_page(server, row["id"])
        listing_html = get(server, "/")[2].decode()
    for text in (html, listing_html):
        assert not HIDDEN.search(text), HIDDEN.search(text)
    shown_id = '<bdi>n07753592_nul<span class="ctl" title="U+0000">␀</span>id<span class="ctl" title="U+202E">\\u202e</span>LTR</bdi>'
    assert f'<h1 class="record-id">{shown_id}</h1>' in html
    assert f'<a class="record-id" href="/record/n07753592_nul%00id%E2%80%AELTR">{shown_id}</a>' in listing_html
    assert 'data-id="n07753592_nul\\x00id\\u202eLTR"' in listing_html
    assert '<bdi>ba<span class="ctl" title="U+202E">\\u202e</span>nana<span class="ctl" title="U+0007">␇</span></bdi>' in html
    think = page.find("details", class_="pair-1", data_pair="1").find("div", class_="md")
    assert think.text().strip() == "think ␀ and \\u202ereversed, \\u2066isolated\\u2069 ␛[31m red"
    answer = page.find("div", class_="answer", data_pair="1").find("div", class_="md")
    assert answer.find("strong").text() == "bold\\u202e"
    assert answer.text().strip() == "bold\\u202e \\u202e an entity, ␀ a NUL"  # the entity decoded, then shown too
    assert page.find("header", class_="pair-1").find("span", class_="model").text() == "m\\u202eodel"
    for block in page.find_all("div", class_="md") + page.find_all("pre", class_="text"):
        assert block.attrs["dir"] == "auto"


# --- how the steps compose -------------------------------------------------------------------


def test_marks_go_only_into_text_and_the_cut_comes_before_markdown(tmp_path):
    sample = sample_rows()[0]
    think = 'A class of <span class="x">span</span> \x00 **Class** `class` and <mark>class</mark> title=class'
    fence = "```\n" + "code line class\n" * (MAX_SHOWN_CHARS // 10) + "```\nafter the fence"
    row = dict(sample, think_1=think, think_2=fence)
    with serving(corpus(tmp_path, row)) as server:
        _, page = record_page(server, row["id"], "?q=class")  # parse_html checks every tag is closed
    first = page.find("details", class_="pair-1", data_pair="1")
    hits = first.find_all("mark", class_="hit")
    assert len(hits) == len(re.findall("class", think, re.I)) and {h.text().lower() for h in hits} == {"class"}
    assert words(first.find("div", class_="md").text()) == words(think.replace("**", "").replace("`", "").replace("\x00", "␀"))
    assert first.find("span", class_="ctl").attrs == {"class": "ctl", "title": "U+0000"}
    second = page.find("details", class_="pair-2", data_pair="2")  # cut inside the fence: still a closed block
    code = second.find("pre").find("code").text()
    assert code.startswith("code line class\n") and "after the fence" not in second.text()
    assert len(second.find_all("mark", class_="hit")) == min(code.count("class"), MAX_MARKS)


def test_shared_words_are_marked_whatever_their_unicode_normal_form(tmp_path):
    from imagenet_think.view.render import Marks, shared_words

    # U+F900 is a compatibility spelling of the ideograph U+8C48 (its NFC form): one word
    assert Marks(shared={"\u8c48"}).html("\uf900 x") == "<mark>\uf900</mark> x"
    assert Marks(shared={"\uf900"}).html("\u8c48 x") == "<mark>\u8c48</mark> x"
    # accents written decomposed (e + U+0301), as macOS file names and some decoders write them
    first, second = "Un cafe\u0301 noir", "Le cafe\u0301 au lait"
    row = dict(sample_rows()[0], answer_1=first, answer_2=second)
    with serving(corpus(tmp_path, row)) as server:
        _, page = record_page(server, row["id"])
    for p, answer in ((1, first), (2, second)):
        cell = page.find("div", class_="answer", data_pair=str(p))
        assert [m.text() for m in cell.find_all("mark")] in (["cafe"], ["cafe\u0301"])  # the accent too, once tokens are NFC
    assert Marks(shared=shared_words(first, second)).html(first).startswith("Un <mark>cafe")


def test_a_search_marks_its_hits_and_opens_the_reasonings_that_have_one(sample_server_text):
    from imagenet_think.text import word_tokens

    row, word = next(
        (r, w) for r in sample_rows() for w in word_tokens(r["think_1"])
        if len(w) > 4 and w not in r["think_2"].lower() and w in r["answer_1"].lower()
    )
    _, page = record_page(sample_server_text, row["id"], f"?q={word.upper()}")
    for p in (1, 2):
        reasoning = page.find("details", class_=f"pair-{p}", data_pair=str(p))
        assert ("open" in reasoning.attrs) == (word in row[f"think_{p}"].lower())
        hits = reasoning.find_all("mark", class_="hit")
        assert len(hits) == row[f"think_{p}"].lower().count(word) and {h.text().lower() for h in hits} <= {word}
        answer = page.find("div", class_="answer", data_pair=str(p))
        assert len(answer.find_all("mark", class_="hit")) == row[f"answer_{p}"].lower().count(word)
    plain, _ = record_page(sample_server_text, row["id"])
    assert 'class="hit"' not in plain and " open>" not in plain


@pytest.fixture(scope="module")
def sample_server_text():
    with serving("sample") as server:
        yield server


def test_record_json_keeps_the_texts_whole(sample_server_text):
    row = sample_rows()[3]
    record = json.loads(get(sample_server_text, "/api/record/" + row["id"] + "?full=1")[2])
    assert record["answer_2"] == row["answer_2"]
