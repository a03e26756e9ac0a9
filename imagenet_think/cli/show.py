"""``imagenet-think show``: print records of a corpus (:mod:`imagenet_think.show` formats them)."""

from __future__ import annotations

import argparse
import json

from imagenet_think import schema
from imagenet_think.cli import add_source_argument
from imagenet_think.show import format_record, image_summary, shorten


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think show``."""
    add_source_argument(parser)
    parser.add_argument("--config", default="default", choices=schema.CONFIGS,
                        help="view of the corpus: both pairs per row, one teacher, or one row per pair")
    parser.add_argument("--split", default="train", help="split to read")
    parser.add_argument("-n", "--num", type=int, default=3, help="records to print")
    parser.add_argument("--width", type=int, default=160, help="characters kept of each text (0: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per record (images summarised)")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think show`` (streams, so only the printed rows are read)."""
    from imagenet_think.loading import load_dataset

    if args.num < 0 or args.width < 0:
        raise ValueError(f"-n/--num and --width must be >= 0, got {args.num} and {args.width}")
    stream = load_dataset(args.source, args.config, split=args.split, streaming=True, decode_images=False)
    for index, row in enumerate(stream.take(args.num)):
        if args.json:
            row["image"] = image_summary(row["image"])
            row = {k: shorten(v, args.width) if isinstance(v, str) else v for k, v in row.items()}
            if "generation" in row:
                row["generation"] = [{**g, "raw": shorten(g["raw"] or "", args.width)} for g in row["generation"]]
            print(json.dumps(row, ensure_ascii=False))
            continue
        print(f"--- record {index}")
        print(format_record(row, args.width))
    return 0
