"""Client of an OpenAI-compatible chat server (``vllm serve``, SGLang): many requests in flight.

Long-lived ``openai.AsyncOpenAI`` clients run on the shared
:func:`~imagenet_think.regenerate.engines.base.event_loop`, where the scheduler awaits
:meth:`OpenAIEngine.agenerate` directly (:meth:`~OpenAIEngine.submit` schedules a request there
from any thread), so hundreds of requests are in flight over kept-alive connections and the
server's scheduler always has work (``max_in_flight``, default 256, is the caller's window).
Measured choices keep the client's CPU cost per request low (10.6 ms -> 4.4 ms at 256 in flight
on a 2-core VM): the requests are spread over one client per :data:`CONNECTIONS_PER_CLIENT` of
the window (an httpx connection pool scans all its connections for every request); they are
sent with the client's ``post("/chat/completions", body=..., cast_to=dict)`` (its documented
way to send any body), which skips the typed ``create``'s walk over the message structure and
reads the reply as JSON; every client is set up (and opens a connection) when the engine
opens, not during the first requests.

Images travel as base64 data URLs (the original bytes when there are any, else PNG).
Settings the OpenAI API lacks (``top_k``, ``repetition_penalty``, ``skip_special_tokens``,
``stop_token_ids``) are sent beside the standard ones, where vLLM and SGLang read them (the
typed client's ``extra_body``).

When the server runs a reasoning parser (``--reasoning-parser glm45``), the reply carries the
reasoning in ``reasoning_content`` (vLLM <= 0.11), ``reasoning`` (>= 0.17) or both; the engine
puts it back between the style's think markers (:func:`raw_text`) so ``raw`` is the model's
output in one piece, whichever server made it.  Truncation is decided by ``finish_reason``,
never by where the parser put the text: cut reasoning gets no closing marker.

A request the server answered with an error (HTTP 4xx, 500), or whose image cannot be encoded,
is a :class:`Result` with ``error`` set.  "Busy, come back later" (HTTP 429 or 503, see
:data:`BUSY_STATUSES`) raises :class:`~imagenet_think.regenerate.engines.base.EngineBusy` with
the server's ``Retry-After`` (:func:`retry_after`); no answer at all (connection refused or
reset, a timeout, a gateway's 502/504) raises
:class:`~imagenet_think.regenerate.engines.base.EngineUnreachable`: the caller waits and retries
or stops, it does not write the image off.  Neither counts as the server answering a probe
(:meth:`OpenAIEngine.probe`).  The client itself does not retry (``max_retries=0``): retries
and their backoff are the caller's.  ``timeout`` (default :data:`DEFAULT_TIMEOUT`) bounds one
request: long enough for a 32k-token reasoning output, not forever.  The server is asked for
its models when the engine opens, so a server that is down fails there, with one clear error.

>>> raw_text("Fur, whiskers.", "<answer>A cat.", "stop", "glm")
'<think>Fur, whiskers.</think><answer>A cat.'
>>> raw_text("Fur, whiskers and", "", "length", "glm")
'<think>Fur, whiskers and'
>>> raw_text(None, "◁think▷Fur.◁/think▷A cat.", "stop", "kimi")
'◁think▷Fur.◁/think▷A cat.'
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import os
import itertools
import math
import time
import urllib.request
from concurrent.futures import Future
from typing import Any, Mapping, Optional

from imagenet_think.images import image_kind
from imagenet_think.reasoning import think_markers
from imagenet_think.regenerate.engines.base import (
    Engine,
    EngineBusy,
    EngineUnreachable,
    Request,
    Result,
    chat_messages,
    event_loop,
    failed,
    png_bytes,
    run_on_loop,
)
from imagenet_think.regenerate.models import ModelSpec

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1800.0
"""Seconds one request may take: 32,768 tokens at 20 tokens/s, plus time queued in the server."""

DEFAULT_MAX_IN_FLIGHT = 256
"""Requests a caller keeps outstanding: enough to keep a vLLM server's scheduler full (its
default ``max_num_seqs`` is 256 or less on most GPUs)."""

CONNECTIONS_PER_CLIENT = 32
"""Requests in flight per ``AsyncOpenAI`` client (connection pool) of an engine."""

PROBE_TIMEOUT = 10.0
"""Seconds a probe (``GET /models``) may take."""

BUSY_STATUSES = frozenset({429, 503})
"""HTTP statuses that mean "busy, come back later" (rate limited, overloaded): not an error of the request."""

GATEWAY_ERRORS = frozenset({502, 504})
"""HTTP statuses that mean a proxy could not reach the model server: no answer, not an error."""

NOT_ANSWERS = BUSY_STATUSES | GATEWAY_ERRORS
"""HTTP statuses that say nothing of the model server: a probe answered so did not reach it."""

REASONING_FIELDS = ("reasoning_content", "reasoning")


def request_body(spec: ModelSpec, sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling part of a chat completion request body (beside ``model`` and ``messages``).

    >>> from imagenet_think.regenerate.models import get_model
    >>> request_body(get_model("glm"), {"temperature": 1.0, "top_k": 1, "max_tokens": 8})
    {'temperature': 1.0, 'top_k': 1, 'max_tokens': 8, 'skip_special_tokens': False}
    """
    body = dict(sampling)
    if not spec.skip_special_tokens:
        body["skip_special_tokens"] = False
    return body


