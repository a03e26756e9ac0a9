"""imagenet_think.sft_export: TRL, LLaMA-Factory and LLaVA files from the bundled sample."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from imagenet_think import PROMPT, cli, load_dataset
from imagenet_think.loading import sample_dir
from imagenet_think.sft import sft_features, to_sft_messages
from imagenet_think.sft_export import export_sft, image_suffix, update_dataset_info, write_image

SKIP = {"teacher": "both", "on_unusable": "skip"}


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample", split="train")


@pytest.fixture(scope="module")
def stored_images(sample):
    """Image bytes of the sample as stored, by record id."""
    raw = sample.cast_column("image", datasets.Image(decode=False))
    return {row["id"]: row["image"]["bytes"] for row in raw}


def expected_examples(sample, **options):
    return [example for row in sample for example in to_sft_messages(row, **options)]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_trl_jsonl_with_image_files(sample, stored_images, tmp_path):
    summary = export_sft(sample, tmp_path, format="trl", **SKIP)
    rows = read_jsonl(tmp_path / "imagenet_think.jsonl")
    expected = expected_examples(sample, **SKIP)
    assert summary["examples"] == len(rows) == len(expected)
    assert summary["records"] == len(sample) and summary["images"] == len({r["id"] for r in rows})
    assert [r["messages"] for r in rows] == [e["messages"] for e in expected]
    for row in rows:
        [path] = row["images"]
        assert path == f"images/{row['id']}.JPEG"
        assert (tmp_path / path).read_bytes() == stored_images[row["id"]]
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "imagenet_think.jsonl"), split="train")
    assert loaded[0]["messages"][0]["content"][0] == {"type": "image", "text": None}


def test_trl_parquet_embeds_the_stored_images(sample, stored_images, tmp_path):
    summary = export_sft(sample, tmp_path, format="trl", file_format="parquet", think="field", **SKIP)
    assert not (tmp_path / "images").exists()
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "imagenet_think.parquet"), split="train")
    assert summary["examples"] == len(loaded) > summary["images"] == len(set(loaded["id"]))
    assert loaded.features == sft_features("field")
    assert loaded[0]["images"][0].size == (256, 256)
    raw = loaded.cast_column("images", datasets.List(datasets.Image(decode=False)))
    assert all(row["images"][0]["bytes"] == stored_images[row["id"]] for row in raw)
    assert [row["messages"] for row in loaded] == [e["messages"] for e in expected_examples(sample, think="field", **SKIP)]


def test_llamafactory_sharegpt_and_dataset_info(sample, tmp_path):
    update_dataset_info(tmp_path, "other", {"file_name": "other.json"})
    summary = export_sft(sample, tmp_path, format="llamafactory", think="native", system_prompt="Be precise.", **SKIP)
    rows = read_jsonl(tmp_path / "imagenet_think.jsonl")
    assert len(rows) == summary["examples"]
    first = rows[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][1]["content"] == "<image>" + PROMPT
    assert first["messages"][2]["content"].startswith("<think>\n") and first["messages"][2]["content"].endswith("</answer>")
    assert all(r["messages"][1]["content"].count("<image>") == len(r["images"]) == 1 for r in rows)
    assert all((tmp_path / r["images"][0]).is_file() for r in rows)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["other"] == {"file_name": "other.json"}
    assert info["imagenet_think"] == {
        "file_name": "imagenet_think.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"},
    }


def test_concurrent_dataset_info_updates_keep_every_entry(tmp_path):
    def update(worker):
        for i in range(25):
            update_dataset_info(tmp_path, f"w{worker}_{i}", {"file_name": f"{worker}_{i}.jsonl"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(update, range(4)))
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert sorted(info) == sorted(f"w{w}_{i}" for w in range(4) for i in range(25))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_info.json", "dataset_info.json.lock"]


def test_concurrent_exports_of_one_file_leave_one_of_them_whole(sample, tmp_path):
    def export(teacher, out_dir=tmp_path):
        options = dict(format="llamafactory", teacher=teacher, on_unusable="skip", batch_size=2)
        return export_sft(sample, out_dir, **options)["path"]

    alone = [Path(export(teacher, tmp_path / str(teacher))).read_bytes() for teacher in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(export, [1, 2])) == [str(tmp_path / "imagenet_think.jsonl")] * 2
    assert alone[0] != alone[1] and (tmp_path / "imagenet_think.jsonl").read_bytes() in alone
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_llamafactory_parquet(sample, tmp_path):
    export_sft(sample, tmp_path, format="llamafactory", file_format="parquet", image_placement="after", **SKIP)
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "imagenet_think.parquet"), split="train")
    assert loaded[0]["messages"][0] == {"role": "user", "content": PROMPT + "<image>"}
    assert json.loads((tmp_path / "dataset_info.json").read_text())["imagenet_think"]["file_name"] == "imagenet_think.parquet"


def test_llava_json_list(sample, tmp_path):
    summary = export_sft(sample, tmp_path, format="llava", teacher=2, on_unusable="skip", limit=5)
    rows = json.loads((tmp_path / "imagenet_think.json").read_text(encoding="utf-8"))
    assert summary["records"] == 5 and len(rows) == summary["examples"]
    assert rows[0]["conversations"][0] == {"from": "human", "value": "<image>\n" + PROMPT}
    assert rows[0]["conversations"][1]["from"] == "gpt"
    assert rows[0]["conversations"][1]["value"].startswith("<think>\n")
    assert (tmp_path / rows[0]["image"]).is_file()


@pytest.mark.parametrize("options, message", [
    ({"format": "llava", "system_prompt": "S"}, "no system turn"),
    ({"format": "llamafactory", "think": "field"}, "only the trl format"),
    ({"format": "llava", "file_format": "parquet"}, "not 'parquet'"),
    ({"format": "sharegpt"}, "format must be one of"),
    ({"format": "trl", "think": "inline"}, "think must be one of"),
])
def test_bad_options_fail_before_writing(sample, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        export_sft(sample, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_unusable_pairs_stop_the_export_and_leave_no_data_file(sample, tmp_path):
    with pytest.raises(ValueError, match=r"record '\w+': pair 1 \(glm\) has status"):
        export_sft(sample, tmp_path, format="trl", teacher=1)
    assert [p.name for p in tmp_path.iterdir()] == ["images"]
    assert all(p.suffix == ".JPEG" for p in (tmp_path / "images").iterdir())


def test_nothing_usable_is_an_error(sample, tmp_path):
    with pytest.raises(ValueError, match="no usable pairs"):
        export_sft(sample, tmp_path, format="trl", require_status=("malformed",), on_unusable="skip", limit=3)


def test_image_suffix_and_write_image(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 8
    assert image_suffix({"bytes": png, "path": None}) == ".png"
    assert image_suffix({"bytes": b"RIFF\0\0\0\0WEBPVP8 ", "path": None}) == ".webp"
    with pytest.raises(ValueError, match="cannot tell the image type"):
        image_suffix({"bytes": b"plain", "path": ""})
    (tmp_path / "images").mkdir()
    source = tmp_path / "source.gif"
    source.write_bytes(b"GIF89a...")
    assert write_image({"bytes": None, "path": str(source)}, tmp_path, "r1") == "images/r1.gif"
    assert (tmp_path / "images" / "r1.gif").read_bytes() == b"GIF89a..."
    with pytest.raises(ValueError, match="cannot name an image file"):
        write_image({"bytes": png, "path": None}, tmp_path, "../escape")
    with pytest.raises(ValueError, match="no bytes"):
        write_image({"bytes": None, "path": str(tmp_path / "gone.jpg")}, tmp_path, "r2")


def test_arrow_table_source(sample, tmp_path):
    table = sample.with_format("arrow")[:4]
    assert isinstance(table, pa.Table)
    summary = export_sft(table, tmp_path, format="trl", **SKIP)
    assert summary["records"] == 4 and summary["examples"] == len(read_jsonl(tmp_path / "imagenet_think.jsonl"))


def test_cli_on_a_corpus_directory(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_dir(), corpus)
    out = tmp_path / "out"
    code = cli.main(["export-sft", "--source", str(corpus), "--format", "llamafactory", "--teacher", "both",
                     "--think", "native", "--out", str(out), "--limit", "6"])
    assert code == 0
    rows = read_jsonl(out / "imagenet_think.jsonl")
    printed = capsys.readouterr().out
    assert f"wrote {len(rows)} examples from 6 records" in printed
    assert f"skipped {12 - len(rows)} pairs whose status is not in ok" in printed and len(rows) < 12
    assert (out / "dataset_info.json").is_file()


def test_cli_reports_unusable_pairs(tmp_path, capsys):
    assert cli.main(["export-sft", "--format", "trl", "--teacher", "1", "--out", str(tmp_path), "--strict"]) == 2
    error = capsys.readouterr().err
    assert "imagenet-think export-sft: error: record '" in error and "--strict" in error
