"""``imagenet-think show``: print records of a source, texts shortened, images summarised.

>>> shorten("a" * 10, 6)
'aaaaa…'
"""

from __future__ import annotations

import argparse
import json

from imagenet_think import schema


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think show``."""
    parser.add_argument("source", nargs="?", default="sample", help='"sample" (default), a directory, or a Hub id')
    parser.add_argument("--config", default="default", choices=schema.CONFIGS, help="view of the corpus")
    parser.add_argument("--split", default="train", help="split to read")
    parser.add_argument("-n", "--num", type=int, default=3, help="records to print")
    parser.add_argument("--width", type=int, default=160, help="characters kept of each text (0: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per record")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think show`` (streams, so only the printed rows are read)."""
    from imagenet_think.loading import load_dataset

    stream = load_dataset(args.source, args.config, split=args.split, streaming=True, decode_images=False)
    for index, row in enumerate(stream.take(args.num)):
        image = row.pop("image")
        row["image"] = f"<{len(image['bytes'] or b'')} bytes: {image['path']}>"
        if args.width:
            row = {k: shorten(v, args.width) if isinstance(v, str) else v for k, v in row.items()}
            if "generation" in row:
                row["generation"] = [{**g, "raw": shorten(g["raw"] or "", args.width)} for g in row["generation"]]
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
            continue
        print(f"--- record {index}")
        for key, value in row.items():
            print(f"{key:>16}: {value}")
    return 0
