"""ImageNet-Think: load, split, convert, regenerate and evaluate the corpus.

``import imagenet_think`` stays light: heavy modules (datasets builders, torch, vLLM, metric
libraries) load on first use.

>>> import imagenet_think
>>> imagenet_think.PROMPT.startswith("Please analyze this image")
True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

PROMPT = (
    "Please analyze this image step by step. Explain your reasoning process. "
    "Describe this image and give as much information as possible"
)

_LAZY = {
    "load_dataset": "imagenet_think.loading",
    "split_reasoning": "imagenet_think.reasoning",
    "to_sft_messages": "imagenet_think.sft",
    "export_hub_layout": "imagenet_think.writer",
    "export_rl": "imagenet_think.rl_export",
    "FEATURES": "imagenet_think.schema",
}

__all__ = ["PROMPT", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imagenet_think' has no attribute {name!r}")
