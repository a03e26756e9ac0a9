"""The shared engine machinery: batching, per-item failures, images, sampling, provenance."""

import io
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import datasets
import pytest
from PIL import Image

from imagenet_think import schema
from imagenet_think.regenerate.engines.base import BatchEngine, Engine, Request, Result, effective_sampling, load_image, revision_of
from imagenet_think.regenerate.models import get_model


class SizeEngine(BatchEngine):
    """Answers each image with its size; a batch holding a 13-px-wide image raises, as a
    vLLM batch does when one image breaks preprocessing.  ``seconds`` per batch, recorded as
    (start, end) in ``spans``."""

    name = "size"
    version = "1.0"

    def __init__(self, spec, seconds=0.0, **kwargs):
        super().__init__(spec, **kwargs)
        self.batches, self.spans, self.seconds = [], [], seconds

    def _generate_batch(self, requests, images):
        start = time.monotonic()
        time.sleep(self.seconds)
        self.spans.append((start, time.monotonic()))
        self.batches.append([r.id for r in requests])
        if any(image.width == 13 for image in images):
            raise ValueError("width 13 is not supported")
        return [Result(r.id, raw=f"{i.width}x{i.height}", finish_reason="stop", num_tokens=1) for r, i in zip(requests, images)]


def png(width, height=20):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_results_come_back_in_order_in_batches_and_failures_are_isolated():
    engine = SizeEngine(get_model("glm"), batch_size=3)
    requests = [Request(str(i), png(w)) for i, w in enumerate([30, 13, 31, 32, 33])]
    requests.insert(2, Request("junk", b"junk"))
    results = engine.generate(requests)
    assert [r.id for r in results] == ["0", "1", "junk", "2", "3", "4"]
    assert [r.raw for r in results] == ["30x20", None, None, "31x20", "32x20", "33x20"]
    assert results[1].error == "ValueError: width 13 is not supported"
    assert results[2].error.startswith("UnidentifiedImageError")
    # first batch (0, 1, junk): junk never reaches the engine, the failing pair is split in two
    assert engine.batches == [["0", "1"], ["0"], ["1"], ["2", "3", "4"]]
    engine.close()


def test_a_failing_batch_is_bisected_down_to_the_bad_request():
    engine = SizeEngine(get_model("glm"), batch_size=8)
    widths = [30, 31, 32, 33, 34, 13, 35, 36]
    results = engine.generate([Request(str(i), png(w)) for i, w in enumerate(widths)])
    engine.close()
    assert [r.error is not None for r in results] == [w == 13 for w in widths]
    # halves holding the bad image fail and split again; the others run once: 7 batches, not 1 + 8
    assert engine.batches == [
        ["0", "1", "2", "3", "4", "5", "6", "7"],
        ["0", "1", "2", "3"],
        ["4", "5", "6", "7"],
        ["4", "5"],
        ["4"],
        ["5"],
        ["6", "7"],
    ]


def test_two_batch_engines_generate_at_the_same_time():
    """One worker thread per engine: two teachers on two devices overlap (sleep releases the
    GIL as a device kernel does)."""
    first, second = SizeEngine(get_model("glm"), seconds=0.3), SizeEngine(get_model("kimi"), seconds=0.3)
    requests = [Request(str(i), png(30 + i)) for i in range(3)]
    threads = [threading.Thread(target=engine.generate, args=(requests,)) for engine in (first, second)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    first.close(), second.close()
    (a_start, a_end), (b_start, b_end) = first.spans[0], second.spans[0]
    assert a_start < b_end and b_start < a_end, (first.spans, second.spans)
    assert elapsed < 0.55  # one batch time plus overhead, not two


def test_generate_keeps_at_most_max_in_flight_requests_outstanding():
    class Recorder(Engine):
        max_in_flight = 3

        def __init__(self, spec):
            super().__init__(spec)
            self.outstanding, self.most, self.futures = 0, 0, []

        def submit(self, request):
            with lock:
                self.outstanding += 1
                self.most = max(self.most, self.outstanding)
            future = Future()
            threading.Timer(0.01, self.finish, [future, Result(request.id, raw=request.id)]).start()
            return future

        def finish(self, future, result):
            with lock:
                self.outstanding -= 1
            future.set_result(result)

    lock = threading.Lock()

    engine = Recorder(get_model("glm"))
    results = engine.generate([Request(str(i), b"") for i in range(10)])
    assert [r.raw for r in results] == [str(i) for i in range(10)]
    assert engine.most == 3


def test_load_image_reads_every_input_kind_as_rgb(tmp_path):
    path = tmp_path / "a.png"
    Image.new("L", (30, 20)).save(path)
    for image in (path, str(path), path.read_bytes(), {"bytes": None, "path": str(path)}, Image.open(path)):
        decoded = load_image(image)
        assert (decoded.mode, decoded.size) == ("RGB", (30, 20))
    with pytest.raises(TypeError, match="cannot read an image from int"):
        load_image(3)
    with pytest.raises(ValueError, match="neither bytes nor path"):
        load_image({"bytes": None, "path": None})


def test_sampling_overrides_merge_drop_and_validate():
    assert effective_sampling(get_model("glm"), {"top_p": None, "max_tokens": 100}) == {
        "temperature": 1.0,
        "top_k": 1,
        "repetition_penalty": 1.1,
        "max_tokens": 100,
    }
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 0"):
        effective_sampling(get_model("glm"), {"max_tokens": 0})


def test_revision_recorded_for_snapshots_local_dirs_and_hub_ids(tmp_path):
    assert revision_of(str(tmp_path), get_model("glm")) == "local"
    assert revision_of("zai-org/GLM-4.1V-9B-Thinking", get_model("glm")) == "main"


def test_generation_entry_fits_the_schema_column():
    engine = SizeEngine(get_model("kimi"), sampling={"max_tokens": 5})
    (result,) = engine.generate([Request("a", png(30))])
    entry = engine.generation_entry(2, result)
    assert entry == {"pair": 2, "engine": "size 1.0", "revision": "main", "sampling": '{"max_tokens": 5, "temperature": 0.8}', "raw": "30x20"}
    features = datasets.Features({"generation": schema.GENERATION_FEATURE})
    assert features.encode_example({"generation": [entry]}) == {"generation": [entry]}


def test_importing_the_engines_loads_no_backend():
    code = (
        "import sys, imagenet_think.regenerate.engines as e\n"
        "import imagenet_think.regenerate.engines.vllm_engine, imagenet_think.regenerate.engines.hf_engine\n"
        "import imagenet_think.regenerate.engines.openai_engine\n"
        "print(sorted(m for m in ('vllm', 'torch', 'transformers', 'openai') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
