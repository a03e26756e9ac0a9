"""The engine interface: requests in, raw outputs with finish reason and token count out.

Every engine (vLLM offline, an OpenAI-compatible server, ``transformers``) subclasses
:class:`Engine` and implements ``_generate_batch``; :meth:`Engine.generate` adds what all of
them share: batching, image decoding, and per-item errors (a batch that fails is retried one
request at a time, so one bad image costs one :class:`Result` with ``error`` set, not the run).

Engines keep the raw text: splitting it is :meth:`Result.split`'s job, via
:func:`imagenet_think.reasoning.split_reasoning`, and writing rows is the runner's.

>>> Result("a", raw="◁think▷Fur.◁/think▷A cat.", finish_reason="stop", num_tokens=9).split("kimi").answer
'A cat.'
>>> chat_messages("Describe.", {"type": "image"})
[{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Describe.'}]}]
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from abc import ABC, abstractmethod
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


class Engine(ABC):
    """Runs one model over batches of :class:`Request`.

    Subclasses set ``name`` and ``version`` (for the ``generation`` column), ``revision``, and
    implement ``_generate_batch(requests, images)``, which gets decoded RGB images and returns
    one :class:`Result` per request, in order.  Use as a context manager, or call :meth:`close`.
    """

    name: str = "engine"
    version: str = ""
    revision: str = "main"

    def __init__(self, spec: ModelSpec, sampling: Optional[Mapping[str, Any]] = None, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = spec
        self.sampling = effective_sampling(spec, sampling)
        self.batch_size = batch_size

    @abstractmethod
    def _generate_batch(self, requests: Sequence[Request], images: Sequence["Image"]) -> list[Result]:
        """One :class:`Result` per request; may raise (the batch is then retried item by item)."""

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Run every request; the results come back in request order, failures with ``error`` set."""
        results: list[Result] = []
        for start in range(0, len(requests), self.batch_size):
            results.extend(self._generate_decoded(requests[start : start + self.batch_size]))
        return results

    def _generate_decoded(self, batch: Sequence[Request]) -> list[Result]:
        by_id: dict[int, Result] = {}
        ready: list[tuple[int, Request, Image]] = []
        for index, request in enumerate(batch):
            try:
                ready.append((index, request, load_image(request.image)))
            except Exception as error:  # unreadable image: this item fails, the batch goes on
                by_id[index] = failed(request.id, error)
        for (index, _, _), result in zip(ready, self._generate_isolating([(r, i) for _, r, i in ready])):
            by_id[index] = result
        return [by_id[index] for index in range(len(batch))]

    def _generate_isolating(self, items: list[tuple[Request, "Image"]]) -> list[Result]:
        if not items:
            return []
        requests = [request for request, _ in items]
        try:
            results = self._generate_batch(requests, [image for _, image in items])
        except Exception as error:
            if len(items) == 1:
                logger.warning("request %s failed: %s", requests[0].id, error)
                return [failed(requests[0].id, error)]
            logger.warning("batch of %d failed (%s); retrying one request at a time", len(items), error)
            return [result for item in items for result in self._generate_isolating([item])]
        if len(results) != len(requests):
            raise RuntimeError(f"{self.name} returned {len(results)} results for {len(requests)} requests")
        return results

    def generation_entry(self, pair: int, result: Result) -> dict[str, Any]:
        """One element of the ``generation`` column for ``result`` (see :func:`generation_entry`)."""
        return generation_entry(pair, f"{self.name} {self.version}".strip(), self.revision, self.sampling, result.raw)

    def close(self) -> None:
        """Free the model (GPU memory, server connections)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

