"""VLLMEngine: request building without vLLM; the real engine on a GPU (marker ``gpu``)."""

import io

import pytest
from PIL import Image

from imagenet_think.regenerate.engines import Request
from imagenet_think.regenerate.engines.vllm_engine import conversation, llm_kwargs, sampling_kwargs
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


def test_conversation_puts_the_image_before_the_prompt_and_a_system_turn_first():
    image = Image.new("RGB", (30, 30))
    spec = ModelSpec("sys", "org/m", sampling={"max_tokens": 8}, system_prompt="Think first.")
    messages = conversation(spec, Request("a", b"", "Describe."), image)
    assert messages == [
        {"role": "system", "content": "Think first."},
        {
            "role": "user",
            "content": [{"type": "image_pil", "image_pil": image}, {"type": "text", "text": "Describe."}],
        },
    ]


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
    params = make_sampling_params(sampling_kwargs(get_model("glm"), {"max_tokens": 6, "top_k": 1}))
    assert (params.max_tokens, params.top_k, params.skip_special_tokens) == (6, 1, False)
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
