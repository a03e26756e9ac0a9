"""Records as text for ``imagenet-think show``: texts shortened, images summarised.

Multi-line texts keep their lines, indented under the value column, so a record reads top
to bottom:

>>> print(format_record({"id": "r1", "answer_1": "A cat.\\n\\n- fur: grey", "num_tokens_1": None}, width=0))
              id: r1
        answer_1: A cat.
<BLANKLINE>
                  - fur: grey
    num_tokens_1: None
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagenet_think import schema

LABEL_WIDTH = 16


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut (``width`` 0: all).

    >>> shorten("a" * 10, 6), shorten("abc", 0)
    ('aaaaa…', 'abc')
    """
    return text if not width or len(text) <= width else text[: width - 1] + "…"


def image_summary(image: Mapping[str, Any]) -> str:
    """An undecoded image (``{"bytes", "path"}``) as its size and file name.

    >>> image_summary({"bytes": b"12345", "path": "n01_1.JPEG"})
    '<5 bytes: n01_1.JPEG>'
    """
    return f"<{len(image.get('bytes') or b'')} bytes: {image.get('path')}>"


def _labelled(label: str, text: str) -> list[str]:
    """``label: text``, the text's later lines indented under its first."""
    first, *rest = text.split("\n")
    indent = " " * (LABEL_WIDTH + 2)
    return [f"{label:>{LABEL_WIDTH}}: {first}", *(indent + line if line else "" for line in rest)]


def _generation_text(entries: list[Mapping[str, Any]], width: int) -> str:
    """One paragraph per ``generation`` entry: its settings, then its raw output indented."""
    if not entries:
        return "[]"
    paragraphs = []
    for entry in entries:
        settings = ", ".join(f"{key} {entry[key]!r}" for key in schema.GENERATION_FIELDS if key not in ("pair", "raw"))
        raw = shorten(entry.get("raw") or "", width).replace("\n", "\n  ")
        paragraphs.append(f"pair {entry.get('pair')}: {settings}\n  {raw}")
    return "\n".join(paragraphs)


def format_record(row: Mapping[str, Any], width: int = 160) -> str:
    """A record as ``label: value`` lines; strings (and ``generation`` raw outputs) cut to
    ``width`` characters (0: whole), an undecoded image as its size and file name."""
    lines = []
    for key, value in row.items():
        if key == "image" and isinstance(value, Mapping):
            value = image_summary(value)
        elif key == "generation" and isinstance(value, list):
            value = _generation_text(value, width)
        elif isinstance(value, str):
            value = shorten(value, width) if value else "''"
        lines += _labelled(key, str(value))
    return "\n".join(lines)
