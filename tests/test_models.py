"""regenerate.models: the built-in registry, remote-code consent, user registry files."""

import json

import pytest

from imagenet_think import schema
from imagenet_think.regenerate.models import (
    REGISTRY,
    ModelSpec,
    RegistryError,
    RemoteCodeError,
    check_remote_code,
    get_model,
    load_registry,
)


def test_teachers_are_the_published_pairs_with_their_model_card_settings():
    glm, kimi = get_model("glm"), get_model("kimi")
    assert {glm.pair: glm.model_id, kimi.pair: kimi.model_id} == schema.TEACHERS
    assert (glm.name, kimi.name) == (schema.TEACHER_NAMES[1], schema.TEACHER_NAMES[2])
    assert dict(glm.sampling) == {"temperature": 1.0, "top_p": 1e-5, "top_k": 1, "repetition_penalty": 1.1, "max_tokens": 8192}
    assert (glm.reasoning_style, glm.skip_special_tokens, glm.trust_remote_code, glm.max_model_len) == ("glm", False, False, 65536)
    assert dict(kimi.sampling) == {"temperature": 0.8, "max_tokens": 32768}
    assert (kimi.reasoning_style, kimi.skip_special_tokens, kimi.trust_remote_code, kimi.max_model_len) == ("kimi", True, True, 131072)


def test_the_five_evaluation_baselines_are_registered():
    baselines = {spec.model_id for spec in REGISTRY.values() if spec.role == "baseline"}
    assert baselines == {
        "OpenGVLab/InternVL3_5-8B",
        "TIGER-Lab/VL-Rethinker-7B",
        "Senqiao/VisionThink-Efficient",
        "ydeng9/OpenVLThinker-7B",
        "Fancy-MLLM/R1-Onevision-7B",
    }
    assert all(REGISTRY[name].name == name for name in REGISTRY)


def test_remote_code_needs_consent_and_is_never_given_where_not_needed():
    with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
        check_remote_code(get_model("internvl3.5-8b"), allowed=False)
    assert check_remote_code(get_model("vl-rethinker-7b"), allowed=True) is False


def test_specs_are_immutable():
    with pytest.raises(TypeError):
        get_model("glm").sampling["max_tokens"] = 1
    with pytest.raises(TypeError):
        get_model("glm").engine_kwargs["limit_mm_per_prompt"] = {}


def test_invalid_spec_lists_every_problem():
    with pytest.raises(ValueError) as error:
        ModelSpec("x", "org/x", role="student", reasoning_style="xml", sampling={"top_q": 1})
    message = str(error.value)
    for part in ("role must be one of", "reasoning_style must be one of", "unknown keys ['top_q']", "sampling.max_tokens"):
        assert part in message


def test_yaml_registry_adds_and_extends_models(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        "my-teacher:\n"
        "  model_id: org/my-vlm\n"
        "  reasoning_style: think_tags\n"
        "  sampling: {temperature: 0.6, max_tokens: 2048}\n"
        "glm-25k:\n"
        "  extends: glm\n"
        "  sampling: {max_tokens: 25000}\n"
    )
    registry = load_registry(path)
    mine = get_model("org/my-vlm", registry)
    assert (mine.name, mine.reasoning_style, mine.sampling["max_tokens"], mine.trust_remote_code) == (
        "my-teacher",
        "think_tags",
        2048,
        False,
    )
    long = registry["glm-25k"]
    assert (long.model_id, long.pair, long.skip_special_tokens) == ("zai-org/GLM-4.1V-9B-Thinking", 1, False)
    assert dict(long.sampling) == {**get_model("glm").sampling, "max_tokens": 25000}
    assert set(REGISTRY) < set(registry)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"m": {"model_id": "o/m", "sampling": {"max_tokens": 8}, "temprature": 1}}, "model 'm': unknown keys ['temprature']"),
        ({"m": {"sampling": {"max_tokens": 8}}}, "model 'm': missing key 'model_id'"),
        ({"m": {"model_id": "o/m", "sampling": {"temperature": 1}}}, "model 'm': sampling.max_tokens must be a positive integer"),
        ({"m": {"model_id": "o/m", "sampling": {"max_tokens": 8}, "trust_remote_code": "yes"}}, "trust_remote_code must be true or false"),
        ({"m": {"extends": "gpt", "sampling": {"max_tokens": 8}}}, "model 'm': extends unknown model 'gpt'"),
        ({"m": {"extends": "glm", "sampling": 8}}, "model 'm': sampling must be a mapping"),
        ({"m": "org/m"}, "model 'm': expected a mapping of settings"),
        (["org/m"], "expected a mapping of model names"),
    ],
)
def test_bad_registry_entries_name_file_model_and_key(tmp_path, content, message):
    path = tmp_path / "models.json"
    path.write_text(json.dumps(content))
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_unparsable_or_missing_registry_file_is_a_registry_error(tmp_path):
    bad = tmp_path / "models.yml"
    bad.write_text("m: [unclosed\n")
    with pytest.raises(RegistryError, match=r"models\.yml: not valid YAML"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="cannot read model registry"):
        load_registry(tmp_path / "absent.json")
