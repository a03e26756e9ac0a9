"""Engines that run a model over images: vLLM offline, an OpenAI-compatible server, ``transformers``.

All share :class:`~imagenet_think.regenerate.engines.base.Engine`'s interface:
``engine.submit(Request(id, image, prompt))`` returns a future of
``Result(id, raw, finish_reason, num_tokens, error)`` at once, with many requests in flight
(``engine.max_in_flight`` of them keep it busy); ``engine.generate([Request, ...])`` runs a list.
:func:`make_engine` builds one by name; each module imports its backend only when built.

>>> from imagenet_think.regenerate.engines import ENGINES
>>> ENGINES
('vllm', 'openai', 'transformers')
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from imagenet_think.regenerate.engines.base import Engine, EngineBusy, EngineUnreachable, Request, Result
from imagenet_think.regenerate.models import ModelSpec

ENGINES = ("vllm", "openai", "transformers")

_CLASSES = {
    "vllm": ("imagenet_think.regenerate.engines.vllm_engine", "VLLMEngine"),
    "openai": ("imagenet_think.regenerate.engines.openai_engine", "OpenAIEngine"),
    "transformers": ("imagenet_think.regenerate.engines.hf_engine", "TransformersEngine"),
}

__all__ = ["ENGINES", "Engine", "EngineBusy", "EngineUnreachable", "Request", "Result", "default_engine", "engine_class", "make_engine"]


def default_engine() -> str:
    """``"vllm"`` when vLLM is installed and a CUDA GPU is visible, else ``"transformers"``."""
    if importlib.util.find_spec("vllm") is None:
        return "transformers"
    import torch

    return "vllm" if torch.cuda.is_available() else "transformers"


def engine_class(kind: str) -> type:
    """The :class:`Engine` subclass for ``kind`` (one of :data:`ENGINES`, or ``"auto"``), imported now.

    >>> engine_class("openai").__name__
    'OpenAIEngine'
    """
    if kind == "auto":
        kind = default_engine()
    if kind not in _CLASSES:
        raise ValueError(f"unknown engine {kind!r}; expected 'auto' or one of {ENGINES}")
    module_name, class_name = _CLASSES[kind]
    return getattr(importlib.import_module(module_name), class_name)


def make_engine(kind: str, spec: ModelSpec, **kwargs: Any) -> Engine:
    """Build the engine ``kind`` (one of :data:`ENGINES`, or ``"auto"``) for ``spec``.

    ``kwargs`` go to the engine class: see ``VLLMEngine``, ``OpenAIEngine`` (``base_url``
    required) and ``TransformersEngine``.

    >>> from imagenet_think.regenerate.models import get_model
    >>> make_engine("tgi", get_model("glm"))
    Traceback (most recent call last):
    ...
    ValueError: unknown engine 'tgi'; expected 'auto' or one of ('vllm', 'openai', 'transformers')
    """
    return engine_class(kind)(spec, **kwargs)
