"""A teacher as a Ray Data pipeline over the plan's images: Ray Data LLM's vLLM processor on GPU
clusters (``--ray --ray-data --engine vllm``), or any engine in a Ray Data actor pool.

:class:`RayDataEngine` is an :class:`~imagenet_think.regenerate.engines.base.Engine` whose
requests are known when it opens: the images of the plan.  It starts one streaming Ray Data
pipeline over them (``ray.data.from_items`` of the items, the image read on a worker, then the
teacher's stage) and hands each output row to the request with its id, whatever the order, so
the run's :class:`~imagenet_think.regenerate.scheduler.Scheduler` and
:class:`~imagenet_think.regenerate.runner.ShardWriter` write the rows exactly as in a local
run: the same job, not a copy.  The stage is

* for ``vllm``, ``ray.data.llm.build_processor`` with a ``vLLMEngineProcessorConfig``
  (:func:`processor_config`: ``concurrency`` = ``--replicas``, the spec's and ``--engine-arg``
  vLLM options as ``engine_kwargs``, multimodal preparation by vLLM, detokenized by vLLM so
  GLM's special-token markers stay);
* for another engine, ``map_batches`` over :class:`EngineStage` actors (``--replicas``), each
  running the engine on its batches.

Unlike the actors of :mod:`~imagenet_think.regenerate.engines.ray_engine`, the workers read the
images themselves: they must see the same paths (a shared filesystem) or the same corpus.
An error row (Ray Data LLM's ``__inference_error__``) is the request's final answer in this run
(its retries get it again; rerun with ``--retry-failed``).  Ray Data LLM keeps no finish reason:
a completion of ``max_tokens`` tokens is recorded as ``"length"``, a shorter one as ``"stop"``.

>>> output_row({"id": "a", "generated_text": "<think>x", "num_generated_tokens": 8, "__inference_error__": ""}, 8)
{'id': 'a', 'raw': '<think>x', 'finish_reason': 'length', 'num_tokens': 8, 'error': None}
>>> result_of(_).finish_reason
'length'
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import threading
from concurrent.futures import Future
from typing import Any, Mapping, Optional, Sequence

from imagenet_think import PROMPT
from imagenet_think.regenerate.engines.base import Engine, Request, Result, chat_messages, failed
from imagenet_think.regenerate.models import ModelSpec
from imagenet_think.regenerate.sources import ImageItem

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16
"""Rows per Ray Data batch of the teacher stage (``--ray-batch-size``)."""

NO_OUTPUT = "no output from the Ray Data pipeline (can every worker read the image? see the workers' warnings)"


def item_row(item: ImageItem) -> dict[str, Any]:
    """``item`` as a Ray Data row: where its bytes are, never the bytes (nor a corpus's column).

    >>> item_row(ImageItem("n1_a", "n1", "", "file", "/x/a.jpg", suffix=".jpg"))["path"]
    '/x/a.jpg'
    """
    return {field.name: getattr(item, field.name) for field in dataclasses.fields(ImageItem) if field.name != "images"}


def read_image(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray flat map: the row's ``id`` and encoded ``image``; nothing (and a warning) when this
    worker cannot read it: its request then fails with :data:`NO_OUTPUT`."""
    try:
        return [{"id": row["id"], "image": ImageItem(**row).read_bytes()}]
    except (OSError, ValueError) as error:
        logger.warning("a Ray worker cannot read %s: %s", row["path"], error)
        return []


def output_row(row: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """The fields of a :class:`Result` from a Ray Data LLM output row (or an :class:`EngineStage` one)."""
    error = row.get("__inference_error__") or None
    tokens = None if error else int(row["num_generated_tokens"])
    finish = row.get("finish_reason") or ("length" if tokens is not None and tokens >= max_tokens else "stop")
    return {
        "id": row["id"],
        "raw": None if error else row["generated_text"],
        "finish_reason": None if error else finish,
        "num_tokens": tokens,
        "error": error,
    }


def vllm_request(row: dict[str, Any], spec: ModelSpec, sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Ray Data LLM preprocess: the chat ``messages`` (image as a data URL) and ``sampling_params``."""
    from imagenet_think.regenerate.engines.openai_engine import image_data_url

    part = {"type": "image_url", "image_url": {"url": image_data_url(row["image"])}}
    return {"id": row["id"], "messages": chat_messages(PROMPT, part, spec.system_prompt), "sampling_params": dict(sampling)}


def processor_config(
    spec: ModelSpec, model_path: Optional[str], trust_remote_code: bool, engine_kwargs: Mapping[str, Any], replicas: int, batch_size: int
) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.vLLMEngineProcessorConfig`` for one teacher.

    >>> from imagenet_think.regenerate.models import get_model
    >>> config = processor_config(get_model("glm"), None, False, {"gpu_memory_utilization": 0.9}, 4, 16)
    >>> config["model_source"], config["concurrency"], config["engine_kwargs"]["limit_mm_per_prompt"]
    ('zai-org/GLM-4.1V-9B-Thinking', 4, {'image': 1, 'video': 0})
    """
    from imagenet_think.regenerate.engines.vllm_engine import llm_kwargs

    kwargs = llm_kwargs(spec, model_path, trust_remote_code, engine_kwargs)
    return {
        "model_source": kwargs.pop("model"),
        "engine_kwargs": kwargs,
        "concurrency": replicas,
        "batch_size": batch_size,
        "prepare_multimodal_stage": True,
        "detokenize_stage": False,  # vLLM detokenizes honouring skip_special_tokens; Ray's own would drop GLM's markers
        "should_continue_on_error": True,
    }


def vllm_processor(spec: ModelSpec, kwargs: Mapping[str, Any], replicas: int, batch_size: int, sampling: Mapping[str, Any]) -> Any:
    """Ray Data LLM's vLLM processor for one teacher (``kwargs``: the vllm engine's, as in a
    local run): rows ``{"id", "image"}`` in, :func:`output_row` fields out."""
    import functools

    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from imagenet_think.regenerate.engines.vllm_engine import sampling_kwargs

    config = processor_config(spec, kwargs.get("model_path"), bool(kwargs.get("trust_remote_code")),
                              kwargs.get("engine_kwargs", {}), replicas, batch_size)  # fmt: skip
    params = sampling_kwargs(spec, sampling)
    return build_processor(
        vLLMEngineProcessorConfig(**config),
        preprocess=functools.partial(vllm_request, spec=spec, sampling=params),
        postprocess=functools.partial(output_row, max_tokens=params["max_tokens"]),
    )


def result_of(row: Mapping[str, Any]) -> Result:
    """The :class:`Result` of an output row (:func:`output_row`'s fields; Ray Data may give numpy scalars)."""
    tokens = row["num_tokens"]
    return Result(str(row["id"]), row["raw"], row["finish_reason"], None if tokens is None else int(tokens), row["error"])


class EngineStage:
    """Ray Data actor: the engine ``kind`` for ``spec``, run over each batch of images; rows
    come out with :func:`output_row`'s fields."""

    def __init__(self, kind: str, spec: ModelSpec, kwargs: Mapping[str, Any]):
        from imagenet_think.regenerate.engines import make_engine

        self.engine = make_engine(kind, spec, **kwargs)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        requests = [Request(str(i), bytes(image)) for i, image in zip(batch["id"], batch["image"], strict=True)]
        results = self.engine.generate(requests)
        return {name: [getattr(result, name) for result in results] for name in ("id", "raw", "finish_reason", "num_tokens", "error")}


class RayDataEngine(Engine):
    """One teacher over ``items`` as a Ray Data pipeline (see the module docstring); ``kwargs``
    are the engine's as in a local run, ``placement`` places its stage (``replicas`` actors)."""

    def __init__(
        self,
        kind: str,
        spec: ModelSpec,
        items: Sequence[ImageItem],
        kwargs: Mapping[str, Any],
        placement: Any,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__(spec)
        import ray
        import ray.data

        self.name, self.version = kind, f"(ray {ray.__version__} data)"
        self.max_in_flight = max(64, 4 * placement.replicas * batch_size)
        images = ray.data.from_items([item_row(item) for item in items]).flat_map(read_image)
        if kind == "vllm":
            self.version = f"{importlib.metadata.version('vllm')} {self.version}"
            self._rows = vllm_processor(self.spec, kwargs, placement.replicas, batch_size, self.sampling)(images)
        else:
            self._rows = images.map_batches(
                EngineStage, fn_constructor_kwargs={"kind": kind, "spec": spec, "kwargs": dict(kwargs)},
                concurrency=placement.replicas, batch_size=batch_size, **placement.actor_options(),
            )  # fmt: skip
        self._results: dict[str, Result] = {}
        self._waiting: dict[str, Future] = {}
        self._error: Optional[BaseException] = None
        self._finished = self._closing = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._collect, name=f"ray-data-{spec.name}", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        """Hand every output row to its request (or keep it until the request comes)."""
        try:
            for row in self._rows.iter_rows():
                if self._closing:
                    return
                self._arrived(result_of(row))
        except BaseException as error:  # the pipeline failed: every request waiting hears of it
            logger.error("the Ray Data pipeline of %s failed: %s", self.spec.name, error)
            self._error = error
        finally:
            with self._lock:
                self._finished = True
                waiting, self._waiting = self._waiting, {}
            for request_id, future in waiting.items():
                self._resolve(future, request_id)

    def _arrived(self, result: Result) -> None:
        with self._lock:
            self._results[result.id] = result
            future = self._waiting.pop(result.id, None)
        if future is not None:
            self._resolve(future, result.id)

    def _resolve(self, future: Future, request_id: str) -> None:
        if future.done():
            return
        result = self._results.get(request_id)
        if result is not None:
            future.set_result(result)
        elif self._error is not None:
            future.set_exception(self._error)
        else:
            future.set_result(failed(request_id, LookupError(NO_OUTPUT)))

    def submit(self, request: Request) -> "Future[Result]":
        future: Future = Future()
        with self._lock:
            ready = request.id in self._results or self._finished
            if not ready:
                self._waiting[request.id] = future
        if ready:
            self._resolve(future, request.id)
        return future

    def close(self) -> None:
        """Stop taking rows (the pipeline ends with its iteration, or with the driver)."""
        self._closing = True
