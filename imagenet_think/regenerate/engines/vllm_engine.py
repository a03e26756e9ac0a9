"""vLLM offline engine: ``LLM.chat`` over batches of conversations, one image each.

Request building is plain dicts (:func:`llm_kwargs`, :func:`sampling_kwargs`,
:func:`conversation`) so it is testable without vLLM or a GPU; only :class:`VLLMEngine`
imports ``vllm``.  Teacher specifics come from the :class:`~imagenet_think.regenerate.models.ModelSpec`:
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
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from imagenet_think.regenerate.engines.base import Engine, Request, Result, chat_messages, revision_of
from imagenet_think.regenerate.models import ModelSpec, check_remote_code

if TYPE_CHECKING:
    from PIL.Image import Image


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


def conversation(spec: ModelSpec, request: Request, image: "Image") -> list[dict]:
    """The ``LLM.chat`` messages for one request: the decoded image as an ``image_pil`` part.

    >>> from imagenet_think.regenerate.models import get_model
    >>> conversation(get_model("glm"), Request("a", b"", "Describe."), None)[0]["content"][0]
    {'type': 'image_pil', 'image_pil': None}
    """
    return chat_messages(request.prompt, {"type": "image_pil", "image_pil": image}, spec.system_prompt)


def make_sampling_params(kwargs: Mapping[str, Any]) -> Any:
    """``vllm.SamplingParams(**kwargs)`` (imports vLLM)."""
    from vllm import SamplingParams

    return SamplingParams(**kwargs)


def result_from_output(request_id: str, output: Any) -> Result:
    """A :class:`Result` from a ``vllm.RequestOutput`` (its first completion)."""
    completion = output.outputs[0]
    return Result(
        request_id,
        raw=completion.text,
        finish_reason=completion.finish_reason,
        num_tokens=len(completion.token_ids),
    )


class VLLMEngine(Engine):
    """vLLM in this process; needs a GPU and ``pip install vllm``.

    ``engine_kwargs`` go to ``vllm.LLM`` on top of the spec's (``gpu_memory_utilization``,
    ``max_num_seqs``, ``tensor_parallel_size``...).  Data parallelism is one process per GPU,
    each on its own shard (``LLM(data_parallel_size>1)`` is not supported offline).
    """

    name = "vllm"

    def __init__(
        self,
        spec: ModelSpec,
        model_path: Optional[str] = None,
        sampling: Optional[Mapping[str, Any]] = None,
        batch_size: int = 512,
        trust_remote_code: bool = False,
        engine_kwargs: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(spec, sampling, batch_size)
        import vllm

        kwargs = llm_kwargs(spec, model_path, trust_remote_code, engine_kwargs)
        self.version = vllm.__version__
        self.revision = revision_of(kwargs["model"], spec)
        self.sampling_params = make_sampling_params(sampling_kwargs(spec, self.sampling))
        self.llm = vllm.LLM(**kwargs)

    def _generate_batch(self, requests: Sequence[Request], images: Sequence["Image"]) -> list[Result]:
        conversations = [conversation(self.spec, request, image) for request, image in zip(requests, images)]
        outputs = self.llm.chat(conversations, self.sampling_params, use_tqdm=False)
        return [result_from_output(request.id, output) for request, output in zip(requests, outputs)]

    def close(self) -> None:
        self.llm = None
        gc.collect()
