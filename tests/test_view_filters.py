"""The viewer's quality filters (label check, finish reason, agreement, token count), search hits
in the grid, the class box, and ``export --where``: real servers on 127.0.0.1, expectations
derived from the rows with the library's own measures (browser checks in
test_view_browser.py)."""

from __future__ import annotations

import html
import json
import multiprocessing
import re
import shlex
import time
from pathlib import Path
from urllib.parse import parse_qs, quote

import pyarrow.parquet as pq
import pytest

from imagenet_think import schema
from imagenet_think.quality import agreement
from imagenet_think.view import server as view_server
from tests.test_view import api, get, ids_of, sample_rows, serving, write_rows

PAIRS = tuple(schema.TEACHER_NAMES)


def tokens_of(row: dict, pair: int) -> int:
    return (len(row[f"think_{pair}"] or "") + len(row[f"answer_{pair}"] or "")) // 4


def corpus_rows() -> list[dict]:
    """The sample's rows with token counts, a pair without a finish reason, and a missing pair:
    the cases the sample itself lacks."""
    rows = []
    for i, row in enumerate(sample_rows()):
        row = {k: v for k, v in row.items() if k not in ("split", "file")}
        for p in PAIRS:
            row[f"num_tokens_{p}"] = tokens_of(row, p)
        rows.append(row)
    rows[4]["num_tokens_2"] = None  # one pair without a count
    rows[7]["num_tokens_1"] = rows[7]["num_tokens_2"] = None  # a record without any
    rows[6]["finish_reason_1"] = None  # an existing pair that recorded no reason
    rows[9].update(status_2="missing", think_2=None, answer_2=None, finish_reason_2=None, num_tokens_2=None)
    rows[11]["answer_1"] = rows[16]["answer_2"] = "A truck on a road."  # answers that miss their class
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[dict]]:
    rows = corpus_rows()
    splits = [r["split"] for r in sample_rows()]
    train, validation = splits.index("validation"), splits.count("validation")
    assert splits == ["train"] * train + ["validation"] * validation  # the sample, in the viewer's order
    root = tmp_path_factory.mktemp("filters") / "corpus"
    write_rows(root / "data" / "train-00000-of-00002.parquet", rows[:12], row_group_size=5)
    write_rows(root / "data" / "train-00001-of-00002.parquet", rows[12:train], row_group_size=5)
    write_rows(root / "data" / "validation-00000-of-00001.parquet", rows[train:], row_group_size=5)
    return root, rows


@pytest.fixture(scope="module")
def server(corpus):
    with serving(corpus[0]) as running:
        yield running


def wait_for_signals(server, query: str = "check=named") -> dict:
    """The API's answer once the quality signals are computed (503 until then)."""
    deadline = time.monotonic() + 120
    while True:
        status, headers, body = get(server, "/api/records?per_page=500&" + query)
        if status == 200:
            return json.loads(body)
        assert status == 503 and headers["retry-after"] == "2", (status, body)
        assert time.monotonic() < deadline, "signals not computed in 120 s"
        time.sleep(0.2)


def pair_values(row: dict, pairs, field: str) -> list:
    return [row[f"{field}_{p}"] for p in pairs if row[f"status_{p}"] != "missing" or field == "status"]


# --- finish reason and token count (in the index from the start) -----------------------------


def test_finish_reason_filter_looks_at_either_pair_or_the_teachers(server, corpus):
    rows = corpus[1]
    assert ids_of(server, "finish=length") == [r["id"] for r in rows if "length" in (r["finish_reason_1"], r["finish_reason_2"])]
    assert ids_of(server, "finish=length&teacher=kimi") == [r["id"] for r in rows if r["finish_reason_2"] == "length"]
    assert ids_of(server, "finish=length&teacher=glm") == [r["id"] for r in rows if r["finish_reason_1"] == "length"]
    # none: a pair that exists but recorded no reason (the missing pair of row 9 is not one)
    assert ids_of(server, "finish=none") == [rows[6]["id"]]
    assert ids_of(server, "finish=stop,none&teacher=glm") == [r["id"] for r in rows if r["finish_reason_1"] in ("stop", None)]
    assert ids_of(server, "finish=none&finish=length") == ids_of(server, "finish=length,none")


