"""Client for an OpenAI-compatible chat server (``vllm serve``, SGLang), requests in parallel.

Images travel as base64 data URLs (the original bytes when there are any, else PNG).
Settings the OpenAI API lacks (``top_k``, ``repetition_penalty``, ``skip_special_tokens``,
``stop_token_ids``) go in ``extra_body``, which vLLM and SGLang read.

When the server runs a reasoning parser (``--reasoning-parser glm45``), the reply carries the
reasoning in ``reasoning_content`` (vLLM <= 0.11), ``reasoning`` (>= 0.17) or both; the engine
puts it back between the style's think markers (:func:`raw_text`) so ``raw`` is the model's
output in one piece, whichever server made it.  Truncation is decided by ``finish_reason``,
never by where the parser put the text: cut reasoning gets no closing marker.

Each request that fails (HTTP error, timeout, bad image) becomes a :class:`Result` with
``error`` set; the others go on.

>>> raw_text("Fur, whiskers.", "<answer>A cat.", "stop", "glm")
'<think>Fur, whiskers.</think><answer>A cat.'
>>> raw_text("Fur, whiskers and", "", "length", "glm")
'<think>Fur, whiskers and'
>>> raw_text(None, "◁think▷Fur.◁/think▷A cat.", "stop", "kimi")
'◁think▷Fur.◁/think▷A cat.'
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from imagenet_think.images import image_kind
from imagenet_think.reasoning import think_markers
from imagenet_think.regenerate.engines.base import Engine, Request, Result, chat_messages, failed
from imagenet_think.regenerate.models import ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

TOP_LEVEL = ("temperature", "top_p", "seed", "stop", "max_tokens")
"""Sampling settings the OpenAI chat API has; the others go in ``extra_body``."""

REASONING_FIELDS = ("reasoning_content", "reasoning")


def request_options(spec: ModelSpec, sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` besides ``model`` and ``messages``.

    >>> from imagenet_think.regenerate.models import get_model
    >>> request_options(get_model("glm"), {"temperature": 1.0, "top_k": 1, "max_tokens": 8})
    {'temperature': 1.0, 'max_tokens': 8, 'extra_body': {'top_k': 1, 'skip_special_tokens': False}}
    """
    options = {key: value for key, value in sampling.items() if key in TOP_LEVEL}
    extra = {key: value for key, value in sampling.items() if key not in TOP_LEVEL}
    if not spec.skip_special_tokens:
        extra["skip_special_tokens"] = False
    if extra:
        options["extra_body"] = extra
    return options


def image_data_url(image: Any, decoded: "Image") -> str:
    """``data:`` URL of the request's original image bytes (PNG of ``decoded`` when it has none).

    >>> image_data_url(b"\\x89PNG\\r\\n\\x1a\\n...", None)[:22]
    'data:image/png;base64,'
    """
    data = image.get("bytes") if isinstance(image, Mapping) else image
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as handle:
            data = handle.read()
    kind = image_kind(data) if isinstance(data, (bytes, bytearray)) else None
    if kind is not None:
        mime = kind[1]
    else:
        buffer = io.BytesIO()
        decoded.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
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


def _reasoning_of(message: Any) -> Optional[str]:
    extra = getattr(message, "model_extra", None) or {}
    for name in REASONING_FIELDS:
        value = getattr(message, name, None) or extra.get(name)
        if value:
            return value
    return None


def server_version(base_url: str, timeout: float = 5.0) -> str:
    """The server's ``GET /version`` (vLLM, SGLang), or ``""`` when it has none."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=timeout) as response:
            return str(json.load(response).get("version", ""))
    except (OSError, ValueError, AttributeError):
        return ""


class OpenAIEngine(Engine):
    """Client of an OpenAI-compatible server at ``base_url`` (``http://host:8000/v1``).

    ``served_model`` is the name the server knows the model by; by default the spec's Hub id
    if the server lists it, else the server's only model.  ``concurrency`` requests are in
    flight at once (the server batches them); ``api_key`` defaults to ``$OPENAI_API_KEY``.
    """

    name = "openai-server"

    def __init__(
        self,
        spec: ModelSpec,
        base_url: str,
        served_model: Optional[str] = None,
        sampling: Optional[Mapping[str, Any]] = None,
        batch_size: int = 256,
        concurrency: int = 32,
        api_key: Optional[str] = None,
        timeout: float = 3600.0,
        max_retries: int = 2,
    ):
        super().__init__(spec, sampling, batch_size)
        from openai import OpenAI

        self.client = OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"),
            timeout=timeout,
            max_retries=max_retries,
        )
        self.model = served_model or self._served_model()
        self.options = request_options(spec, self.sampling)
        self.concurrency = concurrency
        self.version = server_version(base_url)
        self.revision = spec.revision or "main"

    def _served_model(self) -> str:
        served = [model.id for model in self.client.models.list()]
        if self.spec.model_id in served:
            return self.spec.model_id
        if len(served) == 1:
            return served[0]
        raise ValueError(f"the server serves {served}, not {self.spec.model_id}; pass served_model")

    def _one(self, request: Request, image: "Image") -> Result:
        try:
            url = image_data_url(request.image, image)
            messages = chat_messages(request.prompt, {"type": "image_url", "image_url": {"url": url}}, self.spec.system_prompt)
            reply = self.client.chat.completions.create(model=self.model, messages=messages, **self.options)
            choice = reply.choices[0]
            raw = raw_text(_reasoning_of(choice.message), choice.message.content, choice.finish_reason, self.spec.reasoning_style)
            tokens = reply.usage.completion_tokens if reply.usage else None
            return Result(request.id, raw=raw, finish_reason=choice.finish_reason, num_tokens=tokens)
        except Exception as error:  # one request's failure is its own Result
            logger.warning("request %s failed: %s", request.id, error)
            return failed(request.id, error)

    def _generate_batch(self, requests: Sequence[Request], images: Sequence["Image"]) -> list[Result]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, requests, images))

    def close(self) -> None:
        self.client.close()
