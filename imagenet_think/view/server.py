"""The viewer's HTTP side: routes, security headers and thumbnails (standard library server).

Routes (``GET`` and ``HEAD``; anything else is refused)::

    /                   the record list; filters, sort and page in the query string
    /record/<id>        one record (the list's query string gives previous/next; full=1: long
                        texts whole instead of cut)
    /api/records        the list as JSON (503 with Retry-After while the quality signals a
                        filter needs are still being computed)
    /api/classes        classes matching ``q=`` (a name or wnid), the corpus' first, as JSON
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
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable, Collection, Optional, Union
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow.compute as pc

from imagenet_think import labels, schema
from imagenet_think.images import image_kind
from imagenet_think.view import classes, pages
from imagenet_think.view.cache import BoundedCache
from imagenet_think.view.corpus import Corpus, SignalProgress, Snapshot
from imagenet_think.view.query import FINISH_REASONS, Query, QueryError, Selection, select
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
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
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
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


FACTS_KEPT = 4
"""Facts of the corpus the filter form shows (its classes, its finish reasons) kept in memory:
those of the current files and of the files before."""
SIGNAL_WAIT = 1.0
"""Seconds a request that filters on the quality signals waits for them before it answers that
they are still being computed (the page then reloads itself)."""


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
        self._facts = BoundedCache(FACTS_KEPT, size=lambda _: 1)  # counts values, not bytes

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
            case ["api", "classes"]:
                return self._suggestions(params)
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

    def _selection(self, snapshot: Snapshot, query: Query) -> tuple[Union[Selection, SignalProgress], Any]:
        """The query's selection and the index it was made from (with the signal columns when
        the query needs them or they are ready); a :class:`SignalProgress` instead of the
        selection while the signals it needs are being computed."""
        index = snapshot.index
        signals = self.corpus.signals(snapshot, wait=SIGNAL_WAIT) if query.needs_signals else self.corpus.ready_signals(snapshot)
        if isinstance(signals, SignalProgress):
            return signals, index
        if signals is not None:
            for name in signals.column_names:
                index = index.append_column(name, signals[name])
        match = self.corpus.search(snapshot, query.q, query.pairs) if query.q else None
        return select(index, query, match), index

    def _per_snapshot(self, name: str, snapshot: Snapshot, make: Callable[[], Any]) -> Any:
        """``make()``, kept under ``name`` and the corpus' files (made once however many
        requests ask for it together; the least recently used of :data:`FACTS_KEPT` go)."""
        return self._facts.get_or_make((name, snapshot.keys), make)

    def present_classes(self, snapshot: Snapshot) -> dict[str, tuple[str, int]]:
        """The corpus' classes (:func:`classes.corpus_classes`)."""
        return self._per_snapshot("classes", snapshot, lambda: classes.corpus_classes(snapshot.index))

    def finish_reasons(self, snapshot: Snapshot) -> list[str]:
        """The ``finish=`` values the corpus holds (``none`` for a pair without a reason,
        ``other`` for reasons outside :data:`FINISH_REASONS`)."""

        def found() -> list[str]:
            columns = [pc.fill_null(snapshot.index[f"finish_reason_{p}"], "none") for p in schema.TEACHER_NAMES]
            values = set().union(*(pc.unique(c).to_pylist() for c in columns))
            return [r for r in FINISH_REASONS if r in values or r == "other" and values - set(FINISH_REASONS)]

        return self._per_snapshot("finish_reasons", snapshot, found)

    def _form_facts(self, snapshot: Snapshot, query: Query) -> dict[str, Any]:
        """What the filter form shows besides the query: the corpus' finish reasons, the class."""
        value = ""
        if query.wnid:
            label, records = self.present_classes(snapshot).get(query.wnid, (labels.label_for(query.wnid), 0))
            value = classes.ClassMatch(query.wnid, label, records).option if label else query.wnid
        return {"finish_reasons": self.finish_reasons(snapshot), "class_value": value}

    def _suggestions(self, params: dict[str, list[str]]) -> Response:
        text = (params.get("q") or [""])[0]
        limit = (params.get("limit") or [str(classes.SUGGESTIONS)])[0]
        if not re.fullmatch("[0-9]{1,3}", limit) or not 1 <= int(limit) <= 100:
            raise QueryError(f"limit={limit!r}: give a whole number from 1 to 100")
        found = classes.suggest(text, self.present_classes(self.corpus.refresh()), int(limit))
        return _json(200, {"q": text, "classes": [{**dataclasses.asdict(m), "option": m.option, "kind_of": m.kind_of} for m in found]})

    def _pick_class(self, params: dict[str, list[str]], api: bool, snapshot: Snapshot) -> Optional[Response]:
        """``class=NAME`` (the class box) stands for ``wnid=``: the page redirects to the list of
        that class, or, when the name stands for several classes or none, offers them to pick
        from; the API uses the class, or says which ones the name stands for."""
        if "class" not in params:
            return None
        text = " ".join(params.pop("class")).strip()
        params.pop("wnid", None)
        query = Query.from_params(params)
        found = classes.resolve(text, self.present_classes(snapshot)) if text else []
        if api and len(found) <= 1:
            params["wnid"] = [found[0].wnid] if found else []
            return None
        if api:
            names = ", ".join(m.option for m in found[:10])
            raise QueryError(f"class={text!r} names {len(found)} classes ({names}); give wnid= instead")
        if not text or len(found) == 1:
            return _redirect(query.to_url("/", wnid=found[0].wnid if found else "", page=1))
        html = pages.pick_class_page(self.source, query, text, found)
        return Response(200, html.encode(), "text/html; charset=utf-8")

    def _list(self, params: dict[str, list[str]], api: bool) -> Response:
        snapshot = self.corpus.refresh()
        picked = self._pick_class(params, api, snapshot)
        if picked is not None:
            return picked
        query = Query.from_params(params)
        selection, index = self._selection(snapshot, query)
        if isinstance(selection, SignalProgress):
            return self._computing(query, selection, snapshot, api)
        positions = selection.page(query)
        rows = index.take(positions).to_pylist()
        for row in rows:
            row["file"] = self.corpus.relative(snapshot.files[row["file"]].path)
        if query.q:
            for row, hit in zip(rows, self.corpus.hits(snapshot, positions, query.q, query.pairs), strict=True):
                row["hit"] = hit
        if not api:
            html = pages.list_page(self.source, query, rows, selection, snapshot.splits, snapshot.problems,
                                   **self._form_facts(snapshot, query))
            return Response(200, html.encode(), "text/html; charset=utf-8")
        for row in rows:
            row.update(url=pages.record_url(row["id"]), image=pages.asset_url("image", row["id"]),
                       thumbnail=pages.asset_url("thumb", row["id"]))
        return _json(
            200,
            {
                "source": self.source,
                "query": query.params(),
                "where": query.where(),
                "total": selection.total,
                "page": query.page,
                "per_page": query.per_page,
                "pages": query.page_count(selection.total),
                "counts": selection.counts,
                "before_status": selection.before_status,
                **({"check_counts": selection.check_counts, "before_check": selection.before_check} if "check_1" in index.column_names else {}),
                "records": rows,
                "problems": list(snapshot.problems),
            },
        )

    def _computing(self, query: Query, progress: SignalProgress, snapshot: Snapshot, api: bool) -> Response:
        """The answer while the signals a query needs are being computed: the page says how far
        it is and reloads itself; the API answers 503 with ``Retry-After``."""
        if api:
            message = (f"computing the answer agreement and label checks of {progress.total:,} records: "
                       f"{progress.done:,} done; retry in a moment")
            return _json(503, {"error": message, "computing": dataclasses.asdict(progress)}, {"Retry-After": "2"})
        html = pages.computing_page(self.source, query, progress, snapshot.splits, snapshot.problems,
                                    **self._form_facts(snapshot, query))
        return Response(200, html.encode(), "text/html; charset=utf-8", headers={"Refresh": "2"})

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
        selection, _ = self._selection(snapshot, query)
        if isinstance(selection, SignalProgress):
            return self._computing(query, selection, snapshot, api)
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


def _json(status: int, payload: dict, headers: Optional[dict[str, str]] = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, body, "application/json; charset=utf-8", headers=dict(headers or {}))


def _redirect(location: str) -> Response:
    """A ``303 See Other`` to ``location`` (a path on this server)."""
    return Response(303, b"", "text/plain; charset=utf-8", headers={"Location": location})


class _Handler(BaseHTTPRequestHandler):
    server_version = "imagenet-think-view"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        self._send(self.server.viewer.handle(self.path, self.headers.get("Host")), send_body)

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
        for name, value in response.headers.items():
            self.send_header(name, value)
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

    def server_close(self) -> None:
        super().server_close()
        self.viewer.corpus.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed mid-answer (client gone, timed out) is logged at DEBUG, not printed on stderr."""
        logger.debug("connection from %s failed", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
