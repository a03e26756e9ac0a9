"""The regeneration job, one for every way of running it: in this process, or with each
teacher's engine in Ray actors (``--ray``).

:func:`run` is the whole job: check the options (and the Hub, before any work, when pushing),
choose the teachers (:func:`resolve_teachers`), select the images and make the plan, then
stream the plan's images through the teachers' engines (:func:`open_engines`: local engines, or
:class:`~imagenet_think.regenerate.engines.ray_engine.RayEngine` replicas) with one
:class:`~imagenet_think.regenerate.scheduler.Scheduler` writing through one
:class:`~imagenet_think.regenerate.runner.ShardWriter`, and last write the card and push
(:func:`finish`).  Only the engines differ between a local run and a Ray run: selection, output
layout, manifest, failures, rejected images, lock, resume and the failure policy are this code.

An outcome that is not a bug carries its exit status (``exit_status``, read by
:func:`imagenet_think.cli.run_command`): 1 for a run that stopped early, that leaves failed
images (:func:`check_failed`: too many, or any without ``--accept-failed``), that could not
start because another process writes its shard
(:class:`~imagenet_think.regenerate.runner.ShardLockedError`) or whose engine is unreachable
(:class:`~imagenet_think.regenerate.scheduler.RunStopped`), 130 for an interrupted one
(:class:`Interrupted`); bad input (an option, a file, another ``--num-shards`` than the output
directory's) is a ``ValueError``/``OSError``: 2.  The shard's lock is taken before anything is
written, so a refused process leaves the output directory as it found it.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from imagenet_think import schema
from imagenet_think.regenerate.options import key_values, per_teacher, teacher_options
from imagenet_think.regenerate.scheduler import RunStopped

logger = logging.getLogger("imagenet_think.regenerate")

DEFAULT_TEACHERS = ",".join(schema.TEACHER_NAMES[pair] for pair in sorted(schema.TEACHER_NAMES))

CARD_ONLY_HINT = "python -m imagenet_think.regenerate SOURCE OUT_DIR --card-only [--accept-failed] [--push-to-hub REPO]"

INTERRUPTED = "interrupted; the rows completed are written: rerun the same command to resume"


class Interrupted(RunStopped):
    """Ctrl-C or SIGTERM ended the run; complete rows are written."""

    exit_status = 130


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


def engine_settings(args: argparse.Namespace, teachers: Mapping[int, Any], kind: str) -> dict[int, dict[str, Any]]:
    """The keyword arguments of each pair's engine ``kind``, from the command line (checked
    here, before any engine is built)."""
    from imagenet_think.regenerate import engines

    engine_class = engines.engine_class(kind)
    names = [spec.name for spec in teachers.values()]
    model_paths = per_teacher(args.model_path, "--model-path", names)
    base_urls = per_teacher(args.base_url, "--base-url", names)
    options = teacher_options(key_values(args.engine_arg, "--engine-arg"), names)
    parameters = inspect.signature(engine_class.__init__).parameters
    settings: dict[int, dict[str, Any]] = {}
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
        settings[pair] = {**kwargs, **engine_kwargs(engine_class, options[spec.name])}
    return settings


def open_local(kind: str, teachers: Mapping[int, Any], settings: Mapping[int, dict[str, Any]]) -> dict[int, Any]:
    """One engine ``kind`` per pair, in this process (those opened are closed if one fails)."""
    from imagenet_think.regenerate import engines

    opened: dict[int, Any] = {}
    try:
        for pair, spec in teachers.items():
            logger.info("loading %s for pair %d with the %s engine", spec.model_id, pair, kind)
            opened[pair] = engines.make_engine(kind, spec, **settings[pair])
    except BaseException:
        for engine in opened.values():
            engine.close()
        raise
    return opened


@contextlib.contextmanager
def open_engines(args: argparse.Namespace, plan: Any) -> Iterator[dict[int, Any]]:
    """The engines of the plan's teachers, closed at the end: in this process, in Ray actors
    with ``--ray`` (:mod:`~imagenet_think.regenerate.engines.ray_engine`), or as Ray Data
    pipelines over the plan's images with ``--ray-data``
    (:mod:`~imagenet_think.regenerate.engines.ray_data_engine`)."""
    from imagenet_think.regenerate import engines

    teachers = plan.teachers
    if args.ray is None:
        kind = engines.default_engine() if args.engine == "auto" else args.engine
        opened = open_local(kind, teachers, engine_settings(args, teachers, kind))
    else:
        from imagenet_think.regenerate.engines import ray_engine

        placements = ray_engine.placement(args, teachers)
        ray_engine.connect(args.ray)
        kind = ray_engine.default_engine() if args.engine == "auto" else args.engine
        settings = engine_settings(args, teachers, kind)
        placements = ray_engine.with_gpus(kind, teachers, settings, placements)
        if args.ray_data:
            from imagenet_think.regenerate.engines.ray_data_engine import RayDataEngine

            opened = {
                pair: RayDataEngine(kind, spec, plan.todo, settings[pair], placements[pair], args.ray_batch_size)
                for pair, spec in teachers.items()
            }
        else:
            opened = ray_engine.open_replicas(kind, teachers, settings, placements)
    try:
        yield opened
    finally:
        for engine in opened.values():
            engine.close()


def check_options(args: argparse.Namespace) -> Optional[dict[int, Any]]:
    """Reject contradictory options, and check the Hub when pushing, before any work; the
    teachers (:func:`resolve_teachers`), whose engine options are checked too, unless
    ``--card-only``, which needs none."""
    from imagenet_think.regenerate import runner, scheduler, sources
    from imagenet_think.writer import check_hub_access

    runner.check_shard(args.num_shards, args.shard_index)
    sources.check_max_pixels(args.max_pixels)
    scheduler.check_settings(
        max_in_flight=args.max_in_flight, max_attempts=args.max_attempts, retry_delay=args.retry_delay,
        unreachable_after=args.unreachable_after, max_failure_rate=args.max_failure_rate,
    )
    if args.rows_per_file < 1:
        raise ValueError(f"--rows-per-file must be at least 1, got {args.rows_per_file}")
    if not args.request_timeout > 0:
        raise ValueError(f"--request-timeout must be > 0, got {args.request_timeout}")
    if args.push_to_hub and args.num_shards > 1 and not args.card_only:
        raise ValueError(
            "--push-to-hub with --num-shards > 1: push once, after every shard has finished, with --card-only --push-to-hub REPO"
        )
    if args.ray is not None:
        from imagenet_think.regenerate.engines import ray_engine

        ray_engine.check_options(args)
    elif args.replicas or args.replica_cpus or args.replica_gpus or args.ray_data:
        raise ValueError("--replicas, --replica-cpus, --replica-gpus and --ray-data place Ray actors: add --ray [ADDRESS]")
    teachers = None
    if not args.card_only:  # the teachers and engine options, before the lock and the selection
        from imagenet_think.regenerate import engines

        teachers = resolve_teachers(args.teachers, args.pair_1, args.pair_2, args.registry, key_values(args.sampling, "--sampling"))
        if args.engine != "auto" or args.ray is None:  # --ray's "auto" is decided on the cluster
            engine_settings(args, teachers, engines.default_engine() if args.engine == "auto" else args.engine)
    if args.push_to_hub:
        check_hub_access(args.push_to_hub)
    return teachers


def make_plan(args: argparse.Namespace, out_dir: Path, teachers: Mapping[int, Any], writer: Any = None) -> tuple[Any, Any]:
    """The selection of images and this process's plan for ``teachers`` (:func:`check_options`):
    ``(plan, selection)``; from the files an open
    :class:`~imagenet_think.regenerate.runner.ShardWriter` read, when given, else read now.
    Images already written are not checked again."""
    from imagenet_think.regenerate import runner, sources

    footers: dict[Path, Any] = {} if writer is None else writer.footers
    written = runner.ids_by_file(out_dir, footers) if writer is None else writer.written
    done = runner.completed_ids(written)
    source = sources.open_source(args.source, args.layout, args.follow_symlinks)
    selection = sources.select_items(source, args.num_images, args.seed, args.min_size, args.max_pixels, known_good=done)
    plan = runner.make_plan(
        selection.items,
        out_dir,
        teachers,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        retry_failed=args.retry_failed,
        max_items=args.max_items,
        skipped_sources=len(selection.skipped),
        written=written,
        footers=footers,
        done=done,
    )
    return plan, selection


def generate(args: argparse.Namespace, plan: Any, writer: Any) -> Any:
    """Open the engines, stream the plan's items through them into ``writer`` (an open
    :class:`~imagenet_think.regenerate.runner.ShardWriter`); the run's
    :class:`~imagenet_think.regenerate.runner.RunStats`."""
    from imagenet_think.regenerate import runner, scheduler

    with stop_on_sigterm():
        with open_engines(args, plan) as opened:
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
    failures = runner.failures_path(writer.out_dir, args.shard_index)
    print(f"wrote {stats.written} rows in {len(stats.files)} files; {stats.failed} images failed (see {failures})", file=sys.stderr)
    return stats


def check_failed(args: argparse.Namespace, failed: int, total: int, where: str) -> None:
    """Raise :class:`RunStopped` when ``failed`` of ``total`` images failed for good and are not
    written (listed in ``where``): more than ``--max-failure-rate`` of them, or any at all
    unless ``--accept-failed``.

    >>> args = argparse.Namespace(max_failure_rate=0.05, accept_failed=False)
    >>> check_failed(args, 0, 10, "f.jsonl")
    >>> check_failed(args, 1, 100, "f.jsonl")
    Traceback (most recent call last):
    ...
    imagenet_think.regenerate.scheduler.RunStopped: 1 of 100 images failed (see f.jsonl): rerun with --retry-failed once the cause is fixed, or add --accept-failed to finish without them
    """
    from imagenet_think.regenerate import runner, scheduler

    if not failed:
        return
    summary = scheduler.failure_summary(runner.RunStats(written=total - failed, failed=failed), args.max_failure_rate)
    if summary:
        raise RunStopped(f"{summary}; see {where}, fix the cause, then rerun with --retry-failed")
    if not args.accept_failed:
        raise RunStopped(
            f"{failed} of {total} images failed (see {where}): rerun with --retry-failed once the cause is fixed, "
            "or add --accept-failed to finish without them"
        )


def failed_note(failed: int) -> Optional[str]:
    """What the card says of ``failed`` images left out with ``--accept-failed`` (``None`` for 0).

    >>> failed_note(3)[:66]
    '3 images of the selection failed generation and are not in this co'
    """
    if not failed:
        return None
    return (
        f"{failed:,} images of the selection failed generation and are not in this corpus (accepted with "
        "`--accept-failed`); they are listed in the `regenerate/failures-*.jsonl` files of the output directory "
        "that built it, and rerunning its command with `--retry-failed` tries them again."
    )


def finish(out_dir: Path, source: str, repo: Optional[str], files: Mapping[Path, Any], failed: int = 0) -> None:
    """Write the dataset card from the shards present (saying how many ``failed`` images were
    left out), then push if asked (with :func:`imagenet_think.writer.upload`); ``files`` are the
    footers of the shards, read by a run that checked their ids (an id written twice is an error
    naming it and its files: :func:`~imagenet_think.regenerate.runner.completed_ids`)."""
    from imagenet_think.writer import upload, write_card

    readme = write_card(out_dir, source=f"regenerate {source}", footers=files, note=failed_note(failed))
    logger.info("wrote %s", readme)
    if repo:
        try:
            upload(out_dir, repo, commit_message=f"Upload with imagenet-think regenerate {source}")
        except Exception as error:  # network, auth and HTTP errors of several libraries
            raise ConnectionError(
                f"--push-to-hub {repo} failed ({type(error).__name__}: {error}); the corpus is complete in {out_dir}: "
                "retry with --card-only --push-to-hub REPO"
            ) from error
        print(f"pushed {out_dir} to https://huggingface.co/datasets/{repo}", file=sys.stderr)


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


def run(args: argparse.Namespace) -> int:
    """The job: 0 when done; raises (with ``exit_status`` where it is not a bug) otherwise."""
    from imagenet_think.regenerate import runner

    out_dir = Path(args.out_dir)
    teachers = check_options(args)
    if args.card_only:
        footers: dict[Path, Any] = {}
        written = runner.completed_ids(runner.ids_by_file(out_dir, footers))  # an id written twice is an error
        failed = len(runner.failed_ids(out_dir) - written)
        check_failed(args, failed, len(written) + failed, f"{out_dir / runner.STATE_DIR}/failures-*.jsonl")
        finish(out_dir, args.source, args.push_to_hub, footers, failed)
        return 0
    if args.dry_run:  # reads only
        plan, _ = make_plan(args, out_dir, teachers)
        runner.check_sharding(out_dir, args.num_shards, plan.written)
        print(plan.describe())
        return 0
    # the shard's lock before anything is written: a process refused writes nothing
    stats = runner.RunStats()
    with runner.ShardWriter(out_dir, args.shard_index, args.rows_per_file, num_shards=args.num_shards) as writer:
        plan, selection = make_plan(args, out_dir, teachers, writer)
        print(plan.describe(), file=sys.stderr)
        runner.record_rejected(out_dir, selection.skipped)
        if plan.todo:
            try:
                stats = generate(args, plan, writer)
            except KeyboardInterrupt:
                raise Interrupted(INTERRUPTED) from None
    failed = plan.failed + stats.failed  # earlier runs' (not retried) and this run's
    check_failed(args, failed, plan.done + stats.written + failed, str(runner.failures_path(out_dir, args.shard_index)))
    if args.num_shards > 1:  # the shards of other processes may still be arriving
        print(f"shard {args.shard_index} of {args.num_shards} done; when every shard is: {CARD_ONLY_HINT}", file=sys.stderr)
    elif runner.data_files(out_dir):
        finish(out_dir, args.source, args.push_to_hub, plan.footers, failed)
    return 0
