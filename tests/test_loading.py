"""imagenet_think.load_dataset over the sample, Hub-layout and published-layout directories."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import imagenet_think
from imagenet_think import schema
from imagenet_think.loading import OfflineError
from imagenet_think.normalize import LayoutError
from imagenet_think.split import is_validation
from imagenet_think.writer import export_hub_layout, write_shard, write_split_shards


def rows_by_id(ds) -> dict:
    return {row["id"]: row for row in ds}


def train_shard(corpus: Path) -> Path:
    """The train file of a copy of the sample (Hub layout: one file per split)."""
    return corpus / "data" / "train-00000-of-00001.parquet"


@pytest.mark.parametrize("config", schema.CONFIGS)
def test_sample_loads_typed_map_and_streaming(config, sample_table):
    ds = imagenet_think.load_dataset("sample", config, split="train")
    assert ds.features == schema.FEATURES[config]
    train = [r for r in sample_table.select(["id", "status_1", "status_2"]).to_pylist() if not is_validation(r["id"])]
    present = {pair: sum(r[f"status_{pair}"] != "missing" for r in train) for pair in (1, 2)}
    expected = {"default": len(train), "glm": present[1], "kimi": present[2], "pairs": present[1] + present[2]}
    assert len(ds) == expected[config]
    streamed = list(imagenet_think.load_dataset("sample", config, split="train", streaming=True))
    assert [r["id"] for r in streamed] == ds["id"]
    first = ds[0]
    assert isinstance(first["image"], Image.Image) and first["image"].size == (256, 256)
    assert first["question"] == imagenet_think.PROMPT


def test_pairs_interleave_teachers_and_single_teacher_configs_agree():
    pairs = imagenet_think.load_dataset("sample", "pairs", split="train")
    assert pairs["teacher"][:4] == [1, 2, 1, 2]
    assert pairs["id"][0] == pairs["id"][1]
    glm = imagenet_think.load_dataset("sample", "glm", split="train")
    default = imagenet_think.load_dataset("sample", split="train")
    assert glm["answer"] == default["answer_1"]
    assert set(glm["model"]) == {schema.TEACHERS[1]}


def test_sample_carries_edge_case_statuses():
    ds = imagenet_think.load_dataset("sample", split="train")
    statuses = set(ds["status_1"]) | set(ds["status_2"])
    assert {"ok", "unclosed_think", "malformed", "empty_answer", "no_think"} <= statuses
    for row in ds:
        for pair in (1, 2):
            if row[f"status_{pair}"] == "unclosed_think":
                assert row[f"answer_{pair}"] == "" and row[f"think_{pair}"]


def test_hash_split_is_deterministic_and_disjoint():
    dd = imagenet_think.load_dataset("sample", validation_fraction=0.3)
    train, validation = set(dd["train"]["id"]), set(dd["validation"]["id"])
    assert train and validation and not train & validation and len(train | validation) == 24
    again = imagenet_think.load_dataset("sample", validation_fraction=0.3, split="validation")
    assert set(again["id"]) == validation
    stream = imagenet_think.load_dataset("sample", split="validation", validation_fraction=0.3, streaming=True)
    assert {r["id"] for r in stream} == validation


def test_export_roundtrip_loads_without_the_package(tmp_path):
    out = tmp_path / "imagenet-think"
    export_hub_layout("sample", out, validation_fraction=0.3, max_shard_bytes=30_000)
    shards = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert shards[0].startswith("train-00000-of-") and any(s.startswith("validation-") for s in shards)
    assert len([s for s in shards if s.startswith("train")]) > 1
    code = (
        "import datasets, json, sys; d = datasets.load_dataset(sys.argv[1]);"
        "g = datasets.load_dataset(sys.argv[1], 'glm_1', split='train');"
        "k = datasets.load_dataset(sys.argv[1], 'kimi_2', split='train');\n"
        "try:\n    datasets.load_dataset(sys.argv[1], 'glm', split='train'); glm = 'loaded'\n"
        "except ValueError as error:\n    glm = str(error)\n"
        "print(json.dumps([d['train'].features.to_dict(), len(d['train']), len(d['validation']), g.column_names,"
        " k.column_names, glm, d['train'][0]['image'].size, [m for m in sys.modules if m.startswith('imagenet_think')]]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    features, n_train, n_val, glm_1, kimi_2, glm, size, ours_imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert datasets.Features.from_dict(features) == schema.FEATURES["default"]
    assert n_train + n_val == 24 and n_val > 0
    for columns, pair in ((glm_1, 1), (kimi_2, 2)):
        assert columns == [*schema.IDENTITY_COLUMNS, *(f"{name}_{pair}" for name in schema.PAIR_FIELDS)]
    # one config name, one meaning: plain datasets has no 'glm' here, the package's 'glm' renames the columns
    assert "'glm' not found" in glm, glm
    assert imagenet_think.load_dataset(str(out), "glm", split="train").column_names == list(schema.FEATURES["glm"])
    assert size == [256, 256] and ours_imported == []
    ours = imagenet_think.load_dataset(str(out), "pairs", validation_fraction=0.3)
    assert len(ours["train"]) + len(ours["validation"]) == 48
    stream = imagenet_think.load_dataset(str(out), split="train", streaming=True, validation_fraction=0.3)
    assert stream.num_shards == len([s for s in shards if s.startswith("train")])  # one shard per file


def test_rewritten_directory_is_not_served_from_stale_cache(tmp_path):
    out = tmp_path / "imagenet-think"
    export_hub_layout("sample", out, limit=5)
    cache = str(tmp_path / "cache")
    assert len(datasets.load_dataset(str(out), split="train", cache_dir=cache)) == 5
    assert len(imagenet_think.load_dataset(str(out), split="train", cache_dir=cache)) == 5
    export_hub_layout("sample", out, limit=7, overwrite=True)
    assert len(datasets.load_dataset(str(out), split="train", cache_dir=cache)) == 7
    assert len(imagenet_think.load_dataset(str(out), split="train", cache_dir=cache)) == 7


def test_export_refuses_to_overwrite(sample_copy, tmp_path):
    before = {p.name: p.read_bytes() for p in (sample_copy / "data").iterdir()}
    with pytest.raises(FileExistsError, match="data is not empty: pass `overwrite=True`"):
        export_hub_layout("sample", sample_copy)
    assert {p.name: p.read_bytes() for p in (sample_copy / "data").iterdir()} == before


@pytest.mark.parametrize("config", schema.CONFIGS)
def test_published_layout_is_normalised(published_dir, config):
    ds = imagenet_think.load_dataset(str(published_dir), config, split="train", validation_fraction=0.0)
    assert ds.features == schema.FEATURES[config]
    sample = rows_by_id(datasets.concatenate_datasets(list(imagenet_think.load_dataset("sample", config).values())))
    assert set(sample) == set(ds["id"])
    streamed = imagenet_think.load_dataset(str(published_dir), config, split="train", streaming=True, validation_fraction=0.0)
    assert [r["id"] for r in streamed] == ds["id"]


def test_published_layout_derives_provenance(published_dir):
    ds = imagenet_think.load_dataset(str(published_dir), split="train", validation_fraction=0.0)
    sample = rows_by_id(datasets.concatenate_datasets(list(imagenet_think.load_dataset("sample").values())))
    assert len(sample) == len(ds)
    for row in ds:
        ref = sample[row["id"]]
        assert row["wnid"] == ref["wnid"] and row["label"] == ref["label"] and row["label"]
        assert row["model_1"] == schema.TEACHERS[1] and row["model_2"] == schema.TEACHERS[2]
        for pair in (1, 2):
            assert row[f"answer_{pair}"] == ref[f"answer_{pair}"]
            if ref[f"status_{pair}"] in ("ok", "no_think", "empty_answer"):
                assert row[f"status_{pair}"] == ref[f"status_{pair}"]
        assert row["generation"] == []


def test_published_columns_with_leftover_markers_are_resplit(tmp_path):
    image = {"bytes": b"", "path": "n07753592_n07753592_1.JPEG"}
    table = pa.table(
        {
            "image": [image, image | {"path": "n07753592_n07753592_2.JPEG"}],
            "question": [imagenet_think.PROMPT] * 2,
            "think_1": ["Yellow and curved.", "<think>\nRound"],
            "answer_1": ["<answer>A <|begin_of_box|>banana<|end_of_box|></answer>", ""],
            "think_2": ["◁think▷Curved◁/think▷", ""],
            "answer_2": ["A banana.", "A banana."],
        }
    )
    (tmp_path / "d").mkdir()
    pq.write_table(table, tmp_path / "d" / "train.parquet")
    ds = imagenet_think.load_dataset(str(tmp_path / "d"), split="train", validation_fraction=0.0, decode_images=False)
    assert (ds[0]["answer_1"], ds[0]["status_1"]) == ("A banana", "ok")
    assert (ds[0]["think_2"], ds[0]["answer_2"], ds[0]["status_2"]) == ("Curved", "A banana.", "ok")
    assert (ds[1]["think_1"], ds[1]["answer_1"], ds[1]["status_1"]) == ("Round", "", "unclosed_think")
    assert ds[1]["status_2"] == "no_think"


def test_directory_without_parquet_names_the_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="empty: no Parquet files found"):
        imagenet_think.load_dataset(str(tmp_path / "empty"))


def test_missing_column_names_file_and_column(published_dir):
    shard = next(published_dir.glob("data/*.parquet"))
    pq.write_table(pq.read_table(shard).drop_columns(["think_2"]), shard)
    with pytest.raises(LayoutError, match=r"train-00000-of-00001\.parquet: missing column\(s\) think_2"):
        imagenet_think.load_dataset(str(published_dir), split="train")
    with pytest.raises(LayoutError, match="missing column"):
        next(iter(imagenet_think.load_dataset(str(published_dir), split="train", streaming=True)))


def test_truncated_parquet_names_the_file(sample_copy):
    shard = train_shard(sample_copy)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(LayoutError, match=rf"{shard.name}.*not a readable Parquet file"):
        imagenet_think.load_dataset(str(sample_copy))


def test_corrupt_image_error_names_the_row(sample_copy):
    shard = train_shard(sample_copy)
    table = pq.read_table(shard)
    images = table["image"].to_pylist()
    images[3] = {"bytes": images[3]["bytes"][:50] + b"garbage" * 10, "path": images[3]["path"]}
    table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images, table.schema.field("image").type))
    pq.write_table(table, shard)  # keeps the file's split label
    ds = imagenet_think.load_dataset(str(sample_copy), split="train")
    bad_id = ds.select([3]).with_format(None)["id"][0]
    assert ds[2]["image"].size == (256, 256)
    with pytest.raises(ValueError, match=rf"row '{bad_id}'"):
        ds[3]["image"]
    stream = imagenet_think.load_dataset(str(sample_copy), split="train", streaming=True)
    with pytest.raises(ValueError, match=rf"row '{bad_id}'"):
        list(stream)


def test_offline_hub_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(OfflineError, match="unreachable.*load_dataset\\(\"sample\"\\)"):
        imagenet_think.load_dataset("imagenet-think")
    assert time.monotonic() - start < 10  # no 24 s retry storm (generous bound: not a benchmark)


def test_unknown_config_and_bad_fraction():
    with pytest.raises(ValueError, match="unknown config 'cot'"):
        imagenet_think.load_dataset("sample", "cot")
    with pytest.raises(ValueError, match="`validation_fraction` must be in"):
        imagenet_think.load_dataset("sample", validation_fraction=1.0)


def test_decode_images_false_gives_bytes():
    ds = imagenet_think.load_dataset("sample", split="train", decode_images=False)
    image = ds[0]["image"]
    assert image["path"].endswith(".JPEG") and Image.open(io.BytesIO(image["bytes"])).format == "JPEG"


def test_empty_hash_split_is_an_empty_typed_dataset(tmp_path, sample_table):
    table = sample_table
    keep = [i for i, row_id in enumerate(table["id"].to_pylist()) if not is_validation(row_id)][:5]
    (tmp_path / "d").mkdir()
    pq.write_table(table.take(keep), tmp_path / "d" / "train.parquet")
    dd = imagenet_think.load_dataset(str(tmp_path / "d"))
    assert len(dd["train"]) == 5 and len(dd["validation"]) == 0
    assert dd["validation"].features == schema.FEATURES["default"]


def test_offline_hub_source_is_served_from_a_cached_listing(monkeypatch, tmp_path, sample_table):
    import json as _json

    from imagenet_think.loading import _hub_listing_path, local_data_files, sample_dir

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    listing = _hub_listing_path("someone/corpus", None)
    listing.parent.mkdir(parents=True)
    listing.write_text("{not json")
    with pytest.raises(OfflineError, match="someone/corpus"):
        imagenet_think.load_dataset("someone/corpus")
    listing.write_text(_json.dumps({"files": local_data_files(sample_dir()), "commit": "abc123"}))
    ds = imagenet_think.load_dataset("someone/corpus", cache_dir=str(tmp_path / "c"))
    n_validation = sum(is_validation(i) for i in sample_table["id"].to_pylist())
    assert {split: len(rows) for split, rows in ds.items()} == {"train": len(sample_table) - n_validation, "validation": n_validation}


def test_presplit_corpus_without_validation_rows_gives_an_empty_validation_split(tmp_path, sample_table):
    train_only = sample_table.filter(pa.array([not is_validation(i) for i in sample_table["id"].to_pylist()]))
    assert [p.name for p in write_split_shards(train_only, tmp_path / "d" / "data")] == ["train-00000-of-00001.parquet"]
    validation = imagenet_think.load_dataset(str(tmp_path / "d"), split="validation")
    assert len(validation) == 0 and validation.features == schema.FEATURES["default"]


def test_the_sample_splits_follow_the_id_hash(sample_table):
    ids = sample_table["id"].to_pylist()
    dd = imagenet_think.load_dataset("sample", decode_images=False)
    assert set(dd["validation"]["id"]) == {i for i in ids if is_validation(i)} == {"n09472597_n09472597_1004"}
    assert set(dd["train"]["id"]) == {i for i in ids if not is_validation(i)}
    plain = datasets.load_dataset(str(imagenet_think.loading.sample_dir()), cache_dir=None)  # the card alone
    assert {split: sorted(rows["id"]) for split, rows in plain.items()} == {s: sorted(dd[s]["id"]) for s in dd}


def test_a_file_whose_split_label_disagrees_with_its_ids_is_refused(sample_copy):
    every_row = pa.concat_tables(pq.read_table(p) for p in sorted((sample_copy / "data").glob("*.parquet")))
    leaked = every_row.replace_schema_metadata(pq.read_schema(train_shard(sample_copy)).metadata)
    (sample_copy / "data" / "validation-00000-of-00001.parquet").unlink()
    pq.write_table(leaked, train_shard(sample_copy))  # labelled train, holding the validation row too
    row = every_row["id"].to_pylist().index("n09472597_n09472597_1004")
    message = rf"train-00000-of-00001\.parquet: labelled split 'train' .*row {row} \(id 'n09472597_n09472597_1004'\) hashes to 'validation'"
    with pytest.raises(LayoutError, match=message):
        imagenet_think.load_dataset(str(sample_copy))
    with pytest.raises(LayoutError, match=message):
        list(imagenet_think.load_dataset(str(sample_copy), split="train", streaming=True))
    refiltered = imagenet_think.load_dataset(str(sample_copy), validation_fraction=0.02)  # label not trusted: re-split
    assert len(refiltered["train"]) + len(refiltered["validation"]) == every_row.num_rows


def test_write_shard_refuses_a_split_label_its_ids_disagree_with(tmp_path, sample_table):
    path = tmp_path / "data" / "train-00000-of-00001.parquet"
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.parquet: labelled split 'train' .*hashes to 'validation'"):
        write_shard(sample_table, path, split="train", validation_fraction=0.01)
    assert not path.parent.exists() or not any(path.parent.iterdir())
    with pytest.raises(ValueError, match="split label 'train' at validation_fraction None is not a hash split"):
        write_shard(sample_table, path, split="train")
    paths = write_split_shards(sample_table, tmp_path / "data", validation_fraction=0.3)
    by_split = {p.name.split("-")[0]: set(pq.read_table(p)["id"].to_pylist()) for p in paths}
    assert by_split == {
        "train": {i for i in sample_table["id"].to_pylist() if not is_validation(i, 0.3)},
        "validation": {i for i in sample_table["id"].to_pylist() if is_validation(i, 0.3)},
    }


def test_make_sample_writes_the_bundled_sample(tmp_path, sample_table):
    script = os.path.join(os.path.dirname(__file__), "..", "builder_scripts", "make_sample.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, script, "--out", str(tmp_path / "s")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "s" / "data").glob("*.parquet"))
    bundled = sorted(imagenet_think.loading.sample_dir().glob("data/*.parquet"))
    assert [p.name for p in written] == [p.name for p in bundled] == ["train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    for mine, theirs in zip(written, bundled):
        assert pq.read_table(mine).equals(pq.read_table(theirs), check_metadata=True), mine.name
    assert (tmp_path / "s" / "README.md").read_text() == (imagenet_think.loading.sample_dir() / "README.md").read_text()


def test_null_id_names_file_and_row(sample_copy):
    shard = train_shard(sample_copy)
    table = pq.read_table(shard)
    ids = table["id"].to_pylist()
    ids[5] = None
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))
    pq.write_table(table, shard)
    with pytest.raises(LayoutError, match=rf"{shard.name}: row 5: null id"):
        imagenet_think.load_dataset(str(sample_copy))


def test_an_id_in_two_files_is_refused_naming_both_files(sample_copy):
    """Two regenerate runs with different --num-shards on one OUT_DIR wrote an image twice: the
    loader names the id and both files instead of serving the row twice (map and streaming)."""
    shard = train_shard(sample_copy)
    table = pq.read_table(shard)
    copy = shard.with_name("train-00001-of-00002.parquet")
    pq.write_table(table.slice(3, 2), copy)  # no split label: every file is read and re-split by hash
    shard.rename(shard.with_name("train-00000-of-00002.parquet"))
    (sample_copy / "data" / "validation-00000-of-00001.parquet").unlink()
    repeated = table["id"][3].as_py()
    message = rf"id '{repeated}' is in \S*train-00000-of-00002\.parquet and again in \S*train-00001-of-00002\.parquet: a corpus holds each id once"
    with pytest.raises(LayoutError, match=message):
        imagenet_think.load_dataset(str(sample_copy))
    with pytest.raises(LayoutError, match=message):
        list(imagenet_think.load_dataset(str(sample_copy), split="train", streaming=True))
    copy.unlink()  # one copy moved away: loads
    assert sorted(imagenet_think.load_dataset(str(sample_copy), split="train", columns=["id"])["id"]) == sorted(table["id"].to_pylist())


def test_alias_wins_over_a_same_named_directory(monkeypatch, tmp_path):
    from imagenet_think.loading import resolve_source

    (tmp_path / "imagenet-think" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineError, match="krishnateja95/ImageNet-Think"):
        resolve_source("imagenet-think")
    with pytest.raises(FileNotFoundError, match="no Parquet files found"):
        resolve_source("./imagenet-think")


def test_a_missing_path_that_looks_like_a_hub_id_says_both(monkeypatch, tmp_path, empty_hub):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineError, match=r"^data/corpus: no such directory, and not reachable as a Hub id: the Hugging"):
        imagenet_think.load_dataset("data/corpus")
    code = "import imagenet_think; imagenet_think.load_dataset('data/corpus')"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": empty_hub.url, "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.stderr.splitlines()[-1] == (
        "FileNotFoundError: data/corpus: no such directory, and no dataset data/corpus on the Hub "
        "(or it is private: log in with `hf auth login`)"
    )
    assert [p for p in empty_hub.paths if p.startswith("/api/datasets/data/corpus")]


@pytest.fixture
def corpus_with_missing_pairs(sample_copy):
    """The sample with pair 2 of rows 0 and 3 and pair 1 of row 5 never produced (status missing)."""
    shard = next(sample_copy.glob("data/train-*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    for index, pair in ((0, 2), (3, 2), (5, 1)):
        rows[index].update({f"think_{pair}": "", f"answer_{pair}": "", f"status_{pair}": "missing"})
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    return sample_copy, [rows[5]["id"]], [rows[0]["id"], rows[3]["id"]]


@pytest.mark.parametrize("columns", [None, ["id", "teacher"]])
def test_single_pair_configs_drop_missing_pairs(corpus_with_missing_pairs, columns):
    corpus, missing_1, missing_2 = corpus_with_missing_pairs
    ids = imagenet_think.load_dataset(str(corpus), split="train", columns=["id"])["id"]
    pairs = imagenet_think.load_dataset(str(corpus), "pairs", split="train", columns=columns)
    expected = [(i, t) for i in ids for t in (1, 2) if i not in (missing_1 if t == 1 else missing_2)]
    assert list(zip(pairs["id"], pairs["teacher"])) == expected
    for config, missing in (("glm", missing_1), ("kimi", missing_2)):
        single = imagenet_think.load_dataset(str(corpus), config, split="train", columns=columns)
        assert single["id"] == [i for i in ids if i not in missing]
    streamed = imagenet_think.load_dataset(str(corpus), "pairs", split="train", streaming=True, columns=columns)
    assert [(r["id"], r["teacher"]) for r in streamed] == expected


def arrow_cache_columns(dataset) -> set:
    names = set()
    for entry in dataset.cache_files:
        with pa.memory_map(entry["filename"]) as source:
            names.update(pa.ipc.open_stream(source).schema.names)
    return names


def test_columns_keep_images_out_of_the_arrow_cache(tmp_path):
    cache = str(tmp_path / "cache")
    full = imagenet_think.load_dataset("sample", split="train", cache_dir=cache, decode_images=False)
    texts = imagenet_think.load_dataset("sample", split="train", cache_dir=cache, columns=["answer_1", "id"])
    assert "image" in arrow_cache_columns(full)
    assert texts.column_names == ["id", "answer_1"] == sorted(arrow_cache_columns(texts), key=texts.column_names.index)
    assert texts["answer_1"] == full["answer_1"] and texts.features == datasets.Features(
        {name: schema.FEATURES["default"][name] for name in ("id", "answer_1")}
    )
    glm = imagenet_think.load_dataset("sample", "glm", split="train", cache_dir=cache, columns=["think", "teacher"])
    assert glm.column_names == ["teacher", "think"] and arrow_cache_columns(glm) == {"teacher", "think"}
    assert glm["think"] == full["think_1"] and set(glm["teacher"]) == {1}


def test_columns_of_the_published_layout_and_unknown_columns(published_dir):
    ds = imagenet_think.load_dataset(str(published_dir), "kimi", split="train", validation_fraction=0.0, columns=["id", "answer"])
    full = imagenet_think.load_dataset(str(published_dir), "kimi", split="train", validation_fraction=0.0)
    assert ds.column_names == ["id", "answer"] and ds["answer"] == full["answer"]
    with pytest.raises(ValueError, match="unknown column\\(s\\) answer_1 for config 'glm'; choose from id, wnid"):
        imagenet_think.load_dataset("sample", "glm", columns=["answer_1"])


def test_stats_and_evaluate_copy_no_image_into_the_arrow_cache(tmp_path, monkeypatch, capsys):
    from imagenet_think.cli import main
    from imagenet_think.evaluate.subset import load_eval_rows

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    assert main(["stats", "sample"]) == 0
    ids, rows = load_eval_rows("sample", size=3, split="all", columns=["answer_1", "think_2"])
    assert rows.column_names == ["answer_1", "think_2"] and len(ids) == 24
    cached = list(tmp_path.rglob("*.arrow"))
    assert len(cached) >= 2
    for file in cached:
        with pa.memory_map(str(file)) as source:
            assert "image" not in pa.ipc.open_stream(source).schema.names, file


def test_published_texts_are_trimmed_of_unicode_whitespace(tmp_path):
    image = {"bytes": b"", "path": "n07753592_n07753592_1.JPEG"}
    texts = {
        "think_1": ["\n  Yellow and curved.\u3000", " \t"],
        "answer_1": ["\xa0A banana.\n", "A banana."],
        "think_2": ["Curved ", ""],
        "answer_2": ["  \n", " A banana. "],
    }
    table = pa.table({"image": [image, image | {"path": "n07753592_n07753592_2.JPEG"}],
                      "question": [imagenet_think.PROMPT] * 2, **texts})
    (tmp_path / "d").mkdir()
    pq.write_table(table, tmp_path / "d" / "train.parquet")
    ds = imagenet_think.load_dataset(str(tmp_path / "d"), split="train", validation_fraction=0.0, decode_images=False)
    for column, raw in texts.items():
        assert ds[column] == [text.strip() for text in raw], column
    assert ds["status_1"] == ["ok", "no_think"] and ds["status_2"] == ["empty_answer", "no_think"]
