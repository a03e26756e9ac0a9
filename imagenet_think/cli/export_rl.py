"""``imagenet-think export-rl``: write RL prompts for TRL, EasyR1 or verl (:func:`imagenet_think.rl_export.export_rl`)."""

from __future__ import annotations

import argparse

from imagenet_think.cli import add_shard_size_argument, add_source_argument, add_where_argument, check_where
from imagenet_think.rl_export import DEFAULT_PROMPT, FORMATS, export_rl
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION
from imagenet_think.writer import DEFAULT_MAX_SHARD_BYTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think export-rl``."""
    add_source_argument(parser)
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="trl: prompt (chat with an image part), images, wnid, label, id for GRPOTrainer; "
                             "easyr1: problem ('<image>' + question), answer (= wnid), images; verl: data_source, "
                             "prompt, images, ability, reward_model {style, ground_truth}, extra_info. Each is a "
                             "dataset directory (Parquet shards with the images + a card naming the reward)")
    parser.add_argument("--out", required=True,
                        help="output directory: new or empty, or a previous export with --overwrite")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, metavar="TEXT",
                        help=f"the question of every image (default: {DEFAULT_PROMPT!r})".replace("%", "%%"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the previous export in OUT (never a directory holding other files)")
    add_where_argument(parser)
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="export only the first N rows of each split of the source (of those --where keeps)")
    parser.add_argument("--validation-fraction", type=float, default=DEFAULT_VALIDATION_FRACTION,
                        help="share of images in the validation split, by a hash of their id")
    add_shard_size_argument(parser, "target size of a Parquet shard, in MiB of Arrow data", DEFAULT_MAX_SHARD_BYTES)


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think export-rl``; bad input prints a one-line error and returns 2."""
    check_where(args.where)  # the library checks the rest before reading the source
    summary = export_rl(
        args.source,
        args.out,
        format=args.format,
        prompt=args.prompt,
        validation_fraction=args.validation_fraction,
        limit=args.limit,
        overwrite=args.overwrite,
        max_shard_bytes=args.max_shard_bytes,
        progress=True,
        where=args.where,
    )
    reward = {"trl": "label_reward + format_reward", "easyr1": "easyr1_score", "verl": "compute_score"}[args.format]
    print(
        f"wrote {summary['train'] + summary['validation']} prompts (train: {summary['train']}, validation: "
        f"{summary['validation']}) to {summary['path']}; reward: imagenet_think.rewards.{reward} (see its README.md)"
    )
    return 0