def image_data_url(image: Any) -> str:
    """``data:`` URL of the request's image: its original bytes when they are a known format,
    else a PNG of the decoded image (decoding only then).

    >>> image_data_url(b"\\x89PNG\\r\\n\\x1a\\n...")[:22]
    'data:image/png;base64,'
    """
    data = image.get("bytes") if isinstance(image, Mapping) else image
    if data is None and isinstance(image, Mapping):
        data = image.get("path")
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as handle:
            data = handle.read()
    kind = image_kind(data) if isinstance(data, (bytes, bytearray)) else None
    if kind is not None:
        mime = kind[1]
    else:
        data, mime = png_bytes(image), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def raw_text(reasoning: Optional[str], content: Optional[str], finish_reason: Optional[str], style: str) -> str:
    """The model's output in one piece from a server reply's reasoning and content fields.

    Reasoning goes between ``style``'s think markers (``<think>`` tags for ``auto``/``none``);
    when the reply was cut (``finish_reason == "length"``) with no content after the
    reasoning, the think block stays open, as the model left it.
    """
    content = content or ""
    if not reasoning:
        return content
    opener, closer = think_markers(style if style in ("glm", "kimi", "think_tags") else "think_tags")
    closed = not (finish_reason == "length" and not content)
    return opener + reasoning + (closer if closed else "") + content


def _reasoning_of(message: Mapping[str, Any]) -> Optional[str]:
    return next((message[name] for name in REASONING_FIELDS if message.get(name)), None)


def retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds, or an HTTP-date (seconds
    from ``now``, Unix time, default the clock's; a date past is 0); ``None`` when absent or
    unreadable.  ``headers`` is looked up as ``retry-after`` (httpx's headers ignore case).

    >>> retry_after({"retry-after": "5"}), retry_after({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=90.0)
    (5.0, 10.0)
    >>> retry_after({"retry-after": "soon"}), retry_after({})
    (None, None)
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            date = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if date.tzinfo is None:  # an HTTP-date is GMT
            return None
        seconds = date.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def server_version(base_url: str, timeout: float = 5.0) -> str:
    """The server's ``GET /version`` (vLLM, SGLang), or ``""`` when it has none."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=timeout) as response:
            return str(json.load(response).get("version", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _reason(error: BaseException) -> str:
    """``error`` with its root cause (the openai client says only "Connection error.").

    >>> try:
    ...     try:
    ...         raise ConnectionRefusedError(111, "Connection refused")
    ...     except OSError as cause:
    ...         raise RuntimeError("Connection error.") from cause
    ... except RuntimeError as error:
    ...     _reason(error)
    'Connection error. (ConnectionRefusedError: [Errno 111] Connection refused)'
    """
    root = error
    while (cause := root.__cause__ or root.__context__) is not None:
        root = cause
    return f"{error} ({type(root).__name__}: {root})" if root is not error else str(error)


class OpenAIEngine(Engine):
    """Client of an OpenAI-compatible server at ``base_url`` (``http://host:8000/v1``).

    ``served_model`` is the name the server knows the model by; by default the spec's Hub id
    if the server lists it, else the server's only model.  ``api_key`` defaults to
    ``$OPENAI_API_KEY``.  See the module docstring for ``max_in_flight``, ``timeout`` and
    ``max_retries``.
    """

    name = "openai-server"
    silence_means_hung = True

    def __init__(
        self,
        spec: ModelSpec,
        base_url: str,
        served_model: Optional[str] = None,
        sampling: Optional[Mapping[str, Any]] = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        api_key: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
    ):
        super().__init__(spec, sampling)
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        import openai

        self._openai = openai
        self.base_url = base_url
        self.max_in_flight = max_in_flight
        self.body = request_body(spec, self.sampling)
        self.clients: list[Any] = []
        try:
            key = api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
            self.clients = run_on_loop(self._make_clients(key, timeout, max_retries))
            self._next_client = itertools.cycle(self.clients)
            self.model = run_on_loop(self._served_model(served_model))
        except BaseException:
            self.close()
            raise
        self.version = server_version(base_url)
        self.revision = spec.revision or "main"

    async def _make_clients(self, api_key: str, timeout: float, max_retries: int) -> list[Any]:
        count = math.ceil(self.max_in_flight / CONNECTIONS_PER_CLIENT)
        options = {"base_url": self.base_url, "api_key": api_key, "timeout": timeout, "max_retries": max_retries}
        return [self._openai.AsyncOpenAI(**options) for _ in range(count)]

    async def _served_model(self, requested: Optional[str]) -> str:
        try:  # every client asks: each sets itself up (and opens a connection) now, not in the first requests
            served, *_ = await asyncio.gather(*(self._list_models(client) for client in self.clients))
        except self._openai.APIConnectionError as error:
            raise EngineUnreachable(
                f"cannot reach the {self.spec.name} server at {self.base_url}: {_reason(error)}; is it running?"
            ) from error
        except self._openai.APIStatusError as error:
            if error.status_code in NOT_ANSWERS:
                what = "busy" if error.status_code in BUSY_STATUSES else "a gateway without its server"
                raise EngineUnreachable(
                    f"the {self.spec.name} server at {self.base_url} answers HTTP {error.status_code} ({what}): "
                    "rerun when it serves requests"
                ) from error
            if requested:  # a server without /models: take the name as given
                return requested
            raise ValueError(f"the server at {self.base_url} does not list its models ({error}); pass served_model") from error
        if requested:
            if requested not in served:
                raise ValueError(f"the server at {self.base_url} serves {served}, not {requested!r}")
            return requested
        if self.spec.model_id in served:
            return self.spec.model_id
        if len(served) == 1:
            return served[0]
        raise ValueError(f"the server at {self.base_url} serves {served}, not {self.spec.model_id}; pass served_model")

    def submit(self, request: Request) -> "Future[Result]":
        return asyncio.run_coroutine_threadsafe(self.agenerate(request), event_loop())

    def probe(self) -> bool:
        """``GET /models`` answered within :data:`PROBE_TIMEOUT` seconds, with any status but
        :data:`NOT_ANSWERS` ("busy", a gateway's), which say nothing of the model server behind."""
        try:
            run_on_loop(self._list_models(self.clients[0]))
        except (self._openai.APIConnectionError, asyncio.TimeoutError):
            return False
        except self._openai.APIStatusError as error:
            return error.status_code not in NOT_ANSWERS
        return True

    @staticmethod
    async def _list_models(client: Any) -> list[str]:
        return [model.id async for model in client.models.list(timeout=PROBE_TIMEOUT)]

    async def agenerate(self, request: Request) -> Result:
        """One request, on :func:`~imagenet_think.regenerate.engines.base.event_loop`."""
        openai = self._openai
        try:
            url = image_data_url(request.image)
        except Exception as error:  # unreadable image: this request fails, the others go on
            return failed(request.id, error)
        messages = chat_messages(request.prompt, {"type": "image_url", "image_url": {"url": url}}, self.spec.system_prompt)
        body = {"model": self.model, "messages": messages, **self.body}
        try:
            reply = await next(self._next_client).post("/chat/completions", body=body, cast_to=dict)
        except openai.APIConnectionError as error:  # refused, reset, timed out: no answer
            timed_out = isinstance(error, openai.APITimeoutError)
            raise EngineUnreachable(f"{self.base_url}: {_reason(error)}", timed_out=timed_out) from error
        except openai.APIStatusError as error:
            if error.status_code in BUSY_STATUSES:
                raise EngineBusy(f"{self.base_url}: HTTP {error.status_code}: {error}", retry_after(error.response.headers)) from error
            if error.status_code in GATEWAY_ERRORS:
                raise EngineUnreachable(f"{self.base_url}: HTTP {error.status_code}: {error}") from error
            logger.debug("request %s failed: %s", request.id, error)
            return failed(request.id, error)
        except openai.APIError as error:  # an answer the client could not read
            return failed(request.id, error)
        try:
            choice = reply["choices"][0]
            message, finish_reason = choice["message"], choice.get("finish_reason")
            raw = raw_text(_reasoning_of(message), message.get("content"), finish_reason, self.spec.reasoning_style)
            tokens = (reply.get("usage") or {}).get("completion_tokens")
        except (KeyError, IndexError, TypeError, AttributeError) as error:  # an answer of another shape
            return failed(request.id, ValueError(f"unexpected reply {str(reply)[:200]!r}: {error!r}"))
        return Result(request.id, raw=raw, finish_reason=finish_reason, num_tokens=tokens)

    async def _close_clients(self) -> None:
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()

    def close(self) -> None:
        """Close the connections (requests still in flight fail)."""
        if self.clients:
            run_on_loop(self._close_clients())
