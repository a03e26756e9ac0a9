"""``python -m imagenet_think.regenerate`` (also ``imagenet-think regenerate``): rebuild or
extend the corpus with teacher VLMs, resumably, on one process, one node, a SLURM array or a
Ray cluster (``--ray``).

    python -m imagenet_think.regenerate /data/imagenet21k out/ -n 250000 --engine vllm
    python -m imagenet_think.regenerate /data/imagenet21k out/ -n 250000 --dry-run
    python -m imagenet_think.regenerate sample out/ --teachers glm --engine transformers \\
        --model-path glm=/models/glm --sampling max_tokens=64 --max-items 4
    python -m imagenet_think.regenerate /data/imagenet21k out/ -n 250000 --engine vllm --ray auto --replicas 8

Rerun the same command after any crash, or after it stopped on an unreachable server: rows
already written are skipped.  Exit status: 0 done; 1 the run stopped early, images failed
(more than --max-failure-rate, or any without --accept-failed), or another process writes the
same shard (one line says why and what to rerun); 2 bad input or options (another --num-shards
than OUT_DIR's, for one); 130 interrupted.  The job itself is
:mod:`imagenet_think.regenerate.job`; this module is its command line.

>>> args = build_parser().parse_args(["imgs", "out", "--ray", "--replicas", "kimi=2"])
>>> args.ray, args.replicas
('', ['kimi=2'])
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from imagenet_think.cli import HelpFormatter, add_log_level_argument, run_command
from imagenet_think.regenerate.job import DEFAULT_TEACHERS
from imagenet_think.regenerate.models import REGISTRY_HELP
from imagenet_think.regenerate.sources import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIZE, LAYOUTS

PROG = "imagenet-think regenerate"
"""Name in one-line errors: ``imagenet-think regenerate: error: ...``."""

QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai")
"""Loggers that write a line per HTTP request: quiet unless ``--log-level DEBUG``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think regenerate``."""
    from imagenet_think.regenerate import scheduler
    from imagenet_think.regenerate.engines.openai_engine import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT
    from imagenet_think.regenerate.engines.ray_data_engine import DEFAULT_BATCH_SIZE

    io_group = parser.add_argument_group("images and output")
    io_group.add_argument(
        "source",
        help='images: ImageNet-21k synset folders or tars, a winter-21 release (train/), any image folder, '
        'or a corpus to re-annotate ("sample", "imagenet-think", a Hub-layout directory)',
    )
    io_group.add_argument("out_dir", help="output directory (Hub layout: README.md + data/*.parquet); rerun to resume")
    io_group.add_argument("--layout", choices=LAYOUTS, default="auto", help="layout of SOURCE")
    io_group.add_argument("-n", "--num-images", type=int, help="images to select (default: every image of SOURCE)")
    io_group.add_argument("--seed", type=int, default=0, help="seed of the balanced per-synset selection")
    io_group.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE,
                          help="minimum width and height (0: none; with --max-pixels 0 too, images are not read at selection)")
    io_group.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                          help="largest image accepted, width x height (0: no limit; at most Pillow's MAX_IMAGE_PIXELS, 89,478,485); "
                          "the selection also decodes each image whole, so truncated and corrupt files go to rejected.jsonl")
    io_group.add_argument("--follow-symlinks", action="store_true",
                          help="read images whose symbolic links lead out of SOURCE (a tree of links onto other storage); "
                          "by default such links are not followed and go to rejected.jsonl")

    teachers = parser.add_argument_group("teachers")
    teachers.add_argument("--teachers", help=f"comma-separated teacher names, each in its own pair (default: {DEFAULT_TEACHERS})")
    teachers.add_argument("--pair-1", metavar="NAME", help="model for pair 1 (with --pair-2; an unnamed pair is left 'missing')")
    teachers.add_argument("--pair-2", metavar="NAME", help="model for pair 2")
    teachers.add_argument("--registry", metavar="FILE", help=REGISTRY_HELP)
    teachers.add_argument(
        "--sampling", action="append", metavar="KEY=VALUE", help="override a sampling setting of every teacher (max_tokens=64)"
    )

    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("auto", "vllm", "openai", "transformers"), default="auto",
                        help="auto: vllm with a GPU and vLLM installed, else transformers")
    engine.add_argument("--model-path", action="append", metavar="NAME=PATH",
                        help="load teacher NAME from PATH instead of its Hub id (repeatable)")
    engine.add_argument("--base-url", action="append", metavar="[NAME=]URL",
                        help="OpenAI-compatible server (http://host:8000/v1), for all teachers or NAME's")
    engine.add_argument("--engine-arg", action="append", metavar="KEY=VALUE",
                        help="engine option (batch_size=, device=, served_model=...); other keys go to vLLM's LLM() "
                        "(gpu_memory_utilization=0.45) or from_pretrained; NAME:KEY=VALUE for teacher NAME only "
                        "(kimi:device=cuda:1) (repeatable)")
    engine.add_argument("--trust-remote-code", action="store_true", help="allow models that run Hub code (Kimi-VL)")

    run = parser.add_argument_group("run")
    run.add_argument("--num-shards", type=int, default=1,
                     help="processes sharing the work (by hash of id); every process writing OUT_DIR gives the same")
    run.add_argument("--shard-index", type=int, default=0, help="this process's shard, in [0, num-shards)")
    run.add_argument("--max-in-flight", type=int, metavar="N",
                     help="requests each teacher keeps in flight (all its --replicas together); unset: the engine's own, "
                     f"{DEFAULT_MAX_IN_FLIGHT} for a server, twice max_num_seqs for vllm, two batches for transformers")
    run.add_argument("--rows-per-file", type=int, default=1000, help="rows per Parquet file")
    run.add_argument("--max-attempts", type=int, default=scheduler.DEFAULT_MAX_ATTEMPTS,
                     help="tries per request before its image goes to failures (errors the teacher answers; "
                     "no answer only counts while the server answers others; HTTP 429/503 'busy' never counts)")
    run.add_argument("--retry-delay", type=float, default=scheduler.DEFAULT_RETRY_DELAY,
                     help=f"seconds before a request's first retry (doubled each time, at most {scheduler.MAX_RETRY_DELAY:g}); "
                     "after a 'busy' answer, the server's Retry-After instead (cut to that limit)")
    run.add_argument("--request-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                     help="longest wait for one answer from a server (--engine openai); a server that answers "
                     "nothing at all stops the run after --unreachable-after")
    run.add_argument("--unreachable-after", type=float, default=scheduler.DEFAULT_UNREACHABLE_AFTER, metavar="SECONDS",
                     help="stop the run (exit 1, nothing written off) when a teacher answers nothing this long while "
                     "its requests fail or are busy-refused, or while a server has requests in flight (a hung server: "
                     "raise it if one answer can take longer, e.g. a small --max-in-flight and long outputs)")
    run.add_argument("--max-failure-rate", type=float, default=scheduler.DEFAULT_MAX_FAILURE_RATE, metavar="FRACTION",
                     help="exit 1 when more than this fraction of the shard's images failed, even with --accept-failed "
                     f"(stopping early once past it over {scheduler.EARLY_STOP_IMAGES} images)")
    run.add_argument("--retry-failed", action="store_true", help="try again the images of earlier failures files")
    run.add_argument("--accept-failed", action="store_true",
                     help="finish (exit 0, write the card) although images failed for good, up to --max-failure-rate: "
                     "they are left out of the corpus, counted in its card and kept in the failures files for a later "
                     "--retry-failed (without it, failed images left exit 1)")
    run.add_argument("--max-items", type=int, help="generate at most N images in this run (smoke tests)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument("--card-only", action="store_true",
                     help="only (re)write README.md from the shards present (and push): the last step of a sharded run")
    run.add_argument("--push-to-hub", metavar="REPO",
                     help="upload README.md and data/ to this Hub dataset repo at the end (sharded runs: with --card-only)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    ray = parser.add_argument_group("ray (each teacher's engine in Ray actors; see README, Regenerate on a Ray cluster)")
    ray.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run each teacher's engine in Ray actors; ADDRESS: a cluster to join (auto, ray://host:10001, "
                     "host:6379); none: $RAY_ADDRESS if set, else a new local Ray runtime")
    ray.add_argument("--replicas", action="append", metavar="[NAME=]N",
                     help="actors per teacher, each with its own engine (default: 1)")
    ray.add_argument("--replica-cpus", action="append", metavar="[NAME=]N",
                     help="CPUs Ray reserves for each replica (default: 1)")
    ray.add_argument("--replica-gpus", action="append", metavar="[NAME=]N",
                     help="GPUs Ray reserves for each replica, fractions allowed (default: tensor_parallel_size for "
                     "vllm, 1 for transformers on a cluster with GPUs, else 0)")
    ray.add_argument("--ray-data", action="store_true",
                     help="run each teacher as a Ray Data pipeline over the plan's images (with --engine vllm: Ray Data "
                     "LLM's vLLM processor); the workers read the images, so they must see SOURCE's paths")
    ray.add_argument("--ray-batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help="rows per Ray Data batch (--ray-data)")


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser of ``python -m imagenet_think.regenerate``."""
    parser = argparse.ArgumentParser(
        prog="python -m imagenet_think.regenerate", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    add_arguments(parser)
    add_log_level_argument(parser, default="WARNING")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think regenerate`` (errors are reported by :func:`imagenet_think.cli.run_command`)."""
    from imagenet_think.regenerate import job

    if args.log_level != "DEBUG":
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    return job.run(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m imagenet_think.regenerate``; returns the exit status."""
    parser = build_parser()
    return run_command(PROG, run, parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
