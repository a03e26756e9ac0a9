"""The engine interface: one request in, a future of its result out, many in flight.

Every engine (vLLM offline, an OpenAI-compatible server, ``transformers``) subclasses
:class:`Engine` and implements :meth:`Engine.submit`: it takes one :class:`Request` and returns
at once a :class:`concurrent.futures.Future` of its :class:`Result`, while the engine works on
many requests at a time (HTTP requests on the shared :func:`event_loop`, vLLM's scheduler fed
between decode steps, static batches on a device, each in a thread of its own).
:meth:`Engine.agenerate` is the same for coroutines on :func:`event_loop` (a server engine then
runs there without any thread hop).  A caller keeps up to :attr:`Engine.max_in_flight` requests
outstanding: :class:`~imagenet_think.regenerate.scheduler.Scheduler` streams a corpus through
two engines at once that way, and :meth:`Engine.generate` runs a list (the batch API
``evaluate`` uses).

A request the model could not answer (an unreadable image, an error answered by the server)
gives a :class:`Result` with ``error`` set, so one bad image costs one result, not the run; a
server that did not answer at all makes the future raise :class:`EngineUnreachable`, and one
that answered "busy, come back later" :class:`EngineBusy`: neither says anything about the
request, for the caller to decide (wait and retry, stop).  :class:`BatchEngine` is the
base of engines that run static batches; a batch that raises is split in two until the bad
request is alone.

Engines keep the raw text: splitting it is :meth:`Result.split`'s job, via
:func:`imagenet_think.reasoning.split_reasoning`, and writing rows is the runner's.

>>> Result("a", raw="◁think▷Fur.◁/think▷A cat.", finish_reason="stop", num_tokens=9).split("kimi").answer
'A cat.'
>>> chat_messages("Describe.", {"type": "image"})
[{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Describe.'}]}]
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import queue
import re
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from imagenet_think import PROMPT
from imagenet_think.reasoning import ReasoningSplit, split_reasoning
from imagenet_think.regenerate.models import SAMPLING_KEYS, ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

ImageInput = Union[bytes, str, os.PathLike, Mapping[str, Any], "Image"]
"""Raw image bytes, a file path, a ``datasets.Image`` dict (``{"bytes", "path"}``) or a PIL image."""


@dataclass(frozen=True)
class Request:
    """One image and the prompt to ask about it; ``id`` comes back on the :class:`Result`."""

    id: str
    image: ImageInput
    prompt: str = PROMPT


@dataclass(frozen=True)
class Result:
    """What the model wrote for one :class:`Request`.

    ``raw`` is the full output in the teacher's own format (``None`` when ``error`` is set);
    ``finish_reason`` is ``"stop"`` or ``"length"`` (cut at ``max_tokens``); ``num_tokens``
    counts completion tokens, the stop token included.
    """

    id: str
    raw: Optional[str] = None
    finish_reason: Optional[str] = None
    num_tokens: Optional[int] = None
    error: Optional[str] = None

    def split(self, style: str = "auto", keep_raw: bool = False) -> ReasoningSplit:
        """Reasoning and answer of ``raw``; status ``missing`` for a failed request.

        >>> Result("a", raw="<think>Fur, whiskers", finish_reason="length", num_tokens=4).split("glm").status
        'unclosed_think'
        >>> Result("a", error="ValueError: image too small").split("glm").status
        'missing'
        """
        return split_reasoning(self.raw, style, finish_reason=self.finish_reason, keep_raw=keep_raw)


def failed(request_id: str, error: BaseException) -> Result:
    """The :class:`Result` of a request that raised ``error``.

    >>> failed("a", ValueError("image too small")).error
    'ValueError: image too small'
    """
    return Result(request_id, error=f"{type(error).__name__}: {error}")


def load_image(image: ImageInput) -> "Image":
    """Decode any :data:`ImageInput` to an RGB PIL image.

    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("L", (32, 30)).save(buffer, "PNG")
    >>> load_image({"bytes": buffer.getvalue(), "path": None}).mode
    'RGB'
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        decoded = image
    elif isinstance(image, (bytes, bytearray)):
        decoded = Image.open(io.BytesIO(image))
    elif isinstance(image, Mapping):
        if image.get("bytes") is not None:
            return load_image(image["bytes"])
        if image.get("path"):
            return load_image(image["path"])
        raise ValueError("image dict has neither bytes nor path")
    elif isinstance(image, (str, os.PathLike)):
        decoded = Image.open(image)
    else:
        raise TypeError(f"cannot read an image from {type(image).__name__}")
    decoded.load()
    return decoded if decoded.mode == "RGB" else decoded.convert("RGB")


