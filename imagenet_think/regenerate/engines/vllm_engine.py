"""vLLM offline engine: vLLM's own scheduler fed continuously, one request at a time.

:class:`VLLMEngine` builds a ``vllm.LLM`` and drives its ``LLMEngine`` directly (the pattern of
vLLM's ``examples/offline_inference/llm_engine_example.py``): an :class:`EngineFeeder` thread
adds each submitted request with ``add_request`` as soon as it arrives and calls ``step()``
while any request is unfinished, so vLLM's scheduler always has work, instead of one
``LLM.chat`` per batch that waits for the batch's longest output.  A request is a
``{"prompt": text, "multi_modal_data": {"image": PIL image}}`` prompt (vLLM's
``vision_language.py`` example), the text rendered once by the model's chat template
(:func:`render_prompt`); sampling asks for final outputs only (``RequestOutputKind.FINAL_ONLY``).

Request building is plain dicts (:func:`llm_kwargs`, :func:`sampling_kwargs`) and the feeding
logic takes any object with ``LLMEngine``'s ``add_request``/``step``/``has_unfinished_requests``/
``abort_request``, so both are testable without vLLM or a GPU; only :class:`VLLMEngine` imports
``vllm``.  Teacher specifics come from the :class:`~imagenet_think.regenerate.models.ModelSpec`:
``skip_special_tokens=False`` for GLM (its markers are special tokens), ``trust_remote_code``
for Kimi (only with the user's consent), the context limit and ``limit_mm_per_prompt``.

``include_stop_str_in_output`` stays at vLLM's default (``False``): the stop token
(GLM's ``</answer>``, any end-of-turn token) is not appended to the text, which
:func:`imagenet_think.reasoning.split_reasoning` expects, and the ``transformers`` engine does
the same.

>>> from imagenet_think.regenerate.models import get_model
>>> sampling_kwargs(get_model("glm"), {"max_tokens": 8192, "top_k": 1})
{'max_tokens': 8192, 'top_k': 1, 'skip_special_tokens': False}
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Mapping, Optional

from imagenet_think import PROMPT
from imagenet_think.regenerate.engines.base import Engine, Request, Result, chat_messages, failed, load_image, revision_of
from imagenet_think.regenerate.models import ModelSpec, check_remote_code

logger = logging.getLogger(__name__)


def llm_kwargs(
    spec: ModelSpec,
    model_path: Optional[str] = None,
    trust_remote_code: bool = False,
    overrides: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``: the spec's engine settings, then the user's ``overrides``.

    ``model_path`` (a local snapshot) replaces the Hub id, and then no revision is sent.

    >>> from imagenet_think.regenerate.models import get_model
    >>> kwargs = llm_kwargs(get_model("glm"), overrides={"gpu_memory_utilization": 0.85})
    >>> kwargs["model"], kwargs["max_model_len"], kwargs["limit_mm_per_prompt"], kwargs["trust_remote_code"]
    ('zai-org/GLM-4.1V-9B-Thinking', 65536, {'image': 1, 'video': 0}, False)
    """
    kwargs: dict[str, Any] = {
        "model": model_path or spec.model_id,
        "trust_remote_code": check_remote_code(spec, trust_remote_code),
    }
    if spec.revision and not model_path:
        kwargs["revision"] = spec.revision
    if spec.max_model_len:
        kwargs["max_model_len"] = spec.max_model_len
    kwargs.update(spec.engine_kwargs)
    kwargs.update(overrides or {})
    return kwargs


