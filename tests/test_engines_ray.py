"""builder_scripts/launch_ray.py without Ray: its command line, and the driver side that turns
Ray Data LLM output rows into written shards (the Ray pipeline itself needs Ray and a GPU)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_think.regenerate import runner, scheduler, sources
from imagenet_think.regenerate.models import get_model

SCRIPT = Path(__file__).parent.parent / "builder_scripts" / "launch_ray.py"


@pytest.fixture(scope="module")
def launch_ray():
    spec = importlib.util.spec_from_file_location("launch_ray", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_help_and_dry_run_need_no_ray(tmp_path):
    help_text = run_script("--help")
    assert help_text.returncode == 0 and "--replicas" in help_text.stdout and "--trust-remote-code" in help_text.stdout
    dry = run_script("sample", str(tmp_path / "out"), "--teachers", "glm", "--dry-run")
    assert dry.returncode == 0 and "to generate:       24 images x 1 teachers" in dry.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_a_real_run_without_ray_says_what_to_install(tmp_path):
    result = run_script("sample", str(tmp_path / "out"), "--teachers", "glm", "--max-items", "1")
    assert result.returncode == 2 and 'pip install "ray[data,llm]>=2.49" vllm' in result.stderr


def test_ray_output_rows_become_shards_with_splits_finish_reasons_and_failures(launch_ray, tmp_path):
    todo = sources.select_items(sources.open_source("sample"), 3, min_size=0).items
    glm = get_model("glm")
    # Rows as Ray's vLLM stage emits them (vllm_engine_stage: generated_text, num_generated_tokens,
    # __inference_error__), carried through keep_output as generate() does.
    ray_rows = [
        {"id": todo[0].id, "generated_text": "<think>\nA cat.</think><answer>A <|begin_of_box|>cat<|end_of_box|>",
         "num_generated_tokens": 12, "__inference_error__": None},
        {"id": todo[1].id, "generated_text": "<think>\nFur, whiskers and", "num_generated_tokens": 64,
         "__inference_error__": None},
        {"id": todo[2].id, "generated_text": "", "num_generated_tokens": "", "__inference_error__": "ValueError: bad image"},
    ]
    rows = [launch_ray.keep_output(row, pair=1, max_tokens=64, carried=["id"]) for row in ray_rows]
    engine = launch_ray.FinishedOutputs(glm, version="0.11.0 (ray 2.60.0)", revision="main")
    with runner.ShardWriter(tmp_path, rows_per_file=10) as writer:
        stream = scheduler.Scheduler({1: engine}, writer, max_attempts=1, retry_delay=0, max_failure_rate=1.0, progress=False)
        launch_ray.write_outputs(reversed(rows), {1: engine}, todo, stream, rows_per_write=2)

    table = pq.read_table(runner.data_files(tmp_path)).to_pylist()
    by_id = {row["id"]: row for row in table}
    assert set(by_id) == {todo[0].id, todo[1].id}
    done, cut = by_id[todo[0].id], by_id[todo[1].id]
    assert (done["think_1"], done["answer_1"], done["status_1"], done["finish_reason_1"], done["num_tokens_1"]) == (
        "A cat.", "A cat", "ok", "stop", 12
    )
    assert (cut["status_1"], cut["finish_reason_1"], cut["num_tokens_1"]) == ("unclosed_think", "length", 64)
    assert done["generation"][0]["engine"] == "vllm 0.11.0 (ray 2.60.0)"
    assert done["image"]["bytes"] == todo[0].read_bytes()
    assert runner.failed_ids(tmp_path) == {todo[2].id}
