"""export_hub_layout / ``imagenet-think export`` of loaded datasets, and --push-to-hub's checks."""

from __future__ import annotations

import os
import subprocess
import sys

import datasets
import pyarrow.parquet as pq
import pytest

import imagenet_think
from imagenet_think import quality, schema
from imagenet_think.cli import main
from imagenet_think.writer import export_hub_layout, split_sizes


def reload(out, split="train", **kw):
    return imagenet_think.load_dataset(str(out), split=split, decode_images=False, **kw)


def test_a_filtered_dataset_exports_its_rows_only(tmp_path):
    ds = imagenet_think.load_dataset("sample", split="train")
    clean = quality.apply_filters(ds, quality.complete())  # an indices mapping over the 24 rows
    assert 0 < len(clean) < len(ds)
    readme = export_hub_layout(clean, tmp_path / "clean", max_shard_bytes=20_000)
    back = reload(tmp_path / "clean")
    assert back["id"] == clean["id"] and back["answer_2"] == clean["answer_2"]
    assert len(list((tmp_path / "clean" / "data").glob("train-*.parquet"))) > 1
    assert "from `" not in readme.read_text()  # no source name to credit


def test_a_dataset_dict_keeps_its_splits(tmp_path):
    dd = imagenet_think.load_dataset("sample", validation_fraction=0.3, decode_images=False)
    export_hub_layout(dd, tmp_path / "out", validation_fraction=0.3)
    for split in ("train", "validation"):
        assert reload(tmp_path / "out", split, validation_fraction=0.3)["id"] == dd[split]["id"]
    assert set(split_sizes(tmp_path / "out")) == {"train", "validation"}


def test_an_iterable_dataset_exports_with_a_limit(tmp_path):
    stream = imagenet_think.load_dataset("sample", split="train", streaming=True)
    kept = quality.apply_filters(stream, quality.length_between("answer", min_length=100))
    export_hub_layout(kept, tmp_path / "out", limit=5)
    expected = [row["id"] for row in kept.take(5)]
    assert len(expected) == 5 and reload(tmp_path / "out")["id"] == expected


def test_published_columns_loaded_with_plain_datasets_are_normalised(published_dir, tmp_path):
    plain = datasets.load_dataset("parquet", data_dir=str(published_dir / "data"), split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert plain.column_names == list(schema.PUBLISHED_COLUMNS)
    export_hub_layout(plain, tmp_path / "out")
    back = reload(tmp_path / "out")
    sample = imagenet_think.load_dataset("sample", split="train", decode_images=False)
    assert sorted(back["id"]) == sorted(sample["id"]) and set(back["status_1"]) <= set(schema.STATUSES)


def test_a_single_teacher_config_is_refused_clearly(tmp_path):
    pairs = imagenet_think.load_dataset("sample", "pairs", split="train")
    with pytest.raises(ValueError, match="split 'train': export writes the default config"):
        export_hub_layout(pairs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_exports_a_saved_dataset(tmp_path, capsys):
    ds = imagenet_think.load_dataset("sample", split="train")
    clean = quality.apply_filters(ds, quality.complete())
    clean.save_to_disk(str(tmp_path / "saved"))
    assert main(["export", str(tmp_path / "saved"), str(tmp_path / "out")]) == 0
    assert f"train: {len(clean)} rows" in capsys.readouterr().out
    assert reload(tmp_path / "out")["id"] == clean["id"]
    assert pq.read_metadata(next((tmp_path / "out" / "data").glob("*.parquet"))).num_rows == len(clean)


def files_of(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("planted", ["data/mine.txt", "data/notes/todo.md"])
def test_overwrite_replaces_an_earlier_export_but_never_a_foreign_file(tmp_path, capsys, planted):
    out = tmp_path / "out"
    assert main(["export", "sample", str(out), "--limit", "3"]) == 0
    assert main(["export", "sample", str(out), "--limit", "5", "--overwrite"]) == 0  # an export replaces an export
    assert "train: 5 rows" in capsys.readouterr().out and split_sizes(out)["train"]["num_examples"] == 5
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    (out / planted).write_text("mine")
    before = files_of(tmp_path)
    assert main(["export", "sample", str(out), "--overwrite"]) == 2
    line = capsys.readouterr().err.strip()
    name = planted.split("/")[1]
    assert line == (f"imagenet-think export: error: {out}/data holds {name!r}, which no export writes; --overwrite "
                    "replaces only a previous export: move it away or choose another output directory")
    assert files_of(tmp_path) == before  # the planted file, the earlier export and no staging directory left
    with pytest.raises(FileExistsError, match=f"holds {name!r}, which no export writes; `overwrite` replaces only"):
        export_hub_layout("sample", out, overwrite=True)
    assert files_of(tmp_path) == before


def test_a_readme_in_out_dir_is_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    assert main(["export", "sample", str(out), "--limit", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"imagenet-think export: error: {out}/README.md exists: pass --overwrite to replace it with this export's card")
    assert files_of(tmp_path) == {"out/README.md": b"my notes"}  # nothing written
    assert main(["export", "sample", str(out), "--limit", "2", "--overwrite"]) == 0
    assert "ImageNet-Think" in (out / "README.md").read_text() and split_sizes(out)["train"]["num_examples"] == 2


def run_export(tmp_path, env_changes: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), **env_changes)
    command = [sys.executable, "-m", "imagenet_think.cli", "export", "sample", str(tmp_path / "out"), "--push-to-hub", "me/corpus"]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def test_push_to_hub_offline_fails_before_any_work(tmp_path):
    result = run_export(tmp_path, {"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "imagenet-think export: error: cannot push to me/corpus: the Hugging Face Hub is unreachable "
        "(HF_HUB_OFFLINE=1 or no network); nothing was written. Export without --push-to-hub, then upload the "
        "directory from a machine online"
    )
    assert not (tmp_path / "out").exists()


def test_push_to_hub_checks_the_login_before_any_work(tmp_path, empty_hub):
    online = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": empty_hub.url}
    result = run_export(tmp_path, online)
    assert result.returncode == 2 and "cannot push to me/corpus: not logged in" in result.stderr
    result = run_export(tmp_path, {**online, "HF_TOKEN": "hf_not_a_real_token"})
    assert result.returncode == 2 and "cannot push to me/corpus: the Hub refused the token" in result.stderr
    assert [p for p in empty_hub.paths if p.startswith("/api/whoami")] and not (tmp_path / "out").exists()