def record_tokens(row: dict, pairs) -> float | None:
    counts = [row[f"num_tokens_{p}"] for p in pairs if row[f"num_tokens_{p}"] is not None]
    return max(counts) if counts else None


def test_token_range_is_inclusive_and_uses_the_larger_pair_or_the_teachers(server, corpus):
    rows = corpus[1]
    counts = sorted({record_tokens(r, PAIRS) for r in rows} - {None})
    low, high = counts[3], counts[-4]  # bounds that are some record's exact count
    inside = [r["id"] for r in rows if record_tokens(r, PAIRS) is not None and low <= record_tokens(r, PAIRS) <= high]
    assert ids_of(server, f"tokens_min={low}&tokens_max={high}") == inside
    assert any(record_tokens(r, PAIRS) == low for r in rows if r["id"] in inside)
    assert ids_of(server, f"tokens_min={high}") == [r["id"] for r in rows if (record_tokens(r, PAIRS) or -1) >= high]
    kimi = [r["id"] for r in rows if r["num_tokens_2"] is not None and r["num_tokens_2"] <= low]
    assert ids_of(server, f"teacher=kimi&tokens_max={low}") == kimi
    assert rows[7]["id"] not in ids_of(server, "tokens_min=0")  # no count: left out by any bound


def test_sort_by_tokens_puts_records_without_a_count_last(server, corpus):
    rows = corpus[1]
    counted = [r for r in rows if record_tokens(r, PAIRS) is not None]
    uncounted = [r["id"] for r in rows if record_tokens(r, PAIRS) is None]
    most = [r["id"] for r in sorted(counted, key=lambda r: -record_tokens(r, PAIRS))]
    assert ids_of(server, "sort=-tokens") == most + uncounted
    fewest = [r["id"] for r in sorted(counted, key=lambda r: record_tokens(r, PAIRS))]
    assert ids_of(server, "sort=tokens") == fewest + uncounted
    glm = sorted((r for r in rows if r["num_tokens_1"] is not None and r["status_1"] != "missing"), key=lambda r: r["num_tokens_1"])
    assert ids_of(server, "sort=tokens&teacher=glm")[: len(glm)] == [r["id"] for r in glm]


# --- the quality signals: computed on first use, then filtered and sorted on ------------------


def expected_checks(rows: list[dict]) -> list[dict]:
    from imagenet_think.rewards import label_hit

    return [
        {p: label_hit(r[f"answer_{p}"], r["wnid"]).kind if r[f"answer_{p}"] else None for p in PAIRS} for r in rows
    ]


def expected_agreement(row: dict) -> float | None:
    if not (row["answer_1"] and row["answer_2"]):
        return None
    return agreement([row["answer_1"]], [row["answer_2"]])[0]


def test_signals_wait_for_first_use_and_the_page_says_they_are_being_computed(corpus, monkeypatch):
    monkeypatch.setattr(view_server, "SIGNAL_WAIT", 0.0)  # answer at once, whatever the workers do
    before = set(multiprocessing.active_children())
    with serving(corpus[0]) as server:
        for path in ("/", "/?sort=-think&finish=length&q=the", "/api/records?tokens_min=1", "/record/" + corpus[1][0]["id"]):
            assert get(server, path)[0] == 200
        assert set(multiprocessing.active_children()) == before  # no worker started for those
        # the first label filter finds no signals yet and starts their computation
        status, headers, body = get(server, "/api/records?check=missed")
        assert set(multiprocessing.active_children()) > before
        assert status == 503 and headers["retry-after"] == "2"
        computing = json.loads(body)["computing"]
        assert computing["total"] == len(corpus[1]) and computing["done"] < computing["total"]
        status, headers, body = get(server, "/?agree_min=0.1")
        page = body.decode()
        assert status == 200 and headers["refresh"] == "2" and "Computing the answer agreement and label checks" in page
        assert 'href="/">without these filters</a>' in page
        listing = wait_for_signals(server, "check=missed")
        assert listing["total"] == sum("missed" in c.values() for c in expected_checks(corpus[1]))


