"""``imagenet-think view`` over plain HTTP: a real server on 127.0.0.1, expectations derived from
the corpus files with pyarrow (the browser checks are in test_view_browser.py)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_think import schema
from imagenet_think.loading import sample_dir
from imagenet_think.text import word_tokens
from imagenet_think.view.corpus import Corpus
from imagenet_think.view.render import UNMARKED_WORDS
from imagenet_think.view.server import Viewer, ViewServer

SAMPLE_FILES = sorted(sample_dir().glob("data/*.parquet"))
"""The sample's files in the viewer's order: ``train-…``, then ``validation-…``."""
SAMPLE_FILE = SAMPLE_FILES[0]
XSS = '<script>window.__xss = 1</script>"><img src=x onerror="window.__xss = 2">'


def sample_rows() -> list[dict]:
    """Every sample row in file order, with the ``split`` and ``file`` it comes from."""
    rows = []
    for file in SAMPLE_FILES:
        split = file.name.split("-")[0]
        rows += [{**row, "split": split, "file": "data/" + file.name} for row in pq.read_table(file).to_pylist()]
    return rows


@contextlib.contextmanager
def serving(source, host: str = "127.0.0.1", **options):
    """A real viewer server on ``host``, port chosen by the OS, in a thread; ``options`` go to
    :class:`ViewServer`."""
    corpus = Corpus(str(source))
    corpus.refresh(strict=True)
    server = ViewServer(Viewer(corpus), host, 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(server: ViewServer, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Send ``path`` exactly as written (no normalisation), return status, headers, body."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def api(server: ViewServer, path: str) -> dict:
    status, headers, body = get(server, path)
    assert status == 200, body
    assert headers["content-type"] == "application/json; charset=utf-8"
    return json.loads(body)


def ids_of(server: ViewServer, query: str) -> list[str]:
    return [r["id"] for r in api(server, "/api/records?per_page=500&" + query)["records"]]


class Node:
    """An element of a page parsed with the standard library: ``tag``, ``attrs``, ``children``
    (nodes and texts, character references resolved)."""

    VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())

    def __init__(self, tag: str, attrs: dict, parent: "Node | None" = None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def elements(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.elements()

    def find_all(self, tag: str | None = None, class_: str | None = None, **attrs) -> list["Node"]:
        return [
            n for n in self.elements()
            if (tag is None or n.tag == tag)
            and (class_ is None or class_ in (n.attrs.get("class") or "").split())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, class_: str | None = None, **attrs) -> "Node":
        found = self.find_all(tag, class_, **attrs)
        assert len(found) == 1, (tag, class_, attrs, len(found))
        return found[0]


def parse_html(text: str) -> Node:
    """The element tree of ``text``; raises when an end tag does not close the open element."""

    class Builder(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.root = self.node = Node("#document", {})

        def handle_starttag(self, tag, attrs):
            node = Node(tag, dict(attrs), self.node)
            self.node.children.append(node)
            if tag not in Node.VOID:
                self.node = node

        def handle_endtag(self, tag):
            assert tag == self.node.tag, f"</{tag}> closes <{self.node.tag}>"
            self.node = self.node.parent

        def handle_data(self, data):
            self.node.children.append(data)

    builder = Builder()
    builder.feed(text)
    builder.close()
    assert builder.node is builder.root, f"<{builder.node.tag}> left open"
    return builder.root


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def sample_server():
    with serving("sample") as server:
        yield server


# --- the command ---------------------------------------------------------------------------


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "imagenet_think.cli", "view", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return process, process.stdout.readline()


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    _, err = process.communicate(timeout=30)
    return err


def test_cli_prints_serving_line_first_and_port_0_picks_a_free_port():
    process, first = start_cli("sample", "--port", "0")
    try:
        match = re.fullmatch(r"serving sample on http://127\.0\.0\.1:(\d+)/\n", first)
        assert match, first
        port = int(match.group(1))
        assert port > 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/records")
        assert json.loads(connection.getresponse().read())["total"] == len(sample_rows())
        connection.close()
    finally:
        err = stop(process)
    assert "warning" not in err


def test_cli_warns_when_serving_every_interface():
    process, first = start_cli("sample", "--host", "0.0.0.0", "--port", "0")
    err = stop(process)
    assert re.fullmatch(r"serving sample on http://0\.0\.0\.0:\d+/\n", first), first
    assert "imagenet-think view: warning: --host 0.0.0.0 lets every machine" in err


def view_error(capsys, *args: str) -> str:
    """Run ``imagenet-think view ARGS`` in this process; it must fail with exit status 2 and
    print exactly one line, on stderr."""
    from imagenet_think.cli import main

    assert main(["view", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("imagenet-think view: error: "), err
    return err


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert str(tmp_path / "nowhere") + ": no such directory" in view_error(capsys, str(tmp_path / "nowhere"), "--port", "0")
    assert "imagenet-think export imagenet-think DIR" in view_error(capsys, "imagenet-think", "--port", "0")
    assert "imagenet-think export data/corpus DIR" in view_error(capsys, "data/corpus", "--port", "0")

    (tmp_path / "bad" / "data").mkdir(parents=True)
    (tmp_path / "bad" / "data" / "train-00000-of-00001.parquet").write_bytes(b"not parquet at all")
    assert "train-00000-of-00001.parquet: not a readable Parquet file" in view_error(capsys, str(tmp_path / "bad"), "--port", "0")
    (tmp_path / "empty" / "data").mkdir(parents=True)
    assert "no Parquet files found" in view_error(capsys, str(tmp_path / "empty"))

    assert "--port 70000: give a port from 0 to 65535" in view_error(capsys, "sample", "--port", "70000")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in view_error(capsys, "sample", "--port", str(port))


# --- list: paging, filters, counts, sort ---------------------------------------------------


def test_pages_follow_file_order(sample_server):
    ids = [r["id"] for r in sample_rows()]
    per_page = 5
    pages = -(-len(ids) // per_page)
    for page in range(1, pages + 1):
        listing = api(sample_server, f"/api/records?per_page={per_page}&page={page}")
        assert [r["id"] for r in listing["records"]] == ids[(page - 1) * per_page : page * per_page]
        assert (listing["total"], listing["pages"]) == (len(ids), pages)
    assert api(sample_server, f"/api/records?per_page={per_page}&page={pages + 1}")["records"] == []
    html = get(sample_server, f"/?per_page={per_page}&page=2")[2].decode()
    assert f"records 6–10 of {len(ids)}" in html
    assert 'rel="prev" href="/?per_page=5"' in html and 'rel="next" href="/?page=3&amp;per_page=5"' in html
    assert '<input type="hidden" name="per_page" value="5">' in html  # the filter form keeps the page size


def test_the_pager_reaches_the_last_partial_page(sample_server):
    total, per_page = len(sample_rows()), 5
    last = -(-total // per_page)
    assert total % per_page and last == total // per_page + 1  # the last page is partial: 4 of 24 rows
    last_url = f"/?page={last}&amp;per_page={per_page}"

    def pager(page: int) -> str:
        html = get(sample_server, f"/?per_page={per_page}&page={page}")[2].decode()
        return html[html.index('<nav class="pager"'):].split("</nav>", 1)[0]

    assert f'<a href="{last_url}">{last}</a>' in pager(1)  # the first page links the last one
    assert f'<a rel="next" href="{last_url}">' in pager(last - 1)
    final = pager(last)
    assert f"records {(last - 1) * per_page + 1}–{total} of {total}" in final
    assert f'aria-current="page" href="{last_url}">{last}</a>' in final and 'rel="next"' not in final


def test_index_rows_match_the_file(sample_server):
    rows = sample_rows()
    listed = api(sample_server, "/api/records?per_page=500")["records"]
    for row, entry in zip(rows, listed, strict=True):
        for p in (1, 2):
            assert entry[f"status_{p}"] == row[f"status_{p}"]
            assert entry[f"think_chars_{p}"] == len(row[f"think_{p}"])
            assert entry[f"answer_chars_{p}"] == len(row[f"answer_{p}"])
        assert (entry["label"], entry["wnid"], entry["split"], entry["file"]) == (
            row["label"], row["wnid"], row["split"], row["file"])


@pytest.mark.parametrize("status", ["unclosed_think", "ok", "malformed"])
def test_status_filter_is_either_pair_or_the_teachers_pair(sample_server, status):
    rows = sample_rows()
    assert ids_of(sample_server, f"status={status}") == [r["id"] for r in rows if status in (r["status_1"], r["status_2"])]
    for teacher, pair in (("glm", 1), ("kimi", 2), ("2", 2)):
        assert ids_of(sample_server, f"status={status}&teacher={teacher}") == [r["id"] for r in rows if r[f"status_{pair}"] == status]
    both = ids_of(sample_server, "status=unclosed_think,malformed")
    assert both == [r["id"] for r in rows if {"unclosed_think", "malformed"} & {r["status_1"], r["status_2"]}]
    assert ids_of(sample_server, "status=unclosed_think&status=malformed") == both


def test_counts_per_status(sample_server):
    rows = sample_rows()
    either = Counter(s for r in rows for s in {r["status_1"], r["status_2"]})
    listing = api(sample_server, "/api/records?status=malformed")
    assert listing["counts"] == {s: either[s] for s in schema.STATUSES if either[s]}
    assert listing["before_status"] == len(rows) and listing["total"] == either["malformed"]
    glm = api(sample_server, "/api/records?teacher=glm")["counts"]
    assert glm == {s: n for s, n in Counter(r["status_1"] for r in rows).items()}
    html = get(sample_server, "/")[2].decode()
    for status, count in either.items():
        assert f'href="/?status={status}">{status} <b>{count}</b></a>' in html


def test_wnid_and_text_search(sample_server):
    rows = sample_rows()
    wnid = rows[3]["wnid"]
    assert ids_of(sample_server, f"wnid={wnid}") == [r["id"] for r in rows if r["wnid"] == wnid]
    for word in ("SOCCER", "count the edges", "no such phrase anywhere"):
        texts = lambda r, pairs: " ".join(r[f"{f}_{p}"] for p in pairs for f in ("think", "answer")).lower()  # noqa: E731
        assert ids_of(sample_server, "q=" + quote(word)) == [r["id"] for r in rows if word.lower() in texts(r, (1, 2))]
        assert ids_of(sample_server, "teacher=kimi&q=" + quote(word)) == [r["id"] for r in rows if word.lower() in texts(r, (2,))]
    # search combines with the other filters and the counts follow it
    soccer = [r for r in rows if "soccer" in texts(r, (1, 2))]
    listing = api(sample_server, "/api/records?q=soccer&status=unclosed_think")
    assert [r["id"] for r in listing["records"]] == [r["id"] for r in soccer if "unclosed_think" in (r["status_1"], r["status_2"])]
    assert listing["before_status"] == len(soccer)


def test_sort_by_reasoning_and_answer_length(sample_server):
    rows = sample_rows()
    longest = sorted(rows, key=lambda r: -max(len(r["think_1"]), len(r["think_2"])))  # stable: ties in file order
    assert ids_of(sample_server, "sort=-think") == [r["id"] for r in longest]
    kimi_short = sorted(rows, key=lambda r: len(r["think_2"]))
    assert ids_of(sample_server, "sort=think&teacher=kimi") == [r["id"] for r in kimi_short]
    answers = sorted(rows, key=lambda r: -max(len(r["answer_1"]), len(r["answer_2"])))
    page_2 = api(sample_server, "/api/records?sort=-answer&per_page=3&page=2")["records"]
    assert [r["id"] for r in page_2] == [r["id"] for r in answers[3:6]]


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=done", "status='done': not a status"),
        ("teacher=gpt", "teacher='gpt'"),
        ("page=0", "page='0': give a whole number from 1"),
        ("per_page=100000", "per_page=100000: at most 500"),
        ("sort=length", "sort='length'"),
        ("stauts=ok", "unknown parameter 'stauts'"),
        ("wnid=a&wnid=b", "wnid= given 2 times"),
        ("agree_min=2", "agree_min='2': give a number from 0 to 1"),
        ("agree_max=abc", "agree_max='abc': give a number from 0 to 1"),
        ("agree_min=0.6&agree_max=0.2", "agree_min=0.6 is above agree_max=0.2"),
        ("tokens_min=-1", "tokens_min='-1': give a whole number from 0"),
        ("tokens_max=%D9%A3", "tokens_max='٣': give a whole number from 0"),  # an Arabic-Indic three
        ("tokens_min=9&tokens_max=3", "tokens_min=9 is above tokens_max=3"),
        ("check=good", "check='good': not a label check"),
        ("finish=done", "finish='done': not a finish reason"),
        ("sort=tokenz", "sort='tokenz'"),
    ],
)
def test_bad_parameters_are_400_with_the_reason(sample_server, query, message):
    status, _, body = get(sample_server, "/api/records?" + query)
    assert status == 400 and message in json.loads(body)["error"]
    status, headers, body = get(sample_server, "/?" + query)
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert message.replace("'", "&#x27;") in body.decode()


# --- records, images, thumbnails -------------------------------------------------------------


def test_record_json_is_the_stored_row(sample_server):
    row = sample_rows()[2]
    record = api(sample_server, "/api/record/" + row["id"])
    image = row.pop("image")
    assert (record["split"], record["file"], record["row"]) == (row.pop("split"), row.pop("file"), 2)
    assert {k: record[k] for k in row} == row
    assert record["image"]["bytes"] == len(image["bytes"]) and record["image"]["path"] == image["path"]
    assert record["image"]["format"] == "image/jpeg"


def test_image_is_the_stored_bytes_and_thumbnail_is_small(sample_server):
    row = sample_rows()[5]
    status, headers, body = get(sample_server, "/image/" + row["id"])
    assert status == 200 and body == row["image"]["bytes"] and headers["content-type"] == "image/jpeg"
    status, headers, thumb = get(sample_server, "/thumb/" + row["id"])
    assert status == 200 and headers["content-type"] == "image/jpeg"
    original = Image.open(io.BytesIO(row["image"]["bytes"])).size
    scale = min(1.0, 240 / max(original))
    assert Image.open(io.BytesIO(thumb)).size == tuple(round(side * scale) for side in original)
    assert get(sample_server, "/thumb/" + row["id"])[2] == thumb  # cached copy, same bytes
    status, headers, body = get(sample_server, "/image/" + row["id"], method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(row["image"]["bytes"]))


def test_record_page_shows_both_pairs_answers_side_by_side_and_the_label_check(sample_server):
    rows = sample_rows()
    row = rows[0]
    status, headers, body = get(sample_server, "/record/" + row["id"])
    html = body.decode()
    page = parse_html(html)
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    for p, name in schema.TEACHER_NAMES.items():
        reasoning = page.find("details", class_=f"pair-{p}", data_pair=str(p))
        assert words(reasoning.find("div", class_="think").text()) == words(row[f"think_{p}"])
        assert words(reasoning.find("summary").text()) == f"{name} reasoning · {len(row[f'think_{p}']):,} characters"
        assert words(page.find("header", class_=f"pair-{p}").find("h2").text()) == f"{name} {row[f'model_{p}']}"
        assert f"finish reason <b><bdi>{row[f'finish_reason_{p}']}</bdi></b>" in html
    # the answers are Markdown: bold, numbered and bulleted lists become elements, no text is lost
    # (but the numbers of a numbered list, which the list shows itself)
    for p in (1, 2):
        answer = row[f"answer_{p}"]
        cell = page.find("div", class_="answer", data_pair=str(p))
        assert [s.text() for s in cell.find_all("strong")] == re.findall(r"\*\*(.+?)\*\*", answer)
        assert len(cell.find_all("li")) == len(re.findall(r"^(?:\d+\.|[-*]) ", answer, re.M)) > 0
        assert word_tokens(cell.text()) == word_tokens(re.sub(r"^\d+\. ", "", answer, flags=re.M))
        assert "**" not in cell.text()
    # the words the two answers share (as the agreement score counts them) are marked in both,
    # but for single letters and the short list of function words
    shared = set(word_tokens(row["answer_1"])) & set(word_tokens(row["answer_2"]))
    expected = {w for w in shared if (len(w) > 1 or not w.isascii()) and w not in UNMARKED_WORDS}
    assert "banana" in expected and "on" in shared and "on" not in expected
    for p in (1, 2):
        cell = page.find("div", class_="answer", data_pair=str(p))
        assert {m.text().lower() for m in cell.find_all("mark")} == expected
    assert html.count('class="check ') == 2  # one label check per answer (test_label_check_...)
    # the sampling settings and raw output of the generation record
    raw = row["generation"][0]["raw"]
    assert f"raw output · {len(raw):,} characters" in html
    # previous / next follow the query: unclosed_think records only
    hits = [r["id"] for r in rows if "unclosed_think" in (r["status_1"], r["status_2"])]
    page = get(sample_server, f"/record/{hits[0]}?status=unclosed_think")[2].decode()
    assert f'rel="next" href="/record/{hits[1]}?status=unclosed_think"' in page and 'rel="prev"' not in page
    assert f"record 1 of {len(hits)}" in page


def test_label_check_says_what_the_answer_names(tmp_path):
    from imagenet_think.rewards import label_hit

    words = {"named": "✓ names the class", "ancestor": "≈ names an ancestor class only, 1 level up",
             "hedged": "✗ also names a competing class", "missed": "✗ does not name the class"}
    rows = sample_rows()[:6]
    answers = ["A truck on a road.", "Some edible fruit.", "A banana and an orange.", "A banana."]
    rows = [dict(rows[0], id=f"{rows[0]['id']}_{i}", answer_1=answer) for i, answer in enumerate(answers)] + rows
    write_rows(tmp_path / "checks" / "data" / "train-00000-of-00001.parquet", rows)
    kinds = set()
    with serving(tmp_path / "checks") as server:
        for row in rows:
            html = get(server, "/record/" + quote(row["id"]))[2].decode()
            checks = re.findall(r'<span class="who">(\w+)</span> <a class="check \w+" data-check="(\w+)" href="/\?check=(\w+)"[^>]*>([^<]*)</a>', html)
            answered = [p for p in (1, 2) if row[f"answer_{p}"]]  # an empty one says "no answer"
            for pair, (who, kind, linked, text) in zip(answered, checks, strict=True):
                hit = label_hit(row[f"answer_{pair}"], row["wnid"])
                assert (who, kind, linked) == (schema.TEACHER_NAMES[pair], hit.kind, hit.kind)
                assert text == words[hit.kind]
                kinds.add(kind)
    assert {"named", "ancestor", "hedged", "missed"} <= kinds


def test_unknown_pages_and_records_are_404(sample_server):
    status, headers, body = get(sample_server, "/record/n00000000_nope")
    assert status == 404 and "no record with id &#x27;n00000000_nope&#x27;" in body.decode()
    status, _, body = get(sample_server, "/api/record/n00000000_nope")
    assert status == 404 and json.loads(body) == {"error": "no record with id 'n00000000_nope' in sample"}
    for path in ("/nope", "/record/", "/record", "/static/", "/static/nope.css", "/api/records/extra", "/favicon.ico"):
        assert get(sample_server, path)[0] == 404, path
    assert get(sample_server, "/", method="POST")[0] == 501


TRAVERSALS = [
    "/static/..%2F..%2Fsetup.cfg",
    "/static/..%2f..%2f..%2fsetup.cfg",
    "/static/%2e%2e/%2e%2e/%2e%2e/setup.cfg",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fsetup.cfg",
    "/static/../../../setup.cfg",
    "/static/....//....//setup.cfg",
    "/static/%252e%252e%252fsetup.cfg",
    "/static/..%5c..%5csetup.cfg",
    "/static/%2Fetc%2Fpasswd",
    "/static//etc/passwd",
    "/static/view.css%00.py",
    "/../../../etc/passwd",
    "/..%2F..%2F..%2Fetc%2Fpasswd",
    "//etc/passwd",
    "/etc/passwd",
    "/image/..%2F..%2Fdata%2Ftrain-00000-of-00001.parquet",
    "/image/%2Fetc%2Fpasswd",
    "/thumb/..%2F..%2FREADME.md",
    "/record/%2e%2e%2f%2e%2e%2fREADME.md",
    "/api/record/..%2F..%2F..%2Fsetup.cfg",
    "http://127.0.0.1/../../etc/passwd",
    "/data/train-00000-of-00001.parquet",
    "/sample/README.md",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_request_paths_never_reach_files(sample_server, path):
    status, _, body = get(sample_server, path)
    assert status == 404, (path, status)
    for secret in (b"root:", b"[metadata]", b"PAR1", b"pretty_name"):
        assert secret not in body


def test_static_assets_are_served_with_their_types(sample_server):
    css = Path(__file__).resolve().parents[1] / "imagenet_think" / "view" / "static" / "view.css"
    status, headers, body = get(sample_server, "/static/view.css")
    assert (status, headers["content-type"], body) == (200, "text/css; charset=utf-8", css.read_bytes())
    assert get(sample_server, "/static/view.js")[1]["content-type"].startswith("text/javascript")
    html = get(sample_server, "/")[2].decode()
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', html))  # nothing from elsewhere


def test_only_loopback_host_names_are_answered(sample_server):
    assert get(sample_server, "/", headers={"Host": "attacker.example:8000"})[0] == 403
    assert get(sample_server, "/api/records", headers={"Host": "10.0.0.5"})[0] == 403
    for host in ("localhost:9999", "127.0.0.1", "[::1]:8000"):
        assert get(sample_server, "/", headers={"Host": host})[0] == 200, host


# --- corpora on disk: layouts, splits, new files, bad files, nothing written ----------------


def write_rows(path: Path, rows: list[dict], row_group_size: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=pq.read_schema(SAMPLE_FILE))
    pq.write_table(table, path, row_group_size=row_group_size)


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_new_files_show_on_reload_and_nothing_is_written(tmp_path):
    rows = sample_rows()
    out = tmp_path / "regen"
    write_rows(out / "data" / "train-00000-00000.parquet", rows[:10], row_group_size=4)
    (out / "data" / ".train-00000-00001.parquet.0f3a.tmp").write_bytes(b"half written")  # as atomic_write leaves it mid-write
    before = tree(out)
    with serving(out) as server:
        assert ids_of(server, "") == [r["id"] for r in rows[:10]]
        for r in rows[:10]:
            get(server, "/record/" + r["id"]), get(server, "/thumb/" + r["id"]), get(server, "/image/" + r["id"])
        get(server, "/?q=banana&sort=-think")
        assert tree(out) == before  # nothing written into the corpus
        write_rows(out / "data" / "train-00000-00001.parquet", rows[10:], row_group_size=4)
        listing = api(server, "/api/records?per_page=500")
        assert [r["id"] for r in listing["records"]] == [r["id"] for r in rows]
        assert api(server, "/api/record/" + rows[-1]["id"])["file"] == "data/train-00000-00001.parquet"
        assert ids_of(server, "q=soccer") == [r["id"] for r in rows if "soccer" in (r["think_1"] + r["answer_1"] + r["think_2"] + r["answer_2"]).lower()]
        (out / "data" / "train-00000-00000.parquet").unlink()
        assert ids_of(server, "") == [r["id"] for r in rows[10:]]


def test_a_regenerate_output_before_its_first_file_is_served_empty_until_the_run_writes(tmp_path):
    rows = sample_rows()
    out = tmp_path / "regen"
    (out / "regenerate").mkdir(parents=True)  # what `regenerate` makes first: its state directory
    with serving(out) as server:
        listing = api(server, "/api/records")
        assert (listing["total"], listing["records"], listing["problems"]) == (0, [], [])
        status, _, body = get(server, "/")
        assert status == 200 and b"No rows written yet: reload" in body
        write_rows(out / "data" / "train-00000-00000.parquet", rows[:3], row_group_size=2)
        assert ids_of(server, "") == [r["id"] for r in rows[:3]]


def test_images_follow_a_rewritten_file_without_a_page_load(tmp_path):
    rows = sample_rows()
    out = tmp_path / "corpus"
    write_rows(out / "data" / "train-00000-of-00001.parquet", rows[:12])
    with serving(out) as server:
        assert get(server, "/image/" + rows[0]["id"])[2] == rows[0]["image"]["bytes"]
        write_rows(out / "data" / "train-00000-of-00001.parquet", rows[::-1], row_group_size=5)  # export --overwrite
        for row in (rows[11], rows[0], rows[-1]):  # row 11 is in a row group not read before
            assert get(server, "/image/" + row["id"])[2] == row["image"]["bytes"]


def test_a_file_that_breaks_while_serving_is_named_and_the_rest_still_served(tmp_path):
    rows = sample_rows()
    out = tmp_path / "regen"
    write_rows(out / "data" / "train-00000-00000.parquet", rows[:12])
    with serving(out) as server:
        (out / "data" / "train-00000-00001.parquet").write_bytes(b"PAR1 but cut short")
        listing = api(server, "/api/records?per_page=500")
        assert [r["id"] for r in listing["records"]] == [r["id"] for r in rows[:12]]
        assert len(listing["problems"]) == 1 and "train-00000-00001.parquet: not a readable Parquet file" in listing["problems"][0]
        assert "skipped: " in get(server, "/")[2].decode()
        write_rows(out / "data" / "train-00000-00001.parquet", rows[12:])  # finished: now it reads
        assert api(server, "/api/records")["problems"] == [] and api(server, "/api/records")["total"] == len(rows)


def test_splits_of_a_hub_layout_directory(tmp_path):
    rows = sample_rows()
    write_rows(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet", rows[:16])
    write_rows(tmp_path / "hub" / "data" / "validation-00000-of-00001.parquet", rows[16:])
    with serving(tmp_path / "hub") as server:
        assert ids_of(server, "split=validation") == [r["id"] for r in rows[16:]]
        assert ids_of(server, "split=train&sort=-think") == [
            r["id"] for r in sorted(rows[:16], key=lambda r: -max(len(r["think_1"]), len(r["think_2"])))]
        assert '<select name="split">' in get(server, "/")[2].decode()


def test_published_layout_is_normalised_like_the_loader(published_dir):
    from imagenet_think.loading import load_dataset

    loaded = load_dataset(str(published_dir), split=None, validation_fraction=0.0, decode_images=False)["train"]
    expected = loaded.remove_columns("image").to_list()
    with serving(published_dir) as server:
        listed = api(server, "/api/records?per_page=500")["records"]
        assert [(r["id"], r["label"], r["status_1"], r["status_2"]) for r in listed] == [
            (r["id"], r["label"], r["status_1"], r["status_2"]) for r in expected]
        record = api(server, "/api/record/" + expected[7]["id"])
        assert {k: record[k] for k in expected[7]} == expected[7]
        assert get(server, "/image/" + expected[7]["id"])[2] == sample_rows()[7]["image"]["bytes"]
        assert "no generation record (published copy)" in get(server, "/record/" + expected[7]["id"])[2].decode()


def test_corpus_text_is_escaped(tmp_path):
    rows = sample_rows()
    evil = dict(rows[0], id="n07753592_" + XSS, label=XSS, think_1=XSS, answer_2=XSS + " banana", question=XSS)
    write_rows(tmp_path / "evil" / "data" / "train-00000-of-00001.parquet", [evil, *rows[1:3]])
    with serving(tmp_path / "evil") as server:
        pages = [get(server, "/")[2].decode(), get(server, "/record/" + quote(evil["id"], safe=""))[2].decode()]
        assert api(server, "/api/record/" + quote(evil["id"], safe=""))["think_1"] == XSS
    escaped = "&lt;script&gt;window.__xss = 1&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=&quot;window.__xss = 2&quot;&gt;"
    for html in pages:
        assert "<script>window" not in html and "<img src=x" not in html
        assert escaped in html
    assert pages[1].count(escaped) >= 4  # id, label, question, reasoning (the answer is marked word by word)
