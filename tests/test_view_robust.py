"""``imagenet-think view`` under bursts, slow clients, hostile images and odd requests: real
servers (the command in a subprocess where memory or signals are measured, else in a thread)
and real sockets."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import select
import signal
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from imagenet_think.view.corpus import Corpus
from imagenet_think.view.server import DECODE_SLOTS, PAGE_POLICY, Viewer, ViewServer
from imagenet_think.view.thumbnail import MAX_IMAGE_PIXELS, ImageTooLarge, describe, make_thumbnail
from tests.test_view import api, get, ids_of, parse_html, sample_rows, serving, start_cli, stop, write_rows


def served_port(first_line: str) -> int:
    match = re.fullmatch(r"serving \S+ on http://(?:\[[^]]*\]|[^:/]+):(\d+)/\n", first_line)
    assert match, first_line
    return int(match.group(1))


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- bursts and slow clients ---------------------------------------------------------------

BURST = 200


def test_a_burst_of_200_connections_is_held_in_the_listen_queue_and_all_answered():
    """The server stopped (as when busy) while 200 connections arrive: the kernel completes all
    200 handshakes into the listen queue (with the standard library's backlog of 5 only 6 get
    in and the rest wait for SYN retries, 1 s, 3 s, 7 s ... away); resumed, it answers all."""
    process, first = start_cli("sample", "--port", "0")
    port = served_port(first)
    sockets = []
    try:
        os.kill(process.pid, signal.SIGSTOP)
        try:
            for _ in range(BURST):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                sockets.append(sock)
            pending, deadline = set(sockets), time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                _, writable, _ = select.select([], list(pending), [], 0.5)
                pending -= {s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
            assert not pending, f"{len(pending)} of {BURST} connections not let in while the server was busy"
        finally:
            os.kill(process.pid, signal.SIGCONT)
        for sock in sockets:
            sock.settimeout(60)
            sock.sendall(b"GET /static/view.css HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answers = [read_to_end(sock) for sock in sockets]
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * BURST
    finally:
        for sock in sockets:
            sock.close()
        stop(process)


@pytest.fixture
def quick_timeout_server():
    """The sample served in a thread with a 1-second idle timeout."""
    with serving("sample", request_timeout=1.0) as server:
        yield server


def test_half_sent_requests_are_closed_after_the_timeout_and_others_still_answered(quick_timeout_server):
    server = quick_timeout_server
    threads_before = threading.active_count()
    slow = [socket.create_connection(server.server_address[:2], timeout=30) for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: the request never ends
        status, _, body = get(server, "/api/records")
        assert status == 200 and json.loads(body)["total"] == len(sample_rows())
        for sock in slow:  # the server hangs up (EOF) well before this client's own 30 s
            assert sock.recv(1) == b""
    finally:
        for sock in slow:
            sock.close()
    deadline = time.monotonic() + 30
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == threads_before  # no thread left holding a slow client


# --- who is answered, and how odd requests are answered -------------------------------------


def test_every_loopback_address_answers_its_own_url():
    process, first = start_cli("sample", "--host", "127.0.0.2", "--port", "0")
    try:
        assert first.startswith("serving sample on http://127.0.0.2:")
        connection = http.client.HTTPConnection("127.0.0.2", served_port(first), timeout=30)
        connection.request("GET", "/")  # Host: 127.0.0.2:PORT, as a browser sends it
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        err = stop(process)
    assert "warning" not in err  # still a loopback-only server


def test_host_check_takes_loopback_addresses_localhost_and_the_bound_name():
    corpus = Corpus("sample")
    viewer = Viewer(corpus, host_names=("viewer.test",))
    for host in ("127.0.0.2:8000", "127.255.0.9", "[::1]:80", "localhost", "LOCALHOST:1", "viewer.test:8000"):
        assert viewer.handle("/api/records", host).status == 200, host
    for host in ("attacker.example", "other.test:8000", "0.0.0.0:8000", "10.0.0.1", "127.0.0.1.attacker.example"):
        assert viewer.handle("/api/records", host).status == 403, host


def raw_request(server: ViewServer, data: bytes) -> tuple[int, dict, bytes]:
    """Send ``data`` as it is; the response's status, headers (lower-case names) and body."""
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method="GET")
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 501),
        (b"DELETE /api/records HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (b"GET / / HTTP/1.1\r\n\r\n", 400),
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
    ],
)
def test_the_standard_librarys_errors_carry_the_page_headers(sample_server_with_errors, request_bytes, status):
    answered, headers, body = raw_request(sample_server_with_errors, request_bytes)
    assert answered == status
    assert headers["content-security-policy"] == PAGE_POLICY
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert headers["content-type"] == "text/html; charset=utf-8" and headers["connection"] == "close"
    page = parse_html(body.decode())
    assert page.find("section", class_="error").find("h1").text() == str(status)


