"""TransformersEngine on CPU with a tiny random GLM-4.1V built from the real classes."""

import io

import pytest
from PIL import Image

from imagenet_think.regenerate.engines import Request, make_engine
from imagenet_think.regenerate.models import ModelSpec, get_model
from tests.fixtures.tiny_glm4v import build_tiny_glm4v

pytestmark = pytest.mark.slow

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_glm4v(tmp_path_factory):
    return build_tiny_glm4v(tmp_path_factory.mktemp("tiny-glm4v"))


@pytest.fixture(scope="module")
def engine(tiny_glm4v):
    with make_engine("transformers", get_model("glm"), model_path=tiny_glm4v, sampling={"max_tokens": 6}) as engine:
        yield engine


def jpeg(size, color):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


REQUESTS = [
    Request("bytes", jpeg((300, 200), (200, 30, 30))),
    Request("pil", Image.new("RGB", (64, 90), (20, 90, 200))),
    Request("dict", {"bytes": jpeg((120, 120), (0, 0, 0)), "path": None}),
]


def test_generation_runs_to_max_tokens_and_counts_them(engine):
    results = engine.generate(REQUESTS)
    assert [r.id for r in results] == ["bytes", "pil", "dict"]
    for result in results:
        assert result.error is None and isinstance(result.raw, str)
        assert (result.finish_reason, result.num_tokens) == ("length", 6)


def test_batched_generation_equals_one_request_at_a_time(engine, tiny_glm4v):
    batched = engine.generate(REQUESTS)
    with make_engine(
        "transformers", get_model("glm"), model_path=tiny_glm4v, sampling={"max_tokens": 6}, batch_size=1
    ) as single:
        assert single.generate(REQUESTS) == batched


def test_a_stop_token_ends_the_completion_and_is_counted_but_not_kept(tiny_glm4v):
    every_token = list(range(400))  # whatever the model writes first stops it
    with make_engine(
        "transformers", get_model("glm"), model_path=tiny_glm4v, sampling={"max_tokens": 6, "stop_token_ids": every_token}
    ) as engine:
        (result,) = engine.generate(REQUESTS[:1])
    assert (result.raw, result.finish_reason, result.num_tokens) == ("", "stop", 1)


def test_images_the_processor_rejects_or_that_do_not_decode_fail_alone(engine):
    good, thin, bad = engine.generate([REQUESTS[0], Request("thin", Image.new("RGB", (600, 2))), Request("bad", b"?")])
    assert good.error is None and good.num_tokens == 6
    assert thin.raw is None and "aspect ratio must be smaller than 200" in thin.error
    assert bad.raw is None and bad.error.startswith("UnidentifiedImageError")


def test_seeded_sampling_repeats_and_another_seed_differs(tiny_glm4v):
    spec = ModelSpec("tiny-sampler", "tiny", reasoning_style="glm", sampling={"max_tokens": 6, "temperature": 1.0})

    def sample(seed):
        with make_engine("transformers", spec, model_path=tiny_glm4v, sampling={"seed": seed}) as engine:
            return engine.generate(REQUESTS[:1])[0].raw

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_provenance_names_engine_version_and_sampling(engine):
    import transformers

    (result,) = engine.generate(REQUESTS[:1])
    entry = engine.generation_entry(1, result)
    assert entry["engine"] == f"transformers {transformers.__version__}"
    assert entry["revision"] == "local"
    assert entry["sampling"] == (
        '{"max_tokens": 6, "repetition_penalty": 1.1, "temperature": 1.0, "top_k": 1, "top_p": 1e-05}'
    )
    assert entry["raw"] == result.raw
