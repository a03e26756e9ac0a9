"""The viewer's HTTP side: routes, security headers and thumbnails (standard library server).

Routes (``GET`` and ``HEAD``; anything else is refused)::

    /                   the record list; filters, sort and page in the query string
    /record/<id>        one record (the list's query string gives previous/next; full=1: long
                        texts whole instead of cut)
    /api/records        the list as JSON
    /api/record/<id>    one record as JSON (image as path, size and format)
    /image/<id>         the image, its stored bytes
    /thumb/<id>         a JPEG thumbnail made with Pillow (see :mod:`~imagenet_think.view.thumbnail`),
                        kept in a bounded memory cache
    /static/<name>      the bundled CSS, JavaScript and icon

Every other path is a 404.  No part of a request path is ever joined to a file path: ids are
looked up in the index and static files come from a fixed table read at start, so ``..`` in any
spelling or encoding reaches nothing.  Bound to a loopback address, the server also refuses
requests whose ``Host`` is neither a loopback address, ``localhost`` nor the name it was bound to
(a web page cannot then read the corpus through DNS rebinding).  Every response, the standard
library's own error pages included, carries a Content-Security-Policy that allows only this
server's own scripts, styles and images, and ``nosniff``; corpus text is HTML-escaped.  Nothing
is written anywhere.

Under load: the listen queue holds :data:`LISTEN_BACKLOG` connections arriving together; a
connection idle for :data:`REQUEST_TIMEOUT` seconds (a request sent half, a kept-alive
connection not reused) is closed, so slow clients do not hold threads for ever; at most
:data:`DECODE_SLOTS` threads decode thumbnails (requests queue for them) and requests arriving together for one
thumbnail wait for a single decode.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Collection, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from imagenet_think.images import image_kind
from imagenet_think.view import pages
from imagenet_think.view.cache import BoundedCache
from imagenet_think.view.corpus import Corpus, Snapshot
from imagenet_think.view.query import Query, QueryError, select
from imagenet_think.view.thumbnail import THUMBNAIL_SIZE, ImageTooLarge, describe, make_thumbnail, placeholder

logger = logging.getLogger(__name__)

THUMBNAIL_CACHE_BYTES = 32 * 2**20
DECODE_SLOTS = 2
"""Threads that decode thumbnails; requests wait for them.  With the pixel limit this bounds the
memory of a burst of thumbnail requests to about ``DECODE_SLOTS × MAX_IMAGE_PIXELS × 4`` bytes
(decoding in the request threads instead, each new thread's malloc arena could keep another
freed decode's worth of memory)."""
LISTEN_BACKLOG = 256
"""Connections the listen queue holds before the server accepts them (the standard library's 5
made a browser burst time out)."""
REQUEST_TIMEOUT = 30.0
"""Seconds a connection may stay silent (mid-request or between kept-alive requests) before it
is closed."""

PAGE_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
LOOPBACK_NAMES = frozenset({"localhost"})


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    cache: str = "no-store"


def is_loopback_address(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address as written (``127.0.0.0/8``,
    ``::1``); no name is looked up.

    >>> [is_loopback_address(h) for h in ("127.0.0.2", "::1", "LOCALHOST", "0.0.0.0", "example.com")]
    [True, True, True, False, False]
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) reaches this machine only: a loopback
    address, or a name whose addresses all are.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if is_loopback_address(host):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(is_loopback_address(a.split("%", 1)[0]) for a in addresses)


def _host_name(header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def static_files() -> dict[str, tuple[bytes, str]]:
    """The bundled assets by file name, with their content type."""
    folder = resources.files("imagenet_think.view").joinpath("static")
    return {
        item.name: (item.read_bytes(), STATIC_TYPES[item.name[item.name.rindex(".") :]])
        for item in folder.iterdir()
        if "." in item.name and item.name[item.name.rindex(".") :] in STATIC_TYPES
    }


class NotFound(LookupError):
    """A path or record id the viewer does not have."""


class Viewer:
    """Answers requests for one corpus; :meth:`handle` maps a request target to a response."""

    def __init__(
        self,
        corpus: Corpus,
        loopback_only: bool = True,
        thumbnail_size: int = THUMBNAIL_SIZE,
        host_names: Collection[str] = (),
    ):
        """``loopback_only``: answer only requests whose ``Host`` is a loopback address,
        ``localhost`` or one of ``host_names`` (the name the server was bound to)."""
        self.corpus = corpus
        self.loopback_only = loopback_only
        self.host_names = frozenset(name.lower() for name in host_names)
        self.thumbnail_size = thumbnail_size
        self.static = static_files()
        self._thumbnails = BoundedCache(THUMBNAIL_CACHE_BYTES, size=lambda thumb: len(thumb[1]))
        self._decoder = ThreadPoolExecutor(DECODE_SLOTS, thread_name_prefix="view-thumbnail")

    @property
    def source(self) -> str:
        return self.corpus.source

    def handle(self, target: str, host: Optional[str] = None) -> Response:
        """The response to ``GET target``; ``host`` is the request's ``Host`` header."""
        parts = urlsplit(target)
        api = parts.path.startswith("/api/")
        try:
            if self.loopback_only and host and not self._answers_host(_host_name(host)):
                return self._error(403, f"this viewer answers only requests to localhost, not to {host!r}", api)
            segments = [unquote(s) for s in parts.path.split("/")[1:]]
            return self._route(segments, parse_qs(parts.query, keep_blank_values=True))
        except QueryError as err:
            return self._error(400, str(err), api)
        except NotFound as err:
            return self._error(404, str(err.args[0]), api)
        except Exception as err:  # one line to the client and the log; the traceback at DEBUG
            logger.error("%s: %s: %s", target, type(err).__name__, err)
            logger.debug("traceback", exc_info=True)
            return self._error(500, f"{type(err).__name__}: {err}", api)

    def _answers_host(self, name: str) -> bool:
        return is_loopback_address(name) or name.lower() in self.host_names

    def _route(self, segments: list[str], params: dict[str, list[str]]) -> Response:
        match segments:
            case [""]:
                return self._list(params, api=False)
            case ["api", "records"]:
                return self._list(params, api=True)
            case ["record", record_id] if record_id:
                return self._record(record_id, params, api=False)
            case ["api", "record", record_id] if record_id:
                return self._record(record_id, params, api=True)
            case ["image", record_id] if record_id:
                return self._image(record_id)
            case ["thumb", record_id] if record_id:
                return self._thumbnail(record_id)
            case ["static", name] if name in self.static:
                body, content_type = self.static[name]
                return Response(200, body, content_type, cache="max-age=60")
        raise NotFound(f"no such page: /{'/'.join(segments)}")

    def _error(self, status: int, message: str, api: bool) -> Response:
        if api:
            return _json(status, {"error": message})
        return Response(status, pages.error_page(self.source, status, message).encode(), "text/html; charset=utf-8")

    def _find(self, snapshot: Snapshot, record_id: str) -> int:
        position = snapshot.position_of(record_id)
        if position is None:
            raise NotFound(f"no record with id {record_id!r} in {self.source}")
        return position

    def _selection(self, snapshot: Snapshot, query: Query):
        match = self.corpus.search(snapshot, query.q, query.pairs) if query.q else None
        return select(snapshot.index, query, match)

    def _list(self, params: dict[str, list[str]], api: bool) -> Response:
        query = Query.from_params(params)
        snapshot = self.corpus.refresh()
        selection = self._selection(snapshot, query)
        rows = snapshot.index.take(selection.page(query)).to_pylist()
        for row in rows:
            row["file"] = self.corpus.relative(snapshot.files[row["file"]].path)
        if not api:
            html = pages.list_page(self.source, query, rows, selection, snapshot.splits, snapshot.problems)
            return Response(200, html.encode(), "text/html; charset=utf-8")
        for row in rows:
            row.update(url=pages.record_url(row["id"]), image=pages.asset_url("image", row["id"]),
                       thumbnail=pages.asset_url("thumb", row["id"]))
        return _json(
            200,
            {
                "source": self.source,
                "query": query.params(),
                "total": selection.total,
                "page": query.page,
                "per_page": query.per_page,
                "pages": max(1, -(-selection.total // query.per_page)),
                "counts": selection.counts,
                "before_status": selection.before_status,
                "records": rows,
                "problems": list(snapshot.problems),
            },
        )

    def _record(self, record_id: str, params: dict[str, list[str]], api: bool) -> Response:
        full = params.pop("full", None)
        if full not in (None, ["1"]):
            raise QueryError(f"full={','.join(full)!r}: give full=1 (the whole texts) or leave it out")
        query = Query.from_params(params)
        snapshot = self.corpus.refresh()
        position = self._find(snapshot, record_id)
        record = self.corpus.record(snapshot, position)
        record["file"] = self.corpus.relative(record["file"])
        stored = self.corpus.image(snapshot, position)
        data = stored.get("bytes") or b""
        kind = image_kind(data)
        image = {"path": stored.get("path"), "bytes": len(data) if data else None, "format": kind[1] if kind else None,
                 **describe(data)}
        if api:
            image.update(url=pages.asset_url("image", record_id), thumbnail=pages.asset_url("thumb", record_id))
            return _json(200, {**record, "image": image})
        selection = self._selection(snapshot, query)
        found = (selection.positions == position).nonzero()[0]
        k = int(found[0]) if len(found) else None
        neighbours = [None, None]
        if k is not None:
            for side, j in enumerate((k - 1, k + 1)):
                if 0 <= j < selection.total:
                    neighbours[side] = snapshot.index["id"][int(selection.positions[j])].as_py()
        place = (k, selection.total, *neighbours)
        html = pages.record_page(self.source, record, image, query, place, snapshot.problems, full=bool(full))
        return Response(200, html.encode(), "text/html; charset=utf-8")

    def _stored_image(self, record_id: str) -> tuple[Any, dict]:
        snapshot = self.corpus.snapshot  # image requests follow a page load, which refreshed
        position = snapshot.position_of(record_id)
        if position is None or not snapshot.locate(position)[0].is_current():
            snapshot = self.corpus.refresh()
        position = self._find(snapshot, record_id)
        data_file, row = snapshot.locate(position)
        return (*data_file.key, row), self.corpus.image(snapshot, position)

    def _image(self, record_id: str) -> Response:
        _, stored = self._stored_image(record_id)
        if not stored.get("bytes"):
            raise NotFound(f"record {record_id!r} has no image bytes stored (path {stored.get('path')!r})")
        kind = image_kind(stored["bytes"])
        return Response(200, stored["bytes"], kind[1] if kind else "application/octet-stream", cache="max-age=60")

    def _thumbnail(self, record_id: str) -> Response:
        key, stored = self._stored_image(record_id)
        content_type, body = self._thumbnails.get_or_make(
            (*key, self.thumbnail_size), lambda: self._decode_thumbnail(record_id, stored.get("bytes"))
        )
        return Response(200, body, content_type, cache="max-age=60" if content_type == "image/jpeg" else "no-store")

    def _decode_thumbnail(self, record_id: str, data: Optional[bytes]) -> tuple[str, bytes]:
        """``(content type, body)``: the JPEG thumbnail, or an SVG placeholder saying why not."""
        if not data:
            return "image/svg+xml", placeholder("no image")
        try:
            return "image/jpeg", self._decoder.submit(make_thumbnail, data, self.thumbnail_size).result()
        except ImageTooLarge as err:
            logger.warning("thumbnail of %s: not decoded: %s", record_id, err)
            return "image/svg+xml", placeholder("too large to show", err.size)
        except Exception as err:  # Pillow raises many types; all mean "cannot decode"
            logger.warning("thumbnail of %s: %s", record_id, err)
            return "image/svg+xml", placeholder("cannot decode")


def _json(status: int, payload: dict) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")


class _Handler(BaseHTTPRequestHandler):
    server_version = "imagenet-think-view"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send(self.server.viewer.handle(self.path, self.headers.get("Host")), send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(self.server.viewer.handle(self.path, self.headers.get("Host")), send_body=False)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The standard library's own errors (501 for other methods, 414, 431, 400 for broken
        requests) as the viewer's error page, with the headers of every other response."""
        self.log_error("code %d, message %s", code, message)
        if self.request_version == "HTTP/0.9":  # set before a request line could be read: no headers would go out
            self.request_version = self.protocol_version
        text = message or self.responses.get(code, ("error",))[0]
        if explain:
            text += f" ({explain})"
        body = pages.error_page(self.server.viewer.source, code, text).encode()
        self.close_connection = True
        self._send(Response(code, body, "text/html; charset=utf-8"), send_body=self.command != "HEAD")

    def _send(self, response: Response, send_body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", response.cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", PAGE_POLICY if response.content_type.startswith("text/html") else "default-src 'none'")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        logger.debug("%s %s", self.address_string(), format % args)


class ViewServer(ThreadingHTTPServer):
    """A threading HTTP server holding its :class:`Viewer`; IPv6 when ``host`` is an IPv6 address.

    ``request_timeout``: seconds a connection may stay silent before it is closed.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, viewer: Viewer, host: str, port: int, request_timeout: float = REQUEST_TIMEOUT):
        self.viewer = viewer
        self.request_timeout = request_timeout
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed mid-answer (client gone, timed out) is logged at DEBUG, not printed on stderr."""
        logger.debug("connection from %s failed", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
