"""imagenet_think.sft_export: TRL, LLaMA-Factory and LLaVA files from the bundled sample."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

from imagenet_think import PROMPT, cli, load_dataset
from imagenet_think.loading import sample_dir
from imagenet_think.sft import THINK_MODES, sft_features, teachers_of, to_sft_messages
from imagenet_think.sft_export import export_sft, image_suffix, write_image

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


def tree(directory):
    """``{relative path: bytes}`` of every file under ``directory``."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def as_json(value):
    return json.loads(json.dumps(value))


def test_trl_export_is_a_dataset_directory(sample, stored_images, tmp_path, monkeypatch):
    out = tmp_path / "sft-trl"
    summary = export_sft(sample, out, format="trl", think="field", **SKIP)
    expected = expected_examples(sample, think="field", **SKIP)
    assert summary["path"] == str(out)
    [shard] = (out / "data").iterdir()
    assert re.fullmatch(r"train-00000-of-00001-[0-9a-f]{16}\.parquet", shard.name)
    assert sorted(tree(out)) == ["README.md", f"data/{shard.name}"]
    stored = pq.read_table(shard).column("images").to_pylist()
    assert [[image["bytes"] for image in images] for images in stored] == [[stored_images[e["id"]]] for e in expected]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = datasets.load_dataset(str(out))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert summary["examples"] == len(train) == len(expected) > summary["images"] == len(set(train["id"]))
    assert train.features == sft_features("field") and list(train.features) == ["id", "teacher", "images", "messages"]
    assert train[0]["images"][0].size == PIL.Image.open(io.BytesIO(stored_images[train[0]["id"]])).size
    assert [(row["id"], row["teacher"], row["messages"]) for row in train] == [
        (e["id"], e["teacher"], e["messages"]) for e in expected
    ]
    card = DatasetCard.load(out / "README.md")
    assert MetadataConfigs.from_dataset_card_data(card.data) == {
        "default": {"data_files": [{"split": "train", "path": [f"data/{shard.name}"]}]}}
    [info] = DatasetInfosDict.from_dataset_card_data(card.data).values()
    assert info.features == sft_features("field") and info.splits["train"].num_examples == len(expected)
    skipped = 2 * len(sample) - len(expected)
    assert f"| pairs used | status ok; {skipped} other pairs skipped |" in card.text
    assert "| reasoning | in the assistant turn's `reasoning_content`; `content` is the answer |" in card.text


def test_trl_export_embeds_path_only_images(sample, stored_images, tmp_path):
    table = sample.with_format("arrow")[:5]
    files = tmp_path / "files"
    files.mkdir()
    for record_id in table["id"].to_pylist():
        (files / f"{record_id}.jpg").write_bytes(stored_images[record_id])
    paths = [{"bytes": None, "path": str(files / f"{i}.jpg")} for i in table["id"].to_pylist()]
    table = table.set_column(table.column_names.index("image"), "image", pa.array(paths, table.schema.field("image").type))
    export_sft(table, tmp_path / "out", format="trl", **SKIP)
    shutil.rmtree(files)
    raw = datasets.load_dataset(str(tmp_path / "out"), split="train").cast_column(
        "images", datasets.List(datasets.Image(decode=False)))
    assert len(raw) == len(expected_examples(sample.select(range(5)), **SKIP))
    assert all(row["images"][0]["bytes"] == stored_images[row["id"]] for row in raw)


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_trl_export_overwritten_in_place_never_loads_stale(sample, tmp_path, file_format):
    """Same path, same rows, other texts (of the same length, too): datasets must not serve its
    cache of the export before."""
    out = tmp_path / "sft-trl"
    for options in ({"think": "none"}, {"think": "tags"}, {"image_placement": "after"},
                    {"system_prompt": "Be brief."}, {"system_prompt": "Be terse."}):
        export_sft(sample, out, format="trl", file_format=file_format, overwrite=True, **options, **SKIP)
        loaded = datasets.load_dataset(str(out), split="train")
        assert loaded["messages"] == [e["messages"] for e in expected_examples(sample, **options, **SKIP)], options


