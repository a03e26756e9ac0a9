"""Column names and ``datasets.Features`` of every ImageNet-Think config.

This module is the single source of truth for the record layout; everything else imports
it.  The six published columns keep the names and meaning of the Hub copy
(``krishnateja95/ImageNet-Think``): ``image, question, think_1, answer_1, think_2, answer_2``
where pair 1 is GLM-4.1V-9B-Thinking and pair 2 Kimi-VL-A3B-Thinking-2506.  Provenance
columns are added around them.

``FEATURES[config]`` (or :func:`features`) gives the ``datasets.Features`` of a config.

>>> sorted(features("default"))[:4]
['answer_1', 'answer_2', 'finish_reason_1', 'finish_reason_2']
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

from imagenet_think import PROMPT  # noqa: F401  (the paper's prompt; re-exported here)

HUB_REPO = "krishnateja95/ImageNet-Think"

TEACHERS = {
    1: "zai-org/GLM-4.1V-9B-Thinking",
    2: "moonshotai/Kimi-VL-A3B-Thinking-2506",
}
"""Teacher model id of each published pair."""

TEACHER_NAMES = {1: "glm", 2: "kimi"}

PUBLISHED_COLUMNS = ("image", "question", "think_1", "answer_1", "think_2", "answer_2")
"""Columns of the published Hub copy, in its order."""

STATUSES = ("ok", "no_think", "unclosed_think", "empty_answer", "malformed", "missing")
"""Values of ``status_*``; ``missing`` marks a pair the teacher never produced."""

CONFIGS = ("default", "glm", "kimi", "pairs")

SPLITS = ("train", "validation")

CONFIG_TEACHER = {"glm": 1, "kimi": 2}
"""Which published pair the single-teacher configs keep."""

IDENTITY_COLUMNS = ("id", "wnid", "label", "image", "question")
"""Columns about the image, shared by every config."""

PAIR_FIELDS = ("model", "think", "answer", "status", "finish_reason", "num_tokens")
"""Per-pair columns: ``<field>_1`` / ``<field>_2`` in ``default``, ``<field>`` in the others."""

GENERATION_FIELDS = ("pair", "engine", "revision", "sampling", "raw")
"""Fields of each ``generation`` entry: pair number, engine name and version, model revision,
sampling parameters as JSON, raw model output."""

METADATA_KEY = b"imagenet_think"
"""Parquet schema-metadata key holding ``{"split": ..., "validation_fraction": ...}``."""

CITATION = """@article{imagenet_think_2025,
  title   = {ImageNet-Think-250K: A Large-Scale Synthetic Dataset for Multimodal Reasoning for Vision Language Models},
  author  = {Krishna Teja Chitty-Venkata and Murali Emani},
  journal = {arXiv preprint arXiv:2510.01582},
  year    = {2025}
}"""


def check_config(config: str) -> str:
    """Return ``config`` if it is one of :data:`CONFIGS`; else a ``ValueError`` listing them.

    >>> check_config("pairs")
    'pairs'
    >>> check_config("cot")
    Traceback (most recent call last):
    ...
    ValueError: unknown config 'cot'; choose one of default, glm, kimi, pairs
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; choose one of {', '.join(CONFIGS)}")
    return config


@functools.lru_cache(maxsize=None)
def features(config: str = "default", columns: Optional[tuple[str, ...]] = None) -> "datasets.Features":
    """``datasets.Features`` of ``config`` (built on first use, so importing this module
    does not import ``datasets``), or of its ``columns`` only, in the config's order (like the
    packaged Parquet builder's ``columns``).  ``generation`` is a list of structs spelled
    ``[{...}]``, so datasets 3.6 and 5.x read it alike.

    >>> features("pairs")["teacher"].dtype
    'int8'
    >>> features("glm") == features("pairs")
    True
    >>> list(features("glm", ("answer", "id")))
    ['id', 'answer']
    """
    import datasets

    if columns is not None:
        every = features(config)
        unknown = [name for name in columns if name not in every]
        if unknown or not columns:
            problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no column"
            raise ValueError(f"{problem} for config {config!r}; choose from {', '.join(every)}")
        return datasets.Features({name: feature for name, feature in every.items() if name in columns})
    check_config(config)
    string = datasets.Value("string")
    field_types = dict.fromkeys(PAIR_FIELDS, string) | {"num_tokens": datasets.Value("int32")}
    identity = dict.fromkeys(IDENTITY_COLUMNS, string) | {"image": datasets.Image()}
    if config != "default":
        pair = {name: field_types[name] for name in PAIR_FIELDS}
        return datasets.Features({**identity, "teacher": datasets.Value("int8"), **pair})
    pairs = {f"{name}_{n}": field_types[name] for n in (1, 2) for name in PAIR_FIELDS}
    generation = [{name: datasets.Value("int8") if name == "pair" else string for name in GENERATION_FIELDS}]
    return datasets.Features({**identity, **pairs, "generation": generation})


def __getattr__(name: str):
    """``FEATURES`` (config -> ``datasets.Features``) and ``GENERATION_FEATURE`` (the
    ``generation`` column's feature), built on first access."""
    if name == "FEATURES":
        return {config: features(config) for config in CONFIGS}
    if name == "GENERATION_FEATURE":
        return features("default")["generation"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def arrow_schema(config: str = "default", columns: Optional[tuple[str, ...]] = None) -> pa.Schema:
    """Arrow schema of ``config`` (or of its ``columns``, see :func:`features`), with the
    ``huggingface`` features metadata attached.

    Cached: ``Features.arrow_schema`` serialises the features each time, and readers ask for
    the schema once per Parquet row group.

    >>> arrow_schema("pairs").field("teacher").type
    DataType(int8)
    """
    return features(config, columns).arrow_schema


def record_id(wnid: str, file_name: str) -> str:
    """Stable row id ``<wnid>_<file stem>``.

    The published file names already start with the wnid (``n04004000_n04004000_1000.JPEG``
    holds the original ``n04004000_1000.JPEG``); the prefix is not doubled.

    >>> record_id("n04004000", "n04004000_n04004000_1000.JPEG")
    'n04004000_n04004000_1000'
    >>> record_id("n04004000", "n04004000_1000.JPEG")
    'n04004000_n04004000_1000'
    """
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if stem.startswith(wnid + "_" + wnid + "_"):
        return stem
    return f"{wnid}_{stem}"


def wnid_from_name(file_name: str) -> Optional[str]:
    """The WordNet id an ImageNet file name starts with, or ``None``.

    >>> wnid_from_name("n00005787_n00005787_11054.JPEG")
    'n00005787'
    >>> wnid_from_name("cat.png") is None
    True
    """
    stem = file_name.rsplit("/", 1)[-1]
    head = stem.split("_", 1)[0].split(".", 1)[0]
    if len(head) == 9 and head[0] == "n" and head[1:].isdigit():
        return head
    return None
