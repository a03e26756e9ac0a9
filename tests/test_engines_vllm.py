"""VLLMEngine: request building and the continuous feeding of vLLM's engine, without vLLM
(a fake ``LLMEngine`` of the same shape); the real engine on a GPU (marker ``gpu``)."""

import collections
import io
import sys
import threading
import time
import types
from types import SimpleNamespace

import pytest
from PIL import Image

from imagenet_think import PROMPT
from imagenet_think.regenerate.engines import Request
from imagenet_think.regenerate.engines.base import Engine, load_image
from imagenet_think.regenerate.engines.vllm_engine import EngineFeeder, llm_kwargs, max_num_seqs, render_prompt, sampling_kwargs
from imagenet_think.regenerate.models import ModelSpec, RemoteCodeError, get_model


def test_glm_engine_arguments_come_from_its_spec():
    assert llm_kwargs(get_model("glm")) == {
        "model": "zai-org/GLM-4.1V-9B-Thinking",
        "trust_remote_code": False,
        "max_model_len": 65536,
        "limit_mm_per_prompt": {"image": 1, "video": 0},
    }


def test_kimi_needs_consent_then_gets_remote_code_and_its_card_settings():
    with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
        llm_kwargs(get_model("kimi"))
    kwargs = llm_kwargs(get_model("kimi"), trust_remote_code=True)
    assert (kwargs["trust_remote_code"], kwargs["max_model_len"], kwargs["max_num_seqs"]) == (True, 131072, 8)


def test_local_path_replaces_the_hub_id_and_its_revision_and_user_settings_win():
    spec = ModelSpec("pinned", "org/m", revision="abc123", sampling={"max_tokens": 8}, engine_kwargs={"max_num_seqs": 8})
    assert llm_kwargs(spec)["revision"] == "abc123"
    kwargs = llm_kwargs(spec, model_path="/models/m", overrides={"max_num_seqs": 64, "gpu_memory_utilization": 0.9})
    assert kwargs == {"model": "/models/m", "trust_remote_code": False, "max_num_seqs": 64, "gpu_memory_utilization": 0.9}


def test_sampling_keeps_glm_special_tokens_and_always_sets_max_tokens():
    glm, kimi = get_model("glm"), get_model("kimi")
    assert sampling_kwargs(glm, glm.sampling) == {**glm.sampling, "skip_special_tokens": False}
    assert sampling_kwargs(kimi, kimi.sampling) == {"temperature": 0.8, "max_tokens": 32768}
    with pytest.raises(ValueError, match="must set max_tokens"):
        sampling_kwargs(glm, {"temperature": 1.0})


def test_the_prompt_is_the_chat_template_of_an_image_then_the_question():
    from tests.test_chat_templates import tokenizer_with

    tokenizer = tokenizer_with("glm4_1v_thinking.jinja")
    # what the vendored template writes (read it): no system turn, the image placeholder vLLM
    # expands, the question, the generation prompt; GLM writes <think> itself
    expected = "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>Describe.<|assistant|>\n"
    assert render_prompt(tokenizer, get_model("glm"), "Describe.") == expected
    spec = ModelSpec("sys", "org/m", sampling={"max_tokens": 8}, system_prompt="Think first.")
    assert render_prompt(tokenizer, spec, "Describe.") == expected.replace("<sop>", "<sop><|system|>\nThink first.")


class FakeLLMEngine:
    """What :class:`EngineFeeder` uses of ``vllm.LLMEngine``, scheduling like it: ``slots``
    sequences decode at once, one token each per ``step()`` (``seconds`` long); waiting ones
    start as slots free.  A request's length is its image's width minus 27; ``add_request``
    refuses a 13-px-wide image (as GLM's processor refuses a bad aspect ratio), ``step()`` raises
    once ``die_after`` steps have run."""

    def __init__(self, slots, seconds=0.002, die_after=None):
        self.slots, self.seconds, self.die_after = slots, seconds, die_after
        self.waiting, self.running = collections.deque(), {}
        self.added, self.steps, self.aborted, self.prompts = [], [], [], []
        self.thread, self.params = set(), []

    def add_request(self, request_id, prompt, params):
        self.thread.add(threading.current_thread().name)
        self.prompts.append(prompt["prompt"])
        self.params.append(params)
        image = prompt["multi_modal_data"]["image"]
        if image.width == 13:
            raise ValueError("aspect ratio of 13x40 is not supported")
        self.added.append(request_id)
        self.waiting.append([request_id, image.width - 27, 0])

    def has_unfinished_requests(self):
        return bool(self.waiting or self.running)

    def abort_request(self, request_ids):
        self.aborted += request_ids
        self.waiting = collections.deque(r for r in self.waiting if r[0] not in request_ids)
        for request_id in request_ids:
            self.running.pop(request_id, None)

    def step(self):
        if self.die_after is not None and len(self.steps) >= self.die_after:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        while self.waiting and len(self.running) < self.slots:
            request = self.waiting.popleft()
            self.running[request[0]] = request
        time.sleep(self.seconds)
        self.steps.append((len(self.running), len(self.added)))
        finished = []
        for request_id, request in list(self.running.items()):
            request[2] += 1
            if request[2] == request[1]:
                del self.running[request_id]
                completion = SimpleNamespace(text=f"{request[2]} tokens", token_ids=list(range(request[2])), finish_reason="stop")
                finished.append(SimpleNamespace(request_id=request_id, finished=True, outputs=[completion]))
        return finished


