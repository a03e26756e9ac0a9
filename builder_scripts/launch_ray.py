"""Regenerate the corpus on a Ray cluster: Ray Data LLM runs vLLM replicas, our runner writes.

The same job as ``imagenet-think regenerate`` (same options, same output directory, same
resumability), for clusters where Ray schedules the GPUs: each teacher gets ``--replicas``
vLLM engine replicas through ``ray.data.llm`` (``build_processor`` with a
``vLLMEngineProcessorConfig``), images stream through them, and the driver hands the finished
outputs to a :class:`imagenet_think.regenerate.scheduler.Scheduler` writing through a
:class:`imagenet_think.regenerate.runner.ShardWriter`, which split the reasoning and write the
Hub-layout shards exactly as a single-process run does.  Rerun after a crash:
rows already written are skipped.

Needs ``pip install "ray[data,llm]>=2.49" vllm`` (the ``ray`` extra) and image paths that every
Ray worker can read (a shared filesystem).  Ray and vLLM are imported only when the job runs,
so ``--help`` and ``--dry-run`` work without them.  This path is not exercised by the test
suite (no Ray, no GPU there); check it on a small ``-n`` first.

    python builder_scripts/launch_ray.py /data/imagenet21k out/ -n 250000 \\
        --trust-remote-code --replicas 4 --engine-arg gpu_memory_utilization=0.9

Ray Data keeps only each request's first completion and reports no finish reason: a
completion of ``max_tokens`` tokens is recorded as ``"length"``, any shorter one as ``"stop"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import logging
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from imagenet_think import PROMPT
from imagenet_think.regenerate import __main__ as cli
from imagenet_think.regenerate.engines.base import Engine, Request, Result, chat_messages, revision_of
from imagenet_think.regenerate.engines.openai_engine import image_data_url
from imagenet_think.regenerate.engines.vllm_engine import llm_kwargs, sampling_kwargs
from imagenet_think.regenerate.models import ModelSpec

logger = logging.getLogger("imagenet_think.regenerate.ray")

INSTALL_HINT = 'the Ray path needs Ray Data LLM and vLLM: pip install "ray[data,llm]>=2.49" vllm'


class FinishedOutputs(Engine):
    """An engine whose outputs were computed elsewhere (by Ray Data), handed to the scheduler by id."""

    name = "vllm"
    max_in_flight = 1024

    def __init__(self, spec: ModelSpec, version: str, revision: str):
        super().__init__(spec)
        self.version, self.revision = version, revision
        self.outputs: dict[str, Result] = {}

    def submit(self, request: Request) -> "Future[Result]":
        future: Future = Future()
        future.set_result(self.outputs.pop(request.id))
        return future


def read_image(row: dict) -> dict:
    """Ray map: the item's encoded bytes, or ``None`` when they cannot be read."""
    from imagenet_think.regenerate.sources import ImageItem

    try:
        image = ImageItem(**row["item"]).read_bytes()
    except (OSError, ValueError) as error:
        logger.warning("cannot read %s: %s", row["item"]["path"], error)
        image = None
    return {"id": row["item"]["id"], "image": image}


def to_request(row: dict, spec: ModelSpec, params: dict, legacy_images: bool) -> dict:
    """Ray preprocess: the row plus its chat ``messages`` and ``sampling_params``."""
    url = image_data_url(row["image"])
    part = {"type": "image", "image": url} if legacy_images else {"type": "image_url", "image_url": {"url": url}}
    return {**row, "messages": chat_messages(PROMPT, part, spec.system_prompt), "sampling_params": params}


def keep_output(row: dict, pair: int, max_tokens: int, carried: Sequence[str]) -> dict:
    """Ray map after a teacher: the carried columns plus this pair's output (or error)."""
    error = row.get("__inference_error__")
    tokens = None if error else int(row["num_generated_tokens"])
    output = {
        f"raw_{pair}": None if error else row["generated_text"],
        f"finish_reason_{pair}": None if error else ("length" if tokens >= max_tokens else "stop"),
        f"num_tokens_{pair}": tokens,
        f"error_{pair}": error or None,
    }
    return {**{name: row[name] for name in carried}, **output}