def png_bytes(image: ImageInput) -> bytes:
    """A PNG of any :data:`ImageInput`, decoded to RGB (:func:`load_image`).

    >>> from PIL import Image
    >>> png_bytes(Image.new("L", (3, 2)))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    buffer = io.BytesIO()
    load_image(image).save(buffer, format="PNG")
    return buffer.getvalue()


def request_image(data: bytes) -> bytes:
    """What a :class:`Request` carries for the encoded image ``data``: ``data`` itself when it is
    in a format every engine and server reads (:func:`imagenet_think.images.image_kind`: JPEG,
    PNG, GIF, BMP, WebP), else a PNG of it (:func:`png_bytes`: a TIFF, say, decoded now, once for
    all teachers; call it off the event loop).  An image that cannot be decoded is a ``ValueError``
    saying what is wrong (:func:`imagenet_think.regenerate.sources.decoded`).

    >>> request_image(b"\\x89PNG\\r\\n\\x1a\\n...")
    b'\\x89PNG\\r\\n\\x1a\\n...'
    >>> request_image(b"<html>Not Found</html>")
    Traceback (most recent call last):
    ...
    imagenet_think.regenerate.sources.UnusableImage: not an image Pillow can read (it starts with b'<html>Not Found<')
    """
    from imagenet_think.images import image_kind
    from imagenet_think.regenerate.sources import decoded

    if image_kind(data) is not None:
        return data
    return png_bytes(decoded(data))


def chat_messages(prompt: str, image_part: Mapping[str, Any], system_prompt: Optional[str] = None) -> list[dict]:
    """One user turn, image first then prompt (the order of the teachers' model cards).

    ``image_part`` is the engine's content part for the image (``{"type": "image", ...}`` for
    ``transformers``, ``image_pil`` for vLLM, ``image_url`` for a server).

    >>> [m["role"] for m in chat_messages("Hi", {"type": "image"}, system_prompt="Think.")]
    ['system', 'user']
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": [dict(image_part), {"type": "text", "text": prompt}]})
    return messages


def effective_sampling(spec: ModelSpec, overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The spec's sampling settings with user ``overrides`` on top (``None`` values drop a key).

    >>> from imagenet_think.regenerate.models import get_model
    >>> effective_sampling(get_model("kimi"), {"max_tokens": 64, "seed": 0})
    {'temperature': 0.8, 'max_tokens': 64, 'seed': 0}
    >>> effective_sampling(get_model("kimi"), {"beam_width": 4})
    Traceback (most recent call last):
    ...
    ValueError: unknown sampling settings ['beam_width'] for kimi; allowed: ['max_tokens', 'repetition_penalty', 'seed', 'stop', 'stop_token_ids', 'temperature', 'top_k', 'top_p']
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - SAMPLING_KEYS)
    if unknown:
        raise ValueError(f"unknown sampling settings {unknown} for {spec.name}; allowed: {sorted(SAMPLING_KEYS)}")
    merged = {**spec.sampling, **overrides}
    merged = {key: value for key, value in merged.items() if value is not None}
    if not isinstance(merged.get("max_tokens"), int) or merged["max_tokens"] < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {merged.get('max_tokens')!r}")
    return merged


def generation_entry(
    pair: int, engine: str, revision: str, sampling: Mapping[str, Any], raw: Optional[str]
) -> dict[str, Any]:
    """One element of the ``generation`` column (:data:`imagenet_think.schema.GENERATION_FEATURE`);
    ``sampling`` is stored as canonical JSON (sorted keys).

    >>> generation_entry(1, "vllm 0.11.0", "main", {"top_k": 1, "max_tokens": 8}, "<think>")["sampling"]
    '{"max_tokens": 8, "top_k": 1}'
    """
    sampling_json = json.dumps(dict(sampling), sort_keys=True)
    return {"pair": pair, "engine": engine, "revision": revision, "sampling": sampling_json, "raw": raw}


_SNAPSHOT = re.compile(r"[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]?$")


def revision_of(model_source: str, spec: ModelSpec) -> str:
    """The revision to record: a Hub cache snapshot's commit, else the spec's, else ``"main"``
    for a Hub id and ``"local"`` for another directory.

    >>> from imagenet_think.regenerate.models import get_model
    >>> revision_of("/hf/models--zai-org--GLM/snapshots/" + "ab" * 20, get_model("glm"))
    'abababababababababababababababababababab'
    >>> revision_of("zai-org/GLM-4.1V-9B-Thinking", get_model("glm"))
    'main'
    """
    match = _SNAPSHOT.search(model_source)
    if match:
        return match.group(1)
    if spec.revision:
        return spec.revision
    return "local" if os.path.isdir(model_source) else "main"


_LOOP: Optional[asyncio.AbstractEventLoop] = None
_LOOP_LOCK = threading.Lock()


