"""``imagenet-think stats``: print corpus statistics and write histograms (:mod:`imagenet_think.stats`)."""

from __future__ import annotations

import argparse
import json

from imagenet_think.cli import add_source_argument
from imagenet_think.stats import format_summary, measure, summarize, text_columns, write_histograms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think stats``."""
    add_source_argument(parser)
    parser.add_argument("--split", default="train", help="split to measure")
    parser.add_argument("--out", metavar="DIR", help="also write PNG histograms into DIR")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think stats`` (only the text columns are loaded: no image reaches the cache)."""
    from imagenet_think.loading import load_dataset

    dataset = load_dataset(args.source, split=args.split, columns=text_columns())
    table = measure(dataset)
    summary = {"source": args.source, "split": args.split, **summarize(table)}
    if args.out:
        summary["histograms"] = [str(p) for p in write_histograms(table, args.out)]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary, title=f"{args.source} ({args.split})"))
        for path in summary.get("histograms", []):
            print(f"wrote {path}")
    return 0