def test_label_check_filter_and_counts(server, corpus):
    rows, checks = corpus[1], expected_checks(corpus[1])
    listing = wait_for_signals(server, "check=named")
    assert [r["id"] for r in listing["records"]] == [r["id"] for r, c in zip(rows, checks) if "named" in c.values()]
    either = {k: sum(k in c.values() for c in checks) for k in ("named", "ancestor", "hedged", "missed", "unknown")}
    assert listing["check_counts"] == {k: n for k, n in either.items() if n}
    assert listing["before_check"] == len(rows)
    for teacher, pair in (("glm", 1), ("kimi", 2)):
        for kind in ("named", "missed"):
            assert ids_of(server, f"check={kind}&teacher={teacher}") == [r["id"] for r, c in zip(rows, checks) if c[pair] == kind]
    # the counts follow the other filters, not check= itself
    unclosed = api(server, "/api/records?status=unclosed_think&check=named")
    hits = [c for r, c in zip(rows, checks) if "unclosed_think" in (r["status_1"], r["status_2"])]
    assert unclosed["before_check"] == len(hits)
    assert unclosed["check_counts"].get("missed", 0) == sum("missed" in c.values() for c in hits)
    page = get(server, "/?check=missed")[2].decode()
    assert f'href="/?check=named">named <b>{either["named"]}</b></a>' in page


def test_agreement_range_is_inclusive_and_sorts(server, corpus):
    rows = corpus[1]
    wait_for_signals(server)
    scores = {r["id"]: expected_agreement(r) for r in rows}
    known = sorted(set(s for s in scores.values() if s is not None))
    low, high = known[2], known[-3]
    url = f"agree_min={low!r}&agree_max={high!r}"
    assert ids_of(server, url) == [r["id"] for r in rows if scores[r["id"]] is not None and low <= scores[r["id"]] <= high]
    assert ids_of(server, f"agree_max={low!r}") == [r["id"] for r in rows if scores[r["id"]] is not None and scores[r["id"]] <= low]
    listed = api(server, "/api/records?per_page=500&agree_min=0")["records"]
    assert {r["id"]: r["agreement"] for r in listed} == {k: v for k, v in scores.items() if v is not None}
    agreeing = sorted((r for r in rows if scores[r["id"]] is not None), key=lambda r: -scores[r["id"]])
    without = [r["id"] for r in rows if scores[r["id"]] is None]
    assert ids_of(server, "sort=-agree") == [r["id"] for r in agreeing] + without
    least = sorted((r for r in rows if scores[r["id"]] is not None), key=lambda r: scores[r["id"]])
    assert ids_of(server, "sort=agree") == [r["id"] for r in least] + without


def test_signals_follow_a_new_file(tmp_path, corpus):
    rows = corpus[1]
    root = tmp_path / "regen"
    write_rows(root / "data" / "train-00000-00000.parquet", rows[:10], row_group_size=4)
    with serving(root) as server:
        first = wait_for_signals(server, "agree_min=0")
        assert [r["id"] for r in first["records"]] == [r["id"] for r in rows[:10] if expected_agreement(r) is not None]
        write_rows(root / "data" / "train-00000-00001.parquet", rows[10:], row_group_size=4)
        after = wait_for_signals(server, "agree_min=0")
        assert [r["id"] for r in after["records"]] == [r["id"] for r in rows if expected_agreement(r) is not None]


# --- statuses and finish reasons the viewer does not know, beside the quality filters --------


