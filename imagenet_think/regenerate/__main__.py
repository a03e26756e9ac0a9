"""``python -m imagenet_think.regenerate`` (also ``imagenet-think regenerate``): rebuild or
extend the corpus with teacher VLMs, resumably, on one process, one node or a SLURM array.

    python -m imagenet_think.regenerate /data/imagenet21k out/ -n 250000 --engine vllm
    python -m imagenet_think.regenerate /data/imagenet21k out/ -n 250000 --dry-run
    python -m imagenet_think.regenerate sample out/ --teachers glm --engine transformers \\
        --model-path glm=/models/glm --sampling max_tokens=64 --max-items 4

Rerun the same command after any crash, or after it stopped on an unreachable server: rows
already written are skipped.  Exit status: 0 done; 1 the run stopped early or too many images
failed (one line says why; rerun to resume); 2 bad input or options.

>>> args = build_parser().parse_args(["imgs", "out", "--engine-arg", "gpu_memory_utilization=0.45"])
>>> key_values(args.engine_arg, "--engine-arg")
{'gpu_memory_utilization': 0.45}
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from imagenet_think import schema
from imagenet_think.regenerate.sources import DEFAULT_MIN_SIZE, LAYOUTS

logger = logging.getLogger("imagenet_think.regenerate")

PROG = "imagenet-think regenerate"
"""Name in one-line errors: ``imagenet-think regenerate: error: ...``."""

CARD_ONLY_HINT = "python -m imagenet_think.regenerate SOURCE OUT_DIR --card-only [--push-to-hub REPO]"

DEFAULT_TEACHERS = ",".join(schema.TEACHER_NAMES[pair] for pair in sorted(schema.TEACHER_NAMES))


def key_values(pairs: Optional[Sequence[str]], option: str) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict; values are JSON when they parse (``0.5``, ``true``,
    ``{"image": 1}``), else strings.

    >>> key_values(["max_tokens=64", "device=cpu", "limit={\\"image\\": 1}"], "--x")
    {'max_tokens': 64, 'device': 'cpu', 'limit': {'image': 1}}
    >>> key_values(["oops"], "--engine-arg")
    Traceback (most recent call last):
    ...
    ValueError: --engine-arg expects KEY=VALUE, got 'oops'
    """
    parsed: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def per_teacher(values: Optional[Sequence[str]], option: str, names: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` entries by teacher name; a bare ``VALUE`` applies to every teacher.

    >>> per_teacher(["http://a:8000/v1", "kimi=http://b:8000/v1"], "--base-url", ["glm", "kimi"])
    {'glm': 'http://a:8000/v1', 'kimi': 'http://b:8000/v1'}
    """
    found: dict[str, str] = {}
    for value in values or ():
        name, sep, rest = value.partition("=")
        if sep and name in names:
            found[name] = rest
        elif sep and "/" not in name and ":" not in name:
            raise ValueError(f"{option} {value!r}: unknown teacher {name!r}; teachers of this run: {', '.join(names)}")
        else:
            found.update({n: value for n in names if n not in found})
    return found


def teacher_options(options: dict[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--engine-arg`` options by teacher: a ``NAME:KEY`` key is for teacher NAME only (and
    wins over a plain ``KEY``), so two teachers can go to two devices.

    >>> teacher_options({"dtype": "bfloat16", "kimi:device": "cuda:1"}, ["glm", "kimi"])
    {'glm': {'dtype': 'bfloat16'}, 'kimi': {'dtype': 'bfloat16', 'device': 'cuda:1'}}
    """
    common = {key: value for key, value in options.items() if ":" not in key}
    found = {name: dict(common) for name in names}
    for key, value in options.items():
        name, sep, option = key.partition(":")
        if not sep:
            continue
        if name not in found:
            raise ValueError(f"--engine-arg {key}=...: unknown teacher {name!r}; teachers of this run: {', '.join(names)}")
        found[name][option] = value
    return found


def resolve_teachers(
    teachers: Optional[str],
    pair_1: Optional[str],
    pair_2: Optional[str],
    registry_file: Optional[str] = None,
    sampling: Optional[dict[str, Any]] = None,
) -> dict[int, Any]:
    """``{pair: ModelSpec}`` from ``--teachers`` (pairs from the specs) or ``--pair-1/--pair-2``,
    with the ``--sampling`` overrides folded into each spec.

    >>> {p: s.name for p, s in resolve_teachers("kimi", None, None).items()}
    {2: 'kimi'}
    >>> resolve_teachers(None, None, "glm", sampling={"max_tokens": 64})[2].sampling["max_tokens"]
    64
    """
    from dataclasses import replace

    from imagenet_think.regenerate.engines.base import effective_sampling
    from imagenet_think.regenerate.models import REGISTRY, get_model, load_registry

    registry = load_registry(registry_file) if registry_file else REGISTRY
    chosen: dict[int, Any] = {}
    if pair_1 or pair_2:
        if teachers:
            raise ValueError("give either --teachers or --pair-1/--pair-2, not both")
        chosen = {pair: get_model(name, registry) for pair, name in ((1, pair_1), (2, pair_2)) if name}
    else:
        for name in (teachers or DEFAULT_TEACHERS).split(","):
            spec = get_model(name.strip(), registry)
            if spec.pair is None:
                raise ValueError(f"model {spec.name!r} has no pair number: place it with --pair-1 or --pair-2")
            if spec.pair in chosen:
                raise ValueError(f"{chosen[spec.pair].name!r} and {spec.name!r} both fill pair {spec.pair}")
            chosen[spec.pair] = spec
    return {pair: replace(spec, sampling=effective_sampling(spec, sampling)) for pair, spec in chosen.items()}


def engine_kwargs(engine_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """Split ``options`` for ``engine_class``: keys its constructor takes go there, the rest
    to its backend (``engine_kwargs``: vLLM's ``LLM(...)``; ``model_kwargs``:
    ``from_pretrained``); an engine with neither rejects them."""
    parameters = inspect.signature(engine_class.__init__).parameters
    direct = {k: v for k, v in options.items() if k in parameters}
    rest = {k: v for k, v in options.items() if k not in parameters}
    if not rest:
        return direct
    backend = next((name for name in ("engine_kwargs", "model_kwargs") if name in parameters), None)
    if backend is None:
        allowed = sorted(set(parameters) - {"self", "spec"})
        raise ValueError(f"--engine-arg {sorted(rest)} not understood by the {engine_class.name} engine; it takes {allowed}")
    return {**direct, backend: {**direct.get(backend, {}), **rest}}


def open_engines(args: argparse.Namespace, teachers: dict[int, Any]) -> dict[int, Any]:
    """One engine per pair, built from the command line."""
    from imagenet_think.regenerate import engines

    kind = engines.default_engine() if args.engine == "auto" else args.engine
    engine_class = engines.engine_class(kind)
    names = [spec.name for spec in teachers.values()]
    model_paths = per_teacher(args.model_path, "--model-path", names)
    base_urls = per_teacher(args.base_url, "--base-url", names)
    options = teacher_options(key_values(args.engine_arg, "--engine-arg"), names)
    parameters = inspect.signature(engine_class.__init__).parameters
    kwargs_by_pair: dict[int, dict[str, Any]] = {}
    for pair, spec in teachers.items():
        given = {
            "--model-path": ("model_path", model_paths.get(spec.name)),
            "--base-url": ("base_url", base_urls.get(spec.name)),
        }
        for option, (name, value) in given.items():
            if value is not None and name not in parameters:
                raise ValueError(f"{option} is not used by the {kind} engine")
        kwargs: dict[str, Any] = {name: value for name, value in given.values() if value is not None}
        if "base_url" in parameters and "base_url" not in kwargs:
            raise ValueError(f"the {kind} engine needs --base-url URL (or {spec.name}=URL)")
        if args.trust_remote_code and "trust_remote_code" in parameters:
            kwargs["trust_remote_code"] = True
        if "timeout" in parameters:
            kwargs["timeout"] = args.request_timeout
        if "max_in_flight" in parameters and args.max_in_flight:  # a server engine sizes its connection pools by it
            kwargs["max_in_flight"] = args.max_in_flight
        kwargs_by_pair[pair] = {**kwargs, **engine_kwargs(engine_class, options[spec.name])}
    opened: dict[int, Any] = {}
    try:
        for pair, spec in teachers.items():
            logger.info("loading %s for pair %d with the %s engine", spec.model_id, pair, kind)
            opened[pair] = engines.make_engine(kind, spec, **kwargs_by_pair[pair])
    except BaseException:
        for engine in opened.values():
            engine.close()
        raise
    return opened


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think regenerate``."""
    from imagenet_think.regenerate import scheduler
    from imagenet_think.regenerate.engines.openai_engine import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
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
    io_group.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="minimum width and height (0: no check)")

    teachers = parser.add_argument_group("teachers")
    teachers.add_argument("--teachers", help=f"comma-separated teacher names, each in its own pair (default: {DEFAULT_TEACHERS})")
    teachers.add_argument("--pair-1", metavar="NAME", help="model for pair 1 (with --pair-2; an unnamed pair is left 'missing')")
    teachers.add_argument("--pair-2", metavar="NAME", help="model for pair 2")
    teachers.add_argument("--registry", metavar="FILE", help="YAML/JSON file of extra models (see regenerate.models)")
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
    run.add_argument("--num-shards", type=int, default=1, help="processes sharing the work (by hash of id)")
    run.add_argument("--shard-index", type=int, default=0, help="this process's shard, in [0, num-shards)")
    run.add_argument("--max-in-flight", type=int, metavar="N",
                     help="requests each teacher keeps in flight; unset: the engine's own, "
                     f"{DEFAULT_MAX_IN_FLIGHT} for a server, twice max_num_seqs for vllm, two batches for transformers")
    run.add_argument("--rows-per-file", type=int, default=1000, help="rows per Parquet file")
    run.add_argument("--max-attempts", type=int, default=scheduler.DEFAULT_MAX_ATTEMPTS,
                     help="tries per request before its image goes to failures (errors the teacher answers; "
                     "no answer only counts while the server answers others)")
    run.add_argument("--retry-delay", type=float, default=scheduler.DEFAULT_RETRY_DELAY,
                     help=f"seconds before a request's first retry (doubled each time, at most {scheduler.MAX_RETRY_DELAY:g})")
    run.add_argument("--request-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                     help="longest wait for one answer from a server (--engine openai)")
    run.add_argument("--unreachable-after", type=float, default=scheduler.DEFAULT_UNREACHABLE_AFTER, metavar="SECONDS",
                     help="stop the run (exit 1, nothing written off) when a teacher answers nothing this long while "
                     "its requests fail")
    run.add_argument("--max-failure-rate", type=float, default=scheduler.DEFAULT_MAX_FAILURE_RATE, metavar="FRACTION",
                     help="exit 1 when more images than this fraction failed (stopping early once past it over "
                     f"{scheduler.EARLY_STOP_IMAGES} images)")
    run.add_argument("--retry-failed", action="store_true", help="try again the images of earlier failures files")
    run.add_argument("--max-items", type=int, help="generate at most N images in this run (smoke tests)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument("--card-only", action="store_true",
                     help="only (re)write README.md from the shards present (and push): the last step of a sharded run")
    run.add_argument("--push-to-hub", metavar="REPO",
                     help="upload README.md and data/ to this Hub dataset repo at the end (sharded runs: with --card-only)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="logging level (DEBUG also prints tracebacks)")


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser of ``python -m imagenet_think.regenerate``."""
    parser = argparse.ArgumentParser(prog="python -m imagenet_think.regenerate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def push(out_dir: Path, repo: str) -> None:
    """Upload ``README.md`` and ``data/*.parquet`` of ``out_dir`` to the dataset ``repo``."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=str(out_dir), repo_type="dataset", allow_patterns=["README.md", "data/*.parquet"])


def check_hub(repo: str) -> None:
    """Fail now, not after the run, when ``--push-to-hub`` cannot reach the Hub."""
    from imagenet_think.loading import hub_reachable

    if not hub_reachable():
        raise ConnectionError(
            f"--push-to-hub {repo}: the Hugging Face Hub is unreachable (HF_HUB_OFFLINE=1 or no network). "
            "Run without --push-to-hub, then push later with --card-only --push-to-hub REPO from a machine online."
        )


def finish(out_dir: Path, source: str, repo: Optional[str]) -> None:
    """Write the dataset card from the shards present, then push if asked."""
    from imagenet_think.writer import write_card

    readme = write_card(out_dir, source=f"regenerate {source}")
    logger.info("wrote %s", readme)
    if repo:
        try:
            push(out_dir, repo)
        except Exception as error:  # network, auth and HTTP errors of several libraries
            raise ConnectionError(
                f"--push-to-hub {repo} failed ({type(error).__name__}: {error}); the corpus is complete in {out_dir}: "
                "retry with --card-only --push-to-hub REPO"
            ) from error
        logger.info("pushed %s to https://huggingface.co/datasets/%s", out_dir, repo)


def generate(args: argparse.Namespace, plan: Any, out_dir: Path) -> Any:
    """Lock the shard, open the engines, stream the plan's items through them; the run's
    :class:`~imagenet_think.regenerate.runner.RunStats`."""
    from imagenet_think.regenerate import runner, scheduler

    with runner.ShardWriter(out_dir, args.shard_index, args.rows_per_file, plan.written) as writer, stop_on_sigterm():
        opened = open_engines(args, plan.teachers)
        try:
            stats = scheduler.Scheduler(
                opened,
                writer,
                max_in_flight=args.max_in_flight,
                max_attempts=args.max_attempts,
                retry_delay=args.retry_delay,
                unreachable_after=args.unreachable_after,
                max_failure_rate=args.max_failure_rate,
                progress=not args.no_progress,
            ).run(plan.todo)
        finally:
            for engine in opened.values():
                engine.close()
    failures = runner.failures_path(out_dir, args.shard_index)
    logger.info("wrote %d rows in %d files; %d images failed (see %s)", stats.written, len(stats.files), stats.failed, failures)
    return stats


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (a cluster's preemption, ``kill``) ends the run like Ctrl-C: complete rows are
    written before the process exits (only in the main thread, where signals are handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def error(message: object, status: int) -> int:
    """Print ``imagenet-think regenerate: error: MESSAGE`` (one line) and return ``status``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    """Run ``imagenet-think regenerate``; returns the exit status (see the module docstring)."""
    from imagenet_think.regenerate import runner, scheduler, sources
    from imagenet_think.regenerate.engines.base import EngineUnreachable

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "DEBUG":  # a line per HTTP request otherwise
        for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    out_dir = Path(args.out_dir)
    try:
        runner.check_shard(args.num_shards, args.shard_index)
        if args.max_in_flight is not None and args.max_in_flight < 1:
            raise ValueError(f"--max-in-flight must be at least 1, got {args.max_in_flight}")
        if args.push_to_hub and args.num_shards > 1 and not args.card_only:
            raise ValueError(
                "--push-to-hub with --num-shards > 1: push once, after every shard has finished, with --card-only --push-to-hub REPO"
            )
        if args.push_to_hub:
            check_hub(args.push_to_hub)
        if args.card_only:
            finish(out_dir, args.source, args.push_to_hub)
            return 0
        sampling = key_values(args.sampling, "--sampling")
        teachers = resolve_teachers(args.teachers, args.pair_1, args.pair_2, args.registry, sampling)
        selection = sources.select_items(sources.open_source(args.source, args.layout), args.num_images, args.seed, args.min_size)
        plan = runner.make_plan(
            selection.items,
            out_dir,
            teachers,
            num_shards=args.num_shards,
            shard_index=args.shard_index,
            retry_failed=args.retry_failed,
            max_items=args.max_items,
            skipped_sources=len(selection.skipped),
        )
        print(plan.describe(), file=sys.stderr if not args.dry_run else sys.stdout)
        if args.dry_run:
            return 0
        runner.record_rejected(out_dir, selection.skipped)
        if plan.todo:
            stats = generate(args, plan, out_dir)
            summary = scheduler.failure_summary(stats, args.max_failure_rate)
            if summary:
                failures = runner.failures_path(out_dir, args.shard_index)
                return error(f"{summary}; see {failures}, fix the cause, then rerun with --retry-failed", 1)
        if args.num_shards > 1:  # the shards of other processes may still be arriving
            logger.info("shard %d of %d done; when every shard is: %s", args.shard_index, args.num_shards, CARD_ONLY_HINT)
        elif runner.data_files(out_dir):
            finish(out_dir, args.source, args.push_to_hub)
    except (scheduler.RunStopped, EngineUnreachable) as stopped:
        logger.debug("traceback", exc_info=True)
        return error(stopped, 1)
    except (ValueError, KeyError, OSError) as bad:
        logger.debug("traceback", exc_info=True)
        return error(bad.args[0] if isinstance(bad, KeyError) and bad.args else bad, 2)
    except KeyboardInterrupt:
        return error("interrupted; the rows completed are written: rerun the same command to resume", 130)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m imagenet_think.regenerate``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
