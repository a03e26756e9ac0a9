"""Any engine in Ray actors: each teacher as ``--replicas N`` copies on a Ray cluster, fed by the
driver's scheduler.

:class:`RayEngine` is an :class:`~imagenet_think.regenerate.engines.base.Engine` like the others,
so ``regenerate --ray`` is the same job as a local run (:mod:`imagenet_think.regenerate.job`):
the driver selects the images, reads each one once when the
:class:`~imagenet_think.regenerate.scheduler.Scheduler` admits it, and writes every row through
the one :class:`~imagenet_think.regenerate.runner.ShardWriter`.  Only generation moves: each
request (the image's bytes and the prompt) goes to the least busy of the teacher's replicas,
Ray actors (:class:`Replica`) that each build the engine ``kind`` (``openai``,
``transformers``, ``vllm``) with exactly the arguments a local run would give it, and answer
many requests at once (async actors).  Images therefore need to be readable by the driver only
(a Hub-layout corpus, a local disk, a shared filesystem); the workers get bytes.

Why actors fed by the driver rather than a Ray Data pipeline: the scheduler's streaming, retries,
failure policy, stop on an unreachable teacher, resume and lock then hold unchanged, request by
request, and a replica's engine is kept busy by its own window (vLLM fed between decode steps).
Ray's part is placement: each replica reserves ``num_cpus`` CPUs and ``num_gpus`` GPUs
(:class:`Placement`: by default a vLLM replica takes ``tensor_parallel_size`` x
``pipeline_parallel_size`` GPUs, a ``transformers`` one a GPU when the cluster has any, a server
client none; fractions put several replicas on one GPU).

Errors keep their meaning across the actor boundary: an error the engine raised arrives as
itself (a server that does not answer is still
:class:`~imagenet_think.regenerate.engines.base.EngineUnreachable`); a replica that died (its
node lost, out of memory) is "no answer" for the request, which the scheduler retries on
another replica.  Every answer records the pid that generated it (:attr:`RayEngine.answered`),
logged when the engine closes.

>>> Placement(replicas=2, num_cpus=1, num_gpus=0.5).actor_options()
{'num_cpus': 1, 'num_gpus': 0.5}
>>> check_address("ray://head:10001"), check_address("10.0.0.1:6379"), check_address("")
('ray://head:10001', '10.0.0.1:6379', '')
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from imagenet_think.regenerate.engines.base import Engine, EngineUnreachable, Request, Result, event_loop
from imagenet_think.regenerate.models import ModelSpec
from imagenet_think.regenerate.options import per_teacher

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "imagenet-think[ray]" (Ray Data LLM and vLLM on GPU nodes: "imagenet-think[ray-llm]")'

_ADDRESS = re.compile(r"^(|auto|local|ray://\S+|[\w.-]+:\d+)$")

READY_WARNING_AFTER = 60.0
"""Seconds replicas may wait for their resources before a warning says what they wait for."""

PROBE_TIMEOUT = 10.0
MAX_CONCURRENCY = 4096
"""Requests one replica (an async actor) may hold at once; the scheduler's window is the bound."""


def check_address(address: str) -> str:
    """``address`` when it is a Ray address (``""``: ``$RAY_ADDRESS`` or a new local runtime)."""
    if not _ADDRESS.match(address):
        raise ValueError(
            f"--ray {address!r} is not a Ray address (auto, local, ray://host:10001, host:6379); "
            "give --ray after SOURCE OUT_DIR when it has no address"
        )
    return address


def check_options(args: argparse.Namespace) -> None:
    """Reject a ``--ray`` run that cannot start: a bad address, Ray missing, or Ray options
    without ``--ray``."""
    check_address(args.ray)
    if importlib.util.find_spec("ray") is None:
        raise OSError(f"--ray needs Ray in this environment and on every node: {INSTALL_HINT}")


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``""``: ``$RAY_ADDRESS`` when set, else start a
    local runtime, even when ``ray start`` left a cluster on this machine, which a bare
    ``ray.init()`` would join); a process already connected (a notebook, the tests) keeps its runtime."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        ray.init(address=address, include_dashboard=False)
    except ConnectionError as error:  # exit status 1, as for a teacher server that is down: rerun when it is up
        hint = "is it running?"
        if address not in ("local", "auto") and not os.environ.get("RAY_AUTH_MODE"):
            hint += (" A head that found a Ray token (token authentication, Ray >= 2.52) wants it, and Ray sends it to an address you "
                     "give only with RAY_AUTH_MODE=token set here")  # fmt: skip
        raise EngineUnreachable(f"{error}: {hint}") from error


