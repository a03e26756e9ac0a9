"""Option values of the regeneration job that name a teacher or carry settings.

``--engine-arg KEY=VALUE`` lists (:func:`key_values`), ``NAME=VALUE`` entries by teacher
(:func:`per_teacher`: ``--base-url``, ``--model-path``, ``--replicas``...) and engine options by
teacher (:func:`teacher_options`).  The local job and the Ray engines both read them, so they
live below both.

>>> key_values(["gpu_memory_utilization=0.45", "dtype=bfloat16"], "--engine-arg")
{'gpu_memory_utilization': 0.45, 'dtype': 'bfloat16'}
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence


def key_values(pairs: Optional[Sequence[str]], option: str) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict; values are JSON when they parse (``0.5``, ``true``,
    ``{"image": 1}``), else strings.

    >>> key_values(["max_tokens=64", "device=cpu", "limit={\\"image\\": 1}"], "--x")
    {'max_tokens': 64, 'device': 'cpu', 'limit': {'image': 1}}
    >>> key_values(["oops"], "--engine-arg")
    Traceback (most recent call last):
    ...
    ValueError: --engine-arg expects KEY=VALUE, got 'oops'
    """
    parsed: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def per_teacher(values: Optional[Sequence[str]], option: str, names: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` entries by teacher name; a bare ``VALUE`` applies to every teacher.

    >>> per_teacher(["http://a:8000/v1", "kimi=http://b:8000/v1"], "--base-url", ["glm", "kimi"])
    {'glm': 'http://a:8000/v1', 'kimi': 'http://b:8000/v1'}
    """
    found: dict[str, str] = {}
    for value in values or ():
        name, sep, rest = value.partition("=")
        if sep and name in names:
            found[name] = rest
        elif sep and "/" not in name and ":" not in name:
            raise ValueError(f"{option} {value!r}: unknown teacher {name!r}; teachers of this run: {', '.join(names)}")
        else:
            found.update({n: value for n in names if n not in found})
    return found


def teacher_options(options: dict[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--engine-arg`` options by teacher: a ``NAME:KEY`` key is for teacher NAME only (and
    wins over a plain ``KEY``), so two teachers can go to two devices.

    >>> teacher_options({"dtype": "bfloat16", "kimi:device": "cuda:1"}, ["glm", "kimi"])
    {'glm': {'dtype': 'bfloat16'}, 'kimi': {'dtype': 'bfloat16', 'device': 'cuda:1'}}
    """
    common = {key: value for key, value in options.items() if ":" not in key}
    found = {name: dict(common) for name in names}
    for key, value in options.items():
        name, sep, option = key.partition(":")
        if not sep:
            continue
        if name not in found:
            raise ValueError(f"--engine-arg {key}=...: unknown teacher {name!r}; teachers of this run: {', '.join(names)}")
        found[name][option] = value
    return found
