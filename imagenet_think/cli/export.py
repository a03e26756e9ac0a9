"""``imagenet-think export``: write a corpus in Hub layout (:func:`imagenet_think.writer.export_hub_layout`)."""

from __future__ import annotations

import argparse

from imagenet_think.cli import add_shard_size_argument, add_source_argument, add_where_argument, check_where
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION
from imagenet_think.writer import DEFAULT_MAX_SHARD_BYTES, export_hub_layout, split_sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think export``."""
    add_source_argument(parser, default=None)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (README.md + data/*.parquet)")
    parser.add_argument("--validation-fraction", type=float, default=DEFAULT_VALIDATION_FRACTION,
                        help="share of rows in the validation split, by a hash of their id")
    add_shard_size_argument(parser, "target size of one Parquet shard, in MiB of Arrow data", DEFAULT_MAX_SHARD_BYTES)
    add_where_argument(parser)
    parser.add_argument("--limit", type=int, help="export at most N rows per split (of those --where keeps)")
    parser.add_argument("--pretty-name", default="ImageNet-Think", help="title of the dataset card")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR/README.md and the Parquet shards of an earlier export in OUT_DIR/data "
                             "(never other files)")
    parser.add_argument("--push-to-hub", metavar="REPO",
                        help="then upload README.md and data/ to this Hub dataset repo (checked before any work)")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think export``."""
    check_where(args.where)
    readme = export_hub_layout(
        args.source,
        args.out_dir,
        validation_fraction=args.validation_fraction,
        max_shard_bytes=args.max_shard_bytes,
        overwrite=args.overwrite,
        limit=args.limit,
        where=args.where,
        push_to_hub=args.push_to_hub,
        pretty_name=args.pretty_name,
    )
    counts = ", ".join(f"{split}: {size['num_examples']} rows" for split, size in split_sizes(readme.parent).items())
    pushed = f"; pushed to https://huggingface.co/datasets/{args.push_to_hub}" if args.push_to_hub else ""
    print(f"wrote {readme.parent} ({counts}){pushed}")
    return 0