class Fed(Engine):
    """An engine whose submit is the feeder's, as in VLLMEngine."""

    def __init__(self, feeder, max_in_flight):
        super().__init__(get_model("glm"))
        self.feeder, self.max_in_flight = feeder, max_in_flight

    def submit(self, request):
        return self.feeder.submit(request)


def feeder_for(fake):
    prompt = lambda request: {"prompt": "PROMPT", "multi_modal_data": {"image": load_image(request.image)}}  # noqa: E731
    return EngineFeeder(fake, prompt, "PARAMS", "glm")


def png(width, height=40):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_feeder_keeps_vllms_scheduler_full_until_the_last_requests():
    fake = FakeLLMEngine(slots=4)
    feeder = feeder_for(fake)
    widths = [28 + (7 * i) % 9 for i in range(40)]  # 1 to 9 tokens
    results = Fed(feeder, max_in_flight=12).generate([Request(str(i), png(w)) for i, w in enumerate(widths)])
    feeder.close()
    assert [(r.raw, r.num_tokens, r.finish_reason) for r in results] == [(f"{w - 27} tokens", w - 27, "stop") for w in widths]
    assert fake.thread == {"vllm-feeder-glm"}  # the engine is only touched by the feeder's thread
    assert set(fake.prompts) == {"PROMPT"} and set(fake.params) == {"PARAMS"}
    # requests went in while others ran (one LLM.chat per batch would add them all first) ...
    assert fake.steps[0][1] < len(widths)
    # ... and no step ran a slot empty while a request was still to come
    assert [(running, added) for running, added in fake.steps if running < 4 and added < len(widths)] == []
    assert sum(running for running, _ in fake.steps) == sum(w - 27 for w in widths)


def test_a_flood_of_requests_is_added_a_few_at_a_time_between_steps():
    fake = FakeLLMEngine(slots=4)
    feeder = feeder_for(fake)
    feeder.adds_per_step = 8
    futures = [feeder.submit(Request(str(i), png(30))) for i in range(40)]
    assert all(future.result(timeout=10).num_tokens == 3 for future in futures)
    feeder.close()
    added = [count for _, count in fake.steps]
    assert added[0] <= 8 and max(b - a for a, b in zip(added, added[1:])) <= 8 and added[-1] == 40


def test_a_request_the_engine_refuses_fails_alone():
    fake = FakeLLMEngine(slots=2)
    feeder = feeder_for(fake)
    good, bad, junk = Request("good", png(30)), Request("bad", png(13)), Request("junk", b"junk")
    results = Fed(feeder, max_in_flight=4).generate([good, bad, junk])
    feeder.close()
    assert [r.error for r in results][0] is None and results[0].raw == "3 tokens"
    assert results[1].error == "ValueError: aspect ratio of 13x40 is not supported"
    assert results[2].error.startswith("UnidentifiedImageError")


def test_cancelling_a_request_aborts_it_in_the_engine():
    fake = FakeLLMEngine(slots=1, seconds=0.01)
    feeder = feeder_for(fake)
    long, queued = feeder.submit(Request("long", png(1027))), feeder.submit(Request("queued", png(29)))
    while len(fake.added) < 2:
        time.sleep(0.005)
    assert long.cancel()
    assert queued.result(timeout=10).raw == "2 tokens"  # the slot was freed for it
    feeder.close()
    assert fake.aborted == [fake.added[0]] and not fake.has_unfinished_requests()


def test_a_dead_engine_fails_every_pending_and_later_request():
    fake = FakeLLMEngine(slots=2, die_after=3)
    feeder = feeder_for(fake)
    futures = [feeder.submit(Request(str(i), png(100))) for i in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="illegal memory access"):
            future.result(timeout=10)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        feeder.submit(Request("late", png(30))).result(timeout=10)
    feeder.close()


