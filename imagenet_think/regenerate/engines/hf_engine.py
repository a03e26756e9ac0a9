"""``transformers`` engine: ``AutoProcessor`` + ``AutoModelForImageTextToText.generate``, CPU or GPU.

Slow next to vLLM but runs anywhere ``transformers`` does, which makes it the engine of
small runs, tests and machines without vLLM.  The spec's sampling settings become
``generate`` arguments (:func:`generate_kwargs`: top-k 1 or temperature 0 is greedy); the
decoded text stops before the stop token and keeps special tokens when the spec says so,
exactly like the vLLM engine, so both give the same ``raw`` for the same tokens.

Without ``torchvision``, ``transformers`` cannot build the video half of processors such as
GLM-4.1V's or Qwen2.5-VL's; :func:`load_processor` then builds the same processor class
without it (images only), which is all this engine needs.

>>> generate_kwargs({"temperature": 1.0, "top_p": 1e-5, "top_k": 1, "repetition_penalty": 1.1, "max_tokens": 64})
{'max_new_tokens': 64, 'do_sample': False, 'repetition_penalty': 1.1}
>>> completion([5, 6, 2, 0, 0], stop_ids={2})
([5, 6], 'stop', 3)
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

from imagenet_think.regenerate.engines.base import BatchEngine, Request, Result, chat_messages, revision_of
from imagenet_think.regenerate.models import ModelSpec, check_remote_code

if TYPE_CHECKING:
    from PIL.Image import Image


def generate_kwargs(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """``generate`` arguments for the spec's sampling settings (vLLM names in, HF names out).

    ``seed`` is applied by the engine (``torch.manual_seed``) and ``stop_token_ids`` join the
    model's end-of-sequence ids; stop strings are not supported (vLLM and servers only).

    >>> generate_kwargs({"temperature": 0.8, "max_tokens": 32768})
    {'max_new_tokens': 32768, 'do_sample': True, 'temperature': 0.8}
    >>> generate_kwargs({"max_tokens": 8, "stop": ["</answer>"]})
    Traceback (most recent call last):
    ...
    ValueError: the transformers engine does not support stop strings (['</answer>']); use stop_token_ids
    """
    if sampling.get("stop"):
        raise ValueError(
            f"the transformers engine does not support stop strings ({sampling['stop']!r}); use stop_token_ids"
        )
    kwargs: dict[str, Any] = {"max_new_tokens": sampling["max_tokens"]}
    greedy = sampling.get("top_k") == 1 or sampling.get("temperature", 1.0) == 0
    kwargs["do_sample"] = not greedy
    if not greedy:
        kwargs.update({key: sampling[key] for key in ("temperature", "top_p", "top_k") if key in sampling})
    if "repetition_penalty" in sampling:
        kwargs["repetition_penalty"] = sampling["repetition_penalty"]
    return kwargs


def completion(token_ids: Iterable[int], stop_ids: set[int]) -> tuple[list[int], str, int]:
    """Split one generated row into (tokens before the stop token, finish reason, token count).

    The count includes the stop token (as vLLM's does); a row without one ran to
    ``max_new_tokens`` (``"length"``).  Padding after the stop token is ignored.

    >>> completion([5, 6, 7], stop_ids={2})
    ([5, 6, 7], 'length', 3)
    """
    kept: list[int] = []
    for token in token_ids:
        if token in stop_ids:
            return kept, "stop", len(kept) + 1
        kept.append(token)
    return kept, "length", len(kept)


def _processor_class(model_source: str, **kwargs: Any) -> Optional[type]:
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    model_type = AutoConfig.from_pretrained(model_source, **kwargs).model_type
    return getattr(transformers, PROCESSOR_MAPPING_NAMES.get(model_type) or "", None)


def load_processor(model_source: str, **kwargs: Any) -> Any:
    """``AutoProcessor.from_pretrained``, or, without ``torchvision``, the processor without its video part."""
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    processor_class = None if is_torchvision_available() else _processor_class(model_source, **kwargs)
    if processor_class is None or not any("video" in name for name in processor_class.get_attributes()):
        return AutoProcessor.from_pretrained(model_source, **kwargs)
    image_attributes = [name for name in processor_class.get_attributes() if "video" not in name]
    without_video = type(
        f"{processor_class.__name__}WithoutVideo",
        (processor_class,),
        {"get_attributes": classmethod(lambda cls: image_attributes)},
    )
    return without_video.from_pretrained(model_source, **kwargs)


class TransformersEngine(BatchEngine):
    """``transformers`` generate, in static batches of ``batch_size`` with left padding, in a
    worker thread of its own (two teachers on two devices generate at the same time).

    ``device`` defaults to CUDA when available, else CPU; ``dtype="auto"`` uses the
    checkpoint's (bfloat16 for the teachers).  ``model_kwargs`` go to ``from_pretrained``
    (``device_map="auto"``, ``attn_implementation``...).
    """

    name = "transformers"

    def __init__(
        self,
        spec: ModelSpec,
        model_path: Optional[str] = None,
        sampling: Optional[Mapping[str, Any]] = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        device: Optional[str] = None,
        dtype: str = "auto",
        model_kwargs: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(spec, sampling, batch_size)
        import torch
        import transformers

        source = model_path or spec.model_id
        hub = {"trust_remote_code": check_remote_code(spec, trust_remote_code)}
        if spec.revision and not model_path:
            hub["revision"] = spec.revision
        self.generate_kwargs = generate_kwargs(self.sampling)
        self.processor = load_processor(source, **hub)
        self.processor.tokenizer.padding_side = "left"
        # Remote-code models (Kimi-VL) register themselves as causal LMs, not image-text-to-text.
        auto_class = transformers.AutoModelForCausalLM if hub["trust_remote_code"] else transformers.AutoModelForImageTextToText
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model_kwargs = {"dtype": dtype, **hub, **(model_kwargs or {})}
        self.model = auto_class.from_pretrained(source, **model_kwargs).eval()
        if "device_map" not in model_kwargs:
            self.model.to(self.device)
        self.version = transformers.__version__
        self.revision = getattr(self.model.config, "_commit_hash", None) or revision_of(source, spec)
        eos = self.model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        self.stop_ids = {*eos, *self.sampling.get("stop_token_ids", ())}
        self.generate_kwargs["eos_token_id"] = sorted(self.stop_ids)
        self.generate_kwargs["pad_token_id"] = self.processor.tokenizer.pad_token_id
        # transformers >= 5 takes processor arguments apart from the template's; 4.x mixes them
        template_parameters = inspect.signature(self.processor.apply_chat_template).parameters
        padding = {"padding": True}
        self.template_kwargs = {"processor_kwargs": padding} if "processor_kwargs" in template_parameters else padding

    def _generate_batch(self, requests: Sequence[Request], images: Sequence["Image"]) -> list[Result]:
        import torch

        conversations = [
            chat_messages(request.prompt, {"type": "image", "image": image}, self.spec.system_prompt)
            for request, image in zip(requests, images, strict=True)
        ]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **self.template_kwargs,
        )
        inputs.pop("token_type_ids", None)
        inputs = inputs.to(self.model.device)
        if "seed" in self.sampling:
            torch.manual_seed(self.sampling["seed"])
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self.generate_kwargs)
        generated = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        results = []
        for request, row in zip(requests, generated, strict=True):
            kept, finish_reason, num_tokens = completion(row, self.stop_ids)
            text = self.processor.tokenizer.decode(kept, skip_special_tokens=self.spec.skip_special_tokens)
            results.append(Result(request.id, raw=text, finish_reason=finish_reason, num_tokens=num_tokens))
        return results

    def close(self) -> None:
        import torch

        super().close()
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