def test_trl_image_folder_variant(sample, stored_images, tmp_path, monkeypatch):
    out = tmp_path / "sft-trl"
    summary = export_sft(sample, out, format="trl", file_format="jsonl", **SKIP)
    rows = read_jsonl(out / "metadata.jsonl")
    expected = expected_examples(sample, **SKIP)
    assert summary["examples"] == len(rows) == len(expected) and summary["path"] == str(out)
    assert summary["records"] == len(sample) and summary["images"] == len({r["id"] for r in rows})
    assert [r["messages"] for r in rows] == [e["messages"] for e in expected]
    for row in rows:
        [path] = row["file_names"]
        assert path == f"images/{row['id']}.JPEG"
        assert (out / path).read_bytes() == stored_images[row["id"]]
    assert sorted(tree(out)) == sorted(["README.md", "metadata.jsonl", *{r["file_names"][0] for r in rows}])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    train = datasets.load_dataset(str(out), split="train")
    assert list(train.features) == ["id", "teacher", "images", "messages"]
    assert train.features["images"] == datasets.List(datasets.Image())
    assert [(row["id"], row["messages"]) for row in train] == [(e["id"], e["messages"]) for e in expected]
    assert train[-1]["images"][0].size == PIL.Image.open(io.BytesIO(stored_images[train[-1]["id"]])).size


def test_trl_image_folder_copies_load_their_own_images(sample, tmp_path):
    """datasets caches an image folder by its card and data files: a copy elsewhere must not
    get the image paths cached for the first one (gone by then)."""
    first, second = tmp_path / "a" / "sft-trl", tmp_path / "b" / "sft-trl"
    for out in (first, second):
        export_sft(sample, out, format="trl", file_format="jsonl", limit=3, **SKIP)
    assert tree(first) == tree(second)
    assert len(datasets.load_dataset(str(first), split="train")) == len(expected_examples(sample.select(range(3)), **SKIP))
    shutil.rmtree(first)
    raw = datasets.load_dataset(str(second), split="train").cast_column(
        "images", datasets.List(datasets.Image(decode=False)))
    assert all(Path(row["images"][0]["path"]).parent == second / "images" for row in raw)


def test_trl_shards_split_the_examples_in_order(sample, tmp_path):
    out = tmp_path / "sft-trl"
    export_sft(sample, out, format="trl", split="validation", max_shard_bytes=1, batch_size=5, **SKIP)
    batches = [sample.select(range(i, min(i + 5, len(sample)))) for i in range(0, len(sample), 5)]
    total = sum(1 for batch in batches if expected_examples(batch, **SKIP))
    assert total > 1
    shards = sorted(p.name for p in (out / "data").iterdir())
    fingerprint = shards[0][-len("0123456789abcdef.parquet"):-len(".parquet")]
    assert shards == [f"validation-{i:05d}-of-{total:05d}-{fingerprint}.parquet" for i in range(total)]
    loaded = datasets.load_dataset(str(out), split="validation")
    assert 'load_dataset("path/to/this/dir", split="validation")' in (out / "README.md").read_text()
    assert [(row["id"], row["teacher"]) for row in loaded] == [(e["id"], e["teacher"]) for e in expected_examples(sample, **SKIP)]


EXPORTS = [("both", think, "parquet") for think in THINK_MODES] + [
    (1, "tags", "parquet"), (2, "native", "parquet"), ("both", "tags", "jsonl"), (1, "field", "jsonl"),
]

LOAD_ELSEWHERE = """
import datasets, hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    train = datasets.load_dataset(path, split="train")
    raw = train.cast_column("images", datasets.List(datasets.Image(decode=False)))
    hashes = []
    for row in raw:
        [image] = row["images"]
        data = image["bytes"] if image["bytes"] is not None else open(image["path"], "rb").read()
        hashes.append(hashlib.sha256(data).hexdigest())
    out[path] = {
        "features": train.features.to_dict(),
        "rows": [[row["id"], row["teacher"], row["messages"]] for row in raw],
        "hashes": hashes,
        "sizes": [list(image.size) for row in train for image in row["images"]],
    }
print(json.dumps({"exports": out, "imported_us": "imagenet_think" in sys.modules}))
"""


def test_plain_datasets_loads_every_trl_export_moved_elsewhere(sample, stored_images, tmp_path):
    """In a fresh process run from another directory that never imports this package, on
    export directories moved away from where they were written (as an upload would)."""
    paths = {}
    for teacher, think, file_format in EXPORTS:
        key = f"{teacher}-{think}-{file_format}"
        export_sft(sample, tmp_path / "written" / key, format="trl", teacher=teacher, think=think,
                   file_format=file_format, on_unusable="skip")
        paths[key] = shutil.move(tmp_path / "written" / key, tmp_path / "moved" / key)
    shutil.rmtree(tmp_path / "written")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, *map(str, paths.values())],
                            capture_output=True, text=True, env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported_us"] is False
    sizes = {i: list(PIL.Image.open(io.BytesIO(b)).size) for i, b in stored_images.items()}
    for (teacher, think, file_format), path in zip(EXPORTS, paths.values()):
        loaded = report["exports"][str(path)]
        expected = expected_examples(sample, teacher=teacher, think=think, on_unusable="skip")
        features = sft_features(think)
        if file_format == "jsonl":  # datasets types the image folder's metadata.jsonl itself
            features["teacher"] = datasets.Value("int64")
        assert datasets.Features.from_dict(loaded["features"]) == features, (teacher, think, file_format)
        assert list(loaded["features"]) == ["id", "teacher", "images", "messages"]
        assert loaded["rows"] == as_json([[e["id"], e["teacher"], e["messages"]] for e in expected])
        assert {e["teacher"] for e in expected} == set(teachers_of(teacher))
        assert loaded["hashes"] == [hashlib.sha256(stored_images[e["id"]]).hexdigest() for e in expected]
        assert loaded["sizes"] == [sizes[e["id"]] for e in expected]


