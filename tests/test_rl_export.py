"""imagenet_think.rl_export (``imagenet-think export-rl``): RL prompts for TRL, EasyR1 and verl.

Expected rows are written out here from the sample's records and the hash-split rule
(CRC-32 of the id below ``fraction`` of 2**32: validation); the exports are read back by plain
``datasets`` in a process that never imports this package, run from another directory, and by
the two frameworks' own loading and message-building steps, transcribed from their source.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import datasets
import PIL.Image
import pyarrow as pa
import pytest
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

from imagenet_think import cli, load_dataset
from imagenet_think.rl_export import DEFAULT_PROMPT, FORMATS, export_rl, rl_features, rl_table
from tests.test_sft_export import error_line

FRACTION = 0.01


@pytest.fixture(scope="module")
def records():
    """The sample's records as the package loads them: train split, then validation."""
    loaded = load_dataset("sample", decode_images=False)
    return [row for split in ("train", "validation") for row in loaded[split]]


def hash_split(record_id: str, fraction: float = FRACTION) -> str:
    return "validation" if zlib.crc32(record_id.encode("utf-8")) < fraction * 2**32 else "train"


def expected_rows(records, format: str, prompt: str = DEFAULT_PROMPT, fraction: float = FRACTION) -> dict:
    """Each split's rows, images left out, in the source's order."""
    rows: dict[str, list] = {}
    for record in records:
        split = hash_split(record["id"], fraction)
        wnid, label, record_id = record["wnid"], record["label"], record["id"]
        if format == "trl":
            content = [{"type": "image", "text": None}, {"type": "text", "text": prompt}]
            row = {"prompt": [{"role": "user", "content": content}], "wnid": wnid, "label": label, "id": record_id}
        elif format == "easyr1":
            row = {"problem": "<image>" + prompt, "answer": wnid, "id": record_id, "label": label}
        else:
            row = {
                "data_source": "imagenet_think",
                "prompt": [{"role": "user", "content": "<image>" + prompt}],
                "ability": "visual_recognition",
                "reward_model": {"style": "rule", "ground_truth": wnid},
                "extra_info": {"split": split, "index": len(rows.get(split, [])), "id": record_id, "label": label},
            }
        rows.setdefault(split, []).append(row)
    return rows


LOAD_ELSEWHERE = r"""
import datasets, glob, hashlib, json, os, re, sys


def easyr1_messages(prompt_str):
    # EasyR1 b44b311b669bf1fd1aa2fc36f2251482ba33cb16, verl/utils/dataset.py, RLHFDataset._build_messages
    content_list = []
    for i, content in enumerate(prompt_str.split("<image>")):
        if i != 0:
            content_list.append({"type": "image"})
        if content:
            content_list.append({"type": "text", "text": content})
    return [{"role": "user", "content": content_list}]


def verl_messages(messages, images):
    # verl b178a3cd56f58b2d502255daba591e92833930a7, verl/utils/dataset/rl_dataset.py, RLHFDataset._build_messages
    image_offset = 0
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            continue
        content_list = []
        for segment in [s for s in re.split("(<image>|<video>)", content) if s != ""]:
            if segment == "<image>":
                assert image_offset < len(images)
                content_list.append({"type": "image", "image": images[image_offset].convert("RGB")})
                image_offset += 1
            else:
                content_list.append({"type": "text", "text": segment})
        message["content"] = content_list
    assert image_offset == len(images), (image_offset, len(images))
    return messages


def parts(messages):
    return [[part["type"] for part in message["content"]] for message in messages]


report = {"imported_us": None, "exports": {}}
for format, path in zip(sys.argv[1::2], sys.argv[2::2]):
    loaded = datasets.load_dataset(path)
    entry = {"splits": {}}
    for split, rows in loaded.items():
        raw = rows.cast_column("images", datasets.List(datasets.Image(decode=False)))
        entry["features"] = rows.features.to_dict()
        entry["splits"][split] = {
            "rows": [{k: v for k, v in row.items() if k != "images"} for row in raw],
            "hashes": [[hashlib.sha256(image["bytes"]).hexdigest() for image in row["images"]] for row in raw],
            "sizes": [[list(image.size) for image in row["images"]] for row in rows],
        }
    if format == "easyr1":  # data.train_files=OUT/data@<split>: EasyR1's RLHFDataset.__init__, same commit
        data_path = os.path.join(path, "data")
        file_type = os.path.splitext(os.listdir(data_path)[0])[-1][1:].replace("jsonl", "json")
        entry["framework"] = {}
        for split in loaded:
            rows = datasets.load_dataset(file_type, data_dir=data_path, split=split)
            entry["framework"][split] = {
                "ground_truth": list(rows["answer"]),
                "parts": [parts(easyr1_messages(row["problem"])) for row in rows],
                "images": [[type(image).__name__ for image in row["images"]] for row in rows],
            }
    if format == "verl":  # data.train_files=[shards]: verl's RLHFDataset._read_files_and_tokenize, same commit
        entry["framework"] = {}
        for split in loaded:
            files = sorted(glob.glob(os.path.join(path, "data", f"{split}-*.parquet")))
            rows = datasets.concatenate_datasets(
                [datasets.load_dataset("parquet", data_files=file)["train"] for file in files])
            entry["framework"][split] = {
                "ground_truth": [row["reward_model"]["ground_truth"] for row in rows],
                "parts": [parts(verl_messages(row["prompt"], row["images"])) for row in rows],
            }
    report["exports"][path] = entry
report["imported_us"] = "imagenet_think" in sys.modules
print(json.dumps(report))
"""