def test_unknown_statuses_and_finish_reasons_agree_with_the_quality_filters(tmp_path, capsys):
    from imagenet_think.cli import main
    from imagenet_think.view.signals import LABEL_KINDS

    rows = corpus_rows()[:8]
    rows[0]["status_1"], rows[1]["status_2"] = "timeout", ""  # statuses the viewer does not know
    rows[2]["finish_reason_1"] = "eos_token"  # a finish reason outside its list
    write_rows(tmp_path / "odd" / "data" / "train-00000-of-00001.parquet", rows)
    checks = expected_checks(rows)
    odd = [i for i, r in enumerate(rows) if {r["status_1"], r["status_2"]} - set(schema.STATUSES)]
    assert odd == [0, 1]
    with serving(tmp_path / "odd") as server:
        wait_for_signals(server)
        # the label checks of the records with an unknown status, counted under status=unknown ...
        listing = api(server, "/api/records?per_page=500&status=unknown")
        kinds = {k: sum(k in checks[i].values() for i in odd) for k in LABEL_KINDS}
        assert any(kinds.values())
        assert listing["before_check"] == len(odd) and listing["check_counts"] == {k: n for k, n in kinds.items() if n}
        # ... and the unknown statuses counted and filtered under each check=
        for kind in (k for k, n in kinds.items() if n):
            having = [i for i, c in enumerate(checks) if kind in c.values()]
            assert api(server, f"/api/records?check={kind}")["counts"]["unknown"] == len(set(having) & set(odd))
            assert ids_of(server, f"status=unknown&check={kind}") == [rows[i]["id"] for i in sorted(set(having) & set(odd))]
        page = get(server, "/?status=unknown")[2].decode()
        assert f'href="/?status=unknown" title="a status this viewer does not know">unknown <b>{len(odd)}</b></a>' in page
        assert '<option value="unknown" selected>unknown</option>' in page
        assert 'href="/?status=unknown&amp;check=' in page  # the check chips keep status=unknown
        # finish=other: a reason outside the list, offered by the form; the reason itself is not a value
        assert ids_of(server, "finish=other") == [rows[2]["id"]]
        assert ids_of(server, "finish=other&teacher=kimi") == []
        assert '<option value="other">finish other</option>' in get(server, "/")[2].decode()
        status, _, body = get(server, "/api/records?finish=eos_token")
        assert status == 400 and "finish='eos_token': not a finish reason" in json.loads(body)["error"]
        for bad in ("tokens_min=%C2%B2", "agree_min=%EF%BC%90.5", "page=%C2%B2&check=named"):  # ², a fullwidth 0
            assert get(server, "/api/records?" + bad)[0] == 400, bad
        # export --where decides as the viewer lists
        for query in ("status=unknown", "finish=other&teacher=glm", f"status=unknown&check={next(k for k, n in kinds.items() if n)}"):
            out = tmp_path / f"out-{len(query)}"
            assert main(["export", str(tmp_path / "odd"), str(out), "--where", query]) == 0, capsys.readouterr().err
            assert exported_ids(out) == ids_of(server, query)


# --- search hits in the grid ----------------------------------------------------------------


def test_search_shows_where_it_hit(server, corpus):
    rows = corpus[1]
    word = "Soccer"
    listing = api(server, "/api/records?per_page=500&q=" + word)
    assert listing["records"]
    for record in listing["records"]:
        row = next(r for r in rows if r["id"] == record["id"])
        field = next(f"{f}_{p}" for p in PAIRS for f in ("think", "answer") if word.lower() in (row[f"{f}_{p}"] or "").lower())
        hit = record["hit"]
        text = row[field]
        at = text.lower().index(word.lower())
        assert hit["field"] == field and hit["match"] == text[at : at + len(word)]
        assert " ".join(text[:at].split()).endswith(hit["before"].removeprefix("… ").strip())
        assert " ".join(text[at + len(word) :].split()).startswith(hit["after"].removesuffix(" …").strip())
    kimi = api(server, "/api/records?per_page=500&teacher=kimi&q=" + word)["records"]
    assert kimi and all(r["hit"]["field"].endswith("_2") for r in kimi)
    page = get(server, "/?q=" + word)[2].decode()
    assert page.count('<p class="hit">') == len(listing["records"]) and f"<mark>{listing['records'][0]['hit']['match']}</mark>" in page


