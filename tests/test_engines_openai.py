"""OpenAIEngine against a real HTTP server process (tests/fixtures/openai_server.py)."""

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imagenet_think.regenerate.engines import EngineUnreachable, Request, make_engine
from imagenet_think.regenerate.engines.openai_engine import image_data_url
from imagenet_think.regenerate.models import get_model

pytest.importorskip("openai")

SERVER = Path(__file__).parent / "fixtures" / "openai_server.py"


def png(size, color):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(size, color):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def server(request, tmp_path):
    """(base_url, request log) of a fresh server; ``request.param`` is its --reasoning-field."""
    log = tmp_path / "requests.jsonl"
    field = getattr(request, "param", "reasoning")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--reasoning-field", field, "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(process.stdout.readline().split()[-1])
        yield f"http://127.0.0.1:{port}/v1", log
    finally:
        process.terminate()
        process.wait(timeout=10)


def glm_engine(base_url, **kwargs):
    return make_engine("openai", get_model("glm"), base_url=base_url, max_in_flight=4, **kwargs)


@pytest.mark.parametrize("server", ["reasoning", "reasoning_content", "none"], indirect=True)
def test_raw_text_is_whole_whatever_field_the_reasoning_comes_in(server):
    base_url, _ = server
    with glm_engine(base_url) as engine:
        results = engine.generate([Request("a", png((40, 30), (10, 20, 30))), Request("b", Image.new("RGB", (64, 64), "white"))])
    assert [r.error for r in results] == [None, None]
    assert results[0].raw == (
        "<think>The image is 40 by 30 pixels and its top-left pixel is (10, 20, 30).</think>"
        "<answer>A 40 x 30 image.</answer>"
    )
    split = results[1].split("glm")
    assert (split.status, split.answer) == ("ok", "A 64 x 64 image.")
    assert split.think == "The image is 64 by 64 pixels and its top-left pixel is (255, 255, 255)."
    assert [r.finish_reason for r in results] == ["stop", "stop"]
    assert results[0].num_tokens == 20  # 15 reasoning words + 5 answer words, as the server counts


def test_cut_reasoning_stays_open_and_splits_as_unclosed(server):
    base_url, _ = server
    with glm_engine(base_url, sampling={"max_tokens": 3}) as engine:
        (result,) = engine.generate([Request("a", png((40, 30), "red"))])
    assert (result.raw, result.finish_reason, result.num_tokens) == ("<think>The image is", "length", 3)
    assert result.split("glm").status == "unclosed_think"


def test_a_failing_request_is_its_own_result(server):
    base_url, _ = server
    requests = [Request("ok", png((40, 30), "red")), Request("small", png((10, 10), "red")), Request("junk", b"junk")]
    with glm_engine(base_url) as engine:
        ok, small, junk = engine.generate(requests)
    assert ok.error is None and ok.finish_reason == "stop"
    assert small.raw is None and "under 28 px" in small.error and "BadRequestError" in small.error
    assert junk.raw is None and junk.error.startswith("UnidentifiedImageError")