def test_the_vllm_engine_feeds_its_llm_engine_the_rendered_prompt_and_final_only_sampling(monkeypatch, tmp_path, caplog):
    """VLLMEngine's wiring, with stand-ins for the vllm module (no GPU here): ``LLM`` holds a
    fake ``LLMEngine``, the processor cannot be loaded, so the tokenizer's template is used."""
    from imagenet_think.regenerate.engines import hf_engine
    from imagenet_think.regenerate.engines.vllm_engine import VLLMEngine
    from tests.test_chat_templates import tokenizer_with

    fake = FakeLLMEngine(slots=3)
    fake.vllm_config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=3))
    built = {}

    class LLM:
        def __init__(self, **kwargs):
            built.update(kwargs)
            self.llm_engine = fake

        def get_tokenizer(self):
            return tokenizer_with("glm4_1v_thinking.jinja")

    def no_processor(*args, **kwargs):
        raise OSError("no processor files")

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams, vllm.__version__ = LLM, SimpleNamespace, "0.0-stand-in"
    kinds = types.ModuleType("vllm.sampling_params")
    kinds.RequestOutputKind = SimpleNamespace(FINAL_ONLY="final only")
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", kinds)
    monkeypatch.setattr(hf_engine, "load_processor", no_processor)
    with VLLMEngine(get_model("glm"), model_path=str(tmp_path), sampling={"max_tokens": 8}) as engine:
        assert (engine.max_in_flight, engine.version, engine.revision) == (6, "0.0-stand-in", "local")
        results = engine.generate([Request(str(i), png(28 + i)) for i in range(7)])
    assert [r.error for r in results] == [None] * 7
    assert [r.num_tokens for r in results] == list(range(1, 8))
    assert built == llm_kwargs(get_model("glm"), model_path=str(tmp_path))
    assert "using the tokenizer's chat template" in caplog.text
    expected = render_prompt(tokenizer_with("glm4_1v_thinking.jinja"), get_model("glm"), PROMPT)
    assert set(fake.prompts) == {expected} and expected.count("<|image|>") == 1
    params = fake.params[0]
    assert all(p is params for p in fake.params)
    assert vars(params) == {**sampling_kwargs(get_model("glm"), {**get_model("glm").sampling, "max_tokens": 8}), "output_kind": "final only"}
    assert not engine.feeder._thread.is_alive()


def test_max_num_seqs_is_read_where_each_vllm_version_keeps_it():
    scheduler = SimpleNamespace(max_num_seqs=48)
    assert max_num_seqs(SimpleNamespace(vllm_config=SimpleNamespace(scheduler_config=scheduler))) == 48  # v1
    assert max_num_seqs(SimpleNamespace(scheduler_config=scheduler)) == 48  # v0
    assert max_num_seqs(SimpleNamespace()) == 256


@pytest.fixture(scope="module")
def vllm_on_gpu():
    vllm = pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return vllm


@pytest.mark.gpu
@pytest.mark.slow
def test_vllm_engine_runs_the_tiny_glm_like_bare_vllm(vllm_on_gpu, tmp_path):
    from imagenet_think.regenerate.engines import make_engine
    from imagenet_think.regenerate.engines.vllm_engine import make_sampling_params
    from tests.fixtures.tiny_glm4v import build_tiny_glm4v

    path = build_tiny_glm4v(tmp_path / "tiny")
    from vllm.sampling_params import RequestOutputKind

    params = make_sampling_params(sampling_kwargs(get_model("glm"), {"max_tokens": 6, "top_k": 1}))
    assert (params.max_tokens, params.top_k, params.skip_special_tokens) == (6, 1, False)
    assert params.output_kind == RequestOutputKind.FINAL_ONLY
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "red").save(buffer, "JPEG")
    requests = [Request("a", buffer.getvalue()), Request("thin", Image.new("RGB", (600, 2))), Request("b", Image.new("RGB", (64, 90)))]
    with make_engine(
        "vllm",
        get_model("glm"),
        model_path=path,
        sampling={"max_tokens": 6},
        engine_kwargs={"max_model_len": 1024, "gpu_memory_utilization": 0.3, "enforce_eager": True},
    ) as engine:
        results = engine.generate(requests)
        assert engine.version == vllm_on_gpu.__version__
    assert [r.id for r in results] == ["a", "thin", "b"]
    assert "aspect ratio" in results[1].error  # GLM's processor rejects it, and only it fails
    for result in (results[0], results[2]):
        assert result.error is None and result.finish_reason in ("stop", "length") and 1 <= result.num_tokens <= 6