def test_llamafactory_sharegpt_and_dataset_info(sample, tmp_path):
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
    assert info == {"imagenet_think": {
        "file_name": "imagenet_think.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"},
    }}
    assert sorted(tree(tmp_path)) == sorted(["dataset_info.json", "imagenet_think.jsonl", *{r["images"][0] for r in rows}])


def test_concurrent_exports_into_one_directory_leave_one_of_them_whole(sample, tmp_path):
    def export(teacher, out_dir=tmp_path / "out"):
        options = dict(format="llamafactory", teacher=teacher, on_unusable="skip", batch_size=2, overwrite=True)
        return export_sft(sample, out_dir, **options)["path"]

    alone = [tree(Path(export(teacher, tmp_path / str(teacher))).parent) for teacher in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(export, [1, 2])) == [str(tmp_path / "out" / "imagenet_think.jsonl")] * 2
    assert alone[0] != alone[1] and tree(tmp_path / "out") in alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2", "out"]


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
    ({"format": "llava", "file_format": "parquet"}, "written as json or jsonl, not `file_format='parquet'`"),
    ({"format": "sharegpt"}, "`format` must be one of"),
    ({"format": "trl", "think": "inline"}, "`think` must be one of"),
    ({"format": "trl", "name": "cats"}, "drop `name`"),
    ({"format": "llava", "name": "../cats"}, "cannot name a data file"),
    ({"format": "trl", "split": "train[:5]"}, "cannot name the export's split"),
    ({"format": "trl", "file_format": "jsonl", "split": "validation"}, "holds one split, 'train'"),
    ({"format": "trl", "limit": -1}, "`limit` must be >= 0"),
])
def test_bad_options_fail_before_writing(sample, tmp_path, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        export_sft(sample, tmp_path / "out", **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_unusable_pairs_stop_the_export_and_keep_the_previous_one(sample, tmp_path, file_format):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"record '\w+': pair 1 \(glm\) has status"):
        export_sft(sample, out, format="trl", teacher=1, file_format=file_format)
    assert list(tmp_path.iterdir()) == []
    export_sft(sample, out, format="trl", teacher=2, file_format=file_format, on_unusable="skip")
    before = tree(out)
    with pytest.raises(ValueError, match=r"record '\w+': pair 1 \(glm\) has status"):
        export_sft(sample, out, format="trl", teacher=1, file_format=file_format, overwrite=True)
    assert tree(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("format, file_format", [("trl", "parquet"), ("trl", "jsonl"), ("llamafactory", "jsonl"),
                                                 ("llava", "json")])
def test_overwrite_leaves_exactly_the_new_export(sample, tmp_path, format, file_format):
    def export(teacher, out_dir, **options):
        export_sft(sample, out_dir, format=format, file_format=file_format, teacher=teacher, on_unusable="skip",
                   **options)
        return tree(out_dir)

    old = export(1, tmp_path / "out")
    with pytest.raises(FileExistsError, match="is not empty: pass `overwrite=True`"):
        export(2, tmp_path / "out")
    assert tree(tmp_path / "out") == old
    new = export(2, tmp_path / "fresh")
    assert new != old
    assert export(2, tmp_path / "out", overwrite=True) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]


@pytest.mark.parametrize("stranger", ["notes.txt", "data/notes.txt", "images/sub/x.JPEG", "src/"])
def test_overwrite_never_replaces_a_directory_holding_other_files(sample, tmp_path, stranger):
    out = tmp_path / "out"
    export_sft(sample, out, format="trl", file_format="jsonl", teacher=2, on_unusable="skip", limit=4)
    (out / stranger).parent.mkdir(parents=True, exist_ok=True)
    if stranger.endswith("/"):
        (out / stranger).mkdir()
    else:
        (out / stranger).write_text("mine")
    before = tree(out)
    with pytest.raises(FileExistsError, match=f"holds {stranger.split('/')[0]!r}, which no export writes"):
        export_sft(sample, out, format="trl", teacher=2, on_unusable="skip", limit=4, overwrite=True)
    assert tree(out) == before and (out / stranger).exists()


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
    assert summary["records"] == 4 and summary["examples"] == len(expected_examples(sample.select(range(4)), **SKIP))
    assert summary["examples"] == len(datasets.load_dataset(str(tmp_path), split="train"))


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


def error_line(stderr):
    """The one error line of a failed command (after any progress bars), checking there is one."""
    assert stderr.count("error:") == 1 and "Traceback" not in stderr, stderr
    return stderr.rstrip().splitlines()[-1]


def test_readme_command_1_then_the_training_example_from_elsewhere(sample, stored_images, tmp_path, monkeypatch,
                                                                    capsys):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    assert cli.main(["export-sft", "--source", "sample", "--format", "trl", "--out", "out/sft-trl"]) == 0
    expected = expected_examples(sample, on_unusable="skip")
    assert f"wrote {len(expected)} examples from {len(sample)} records" in capsys.readouterr().out
    as_written = datasets.load_dataset("out/sft-trl", split="train")
    monkeypatch.chdir(elsewhere)
    train = datasets.load_dataset(str(project / "out/sft-trl"), split="train")
    for loaded in (as_written, train):
        assert [(row["id"], row["messages"]) for row in loaded] == [(e["id"], e["messages"]) for e in expected]
    sizes = [PIL.Image.open(io.BytesIO(stored_images[e["id"]])).size for e in expected]
    assert [image.size for images in train["images"] for image in images] == sizes


def test_cli_reports_unusable_pairs_with_the_status_options(tmp_path, capsys):
    assert cli.main(["export-sft", "--format", "trl", "--teacher", "1", "--out", str(tmp_path / "out"), "--strict"]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("imagenet-think export-sft: error: record '") and "pair 1 (glm) has status" in line
    assert line.endswith("not one of --require-status ok; widen --require-status to use it, or skip such pairs "
                         "(without --strict)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--out", "{out}"], "{out} is not empty: pass --overwrite to replace the export there"),
    (["--out", "{out}", "--overwrite"],
     "{out} holds 'notes.txt', which no export writes; --overwrite replaces only a previous export"),
    (["--out", "{out}/notes.txt"], "{out}/notes.txt exists and is not a directory"),
    (["--out", "{out}/new", "--format", "llava", "--system-prompt", "S"], "no system turn: drop --system-prompt"),
    (["--out", "{out}/new", "--source", "{out}/missing"], "{out}/missing"),
    (["--out", "{out}/new", "--format", "llamafactory", "--think", "field"], "--think field keeps the reasoning"),
    (["--out", "{out}/new", "--name", "cats"], "whose files datasets names: drop --name"),
    (["--out", "{out}/new", "--format", "llava", "--file-format", "parquet"],
     "the llava format is written as json or jsonl, not --file-format parquet"),
    (["--out", "{out}/new", "--file-format", "jsonl", "--split", "validation"],
     "holds one split, 'train': export --split validation with --file-format parquet"),
    (["--out", "{out}/new", "--split", "train[:5]"],
     "--split train[:5] cannot name the export's split (letters, digits, '_'); use --limit to export part of one"),
    (["--out", "{out}/new", "--limit", "-1"], "--limit must be >= 0, got -1"),
    (["--out", "{out}/new", "--require-status", "malformed"],
     "no usable pairs among 23 records: nothing to export; widen --require-status malformed"),
])
def test_cli_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = [arg.format(out=out) for arg in argv]
    options = ["--format", "trl"] if "--format" not in argv else []
    assert cli.main(["export-sft", *options, *argv]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("imagenet-think export-sft: error: ") and message.format(out=out) in line
    assert "`" not in line and not re.search(r"\b[a-z]+_[a-z_]+\b", line.split("error: ", 1)[1].replace(str(tmp_path), ""))
    assert tree(tmp_path) == {"out/notes.txt": b"mine"}


def test_cli_help_documents_every_option_once():
    parser, _ = cli._build_parser("export-sft")
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    export_sft_parser = sub.choices["export-sft"]
    options = [a for a in export_sft_parser._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} >= {"split", "system_prompt", "image_placement", "teacher", "overwrite"}
    for action in options:
        text = action.help % vars(action)  # as argparse expands it
        assert text and text.count("(default") <= 1, action.dest
    text = export_sft_parser.format_help()
    assert "(default: None)" not in text and "(default: 1)" in text