def sampling_kwargs(spec: ModelSpec, sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (``max_tokens`` always set: vLLM's default is 16)."""
    if "max_tokens" not in sampling:
        raise ValueError("sampling must set max_tokens (vLLM's default of 16 would cut every answer)")
    kwargs = dict(sampling)
    if not spec.skip_special_tokens:
        kwargs["skip_special_tokens"] = False
    return kwargs


def render_prompt(processor: Any, spec: ModelSpec, prompt: str) -> str:
    """The model's chat template applied to one user turn (image, then ``prompt``), with the
    generation prompt: the text of every request, vLLM expanding the image placeholder.

    ``processor`` is the model's processor (or tokenizer) with its chat template.
    """
    messages = chat_messages(prompt, {"type": "image"}, spec.system_prompt)
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def make_sampling_params(kwargs: Mapping[str, Any]) -> Any:
    """``vllm.SamplingParams(**kwargs)`` asking for final outputs only (imports vLLM)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(**kwargs)
    params.output_kind = RequestOutputKind.FINAL_ONLY  # step() returns finished requests only
    return params


def result_from_output(request_id: str, output: Any) -> Result:
    """A :class:`Result` from a ``vllm.RequestOutput`` (its first completion)."""
    completion = output.outputs[0]
    return Result(
        request_id,
        raw=completion.text,
        finish_reason=completion.finish_reason,
        num_tokens=len(completion.token_ids),
    )


class EngineFeeder:
    """Keeps an ``LLMEngine`` busy: requests are added the moment they are submitted and the
    engine is stepped while any is unfinished, all in one worker thread (vLLM's engine is not
    thread-safe).

    ``make_prompt(request)`` builds the engine's prompt (decoding the image: a request whose
    prompt or ``add_request`` raises gets a :class:`Result` with ``error``); ``params`` are the
    sampling parameters (final outputs only).  Cancelling a submitted future aborts the
    request in the engine.  An exception from ``step()`` means the engine is dead: every
    pending and later future raises it.
    """

    adds_per_step = 32

    def __init__(self, llm_engine: Any, make_prompt: Callable[[Request], Any], params: Any, name: str = "vllm"):
        self.llm_engine = llm_engine
        self.make_prompt = make_prompt
        self.params = params
        self._inbox: "queue.SimpleQueue[Optional[tuple[str, Any, Any]]]" = queue.SimpleQueue()
        self._pending: dict[str, tuple[Request, Future]] = {}
        self._keys = itertools.count()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=f"vllm-feeder-{name}", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> "Future[Result]":
        """Queue ``request`` for the engine; its future gives the :class:`Result`."""
        future: Future = Future()
        if self._error is not None:
            future.set_exception(self._error)
            return future
        key = str(next(self._keys))
        future.add_done_callback(lambda done: done.cancelled() and self._inbox.put(("abort", key, None)))
        self._inbox.put(("add", key, (request, future)))
        return future

    def close(self) -> None:
        """Stop the worker thread; requests still pending are aborted and their futures cancelled."""
        self._inbox.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            while self._take(block=not self.llm_engine.has_unfinished_requests()):
                if self.llm_engine.has_unfinished_requests():
                    for output in self.llm_engine.step():
                        if output.finished:
                            self._finish(output)
        except BaseException as error:  # a dead engine: every caller hears of it
            logger.error("the vLLM engine failed: %s", error)
            self._error = error
            for _, future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            self._drain_after_error()
        else:
            self._abort_all()

    def _take(self, block: bool) -> bool:
        """Apply queued commands (waiting for one when ``block``), at most :attr:`adds_per_step`
        between two steps so decoding goes on while a flood is added; ``False`` once closed."""
        try:
            command = self._inbox.get() if block else self._inbox.get_nowait()
        except queue.Empty:
            return True
        taken = 0
        while command is not None:
            kind, key, payload = command
            if kind == "add":
                self._add(key, *payload)
            elif key in self._pending:
                self._pending.pop(key)
                self.llm_engine.abort_request([key])
            taken += 1
            if taken >= self.adds_per_step:
                return True
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return True
        return False

    def _add(self, key: str, request: Request, future: Future) -> None:
        if future.cancelled():
            return
        try:
            self.llm_engine.add_request(key, self.make_prompt(request), self.params)
        except Exception as error:  # the image or prompt was refused: this request fails
            self._resolve(future, failed(request.id, error))
            return
        self._pending[key] = (request, future)

    def _finish(self, output: Any) -> None:
        entry = self._pending.pop(output.request_id, None)
        if entry is not None:
            request, future = entry
            self._resolve(future, result_from_output(request.id, output))

    @staticmethod
    def _resolve(future: Future, result: Result) -> None:
        try:
            future.set_result(result)
        except InvalidStateError:  # cancelled meanwhile
            pass

    def _abort_all(self) -> None:
        if self._pending:
            self.llm_engine.abort_request(list(self._pending))
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def _drain_after_error(self) -> None:
        """Fail what was queued behind the error, until closed."""
        while (command := self._inbox.get()) is not None:
            kind, _, payload = command
            if kind == "add" and not payload[1].done():
                payload[1].set_exception(self._error)


def max_num_seqs(llm_engine: Any, default: int = 256) -> int:
    """The engine's ``max_num_seqs`` (sequences decoded at once), wherever its version keeps it."""
    for holder in (getattr(llm_engine, "vllm_config", None), llm_engine):
        value = getattr(getattr(holder, "scheduler_config", None), "max_num_seqs", None)
        if isinstance(value, int) and value > 0:
            return value
    return default


class VLLMEngine(Engine):
    """vLLM in this process; needs a GPU and ``pip install vllm``.

    ``engine_kwargs`` go to ``vllm.LLM`` on top of the spec's (``gpu_memory_utilization``,
    ``max_num_seqs``, ``tensor_parallel_size``...).  Data parallelism is one process per GPU,
    each on its own shard (``LLM(data_parallel_size>1)`` is not supported offline).
    ``max_in_flight`` is twice vLLM's ``max_num_seqs``: a full batch running, as many waiting
    in vLLM's queue.
    """

    name = "vllm"

    def __init__(
        self,
        spec: ModelSpec,
        model_path: Optional[str] = None,
        sampling: Optional[Mapping[str, Any]] = None,
        trust_remote_code: bool = False,
        engine_kwargs: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(spec, sampling)
        import vllm

        from imagenet_think.regenerate.engines.hf_engine import load_processor

        kwargs = llm_kwargs(spec, model_path, trust_remote_code, engine_kwargs)
        self.version = vllm.__version__
        self.revision = revision_of(kwargs["model"], spec)
        self.llm = vllm.LLM(**kwargs)
        hub = {key: kwargs[key] for key in ("trust_remote_code", "revision") if key in kwargs}
        try:  # the processor's chat template first, as vLLM's own chat does, else the tokenizer's
            processor = load_processor(kwargs["model"], **hub)
        except Exception as error:  # remote processor code current transformers cannot run
            logger.warning("cannot load the processor of %s (%s); using the tokenizer's chat template", kwargs["model"], error)
            processor = None
        self.template = processor if getattr(processor, "chat_template", None) else self.llm.get_tokenizer()
        self._texts = {PROMPT: render_prompt(self.template, spec, PROMPT)}  # a template that fails, fails now
        self.max_in_flight = 2 * max_num_seqs(self.llm.llm_engine)
        params = make_sampling_params(sampling_kwargs(spec, self.sampling))
        self.feeder = EngineFeeder(self.llm.llm_engine, self._prompt, params, spec.name)

    def _prompt(self, request: Request) -> dict[str, Any]:
        if request.prompt not in self._texts:  # one prompt in practice: rendered once
            self._texts[request.prompt] = render_prompt(self.template, self.spec, request.prompt)
        return {"prompt": self._texts[request.prompt], "multi_modal_data": {"image": load_image(request.image)}}

    def submit(self, request: Request) -> "Future[Result]":
        return self.feeder.submit(request)

    def close(self) -> None:
        self.feeder.close()
        self.llm = None
        gc.collect()