def cluster_gpus() -> float:
    """GPUs of the cluster this process is connected to."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def default_engine() -> str:
    """``--engine auto`` on Ray: ``vllm`` when the cluster has GPUs and vLLM is installed, else
    ``transformers``."""
    return "vllm" if cluster_gpus() > 0 and importlib.util.find_spec("vllm") is not None else "transformers"


def gpus_needed(kind: str, spec: ModelSpec, settings: Mapping[str, Any], has_gpus: bool) -> float:
    """GPUs one replica of ``kind`` needs by default.

    >>> from imagenet_think.regenerate.models import get_model
    >>> gpus_needed("vllm", get_model("glm"), {"engine_kwargs": {"tensor_parallel_size": 2}}, True)
    2.0
    >>> gpus_needed("transformers", get_model("glm"), {"device": "cpu"}, True), gpus_needed("openai", get_model("glm"), {}, True)
    (0.0, 0.0)
    """
    if kind == "vllm":
        options = {**spec.engine_kwargs, **settings.get("engine_kwargs", {})}
        return float(options.get("tensor_parallel_size", 1) * options.get("pipeline_parallel_size", 1))
    if kind == "transformers":
        return 1.0 if has_gpus and not str(settings.get("device", "")).startswith("cpu") else 0.0
    return 0.0


@dataclass(frozen=True)
class Placement:
    """How many replicas of one teacher run, and what Ray reserves for each (``num_gpus``
    ``None``: what the engine needs, :func:`gpus_needed`)."""

    replicas: int = 1
    num_cpus: float = 1
    num_gpus: Optional[float] = None

    def actor_options(self) -> dict[str, Optional[float]]:
        """Resource options of one replica's actor."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


def _numbers(values: Optional[list], option: str, names: list[str], minimum: float) -> dict[str, float]:
    found = {}
    for name, value in per_teacher(values, option, names).items():
        try:
            found[name] = float(value)
        except ValueError:
            raise ValueError(f"{option} {name}={value!r}: not a number") from None
        if found[name] < minimum:
            raise ValueError(f"{option} {name}={value}: must be at least {minimum:g}")
    return found


def placement(args: argparse.Namespace, teachers: Mapping[int, ModelSpec]) -> dict[int, Placement]:
    """Each pair's :class:`Placement` from ``--replicas``, ``--replica-cpus``, ``--replica-gpus``
    (each ``N`` for every teacher or ``NAME=N``); needs no Ray."""
    names = [spec.name for spec in teachers.values()]
    replicas = _numbers(args.replicas, "--replicas", names, 1)
    cpus = _numbers(args.replica_cpus, "--replica-cpus", names, 0)
    gpus = _numbers(args.replica_gpus, "--replica-gpus", names, 0)
    if any(not count.is_integer() for count in replicas.values()):
        raise ValueError(f"--replicas must be whole numbers, got {args.replicas}")
    return {
        pair: Placement(int(replicas.get(spec.name, 1)), cpus.get(spec.name, 1.0), gpus.get(spec.name))
        for pair, spec in teachers.items()
    }


def with_gpus(
    kind: str, teachers: Mapping[int, ModelSpec], settings: Mapping[int, Mapping[str, Any]], placements: Mapping[int, Placement]
) -> dict[int, Placement]:
    """``placements`` with the GPUs left unset filled in by :func:`gpus_needed` (asks the cluster)."""
    has_gpus = cluster_gpus() > 0
    return {
        pair: found if found.num_gpus is not None else replace(found, num_gpus=gpus_needed(kind, teachers[pair], settings[pair], has_gpus))
        for pair, found in placements.items()
    }


class Replica:
    """The actor of one replica: builds the engine ``kind`` for ``spec`` with ``kwargs`` (again
    after a restart) and answers requests with it, many at a time."""

    def __init__(self, kind: str, spec: ModelSpec, kwargs: Mapping[str, Any]):
        from imagenet_think.regenerate.engines import make_engine

        self.error: Optional[Exception] = None
        try:
            self.engine: Optional[Engine] = make_engine(kind, spec, **kwargs)
        except Exception as error:  # reported by info(), as itself: the driver shows it in one line
            self.engine, self.error = None, error

    def info(self) -> dict[str, Any]:
        """Where this replica runs and what its engine is; raises the engine's opening error."""
        import ray

        if self.error is not None:
            raise self.error
        engine = self.engine
        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "name": engine.name,
            "version": engine.version,
            "revision": engine.revision,
            "max_in_flight": engine.max_in_flight,
        }

    async def generate(self, request: Request) -> tuple[Result, int]:
        """The engine's result for ``request``, and the pid that generated it."""
        return await asyncio.wrap_future(self.engine.submit(request)), os.getpid()

    async def probe(self) -> bool:
        """The engine's :meth:`~imagenet_think.regenerate.engines.base.Engine.probe`."""
        return await asyncio.get_running_loop().run_in_executor(None, self.engine.probe)

    async def close(self) -> None:
        if self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.close)