def test_search_hit_is_escaped(tmp_path):
    rows = sample_rows()
    evil = dict(rows[0], answer_1="<script>a()</script> <img src=x onerror=b()> <script>c()</script>")
    write_rows(tmp_path / "evil" / "data" / "train-00000-of-00001.parquet", [evil, *rows[1:3]])
    with serving(tmp_path / "evil") as server:
        page = get(server, "/?q=" + quote("<IMG src=x"))[2].decode()
    assert "<script>" not in page and "<img src=x" not in page
    assert ("<bdi>&lt;script&gt;a()&lt;/script&gt; <mark>&lt;img src=x</mark> onerror=b()&gt; &lt;script&gt;c()&lt;/script&gt;</bdi></p>"
            in page)


def test_search_hit_shows_control_and_bidi_characters_and_isolates_its_direction(tmp_path):
    rows = sample_rows()
    # a right-to-left override would show "post" before the match, a NUL would vanish
    tricky = dict(rows[0], answer_1="A red\u202e fox\x00 near the ZEBRACORN\u2066 post.")
    write_rows(tmp_path / "tricky" / "data" / "train-00000-of-00001.parquet", [tricky, *rows[1:3]])
    with serving(tmp_path / "tricky") as server:
        page = get(server, "/?q=zebracorn")[2].decode()
        hit = api(server, "/api/records?q=zebracorn")["records"][0]["hit"]
    assert hit == {"field": "answer_1", "before": "A red\u202e fox\x00 near the ", "match": "ZEBRACORN", "after": "\u2066 post."}
    assert "\u202e" not in page and "\x00" not in page and "\u2066" not in page
    assert ('<p class="hit"><span class="where">glm answer</span> <bdi>A red<span class="ctl" title="U+202E">\\u202e</span> '
            'fox<span class="ctl" title="U+0000">␀</span> near the <mark>ZEBRACORN</mark>'
            '<span class="ctl" title="U+2066">\\u2066</span> post.</bdi></p>') in page


