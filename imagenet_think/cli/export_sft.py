"""``imagenet-think export-sft``: SFT data for TRL, LLaMA-Factory or LLaVA (:func:`imagenet_think.sft_export.export_sft`)."""

from __future__ import annotations

import argparse

from imagenet_think import schema
from imagenet_think.cli import add_shard_size_argument, add_source_argument, add_where_argument, check_where
from imagenet_think.sft import DEFAULT_REQUIRE_STATUS, IMAGE_PLACEMENTS, THINK_MODES, teachers_of
from imagenet_think.sft_export import DEFAULT_NAME, FORMATS, check_replaceable, check_request, export_sft
from imagenet_think.writer import DEFAULT_MAX_SHARD_BYTES


OPTION_PHRASES = {"on_unusable='skip'": "without --strict", "on_unusable='raise'": "with --strict"}
"""How this command's errors say the keyword arguments it sets without an option of their name
(:func:`imagenet_think.cli.cli_wording`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think export-sft``."""
    add_source_argument(parser)
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="trl: a dataset directory that datasets.load_dataset(OUT) reads (Parquet shards "
                             "with the images + card); llamafactory: sharegpt data + dataset_info.json; "
                             "llava: LLaVA's JSON list; the last two with images/")
    parser.add_argument("--teacher", default="1", choices=[*map(str, schema.TEACHER_NAMES), "both"],
                        help="1 = GLM-4.1V-9B-Thinking, 2 = Kimi-VL-A3B-Thinking-2506, both = one example "
                             "each (default: 1)")
    parser.add_argument("--think", default="tags", choices=THINK_MODES,
                        help="where the reasoning goes: <think> tags, the teacher's own markers, "
                             "reasoning_content (trl only) or nowhere (default: tags)")
    parser.add_argument("--out", required=True,
                        help="output directory: new or empty, or a previous export with --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the previous export in OUT (never a directory holding other files)")
    parser.add_argument("--split", default="train",
                        help="split of the source to export, and the split name of a trl export (default: train)")
    add_where_argument(parser)
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="export only the first N records (of those --where keeps)")
    parser.add_argument("--file-format", default=None,
                        help="trl: parquet (images embedded) or jsonl (an image folder: metadata.jsonl + "
                             "images/); llamafactory: jsonl or parquet; llava: json or jsonl (default: the first)")
    parser.add_argument("--name", default=None,
                        help=f"data file name and dataset_info.json key of llamafactory and llava exports "
                             f"(default: {DEFAULT_NAME})")
    add_shard_size_argument(parser, "target size of a trl Parquet shard, in MiB of Arrow data", DEFAULT_MAX_SHARD_BYTES)
    parser.add_argument("--system-prompt", default=None,
                        help="text of a system turn opening every example (default: none; not for llava)")
    parser.add_argument("--image-placement", default="before", choices=IMAGE_PLACEMENTS,
                        help="the image before or after the question in the user turn (default: before)")
    parser.add_argument("--require-status", nargs="+", default=list(DEFAULT_REQUIRE_STATUS),
                        choices=[s for s in schema.STATUSES if s != "missing"], metavar="STATUS",
                        help="pair statuses to use (default: ok)")
    parser.add_argument("--strict", action="store_true",
                        help="stop with an error at the first pair whose status is not required "
                             "(default: skip such pairs and report how many were skipped)")


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think export-sft``; bad input prints a one-line error and returns 2."""
    from imagenet_think.loading import load_dataset

    teacher = "both" if args.teacher == "both" else int(args.teacher)
    check_where(args.where)
    check_request(args.format, args.file_format, args.name, args.split, args.think, args.system_prompt)
    check_replaceable(args.out, args.overwrite)
    summary = export_sft(
        load_dataset(args.source, split=args.split),
        args.out,
        format=args.format,
        teacher=teacher,
        think=args.think,
        file_format=args.file_format,
        name=args.name,
        split=args.split,
        system_prompt=args.system_prompt,
        image_placement=args.image_placement,
        require_status=args.require_status,
        on_unusable="raise" if args.strict else "skip",
        limit=args.limit,
        overwrite=args.overwrite,
        max_shard_bytes=args.max_shard_bytes,
        source_name=args.source,
        progress=True,
        where=args.where,
    )
    pairs = summary["records"] * len(teachers_of(teacher))
    print(
        f"wrote {summary['examples']} examples from {summary['records']} records "
        f"({summary['images']} images) to {summary['path']}; skipped {pairs - summary['examples']} pairs "
        f"whose status is not in {', '.join(args.require_status)}"
    )
    return 0