def test_request_carries_original_bytes_and_the_specs_sampling(server):
    base_url, log = server
    original = jpeg((50, 40), "green")
    with glm_engine(base_url, sampling={"max_tokens": 100, "seed": 7}) as engine:
        engine.generate([Request("a", {"bytes": original, "path": "x.JPEG"}, prompt="Describe.")])
    (body,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert body["model"] == "zai-org/GLM-4.1V-9B-Thinking"
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (100, 1.0, 1e-5, 7)
    assert (body["top_k"], body["repetition_penalty"], body["skip_special_tokens"]) == (1, 1.1, False)
    image_part, text_part = body["messages"][0]["content"]
    header, data = image_part["image_url"]["url"].split(",", 1)
    assert header == "data:image/jpeg;base64" and base64.b64decode(data) == original
    assert text_part == {"type": "text", "text": "Describe."}


def test_kimi_reasoning_is_joined_with_kimi_markers_and_the_only_served_model_is_used(server):
    base_url, log = server
    spec = get_model("kimi")  # the server serves GLM's id only: the engine falls back to it
    with make_engine("openai", spec, base_url=base_url) as engine:
        (result,) = engine.generate([Request("a", png((30, 30), "black"))])
        entry = engine.generation_entry(2, result)
    assert result.raw.startswith("\u25c1think\u25b7The image is 30 by 30") and "\u25c1/think\u25b7<answer>" in result.raw
    assert json.loads(log.read_text())["model"] == "zai-org/GLM-4.1V-9B-Thinking"
    assert "skip_special_tokens" not in json.loads(log.read_text())
    assert entry == {
        "pair": 2,
        "engine": "openai-server 0.0-test",
        "revision": "main",
        "sampling": '{"max_tokens": 32768, "temperature": 0.8}',
        "raw": result.raw,
    }


def test_a_model_the_server_does_not_serve_is_an_error_when_the_engine_opens(server):
    base_url, log = server
    with pytest.raises(ValueError, match=r"serves \['zai-org/GLM-4.1V-9B-Thinking'\], not 'no/such-model'"):
        glm_engine(base_url, served_model="no/such-model")
    assert not log.exists()  # no request was sent


def test_a_server_that_is_down_is_unreachable_when_the_engine_opens(unused_port):
    """The first call, listing the models, says so: one line, before any work."""
    with pytest.raises(EngineUnreachable, match=rf"cannot reach the glm server at http://127.0.0.1:{unused_port}/v1: .*ConnectionRefusedError"):
        glm_engine(f"http://127.0.0.1:{unused_port}/v1")


def test_a_server_gone_after_opening_is_unreachable_not_a_failed_request():
    from tests.fixtures.sim_server import SimProcess

    with SimProcess() as sim, glm_engine(sim.url) as engine:
        sim.kill()
        with pytest.raises(EngineUnreachable, match="ConnectionRefusedError") as caught:
            engine.generate([Request("a", png((40, 30), "red"))])
    assert not caught.value.timed_out


def test_a_server_that_never_answers_times_out_as_unreachable():
    from tests.fixtures.sim_server import SimProcess

    with SimProcess(hang=True) as sim, make_engine("openai", get_model("glm"), base_url=sim.url, timeout=0.5) as engine:
        with pytest.raises(EngineUnreachable) as caught:
            engine.generate([Request("a", png((40, 30), "red"))])
    assert caught.value.timed_out


def test_image_data_url_keeps_known_bytes_and_encodes_the_rest_as_png():
    decoded = Image.new("RGB", (4, 3), "red")
    gif = io.BytesIO()
    decoded.save(gif, format="GIF")
    assert image_data_url(gif.getvalue()) == "data:image/gif;base64," + base64.b64encode(gif.getvalue()).decode()
    header, data = image_data_url(decoded).split(",", 1)
    assert header == "data:image/png;base64" and Image.open(io.BytesIO(base64.b64decode(data))).size == (4, 3)
    with pytest.raises(Exception, match="cannot identify image file"):
        image_data_url({"bytes": b"not an image"})


def test_busy_and_gateway_answers_are_no_answers_and_busy_carries_retry_after():
    """429/503 are "busy, come back" (with the server's Retry-After, seconds or an HTTP-date),
    502/504 a gateway's no answer; none of them, on /models, makes a probe say the server answers."""
    from imagenet_think.regenerate.engines import EngineBusy
    from tests.fixtures.sim_server import SimProcess

    request = Request("a", png((40, 30), "red"))
    with SimProcess() as sim, glm_engine(sim.url) as engine:
        assert engine.probe()
        sim.fault(429, 30, retry_after=7)  # chat requests only: /models still answers
        with pytest.raises(EngineBusy, match="HTTP 429") as caught:
            engine.generate([request], busy_for=0)
        assert caught.value.retry_after == 7.0 and engine.probe()
        sim.fault(503, 30, retry_after=30, retry_after_as="date", models=True)
        with pytest.raises(EngineBusy, match="HTTP 503") as caught:
            engine.generate([request], busy_for=0)
        assert 28 <= caught.value.retry_after <= 30  # an HTTP-date has whole seconds
        assert not engine.probe()
        sim.fault(502, 30, models=True)
        with pytest.raises(EngineUnreachable, match="HTTP 502") as caught:
            engine.generate([request])
        assert not isinstance(caught.value, EngineBusy) and not engine.probe()
        sim.fault(504, 30, models=True)
        assert not engine.probe()
        sim.fault(503, 30)  # no Retry-After
        with pytest.raises(EngineBusy) as caught:
            engine.generate([request], busy_for=0)
        assert caught.value.retry_after is None
        sim.fault(503, 30, models=True)
        with pytest.raises(EngineUnreachable, match=r"the glm server at .* answers HTTP 503 \(busy\): rerun when it serves requests"):
            glm_engine(sim.url)
        sim.fault(503, 0)  # over
        (result,) = engine.generate([request])
    assert result.error is None


def test_generate_waits_out_a_busy_server_and_gives_up_only_after_busy_for():
    """The batch API evaluate uses: a burst of 429s delays the run (each refused request sent
    again after the server's Retry-After), it does not stop it; a server busy for longer than
    ``busy_for`` with no answer in between raises EngineBusy."""
    import time

    from imagenet_think.regenerate.engines import EngineBusy
    from tests.fixtures.sim_server import SimProcess

    requests = [Request(str(i), png((40, 30), (i, 0, 0))) for i in range(6)]
    with SimProcess(step_ms=1) as sim, glm_engine(sim.url) as engine:
        sim.fault(429, 1.0, retry_after=0.25)
        start = time.monotonic()
        results = engine.generate(requests, busy_for=5)
        took = time.monotonic() - start
        stats = sim.stats()
        assert [r.id for r in results] == [r.id for r in requests] and all(r.error is None and r.raw for r in results)
        assert stats["faulted"] >= 4 and 1.0 <= took < 5  # refused at first, answered once the burst was over
        sim.fault(503, 30, retry_after=0.2)
        start = time.monotonic()
        with pytest.raises(EngineBusy, match="HTTP 503"):
            engine.generate(requests, busy_for=1.0)
        assert 1.0 <= time.monotonic() - start < 3