@pytest.fixture(scope="module")
def sample_server_with_errors():
    with serving("sample") as server:
        yield server


@pytest.mark.parametrize("query", ["page=%C2%B2", "per_page=%D9%A3", "page=%EF%BC%93", "page=" + "9" * 5000, "page=1e3", "page=-2"])
def test_page_numbers_are_ascii_digits_only(sample_server_with_errors, query):
    status, _, body = get(sample_server_with_errors, "/api/records?" + query)
    assert status == 400 and "give a whole number from 1" in json.loads(body)["error"], body[:300]
    assert get(sample_server_with_errors, "/?" + query)[0] == 400


# --- statuses the viewer does not know -----------------------------------------------------


def test_an_unknown_status_is_shown_and_counted(tmp_path):
    rows = sample_rows()
    odd = [dict(rows[0], status_1="timeout"), dict(rows[1], status_2="")]
    write_rows(tmp_path / "odd" / "data" / "train-00000-of-00001.parquet", [*odd, *rows[2:6]])
    unknown = [r["id"] for r in odd]
    with serving(tmp_path / "odd") as server:
        listing = api(server, "/api/records")
        assert listing["counts"]["unknown"] == 2 and listing["counts"]["ok"] == sum(
            "ok" in (r["status_1"], r["status_2"]) for r in [*odd, *rows[2:6]])
        assert ids_of(server, "status=unknown") == unknown
        assert ids_of(server, "status=unknown&teacher=kimi") == unknown[1:]
        page = parse_html(get(server, "/")[2].decode())
        chip = page.find("a", class_="chip", href="/?status=unknown")
        assert " ".join(chip.text().split()) == "unknown 2"
        card = page.find("article", data_id=unknown[0])
        assert [b.text() for b in card.find_all("span", class_="badge")] == ["glm unknown: timeout", f"kimi {rows[0]['status_2']}"]
        record = parse_html(get(server, "/record/" + quote(unknown[1]))[2].decode())
        assert record.find("header", class_="pair-2").find("span", class_="badge").text() == "unknown: "


# --- images: pixel limit, one decode at a time per image, bounded memory ---------------------


