"""The top-level dataset script on datasets 3.6 (CI builds that venv; see .ci/run).

Set IMAGENET_THINK_PY36 to the python of a venv with datasets==3.6.0 and this package
installed; CI always sets it, so there the test runs and must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON36 = os.environ.get("IMAGENET_THINK_PY36")

pytestmark = pytest.mark.skipif(not PYTHON36, reason="IMAGENET_THINK_PY36 not set (CI sets it)")

CODE = """
import datasets, json, sys
assert datasets.__version__ == "3.6.0", datasets.__version__
script, export, sft, sft_folder = sys.argv[1:5]
pairs = datasets.load_dataset(script, "pairs", data_dir="sample", trust_remote_code=True)
kimi = datasets.load_dataset(script, "kimi", data_dir="sample", split="train", trust_remote_code=True, streaming=True)
plain = datasets.load_dataset(export, split="train")
sft_rows = {path: datasets.load_dataset(path, split="train") for path in (sft, sft_folder)}
print(json.dumps({
    "pairs": {k: len(v) for k, v in pairs.items()},
    "teacher": str(pairs["train"].features["teacher"]),
    "kimi_first": next(iter(kimi))["model"],
    "plain_features": sorted(plain.features),
    "generation": str(plain.features["generation"]),
    "image": list(plain[0]["image"].size),
    "sft": {path: {"rows": len(rows), "features": str(rows.features), "message": rows[0]["messages"][-1],
                   "image": list(rows[0]["images"][0].size)} for path, rows in sft_rows.items()},
}))
"""


def test_script_and_export_on_datasets_36(tmp_path, sample_table):
    from imagenet_think import load_dataset
    from imagenet_think.sft import to_sft_messages
    from imagenet_think.sft_export import export_sft
    from imagenet_think.split import is_validation
    from imagenet_think.writer import export_hub_layout

    export = tmp_path / "imagenet-think"
    export_hub_layout("sample", export)
    sample = load_dataset("sample", split="train")
    sft = {file_format: tmp_path / f"sft-{file_format}" for file_format in ("parquet", "jsonl")}
    for file_format, out in sft.items():
        export_sft(sample, out, format="trl", teacher="both", think="field", file_format=file_format, on_unusable="skip")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [PYTHON36, "-c", CODE, str(ROOT / "imagenet_think.py"), str(export), str(sft["parquet"]), str(sft["jsonl"])],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    n_validation = sum(is_validation(i) for i in sample_table["id"].to_pylist())  # no pair of the sample is missing
    assert out["pairs"] == {"train": 2 * (len(sample_table) - n_validation), "validation": 2 * n_validation}
    assert "int8" in out["teacher"] and out["kimi_first"] == "moonshotai/Kimi-VL-A3B-Thinking-2506"
    assert "think_1" in out["plain_features"] and "pair" in out["generation"] and out["image"] == [256, 256]
    expected = [e for row in sample for e in to_sft_messages(row, teacher="both", think="field", on_unusable="skip")]
    for file_format, path in sft.items():
        loaded = out["sft"][str(path)]
        assert loaded["rows"] == len(expected) and loaded["message"] == expected[0]["messages"][-1]
        assert loaded["image"] == list(expected[0]["images"][0].size)
        assert "Image(" in loaded["features"] and "reasoning_content" in loaded["features"]
    assert "int8" in out["sft"][str(sft["parquet"])]["features"]