def _forget_loop_in_child() -> None:
    """A forked child has no loop thread: it starts its own when it needs one."""
    global _LOOP, _LOOP_LOCK
    _LOOP, _LOOP_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_loop_in_child)


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for engines and the scheduler, running in a daemon thread of its
    own (started on first use).  One thread for all the asynchronous work: HTTP clients and the
    scheduler do not fight over the GIL, and callers in a notebook (whose thread already runs
    a loop) can still wait for it."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="imagenet-think-loop", daemon=True).start()
        return _LOOP


def run_on_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` on :func:`event_loop` and wait for its result (never call it from that loop).

    >>> run_on_loop(asyncio.sleep(0, result="done"))
    'done'
    """
    return asyncio.run_coroutine_threadsafe(coroutine, event_loop()).result()


class EngineUnreachable(ConnectionError):
    """The engine's server gave no answer (connection refused or reset, timeout, gateway error).

    Unlike a :class:`Result` with ``error`` set, this says nothing about the request: the same
    request may well succeed once the server is back.  ``timed_out`` is true when the server
    kept silent for the whole request timeout (rather than refusing or dropping it).  The
    command line exits with ``exit_status`` (1: rerun when the server is back), not as for bad input.
    """

    exit_status = 1

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


DEFAULT_RETRY_DELAY = 1.0
"""Seconds before a request's first retry (doubled each time)."""
MAX_RETRY_DELAY = 30.0
"""Longest wait between two tries of a request (a longer ``Retry-After`` is cut to it)."""
DEFAULT_UNREACHABLE_AFTER = 120.0
"""Seconds a server may fail every request (or keep requests in flight) and answer none before the run stops."""


class EngineBusy(EngineUnreachable):
    """The server answered "busy, come back later" (HTTP 429 rate limited, 503 overloaded)
    without looking at the request.

    ``retry_after`` is the wait in seconds the server asked for (its ``Retry-After``), ``None``
    when it gave none.  Like no answer, this says nothing about the request: wait, send it
    again, and spend none of its attempts.
    """

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class Engine(ABC):
    """Runs one model over :class:`Request` objects, many at a time.

    Subclasses set ``name`` and ``version`` (for the ``generation`` column), ``revision`` and
    ``max_in_flight`` (how many requests a caller should keep outstanding to keep the model
    busy), and implement :meth:`submit`.  Use as a context manager, or call :meth:`close`.

    ``silence_means_hung`` is true for a client of a server that answers requests as they
    finish (continuous batching): with requests in flight it answers one every few seconds, so
    a long silence means it hangs.  An engine that runs static batches here may legitimately
    work longer than that on one batch.
    """

    name: str = "engine"
    version: str = ""
    revision: str = "main"
    max_in_flight: int = 64
    silence_means_hung: bool = False

    def __init__(self, spec: ModelSpec, sampling: Optional[Mapping[str, Any]] = None):
        self.spec = spec
        self.sampling = effective_sampling(spec, sampling)

    @abstractmethod
    def submit(self, request: Request) -> "Future[Result]":
        """Start ``request`` and return at once; the future gives its :class:`Result`, or raises
        :class:`EngineUnreachable` (server down) or the engine's own fatal error.  Cancelling
        the future drops the request.  Safe to call from any thread."""

    async def agenerate(self, request: Request) -> Result:
        """:meth:`submit`, awaited: call it from a coroutine on :func:`event_loop`."""
        return await asyncio.wrap_future(self.submit(request))

    def probe(self) -> bool:
        """Whether the engine's server answers a cheap request now; ``False`` when it cannot
        tell.  Asked after a request got no answer, to tell a server that is down from one that
        drops this request only."""
        return False

    def generate(self, requests: Sequence[Request], busy_for: float = DEFAULT_UNREACHABLE_AFTER) -> list[Result]:
        """Run every request, :attr:`max_in_flight` at a time; results in request order.

        Failed requests come back with ``error`` set.  A request answered "busy"
        (:class:`EngineBusy`: HTTP 429, 503) is sent again after the server's ``Retry-After``
        (else :data:`DEFAULT_RETRY_DELAY` seconds, doubled each time; at most
        :data:`MAX_RETRY_DELAY`), as often as needed while the engine answers something, and
        :class:`EngineBusy` is raised once nothing but "busy" came back for ``busy_for``
        seconds.  :class:`EngineUnreachable` or a fatal engine error is raised at once (the
        requests still outstanding are cancelled).
        """
        import heapq

        results: list[Optional[Result]] = [None] * len(requests)
        pending: dict[Future, int] = {}
        later: list[tuple[float, int]] = []  # (when, index) of requests refused as busy
        refusals = [0] * len(requests)
        queued = iter(range(len(requests)))
        answered = time.monotonic()  # the start, or the last answer
        try:
            while True:
                while len(pending) < self.max_in_flight and later and later[0][0] <= time.monotonic():
                    index = heapq.heappop(later)[1]
                    pending[self.submit(requests[index])] = index
                while len(pending) < self.max_in_flight and (index := next(queued, None)) is not None:
                    pending[self.submit(requests[index])] = index
                if not pending and not later:
                    return results  # type: ignore[return-value]
                due = max(0.0, later[0][0] - time.monotonic()) if later else None
                if not pending:
                    time.sleep(due or 0.0)
                    continue
                done, _ = wait(pending, timeout=due, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        results[index] = future.result()
                    except EngineBusy as busy:
                        if time.monotonic() - answered >= busy_for:
                            raise
                        refusals[index] += 1
                        wait_s = DEFAULT_RETRY_DELAY * 2 ** (refusals[index] - 1) if busy.retry_after is None else busy.retry_after
                        heapq.heappush(later, (time.monotonic() + min(wait_s, MAX_RETRY_DELAY), index))
                    else:
                        answered = time.monotonic()
        finally:
            for future in pending:
                future.cancel()

    def generation_entry(self, pair: int, result: Result) -> dict[str, Any]:
        """One element of the ``generation`` column for ``result`` (see :func:`generation_entry`)."""
        return generation_entry(pair, f"{self.name} {self.version}".strip(), self.revision, self.sampling, result.raw)

    def close(self) -> None:
        """Free the model (GPU memory, server connections, worker threads)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BatchEngine(Engine):
    """An engine that runs static batches of up to ``batch_size`` requests in a worker thread
    of its own (so two of them, one per device, run at the same time).

    Subclasses implement ``_generate_batch(requests, images)``, which gets decoded RGB images
    and returns one :class:`Result` per request, in order.  The worker takes whatever is
    queued, up to ``batch_size`` (waiting at most ``linger`` seconds to fill a batch); an image
    that cannot be decoded fails alone, and a batch that raises is split in two, recursively,
    so a bad request costs about ``log2(batch_size)`` extra batches, not ``batch_size``.
    ``max_in_flight`` is two batches: one running, one queued.
    """

    linger: float = 0.02

    def __init__(self, spec: ModelSpec, sampling: Optional[Mapping[str, Any]] = None, batch_size: int = 8):
        super().__init__(spec, sampling)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.max_in_flight = 2 * batch_size
        self._inbox: "queue.SimpleQueue[Optional[tuple[Request, Future]]]" = queue.SimpleQueue()
        self._worker: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    @abstractmethod
    def _generate_batch(self, requests: Sequence[Request], images: Sequence["Image"]) -> list[Result]:
        """One :class:`Result` per request; may raise (the batch is then split in two)."""

    def submit(self, request: Request) -> "Future[Result]":
        future: Future = Future()
        with self._start_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"{self.name}-{self.spec.name}", daemon=True)
                self._worker.start()
        self._inbox.put((request, future))
        return future

    def _next_batch(self) -> Optional[list[tuple[Request, Future]]]:
        """The queued requests, up to ``batch_size``; ``None`` once closed."""
        first = self._inbox.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.linger
        while len(batch) < self.batch_size:
            try:
                item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                self._inbox.put(None)  # close after this batch
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [(request, future) for request, future in batch if future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self._generate_decoded([request for request, _ in live])
            except BaseException as error:  # a bug or a dead device: every caller hears of it
                for _, future in live:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(live, results, strict=True):
                future.set_result(result)

    def _generate_decoded(self, batch: Sequence[Request]) -> list[Result]:
        by_index: dict[int, Result] = {}
        ready: list[tuple[int, Request, Image]] = []
        for index, request in enumerate(batch):
            try:
                ready.append((index, request, load_image(request.image)))
            except Exception as error:  # unreadable image: this item fails, the batch goes on
                by_index[index] = failed(request.id, error)
        for (index, _, _), result in zip(ready, self._generate_bisecting([(r, i) for _, r, i in ready]), strict=True):
            by_index[index] = result
        return [by_index[index] for index in range(len(batch))]

    def _generate_bisecting(self, items: list[tuple[Request, "Image"]]) -> list[Result]:
        if not items:
            return []
        requests = [request for request, _ in items]
        try:
            results = self._generate_batch(requests, [image for _, image in items])
        except Exception as error:
            if len(items) == 1:
                logger.debug("request %s failed: %s", requests[0].id, error)
                return [failed(requests[0].id, error)]
            logger.warning("batch of %d failed (%s); splitting it in two", len(items), error)
            half = len(items) // 2
            return self._generate_bisecting(items[:half]) + self._generate_bisecting(items[half:])
        if len(results) != len(requests):
            raise RuntimeError(f"{self.name} returned {len(results)} results for {len(requests)} requests")
        return results

    def close(self) -> None:
        """Stop the worker after the batch it is running; requests still queued are cancelled."""
        with self._start_lock:
            worker, self._worker = self._worker, None
        if worker is None:
            return
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()
        self._inbox.put(None)
        worker.join()