def load_elsewhere(paths: dict, tmp_path: Path) -> dict:
    """Run :data:`LOAD_ELSEWHERE` on ``{format: export dir}`` from a fresh directory and cache."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)  # nothing of this package on the path
    argv = [str(arg) for pair in paths.items() for arg in pair]
    result = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, *argv], capture_output=True, text=True, env=env,
                            cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported_us"] is False
    return report["exports"]


def test_every_format_loads_with_plain_datasets_and_the_frameworks_readers(records, tmp_path):
    paths = {}
    for format in FORMATS:
        summary = export_rl("sample", tmp_path / "written" / format, format=format)
        assert "| source | `sample` |" in (tmp_path / "written" / format / "README.md").read_text()
        assert summary["path"] == str(tmp_path / "written" / format)
        paths[format] = shutil.move(tmp_path / "written" / format, tmp_path / "moved" / format)
    shutil.rmtree(tmp_path / "written")
    loaded = load_elsewhere(paths, tmp_path)
    stored = {record["id"]: record["image"]["bytes"] for record in records}
    for format, path in paths.items():
        entry = loaded[str(path)]
        expected = expected_rows(records, format)
        assert set(expected) == {"train", "validation"}  # the sample has both
        assert datasets.Features.from_dict(entry["features"]) == rl_features(format), format
        for split, rows in expected.items():
            got = entry["splits"][split]
            assert got["rows"] == rows, (format, split)
            ids = [row["id"] if "id" in row else row["extra_info"]["id"] for row in rows]
            assert got["hashes"] == [[hashlib.sha256(stored[i]).hexdigest()] for i in ids]
            assert got["sizes"] == [[list(PIL.Image.open(io.BytesIO(stored[i])).size)] for i in ids]
            wnids = [i.split("_")[0] for i in ids]  # the sample's ids start with their class
            if format == "easyr1":
                framework = entry["framework"][split]
                assert framework["ground_truth"] == wnids
                assert framework["parts"] == [[["image", "text"]]] * len(rows)
                assert framework["images"] == [["JpegImageFile"]] * len(rows)
            if format == "verl":
                framework = entry["framework"][split]
                assert framework["ground_truth"] == wnids
                assert framework["parts"] == [[["image", "text"]]] * len(rows)


def test_rows_go_to_the_split_their_id_hashes_to_whatever_split_they_came_in(records, tmp_path):
    every_row = datasets.concatenate_datasets(
        [load_dataset("sample", split=split, decode_images=False) for split in ("train", "validation")])
    for fraction in (FRACTION, 0.3):
        out = tmp_path / f"rl-{fraction}"
        summary = export_rl(every_row, out, format="verl", validation_fraction=fraction, batch_size=5)
        expected = expected_rows(records, "verl", fraction=fraction)
        assert summary["train"] == len(expected["train"]) and summary["validation"] == len(expected["validation"])
        loaded = datasets.load_dataset(str(out))
        for split, rows in expected.items():
            assert [row["extra_info"] for row in loaded[split]] == [row["extra_info"] for row in rows], fraction
    assert len(expected["validation"]) > 1  # 0.3 moves rows the loader had put in train


def test_the_card_names_the_shards_the_reward_and_the_training_command(tmp_path):
    cards = {}
    for format in FORMATS:
        out = tmp_path / format
        export_rl("sample", out, format=format, max_shard_bytes=1, batch_size=5, source_name="sample")
        card = DatasetCard.load(out / "README.md")
        shards = {split: sorted(f"data/{p.name}" for p in (out / "data").glob(f"{split}-*.parquet"))
                  for split in ("train", "validation")}
        assert len(shards["train"]) == 5  # a shard a batch: 23 rows
        assert MetadataConfigs.from_dataset_card_data(card.data) == {
            "default": {"data_files": [{"split": split, "path": paths} for split, paths in shards.items()]}}
        [info] = DatasetInfosDict.from_dataset_card_data(card.data).values()
        assert info.features == rl_features(format)
        assert {split: info.splits[split].num_examples for split in shards} == {"train": 23, "validation": 1}
        assert f"| prompt | {json.dumps(DEFAULT_PROMPT)} |" in card.text and "| source | `sample` |" in card.text
        cards[format] = (card.text, shards)
    text, _ = cards["trl"]
    assert "reward_funcs=[label_reward, format_reward]" in text and "GRPOTrainer(" in text
    text, _ = cards["easyr1"]
    assert "worker.reward.reward_function=$REWARDS:easyr1_score" in text
    assert "data.train_files=path/to/this/dir/data@train" in text and "data.answer_key=answer" in text
    text, shards = cards["verl"]
    assert "custom_reward_function.path=pkg://imagenet_think.rewards custom_reward_function.name=compute_score" in text
    [train_files] = re.findall(r'data\.train_files="\[(.*)\]"', text)
    assert train_files == ", ".join(f"'path/to/this/dir/{path}'" for path in shards["train"])
    [val_files] = re.findall(r'data\.val_files="\[(.*)\]"', text)
    assert val_files == ", ".join(f"'path/to/this/dir/{path}'" for path in shards["validation"])


def test_prompt_override_limit_and_path_only_images(records, tmp_path):
    table = load_dataset("sample", split="train", decode_images=False).with_format("arrow")[:4]
    files = tmp_path / "files"
    files.mkdir()
    for record_id, image in zip(table["id"].to_pylist(), table["image"].to_pylist()):
        (files / f"{record_id}.jpg").write_bytes(image["bytes"])
    paths = [{"bytes": None, "path": str(files / f"{i}.jpg")} for i in table["id"].to_pylist()]
    table = table.set_column(table.column_names.index("image"), "image", pa.array(paths, table.schema.field("image").type))
    export_rl(datasets.Dataset(table), tmp_path / "out", format="easyr1", prompt="Name the animal.", limit=3)
    shutil.rmtree(files)
    train = datasets.load_dataset(str(tmp_path / "out"), split="train").cast_column(
        "images", datasets.List(datasets.Image(decode=False)))
    assert [row["problem"] for row in train] == ["<image>Name the animal."] * 3
    stored = {record["id"]: record["image"]["bytes"] for record in records}
    assert [row["images"][0]["bytes"] for row in train] == [stored[i] for i in table["id"].to_pylist()[:3]]


@pytest.mark.parametrize("rows, message", [
    ({"wnid": [None]}, "record 'n1_a' has no wnid"),
    ({"wnid": [""]}, "record 'n1_a' has no wnid"),
    ({"image": [None]}, "record 'n1_a' has no image"),
    ({"image": [{"bytes": None, "path": None}]}, "record 'n1_a' has no image"),
])
def test_rows_without_a_class_or_an_image_are_refused(rows, message):
    columns = {"id": ["n1_a"], "wnid": ["n1"], "label": ["x"], "image": [{"bytes": b"1", "path": None}], **rows}
    image_type = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    table = pa.table({**columns, "image": pa.array(columns["image"], image_type)})
    with pytest.raises(ValueError, match=re.escape(message)):
        rl_table(table, "trl")


def test_cli_writes_and_overwrites_only_a_previous_export(records, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export-rl", "--format", "verl", "--out", str(out)]) == 0  # SOURCE: sample by default
    printed = capsys.readouterr().out
    assert f"wrote 24 prompts (train: 23, validation: 1) to {out}; reward: imagenet_think.rewards.compute_score" in printed
    assert cli.main(["export-rl", "sample", "--format", "trl", "--out", str(out)]) == 2
    assert "is not empty: pass --overwrite to replace the export there" in error_line(capsys.readouterr().err)
    assert cli.main(["export-rl", "sample", "--format", "trl", "--out", str(out), "--overwrite",
                     "--prompt", "What is it?"]) == 0
    loaded = datasets.load_dataset(str(out))
    assert {split: rows.column_names for split, rows in loaded.items()} == {
        split: list(rl_features("trl")) for split in ("train", "validation")}
    assert loaded["train"]["prompt"] == [row["prompt"] for row in expected_rows(records, "trl", "What is it?")["train"]]


@pytest.mark.parametrize("argv, message", [
    (["--out", "{out}", "--overwrite"], "{out} holds 'notes.txt', which no export writes"),
    (["--out", "{out}/new", "--prompt", "<image> What is it?"], "--prompt holds '<image>'"),
    (["--out", "{out}/new", "--prompt", "  "], "--prompt must be a non-blank text"),
    (["--out", "{out}/new", "--validation-fraction", "1"], "--validation-fraction must be in [0, 1)"),
    (["{out}/missing", "--out", "{out}/new"], "{out}/missing"),
    (["--out", "{out}/new", "--limit", "0"], "sample: no rows to export"),
])
def test_cli_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = [arg.format(out=out) for arg in argv]
    assert cli.main(["export-rl", "--format", "trl", *argv]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("imagenet-think export-rl: error: ") and message.format(out=out) in line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["out", "out/notes.txt"]