def processor(spec: ModelSpec, engine_kwargs: dict, params: dict, args: argparse.Namespace) -> Any:
    """The Ray Data LLM processor of one teacher (Ray >= 2.49 API; ``prepare_multimodal_stage`` when present)."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    fields = vLLMEngineProcessorConfig.model_fields
    legacy_images = "prepare_multimodal_stage" not in fields
    engine_kwargs = dict(engine_kwargs)
    config = {
        "model_source": engine_kwargs.pop("model"),
        "engine_kwargs": engine_kwargs,
        "concurrency": args.replicas,
        "batch_size": args.ray_batch_size,
    }
    if legacy_images:
        config.update(has_image=True, detokenize=False)
    else:
        # vLLM detokenizes honouring skip_special_tokens; Ray's own detokenizer would drop GLM's markers
        config.update(prepare_multimodal_stage=True, detokenize_stage=False)
    if "should_continue_on_error" in fields:
        config["should_continue_on_error"] = True
    preprocess = functools.partial(to_request, spec=spec, params=params, legacy_images=legacy_images)
    return build_processor(vLLMEngineProcessorConfig(**config), preprocess=preprocess)


def generate(args: argparse.Namespace, teachers: dict[int, ModelSpec], plan: Any) -> None:
    """Stream the plan's images through every teacher on Ray and write the rows as they finish."""
    try:
        import ray
        import ray.data
        vllm_version = importlib.metadata.version("vllm")
    except ImportError as error:
        raise OSError(f"{INSTALL_HINT} ({error})") from error
    from imagenet_think.regenerate import runner, scheduler

    ray.init(address=args.ray_address, ignore_reinit_error=True)
    model_paths = cli.per_teacher(args.model_path, "--model-path", [spec.name for spec in teachers.values()])
    engine_options = cli.key_values(args.engine_arg, "--engine-arg")
    dataset = ray.data.from_items([{"item": dataclasses.asdict(item)} for item in plan.todo]).map(read_image)
    dataset = dataset.filter(lambda row: row["image"] is not None)
    engines: dict[int, FinishedOutputs] = {}
    carried = ["id", "image"]
    for pair, spec in sorted(teachers.items()):
        kwargs = llm_kwargs(spec, model_paths.get(spec.name), args.trust_remote_code, engine_options)
        engine = FinishedOutputs(spec, f"{vllm_version} (ray {ray.__version__})", revision_of(kwargs["model"], spec))
        params = sampling_kwargs(spec, engine.sampling)
        dataset = processor(spec, kwargs, params, args)(dataset)
        dataset = dataset.map(functools.partial(keep_output, pair=pair, max_tokens=params["max_tokens"], carried=carried))
        carried += [f"{column}_{pair}" for column in ("raw", "finish_reason", "num_tokens", "error")]
        engines[pair] = engine
    with runner.ShardWriter(args.out_dir, args.shard_index, args.rows_per_file, plan.written) as writer:
        stream = scheduler.Scheduler(engines, writer, max_attempts=1, max_failure_rate=args.max_failure_rate, progress=False)
        write_outputs(dataset.drop_columns(["image"]).iter_rows(), engines, plan.todo, stream, args.rows_per_file)
    summary = scheduler.failure_summary(writer.stats, args.max_failure_rate)
    if summary:
        raise scheduler.RunStopped(f"{summary}; see {runner.failures_path(args.out_dir, args.shard_index)}")


def write_outputs(
    rows: Iterable[dict], engines: dict[int, FinishedOutputs], todo: Sequence[Any], stream: Any, rows_per_write: int
) -> None:
    """Hand finished rows (``keep_output``'s columns, in any order) to ``stream`` (a
    :class:`~imagenet_think.regenerate.scheduler.Scheduler` over ``engines``) ``rows_per_write`` at a time."""
    items = {item.id: item for item in todo}
    finished: list[str] = []
    for row in rows:
        for pair, engine in engines.items():
            engine.outputs[row["id"]] = Result(
                row["id"], row[f"raw_{pair}"], row[f"finish_reason_{pair}"], row[f"num_tokens_{pair}"], row[f"error_{pair}"]
            )
        finished.append(row["id"])
        if len(finished) >= rows_per_write:
            stream.run([items[i] for i in finished])
            finished.clear()
    if finished:
        stream.run([items[i] for i in finished])


def build_parser() -> argparse.ArgumentParser:
    """``imagenet-think regenerate``'s options plus the Ray ones."""
    parser = argparse.ArgumentParser(prog="launch_ray.py", description=__doc__.split("\n")[0])
    cli.add_arguments(parser)
    group = parser.add_argument_group("ray")
    group.add_argument("--ray-address", help="Ray cluster to join; unset: $RAY_ADDRESS, else a new local cluster")
    group.add_argument("--replicas", type=int, default=1,
                       help="vLLM replicas per teacher, each on tensor_parallel_size GPUs")
    group.add_argument("--ray-batch-size", type=int, default=64, help="rows per Ray Data batch")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from imagenet_think.regenerate import runner, scheduler, sources

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.engine not in ("auto", "vllm"):
            raise ValueError(f"the Ray path runs vLLM; --engine {args.engine} is for imagenet-think regenerate")
        sampling = cli.key_values(args.sampling, "--sampling")  # folded into each teacher's spec
        teachers = cli.resolve_teachers(args.teachers, args.pair_1, args.pair_2, args.registry, sampling)
        selection = sources.select_items(sources.open_source(args.source, args.layout), args.num_images, args.seed, args.min_size)
        plan = runner.make_plan(
            selection.items, args.out_dir, teachers, num_shards=args.num_shards, shard_index=args.shard_index,
            retry_failed=args.retry_failed, max_items=args.max_items, skipped_sources=len(selection.skipped),
        )
        print(plan.describe(), file=sys.stdout if args.dry_run else sys.stderr)
        if args.dry_run:
            return 0
        runner.record_rejected(args.out_dir, selection.skipped)
        if plan.todo:
            generate(args, teachers, plan)
        if runner.data_files(args.out_dir):
            cli.finish(Path(args.out_dir), args.source, args.push_to_hub)
    except scheduler.RunStopped as stopped:
        logger.error("%s", stopped)
        return 1
    except (ValueError, KeyError, OSError) as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