def png_of_zeros(width: int, height: int, rows: int | None = None) -> bytes:
    """A black RGB PNG of any size, written a row at a time (a 12000×12000 one is ~450 KB);
    ``rows``: write only that many rows (a cut file whose header still says ``height``)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg(width: int, height: int, **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, "JPEG", **save)
    return buffer.getvalue()


def test_jpeg_is_decoded_reduced_and_the_limit_counts_the_decoded_pixels():
    # 2000×2000 is over a 1,000,000-pixel limit, but a JPEG decodes at 1/8 scale (250×250)
    thumb = Image.open(io.BytesIO(make_thumbnail(jpeg(2000, 2000), 240, max_pixels=1_000_000)))
    assert thumb.size == (240, 240)
    with pytest.raises(ImageTooLarge, match="2000×2000 pixels, over the limit of 1,000,000"):
        make_thumbnail(png_of_zeros(2000, 2000), 240, max_pixels=1_000_000)  # PNG has no reduced decode
    assert Image.open(io.BytesIO(make_thumbnail(png_of_zeros(1000, 1000), 240, max_pixels=1_000_000))).size == (240, 240)
    # over twice Pillow's own limit, Pillow refuses to open it at all: the same refusal, from the header alone
    giant = png_of_zeros(20_000, 20_000, rows=1)
    with pytest.raises(ImageTooLarge, match=f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's own limit"):
        make_thumbnail(giant)
    assert describe(giant)["too_large"] == f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's own limit"


def test_thumbnail_turns_the_image_as_its_exif_says():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown turned 90° clockwise
    stored = jpeg(400, 200, exif=exif.tobytes())
    assert Image.open(io.BytesIO(make_thumbnail(stored, 240))).size == (120, 240)


def image_rows(images: list[bytes]) -> list[dict]:
    """Sample rows (ids made unique) carrying ``images``."""
    rows = sample_rows()
    return [
        dict(rows[i % len(rows)], id=f"{rows[i % len(rows)]['wnid']}_big_{i}", image={"bytes": data, "path": f"big_{i}.png"})
        for i, data in enumerate(images)
    ]


def test_requests_arriving_together_for_one_thumbnail_wait_for_one_decode(tmp_path):
    rows = image_rows([png_of_zeros(3000, 2000)])
    write_rows(tmp_path / "one" / "data" / "train-00000-of-00001.parquet", rows)
    with serving(tmp_path / "one") as server:
        viewer, release, calls = server.viewer, threading.Event(), []
        decode = viewer._decode_thumbnail

        def held_decode(*args):
            calls.append(args)
            assert release.wait(60)
            return decode(*args)

        entered, get_or_make = [], viewer._thumbnails.get_or_make

        def counted(key, make):
            entered.append(key)
            return get_or_make(key, make)

        viewer._decode_thumbnail = held_decode  # every decode waits until all six requests asked the cache
        viewer._thumbnails.get_or_make = counted
        with ThreadPoolExecutor(6) as pool:
            answers = [pool.submit(get, server, "/thumb/" + rows[0]["id"]) for _ in range(6)]
            deadline = time.monotonic() + 30
            while len(entered) < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # let the sixth reach its wait
            release.set()
            bodies = {a.result()[2] for a in answers}
    assert len(calls) == 1 and len(bodies) == 1
    assert Image.open(io.BytesIO(bodies.pop())).size == (240, 160)


def test_a_value_the_cache_cannot_keep_fails_its_callers_and_is_made_again():
    from imagenet_think.view.cache import BoundedCache

    cache = BoundedCache(100, size=len)
    released, entered, results = threading.Event(), threading.Event(), []

    def held_none():
        entered.set()
        assert released.wait(30)
        return None  # len(None) fails: the value cannot be sized

    def ask(make):
        try:
            results.append(cache.get_or_make("key", make))
        except TypeError as err:
            results.append(type(err))

    owner = threading.Thread(target=ask, args=(held_none,), daemon=True)
    owner.start()
    assert entered.wait(30)
    waiter = threading.Thread(target=ask, args=(lambda: b"never made",), daemon=True)
    waiter.start()
    time.sleep(0.2)  # the waiter is waiting for the owner's value
    released.set()
    owner.join(30), waiter.join(30)
    assert not owner.is_alive() and not waiter.is_alive() and results == [TypeError, TypeError]
    assert cache.get_or_make("key", lambda: b"made") == b"made"  # nothing left half-made


def rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak so far) of a process, in KiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


BURST_MEMORY_BOUND_MIB = 400
"""Most the server's peak RSS may grow while it makes thumbnails of six bombs and six large
images at once: DECODE_SLOTS (2) decodes of at most MAX_IMAGE_PIXELS (40 MP) at 4 bytes a pixel
= 320 MiB, plus 80 MiB for everything else; without the limits it is GBs."""


def test_a_burst_of_thumbnails_for_huge_images_stays_within_bounded_memory(tmp_path):
    assert DECODE_SLOTS * MAX_IMAGE_PIXELS * 4 <= (BURST_MEMORY_BOUND_MIB - 80) * 2**20
    bomb = png_of_zeros(12_000, 12_000)  # 432 MB of pixels in a ~450 KB file
    large = png_of_zeros(6_000, 6_000)  # 36 MP: under the limit, decoded (108 MB each)
    rows = image_rows([bomb, *[large] * 6])
    write_rows(tmp_path / "bombs" / "data" / "train-00000-of-00001.parquet", rows)
    process, first = start_cli(str(tmp_path / "bombs"), "--port", "0")
    try:
        port = served_port(first)

        def fetch(path: str) -> tuple[int, str, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("GET", path)
            response = connection.getresponse()
            answer = (response.status, response.getheader("Content-Type"), response.read())
            connection.close()
            return answer

        assert fetch("/api/records")[0] == 200
        before = rss_kib(process.pid)["VmRSS"]
        paths = [f"/thumb/{rows[0]['id']}"] * 6 + [f"/thumb/{r['id']}" for r in rows[1:]]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(fetch, paths))
        grown_mib = (rss_kib(process.pid)["VmHWM"] - before) / 1024
        record = json.loads(fetch(f"/api/record/{rows[0]['id']}")[2])["image"]
        page = fetch(f"/record/{rows[0]['id']}")[2].decode()
    finally:
        stop(process)
    assert grown_mib < BURST_MEMORY_BOUND_MIB, f"peak RSS grew by {grown_mib:.0f} MiB"
    for status, content_type, body in answers[:6]:  # the bomb: a placeholder saying why
        assert (status, content_type) == (200, "image/svg+xml")
        assert b"too large to show" in body and "12000×12000 pixels".encode() in body
    for status, content_type, body in answers[6:]:
        assert (status, content_type) == (200, "image/jpeg") and Image.open(io.BytesIO(body)).size == (240, 240)
    assert record["width"] == record["height"] == 12_000
    assert record["too_large"] == f"12000×12000 pixels, over the limit of {MAX_IMAGE_PIXELS:,}"
    figure = parse_html(page).find("figure", class_="full")
    assert figure.find_all("img") == [] and "image not shown: 12000×12000 pixels" in figure.text()
    assert figure.find("a").attrs["href"] == f"/image/{rows[0]['id']}"  # the stored file stays reachable