def asked_together(server, path: str, cache, owner, name: str, times: int = 4) -> tuple[int, set]:
    """Send ``path`` ``times`` at once while ``owner.name`` (what fills ``cache``) waits until
    every request has asked ``cache``; how often ``owner.name`` ran, and the bodies."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release, calls, entered = threading.Event(), [], []
    made, get_or_make = getattr(owner, name), cache.get_or_make

    def held(*args, **kwargs):
        calls.append(args)
        assert release.wait(60)
        return made(*args, **kwargs)

    def counted(key, make):
        entered.append(key)
        return get_or_make(key, make)

    setattr(owner, name, held)
    cache.get_or_make = counted
    try:
        with ThreadPoolExecutor(times) as pool:
            answers = [pool.submit(get, server, path) for _ in range(times)]
            deadline = time.monotonic() + 30
            while len(entered) < times and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # let the last one reach its wait
            release.set()
            results = [a.result() for a in answers]
    finally:
        setattr(owner, name, made)
        del cache.get_or_make
    assert len(entered) == times and all(status == 200 for status, _, _ in results)
    return len(calls), {body for _, _, body in results}


def test_requests_arriving_together_read_one_page_of_hits_and_the_corpus_classes_once(tmp_path):
    from imagenet_think.view import classes

    write_rows(tmp_path / "c" / "data" / "train-00000-of-00001.parquet", sample_rows())
    with serving(tmp_path / "c") as server:
        corpus = server.viewer.corpus
        reads, pages = asked_together(server, "/api/records?q=banana", corpus._hits, corpus, "rows")
        assert reads == 1 and len(pages) == 1 and all(r["hit"] for r in json.loads(pages.pop())["records"])
        made, answers = asked_together(server, "/api/classes?q=ban", server.viewer._facts, classes, "corpus_classes")
        assert made == 1 and len(answers) == 1 and json.loads(answers.pop())["classes"][0]["wnid"] == "n07753592"


# --- the class box ---------------------------------------------------------------------------


def test_class_suggestions_put_the_corpus_classes_first(server, corpus):
    rows = corpus[1]
    found = api(server, "/api/classes?q=BAN")["classes"]
    bananas = sum(r["wnid"] == "n07753592" for r in rows)
    assert found[0] == {"wnid": "n07753592", "label": "banana", "records": bananas, "option": "banana · n07753592",
                        "kind_of": "edible fruit"}
    assert all(c["records"] == 0 for c in found[1:]) and len(found) == 20
    assert all("ban" in (c["label"] + ", " + c["option"]).lower() for c in found)
    assert api(server, "/api/classes?q=&limit=3")["classes"][0]["records"] == max(
        sum(r["wnid"] == w for r in rows) for w in {r["wnid"] for r in rows})
    assert get(server, "/api/classes?limit=0")[0] == 400


def test_a_class_name_picks_the_class_or_offers_the_candidates(server, corpus):
    rows = corpus[1]
    status, headers, _ = get(server, "/?status=ok&class=Banana")
    assert status == 303 and headers["location"] == "/?status=ok&wnid=n07753592"
    status, headers, _ = get(server, "/?class=" + quote("banana · n07753592"))  # what a suggestion fills in
    assert status == 303 and headers["location"] == "/?wnid=n07753592"
    status, headers, _ = get(server, "/?wnid=n07753592&class=")  # an emptied box: every class
    assert status == 303 and headers["location"] == "/"
    page = get(server, "/?class=crane")[2].decode()
    assert "“<bdi>crane</bdi>” names" in page and 'href="/?wnid=n02012849"' in page and 'href="/?wnid=n03126707"' in page
    assert "a kind of wading bird" in page and "a kind of lifting device" in page
    assert "No class is named" in get(server, "/?class=xyzzyq")[2].decode()
    assert ids_of(server, "class=banana") == [r["id"] for r in rows if r["wnid"] == "n07753592"]
    status, _, body = get(server, "/api/records?class=crane")
    assert status == 400 and "class='crane' names" in json.loads(body)["error"]
    listing = get(server, "/?wnid=n07753592")[2].decode()
    assert 'name="class" value="banana · n07753592"' in listing


def test_class_names_show_their_control_and_bidi_characters(tmp_path):
    label = "ban\u202eana\x00, plantain"  # a corpus' own label: an override and a NUL in it
    rows = [dict(r, label=label) if r["wnid"] == "n07753592" else r for r in sample_rows()]
    write_rows(tmp_path / "odd" / "data" / "train-00000-of-00001.parquet", rows)
    shown = "ban\\u202eana\\x00"
    with serving(tmp_path / "odd") as server:
        found = api(server, "/api/classes?q=BAN")["classes"][0]
        assert found == {"wnid": "n07753592", "label": label, "records": sum(r["wnid"] == "n07753592" for r in rows),
                         "option": f"{shown} · n07753592", "kind_of": "edible fruit"}
        pages = [get(server, path)[2].decode() for path in ("/?wnid=n07753592", "/?class=ban", "/?class=x%E2%80%AEy%00")]
    assert f'name="class" value="{shown} · n07753592"' in pages[0]
    picked = '<bdi>ban<span class="ctl" title="U+202E">\\u202e</span>ana<span class="ctl" title="U+0000">␀</span>, plantain</bdi>'
    assert f'<a href="/?wnid=n07753592">{picked}</a> <code><bdi>n07753592</bdi></code>' in pages[1]
    assert ('No class is named “<bdi>x<span class="ctl" title="U+202E">\\u202e</span>y'
            '<span class="ctl" title="U+0000">␀</span></bdi>”') in pages[2]
    assert not any(re.search("[\x00\u202e]", page) for page in pages)


# --- export --where: the records the viewer lists ---------------------------------------------


def exported_ids(out: Path) -> list[str]:
    files = sorted((out / "data").glob("train-*.parquet")) + sorted((out / "data").glob("validation-*.parquet"))
    return [i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]


def page_command(server, query: str, which: int) -> list[str]:
    """The export command the list page shows for ``query`` (0: export, 1: export-sft), as argv."""
    page = get(server, "/?" + query)[2].decode()
    commands = re.findall(r'<input type="text" readonly value="([^"]*)" aria-label="command"', page)
    return shlex.split(html.unescape(commands[which]))


WHERE_QUERIES = [
    "",
    "status=unclosed_think",
    "teacher=kimi&q=the",
    "finish=length,none&teacher=glm",
    "tokens_min=60&tokens_max=130",
    "wnid=n07753592&split=train",
    "check=missed",
    "check=named&agree_max=0.3&q=a",
]


@pytest.mark.parametrize("query", WHERE_QUERIES)
def test_export_where_writes_exactly_the_records_the_viewer_lists(server, corpus, tmp_path, query, capsys):
    from imagenet_think.cli import main

    listed = (wait_for_signals(server, query) if "check" in query or "agree" in query else api(server, "/api/records?per_page=500&" + query))
    argv = page_command(server, query, 0)
    assert argv[:2] == ["imagenet-think", "export"] and argv[3] == "OUT"
    assert argv[4:5] == (["--where"] if query else []) and parse_qs(argv[5] if query else "") == parse_qs(query)
    argv[2], argv[3] = str(corpus[0]), str(tmp_path / "out")
    assert listed["records"] and main(argv[1:]) == 0, capsys.readouterr().err
    assert exported_ids(tmp_path / "out") == [r["id"] for r in listed["records"]]


def test_export_where_that_keeps_nothing_says_so(corpus, tmp_path, capsys):
    from imagenet_think.cli import main

    assert main(["export", str(corpus[0]), str(tmp_path / "out"), "--where", "tokens_min=999999"]) == 2
    assert "no rows to export (none matches --where 'tokens_min=999999')" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_sft_where_keeps_the_records_the_viewer_lists(server, corpus, tmp_path, capsys):
    from imagenet_think.cli import main

    query = "status=ok&teacher=kimi&q=the&tokens_max=150"  # every record listed has a usable kimi pair
    argv = page_command(server, query, 1)
    assert argv[:3] == ["imagenet-think", "export-sft", str(corpus[0])] and "--teacher" in argv
    out = tmp_path / "sft"
    argv[argv.index("OUT")] = str(out)
    argv[argv.index("trl")] = "llava"
    assert main(argv[1:]) == 0, capsys.readouterr().err
    examples = json.loads((out / "imagenet_think.json").read_text())
    assert [e["id"] for e in examples] == ids_of(server, "split=train&" + query)
    assert main(argv[1:] + ["--overwrite", "--limit", "2"]) == 0
    assert [e["id"] for e in json.loads((out / "imagenet_think.json").read_text())] == ids_of(server, "split=train&" + query)[:2]


@pytest.mark.parametrize("query", ["teacher=kimi&q=the", "check=named&agree_max=0.3&q=a"])
def test_export_rl_where_keeps_the_images_the_viewer_lists(server, corpus, tmp_path, query, capsys):
    from imagenet_think.cli import main

    listed = wait_for_signals(server, query) if "check" in query else api(server, "/api/records?per_page=500&" + query)
    out = tmp_path / "rl"
    assert main(["export-rl", str(corpus[0]), "--format", "trl", "--out", str(out), "--where", query]) == 0, capsys.readouterr().err
    assert listed["records"] and exported_ids(out) == [r["id"] for r in listed["records"]]
    said = re.findall(r"\| images \| those `imagenet-think view` lists for `([^`]*)` \(`--where`\) \|", (out / "README.md").read_text())
    assert len(said) == 1 and parse_qs(said[0]) == parse_qs(query)
    assert main(["export-rl", str(corpus[0]), "--format", "trl", "--out", str(out), "--overwrite", "--where", query, "--limit", "1"]) == 0
    first = [next((r["id"] for r in listed["records"] if r["split"] == split), None) for split in ("train", "validation")]
    assert exported_ids(out) == [i for i in first if i]  # the first image each split keeps
    assert main(["export-rl", str(corpus[0]), "--format", "trl", "--out", str(tmp_path / "none"), "--where", "tokens_min=999999"]) == 2
    assert "no rows to export (none matches --where 'tokens_min=999999')" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("command", [["export", "SRC", "OUT"], ["export-sft", "SRC", "--format", "trl", "--out", "OUT"],
                                     ["export-rl", "SRC", "--format", "verl", "--out", "OUT"]])
@pytest.mark.parametrize(
    "where, message",
    [
        ("stauts=ok", "--where 'stauts=ok': unknown parameter 'stauts'; use status, teacher"),
        ("status=done", "--where 'status=done': status='done': not a status"),
        ("agree_min=1.5", "--where 'agree_min=1.5': agree_min='1.5': give a number from 0 to 1"),
        ("q=dog&sort=-think", "--where 'q=dog&sort=-think': sort= arranges the viewer's pages"),
        ("page=2", "--where 'page=2': page= arranges the viewer's pages"),
    ],
)
def test_where_errors_are_one_line_and_nothing_is_written(corpus, tmp_path, capsys, command, where, message):
    from imagenet_think.cli import main

    out = tmp_path / "out"
    argv = [str(corpus[0]) if a == "SRC" else str(out) if a == "OUT" else a for a in command]
    assert main([*argv, "--where", where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"imagenet-think {command[0]}: error: {message}"), err
    assert not out.exists()


def test_the_page_shows_the_command_for_the_view(server):
    page = get(server, "/?status=ok&teacher=kimi&q=red+fox&finish=stop&finish=length&sort=-think&page=1")[2].decode()
    source = shlex.quote(str(server.viewer.source))
    where = "status=ok&amp;teacher=kimi&amp;q=red+fox&amp;finish=stop,length"  # commas left as they are
    assert f"imagenet-think export {source} OUT --where &#x27;{where}&#x27;" in page
    assert "(in file order; the sort is the viewer's)" in page


def bash_words(words: str) -> list[str]:
    """The words bash makes of ``words`` (in a UTF-8 locale), exactly."""
    import os
    import subprocess

    done = subprocess.run(["bash", "-c", 'printf "%s\\0" ' + words], env={**os.environ, "LC_ALL": "C.UTF-8"},
                          capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_the_command_shown_runs_as_shown_whatever_the_path_holds(tmp_path):
    # a right-to-left override would show the path reordered; a tab would not show at all
    root = tmp_path / "runs\u202eevil\tdir" / "corpus"
    write_rows(root / "data" / "train-00000-of-00001.parquet", sample_rows()[:3])
    with serving(root) as server:
        page = get(server, "/?status=ok&q=it%27s+a&split=train")[2].decode()
    commands = [html.unescape(c) for c in re.findall(r'<input type="text" readonly value="([^"]*)" aria-label="command"', page)]
    assert len(commands) == 2 and all(c.isprintable() for c in commands), commands
    where = ["--where", "status=ok&q=it%27s+a&split=train"]
    assert bash_words(commands[0].removeprefix("imagenet-think ")) == ["export", str(root), "OUT", *where]
    assert bash_words(commands[1].removeprefix("imagenet-think ")) == [
        "export-sft", str(root), "--format", "trl", "--out", "OUT", "--split", "train", *where]
