"""Which models regenerate and evaluate the corpus, and how each one must be run.

A :class:`ModelSpec` holds everything an engine needs besides the weights: Hub id and
revision, the reasoning style :func:`imagenet_think.reasoning.split_reasoning` parses its
output with, model-card sampling settings and context limit, and whether it needs remote code.

:data:`REGISTRY` has the two teachers of the published corpus (``glm``, ``kimi``; pair 1 and 2)
and the five open models the paper evaluates against it.  Teacher settings come from the model
cards (see ``formats.md`` in the project's reference notes); the paper does not publish its
own.  Users add models from a YAML or JSON file with :func:`load_registry`.

Remote code is never run silently: a spec with ``trust_remote_code=True`` only says the model
needs it; :func:`check_remote_code` refuses it unless the user passed ``--trust-remote-code``.

>>> get_model("glm").sampling["top_k"]
1
>>> get_model("moonshotai/Kimi-VL-A3B-Thinking-2506").name
'kimi'
>>> check_remote_code(get_model("kimi"), allowed=False)
Traceback (most recent call last):
...
imagenet_think.regenerate.models.RemoteCodeError: moonshotai/Kimi-VL-A3B-Thinking-2506 runs code from its Hub repository; pass --trust-remote-code to allow it
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping, Optional, Union

from imagenet_think.reasoning import STYLES

ROLES = ("teacher", "baseline")

SAMPLING_KEYS = frozenset(
    {"temperature", "top_p", "top_k", "repetition_penalty", "max_tokens", "seed", "stop", "stop_token_ids"}
)
"""Sampling settings a spec may hold, under vLLM's ``SamplingParams`` names; every engine
translates them (``max_tokens`` is ``max_new_tokens`` in ``transformers``)."""

REASONING_STYLES = ("auto", *STYLES)

REMOTE_CODE_FLAG = "--trust-remote-code"


class RemoteCodeError(PermissionError):
    """A model needs remote code and the user did not allow it."""


class RegistryError(ValueError):
    """A model registry file is unreadable or holds an invalid entry."""


@dataclass(frozen=True)
class ModelSpec:
    """How to run one model.

    ``sampling`` is passed to every request (``max_tokens`` is required);
    ``engine_kwargs`` go to vLLM's ``LLM(...)`` only; ``skip_special_tokens=False`` keeps
    markers that are special tokens (GLM's ``<think>``, ``<answer>``) in the text;
    ``system_prompt`` is sent as a system turn before the image and prompt when set.

    >>> spec = ModelSpec("tiny", "org/tiny", sampling={"max_tokens": 8})
    >>> spec.reasoning_style, spec.trust_remote_code
    ('auto', False)
    """

    name: str
    model_id: str
    revision: Optional[str] = None
    role: str = "teacher"
    pair: Optional[int] = None
    reasoning_style: str = "auto"
    sampling: Mapping[str, Any] = field(default_factory=lambda: {"max_tokens": 8192})
    max_model_len: Optional[int] = None
    trust_remote_code: bool = False
    skip_special_tokens: bool = True
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    system_prompt: Optional[str] = None
    notes: str = ""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError(f"model {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "sampling", MappingProxyType(copy.deepcopy(dict(self.sampling))))
        object.__setattr__(self, "engine_kwargs", MappingProxyType(copy.deepcopy(dict(self.engine_kwargs))))

    def to_dict(self) -> dict:
        """Plain-dict form (the shape :func:`load_registry` reads).

        >>> get_model("glm").to_dict()["pair"]
        1
        """
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


REGISTRY_HELP = (
    "YAML or JSON file of more models: a mapping of short names to entries, each with model_id (a Hub id) and "
    "sampling: {max_tokens: N, ...} (" + ", ".join(sorted(SAMPLING_KEYS)) + "), and any of "
    + ", ".join(f.name for f in fields(ModelSpec) if f.name not in ("name", "model_id", "sampling"))
    + "; 'extends: NAME' starts from a known model's settings (its sampling merged key by key)"
)
"""``--help`` of ``--registry`` (regenerate and evaluate): the format :func:`load_registry` reads."""


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _problems(spec: ModelSpec) -> list[str]:
    problems = []
    if not spec.name or not isinstance(spec.name, str):
        problems.append("name must be a non-empty string")
    if not spec.model_id or not isinstance(spec.model_id, str):
        problems.append("model_id must be a non-empty string")
    if spec.role not in ROLES:
        problems.append(f"role must be one of {ROLES}, got {spec.role!r}")
    if spec.pair not in (None, 1, 2):
        problems.append(f"pair must be 1, 2 or null, got {spec.pair!r}")
    if spec.reasoning_style not in REASONING_STYLES:
        problems.append(f"reasoning_style must be one of {REASONING_STYLES}, got {spec.reasoning_style!r}")
    if not isinstance(spec.sampling, Mapping):
        problems.append(f"sampling must be a mapping, got {type(spec.sampling).__name__}")
    else:
        unknown = sorted(set(spec.sampling) - SAMPLING_KEYS)
        if unknown:
            problems.append(f"sampling has unknown keys {unknown}; allowed: {sorted(SAMPLING_KEYS)}")
        max_tokens = spec.sampling.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            problems.append(f"sampling.max_tokens must be a positive integer, got {max_tokens!r}")
    if spec.max_model_len is not None and (not isinstance(spec.max_model_len, int) or spec.max_model_len < 1):
        problems.append(f"max_model_len must be a positive integer or null, got {spec.max_model_len!r}")
    if not isinstance(spec.engine_kwargs, Mapping):
        problems.append(f"engine_kwargs must be a mapping, got {type(spec.engine_kwargs).__name__}")
    for flag in ("trust_remote_code", "skip_special_tokens"):
        if not isinstance(getattr(spec, flag), bool):
            problems.append(f"{flag} must be true or false, got {getattr(spec, flag)!r}")
    return problems


_ONE_IMAGE = {"limit_mm_per_prompt": {"image": 1, "video": 0}}

_BASELINE = {
    "role": "baseline",
    # The paper does not publish its decoding settings: greedy, for reproducible scores.
    "sampling": {"temperature": 0.0, "max_tokens": 4096},
    # Bounds the KV cache; the models allow more, one image and one prompt never need it.
    "max_model_len": 32768,
    "engine_kwargs": _ONE_IMAGE,
    # Output formats vary (<think> tags, \boxed{}, plain text): detect per output.
    "reasoning_style": "auto",
}

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="glm",
            model_id="zai-org/GLM-4.1V-9B-Thinking",
            pair=1,
            reasoning_style="glm",
            # Model card: near-greedy.  max_tokens 8192 as the official CLI (their vLLM client
            # sends 25000; their benchmark caps thinking at 8192).
            sampling={"temperature": 1.0, "top_p": 1e-5, "top_k": 1, "repetition_penalty": 1.1, "max_tokens": 8192},
            max_model_len=65536,
            # <think>, </think>, <answer>, </answer> and the box markers are special tokens.
            skip_special_tokens=False,
            engine_kwargs=_ONE_IMAGE,
            notes="vLLM >= 0.9.2 (Glm4vForConditionalGeneration); server reasoning parser glm45",
        ),
        ModelSpec(
            name="kimi",
            model_id="moonshotai/Kimi-VL-A3B-Thinking-2506",
            pair=2,
            reasoning_style="kimi",
            # Model card: SamplingParams(max_tokens=32768, temperature=0.8).
            sampling={"temperature": 0.8, "max_tokens": 32768},
            max_model_len=131072,
            trust_remote_code=True,
            engine_kwargs={"max_num_seqs": 8, "limit_mm_per_prompt": {"image": 1}},
            notes="vLLM >= 0.8.5 (KimiVLForConditionalGeneration); no server reasoning parser: split on the client",
        ),
        # The five evaluation baselines (ids checked against their Hub pages or official READMEs).
        ModelSpec(
            name="internvl3.5-8b",
            model_id="OpenGVLab/InternVL3_5-8B",
            trust_remote_code=True,
            notes="vLLM recipe: vllm serve OpenGVLab/InternVL3_5-8B --trust-remote-code; "
            "transformers-native weights: OpenGVLab/InternVL3_5-8B-HF",
            **_BASELINE,
        ),
        ModelSpec(name="vl-rethinker-7b", model_id="TIGER-Lab/VL-Rethinker-7B", notes="Qwen2.5-VL-7B", **_BASELINE),
        ModelSpec(
            name="visionthink-efficient", model_id="Senqiao/VisionThink-Efficient", notes="Qwen2.5-VL-7B", **_BASELINE
        ),
        ModelSpec(
            name="openvlthinker-7b",
            model_id="ydeng9/OpenVLThinker-7B",
            notes="Qwen2.5-VL-7B; the v1.0 release (the official README calls it legacy)",
            **_BASELINE,
        ),
        ModelSpec(name="r1-onevision-7b", model_id="Fancy-MLLM/R1-Onevision-7B", notes="Qwen2.5-VL-7B", **_BASELINE),
    )
}
"""Built-in models by short name."""


def get_model(name: str, registry: Optional[Mapping[str, ModelSpec]] = None) -> ModelSpec:
    """The spec registered under ``name`` (short name or Hub id, case-insensitive).

    >>> get_model("GLM").model_id
    'zai-org/GLM-4.1V-9B-Thinking'
    >>> get_model("llava")
    Traceback (most recent call last):
    ...
    KeyError: "unknown model 'llava'; known: glm, kimi, internvl3.5-8b, vl-rethinker-7b, visionthink-efficient, openvlthinker-7b, r1-onevision-7b"
    """
    registry = REGISTRY if registry is None else registry
    wanted = name.lower()
    for spec in registry.values():
        if wanted in (spec.name.lower(), spec.model_id.lower()):
            return spec
    raise KeyError(f"unknown model {name!r}; known: {', '.join(registry)}")


def check_remote_code(spec: ModelSpec, allowed: bool) -> bool:
    """Whether to load ``spec`` with ``trust_remote_code``; raises if it needs it and it is not ``allowed``.

    ``allowed`` is the user's ``--trust-remote-code``; a model that does not need remote code
    never gets it, whatever the flag says.

    >>> check_remote_code(get_model("glm"), allowed=True)
    False
    >>> check_remote_code(get_model("kimi"), allowed=True)
    True
    """
    if spec.trust_remote_code and not allowed:
        raise RemoteCodeError(f"{spec.model_id} runs code from its Hub repository; pass {REMOTE_CODE_FLAG} to allow it")
    return spec.trust_remote_code


def _read_entries(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise RegistryError(f"{path}: cannot read model registry: {error}") from error
    try:
        if path.endswith(".json"):
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as error:  # json.JSONDecodeError, yaml.YAMLError
        raise RegistryError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}") from error


def load_registry(path: Union[str, os.PathLike], base: Optional[Mapping[str, ModelSpec]] = None) -> dict[str, ModelSpec]:
    """Read models from a YAML (``.yaml``/``.yml``) or JSON file; returns ``base`` plus them.

    The file maps short names to entries with :class:`ModelSpec`'s fields (``model_id`` and
    ``sampling.max_tokens`` required).  An entry with an existing name replaces it; an entry
    may say ``extends: <name>`` to start from another model's settings.  Errors name the file,
    the entry and the key.

    >>> import tempfile, json
    >>> path = tempfile.mktemp(suffix=".json")
    >>> _ = open(path, "w").write(json.dumps({"glm-long": {"extends": "glm", "sampling": {"max_tokens": 25000}}}))
    >>> spec = load_registry(path)["glm-long"]
    >>> spec.model_id, spec.sampling["max_tokens"], spec.sampling["top_k"]
    ('zai-org/GLM-4.1V-9B-Thinking', 25000, 1)
    """
    path = os.fspath(path)
    registry = dict(REGISTRY if base is None else base)
    entries = _read_entries(path)
    if not isinstance(entries, dict):
        raise RegistryError(f"{path}: expected a mapping of model names to entries, got {type(entries).__name__}")
    known = {f.name for f in fields(ModelSpec)} - {"name"}
    for name, entry in entries.items():
        where = f"{path}: model {name!r}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: expected a mapping of settings, got {type(entry).__name__}")
        entry = dict(entry)
        parent = entry.pop("extends", None)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise RegistryError(f"{where}: unknown keys {unknown}; allowed: extends, {', '.join(sorted(known))}")
        settings: dict[str, Any] = {}
        if parent is not None:
            if parent not in registry:
                raise RegistryError(f"{where}: extends unknown model {parent!r}; known: {', '.join(registry)}")
            settings = registry[parent].to_dict()
            sampling = entry.pop("sampling", {})
            if not isinstance(sampling, dict):
                raise RegistryError(f"{where}: sampling must be a mapping, got {type(sampling).__name__}")
            settings["sampling"] = {**settings["sampling"], **sampling}
        settings.update(entry, name=str(name))
        if "model_id" not in settings:
            raise RegistryError(f"{where}: missing key 'model_id'")
        try:
            registry[str(name)] = ModelSpec(**settings)
        except ValueError as error:  # its message names the model
            raise RegistryError(f"{path}: {error}") from error
    return registry