class RayEngine(Engine):
    """``placement.replicas`` actors, each running the engine ``kind`` for ``spec`` built with
    ``kwargs``; requests go to the replica with the fewest outstanding.

    The actors start loading at once; :meth:`wait_ready` waits for them (a replica that cannot
    open its engine raises that engine's error).  ``name``, ``version`` and ``revision`` are
    the replicas' engine's (``version`` adds Ray's), ``max_in_flight`` the replicas' together.
    """

    def __init__(self, kind: str, spec: ModelSpec, kwargs: Mapping[str, Any], placement: Placement):
        super().__init__(spec)
        import ray

        self._ray = ray
        self.kind, self.placement = kind, placement
        actor = ray.remote(Replica).options(
            max_restarts=1, max_task_retries=0, max_concurrency=MAX_CONCURRENCY, **placement.actor_options()
        )
        self.replicas = [actor.remote(kind, spec, dict(kwargs)) for _ in range(placement.replicas)]
        self.workers: list[dict[str, Any]] = []
        self.answered: Counter = Counter()
        self._load = [0] * placement.replicas

    def wait_ready(self) -> None:
        """Wait until every replica has opened its engine (warning when resources keep it waiting)."""
        ray = self._ray
        pending = [replica.info.remote() for replica in self.replicas]
        started = time.monotonic()
        while True:
            ready, waiting = ray.wait(pending, num_returns=len(pending), timeout=READY_WARNING_AFTER)
            if not waiting:
                break
            logger.warning(
                "%d of %d %s replicas still starting after %.0f s (each wants %s; the cluster has %s available): "
                "loading a model, or waiting for resources",
                len(waiting), len(pending), self.spec.name, time.monotonic() - started,
                self.placement.actor_options(), ray.available_resources(),
            )  # fmt: skip
        try:
            self.workers = ray.get(pending)
        except ray.exceptions.RayTaskError as error:
            raise error.cause from None
        first = self.workers[0]
        self.name, self.revision = first["name"], first["revision"]
        self.version = f"{first['version']} (ray {ray.__version__})".strip()
        self.max_in_flight = sum(worker["max_in_flight"] for worker in self.workers)
        where = ", ".join(f"pid {w['pid']} on {w['node']}" for w in self.workers)
        logger.info("%s: %d %s replicas ready (%s)", self.spec.name, len(self.workers), self.name, where)

    def _pick(self) -> int:
        return min(range(len(self._load)), key=self._load.__getitem__)

    async def agenerate(self, request: Request) -> Result:
        """One request on the least busy replica, on :func:`~imagenet_think.regenerate.engines.base.event_loop`."""
        ray = self._ray
        index = self._pick()
        self._load[index] += 1
        reference = self.replicas[index].generate.remote(request)
        try:
            result, pid = await reference
        except ray.exceptions.RayTaskError as error:
            raise error.cause from None  # the engine's own error: EngineUnreachable, or a dead engine's
        except ray.exceptions.RayActorError as error:
            message = str(error).splitlines()[0]
            raise EngineUnreachable(f"{self.spec.name} replica {index} is gone: {message}") from error
        except asyncio.CancelledError:
            ray.cancel(reference)
            raise
        finally:
            self._load[index] -= 1
        self.answered[pid] += 1
        return result

    def submit(self, request: Request) -> "Future[Result]":
        return asyncio.run_coroutine_threadsafe(self.agenerate(request), event_loop())

    def probe(self) -> bool:
        """Whether any replica's engine answers its probe."""
        ray = self._ray
        probes = [replica.probe.remote() for replica in self.replicas]
        ready, _ = ray.wait(probes, num_returns=len(probes), timeout=PROBE_TIMEOUT)
        for reference in ready:
            try:
                if ray.get(reference):
                    return True
            except ray.exceptions.RayError:
                continue
        return False

    def close(self) -> None:
        """Close every replica's engine, then end the actors; log who answered how much."""
        ray = self._ray
        replicas, self.replicas = self.replicas, []
        if not replicas:
            return
        closing = [replica.close.remote() for replica in replicas]
        ray.wait(closing, num_returns=len(closing), timeout=60)
        for replica in replicas:
            ray.kill(replica)
        if self.answered:
            counts = ", ".join(f"pid {pid}: {count}" for pid, count in sorted(self.answered.items()))
            logger.info("%s: %d requests answered in Ray actors (%s)", self.spec.name, sum(self.answered.values()), counts)


def open_replicas(
    kind: str, teachers: Mapping[int, ModelSpec], settings: Mapping[int, Mapping[str, Any]], placements: Mapping[int, Placement]
) -> dict[int, RayEngine]:
    """Every teacher's replicas, loading at the same time; ready when returned (all closed when one fails)."""
    opened = {pair: RayEngine(kind, spec, settings[pair], placements[pair]) for pair, spec in teachers.items()}
    try:
        for engine in opened.values():
            engine.wait_ready()
    except BaseException:
        for engine in opened.values():
            engine.close()
        raise
    return opened
