"""imagenet_think.regenerate: plan, shards, manifest, failures, CLI, and crash-safe resume
with the real transformers engine on a tiny GLM-4.1V."""

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import imagenet_think
from imagenet_think import schema
from imagenet_think.regenerate import __main__ as cli
from imagenet_think.regenerate import job
from imagenet_think.reasoning import split_reasoning
from imagenet_think.regenerate import runner, scheduler, sources
from imagenet_think.regenerate.engines import Request
from imagenet_think.regenerate.models import get_model
from imagenet_think.writer import write_shard

REPO = Path(__file__).resolve().parent.parent
TEACHERS = {1: get_model("glm"), 2: get_model("kimi")}


def jpeg(size=(240, 230), color=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def image_folder(root: Path, per_synset=3, wnids=("n01440764", "n02084071")) -> Path:
    for i, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True)
        for k in range(per_synset):
            (root / wnid / f"{wnid}_{k}.JPEG").write_bytes(jpeg(color=(i * 100, k * 50, 9)))
    return root


def write_rows(out: Path, items, name: str) -> Path:
    """A shard of rows with no pairs, written by the real writer."""
    rows = [runner.build_row(item, item.read_bytes(), {}, []) for item in items]
    return write_shard(pa.Table.from_pylist(rows, schema=schema.arrow_schema("default")), out / "data" / name)


def stream(out: Path, engines: dict, items, *, written=None, shard_index=0, rows_per_file=1000, **options) -> runner.RunStats:
    """Run ``items`` through ``engines`` into ``out`` as the CLI does (one writer, one scheduler)."""
    with runner.ShardWriter(out, shard_index, rows_per_file, written) as writer:
        return scheduler.Scheduler(engines, writer, progress=False, **options).run(items)


def parquet_ids(out: Path) -> list[str]:
    return [i for ids in runner.ids_by_file(out).values() for i in ids]


# --- engine-free: sharding, plan, manifest, failures -------------------------------------


def test_partition_is_disjoint_complete_stable_and_balanced():
    items = [sources.ImageItem(f"n0_{k}", "n0", "", "file", f"/{k}.jpg") for k in range(2000)]
    shards = [runner.partition(items, 4, index) for index in range(4)]
    ids = [item.id for shard in shards for item in shard]
    assert sorted(ids) == sorted(item.id for item in items)
    assert all(400 < len(shard) < 600 for shard in shards)
    # independent of order and of the other items
    assert runner.partition(items[::-1], 4, 1) == shards[1][::-1]
    assert runner.partition(items[:10], 4, 1) == [i for i in shards[1] if i in items[:10]]
    with pytest.raises(ValueError, match=r"shard index must be in \[0, 4\), got 4"):
        runner.partition(items, 4, 4)


def test_plan_skips_written_and_failed_items_and_limits(tmp_path):
    items = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs")), None).items
    out = tmp_path / "out"
    write_rows(out, items[:2], "train-00007-00000.parquet")  # written by another shard layout
    failures = runner.failures_path(out, 3)
    failures.parent.mkdir(parents=True)
    failures.write_text(json.dumps({"id": items[2].id, "source": items[2].source, "error": "x", "attempts": 3}) + "\n")
    plan = runner.make_plan(items, out, TEACHERS)
    assert (plan.selected, plan.mine, plan.done, plan.failed) == (6, 6, 2, 1)
    assert [i.id for i in plan.todo] == [i.id for i in items[3:]]
    assert plan.max_tokens() == 3 * (8192 + 32768)
    text = plan.describe()
    assert "to generate:       3 images x 2 teachers" in text and "pair 2: kimi" in text
    assert len(runner.make_plan(items, out, TEACHERS, retry_failed=True).todo) == 4
    assert len(runner.make_plan(items, out, TEACHERS, max_items=1).todo) == 1
    mine = runner.make_plan(items, out, TEACHERS, num_shards=2, shard_index=1)
    assert mine.mine == len(runner.partition(items, 2, 1))


def test_the_run_starts_from_the_files_its_plan_read(tmp_path):
    items = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs")), None).items
    out = tmp_path / "out"
    first = write_rows(out, items[:1], "train-00000-00004.parquet")
    plan = runner.make_plan(items, out, TEACHERS)
    assert plan.written == {first: [items[0].id]}
    first.write_bytes(b"PAR1 garbage")  # reading the id columns again would now fail
    stats = stream(out, {}, plan.todo[:1], written=plan.written)
    assert [p.name for p in stats.files] == ["train-00000-00005.parquet"]
    manifest = runner.read_json_lines(runner.manifest_path(out, 0))
    assert [line["ids"] for line in manifest] == [[items[0].id], [plan.todo[0].id]]


def test_unreadable_parquet_in_data_is_an_error_naming_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-00000.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(ValueError, match=r"train-00000-00000\.parquet: cannot read its id column"):
        runner.ids_by_file(tmp_path)


def test_a_null_id_in_data_is_an_error_naming_file_and_row(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["a", None]}, schema=pa.schema([("id", pa.string())])), tmp_path / "data" / "x.parquet")
    with pytest.raises(ValueError, match=r"x\.parquet: row 1 has a null id"):
        runner.ids_by_file(tmp_path)


def shard_files(out: Path, items, num_shards: int) -> None:
    """``items`` written as the shards of a ``num_shards`` run would write them."""
    for shard in range(num_shards):
        mine = runner.partition(items, num_shards, shard)
        if mine:
            write_rows(out, mine, runner.shard_file_name(shard, 0))


def test_the_first_writer_records_the_sharding_and_another_is_refused(tmp_path):
    out = tmp_path / "out"
    with runner.ShardWriter(out, shard_index=1, num_shards=2):
        pass
    assert json.loads(runner.sharding_path(out).read_text()) == {"num_shards": 2}
    with runner.ShardWriter(out, shard_index=0, num_shards=2):  # the same sharding: welcome
        pass
    message = (rf"^{out} was written with --num-shards 2 \(recorded in {runner.sharding_path(out)}\), not 3: one OUT_DIR holds "
               r"one sharding; use --num-shards 2 \(or another OUT_DIR; to change it, delete that file once no process writes OUT_DIR\)$")
    with pytest.raises(ValueError, match=message):
        runner.ShardWriter(out, shard_index=0, num_shards=3).open()
    with runner.ShardWriter(out, shard_index=0, num_shards=2):  # the refused writer released its lock
        pass


def test_the_lock_file_names_its_holder_only_while_held(tmp_path):
    import os

    out = tmp_path / "out"
    with runner.ShardWriter(out, shard_index=0, num_shards=1):
        assert runner.lock_path(out, 0).read_text() == f"{os.getpid()}\n"
    assert runner.lock_path(out, 0).read_text() == ""  # refused or done: no pid to mistake for a holder
    with pytest.raises(ValueError):
        runner.ShardWriter(out, shard_index=0, num_shards=3).open()  # another sharding: refused after the lock
    assert runner.lock_path(out, 0).read_text() == ""


def test_without_a_record_the_files_present_must_fit_the_sharding(tmp_path):
    """An output directory from before the record (or whose record was deleted): its files say
    which sharding wrote them; a sharding they fit is recorded, another is refused naming a row."""
    items = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs", per_synset=5)), None).items
    out = tmp_path / "out"
    shard_files(out, items, 2)
    files = runner.ids_by_file(out)
    with pytest.raises(ValueError, match=r"train-0000[01]-00000\.parquet \(shard [01]\) holds 'n\d+_n\d+_\d', which --num-shards 3 "
                                         r"puts in shard [012]: .* was written with another --num-shards; use that one"):
        runner.check_sharding(out, 3, files)
    assert not runner.sharding_path(out).exists()
    assert runner.check_sharding(out, 2, files) is None  # they fit, nothing recorded yet
    with runner.ShardWriter(out, shard_index=1, num_shards=2):
        pass
    assert runner.recorded_shards(out) == 2


def test_ids_written_twice_are_an_error_naming_them_at_start_and_for_the_card(tmp_path, capsys):
    images = image_folder(tmp_path / "imgs", per_synset=5)
    items = sources.select_items(sources.open_source(images), None).items
    out = tmp_path / "out"
    write_rows(out, items[:4], "train-00000-00000.parquet")
    write_rows(out, items[2:6], "train-00001-00000.parquet")  # as runs with another --num-shards did
    repeated = sorted(i.id for i in items[2:4])
    message = (f"2 ids are written twice in {out / 'data'}, e.g. {repeated[0]!r} in train-00000-00000.parquet and "
               "train-00001-00000.parquet (runs with different --num-shards on one OUT_DIR?): move the files of one run "
               "away (a rerun generates again the images only they held)")
    assert cli.main([str(images), str(out), "--card-only"]) == 2
    assert cli.main([str(images), str(out), "--dry-run"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert lines == [f"imagenet-think regenerate: error: {message}"] * 2
    assert not (out / "README.md").exists()
    (out / "data" / "train-00001-00000.parquet").unlink()  # one copy moved away
    assert cli.main([str(images), str(out), "--card-only"]) == 0 and (out / "README.md").is_file()


def test_manifest_is_rebuilt_from_the_parquet_files_of_its_shard(tmp_path):
    items = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs")), None).items
    out = tmp_path / "out"
    write_rows(out, items[:2], "train-00001-00000.parquet")
    write_rows(out, items[2:3], "train-00001-00004.parquet")
    write_rows(out, items[3:], "train-00002-00000.parquet")
    manifest = runner.manifest_path(out, 1)
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"file": "data/train-00001-00009.parquet", "ids": ["gone"]}\n{"fi')
    runner.rebuild_manifest(out, 1, runner.ids_by_file(out))
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert lines == [
        {"file": "data/train-00001-00000.parquet", "ids": [i.id for i in items[:2]]},
        {"file": "data/train-00001-00004.parquet", "ids": [items[2].id]},
    ]
    assert runner.next_seq(runner.data_files(out), 1) == 5
    assert runner.next_seq(runner.data_files(out), 0) == 0


def test_a_manifest_rewrite_that_fails_leaves_no_temporary_file(tmp_path):
    blocker = runner.manifest_path(tmp_path, 0)
    blocker.mkdir(parents=True)  # the rename onto it fails
    with pytest.raises(OSError):
        runner.rebuild_manifest(tmp_path, 0, {})
    assert [p.name for p in blocker.parent.iterdir()] == [blocker.name]


def test_an_image_without_bytes_or_path_goes_to_failures_and_the_run_goes_on(tmp_path):
    good = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs")), 1).items
    empty = pa.chunked_array([[{"bytes": None, "path": None}]])
    bad = sources.ImageItem("n01440764_bad", "n01440764", "", "dataset", "corpus", "train/0", images=empty)
    stats = stream(tmp_path / "out", {}, [bad, *good], max_attempts=1, max_failure_rate=1.0)
    assert (stats.written, stats.failed) == (1, 1)
    [failure] = runner.read_json_lines(runner.failures_path(tmp_path / "out", 0))
    assert failure["id"] == "n01440764_bad" and "neither bytes nor path" in failure["error"]


def test_a_torn_failure_line_is_skipped_and_the_next_record_stays_whole(tmp_path, caplog):
    path = runner.failures_path(tmp_path, 0)
    path.parent.mkdir()
    path.write_text('{"id": "a", "source": "s", "error": "e", "attempts": 3}\n{"id": "b", "sou')  # killed mid-append
    assert runner.failed_ids(tmp_path) == {"a"}
    assert 'failures-00000.jsonl:2: skipping a torn line \'{"id": "b", "sou\'' in caplog.text
    runner.append_json_line(path, {"id": "c", "source": "s", "error": "e", "attempts": 1})
    assert runner.failed_ids(tmp_path) == {"a", "c"}


def test_only_this_shards_stale_temp_files_are_removed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    mine = data / ".train-00003-00001.parquet.0123abcd.tmp"
    other = data / ".train-00004-00001.parquet.0123abcd.tmp"
    mine.write_bytes(b"half")
    other.write_bytes(b"half, still being written")
    assert runner.remove_stale_temp_files(tmp_path, 3) == [mine]
    assert not mine.exists() and other.exists()


# --- CLI ---------------------------------------------------------------------------------


def test_help_imports_no_heavy_library():
    code = (
        "import sys\nfrom imagenet_think.cli import main\ntry:\n    main(['regenerate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('datasets', 'pandas', 'torch', 'transformers', 'vllm') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip() == "[]", result.stderr


def test_help_documents_every_option_and_the_failure_policy_defaults():
    from imagenet_think.regenerate.engines.openai_engine import DEFAULT_TIMEOUT

    parser = cli.build_parser()
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help or not a.help.strip()]
    assert undocumented == []
    defaults = {a.dest: a.default for a in parser._actions}
    assert (defaults["max_attempts"], defaults["retry_delay"]) == (scheduler.DEFAULT_MAX_ATTEMPTS, scheduler.DEFAULT_RETRY_DELAY)
    assert (defaults["unreachable_after"], defaults["max_failure_rate"]) == (
        scheduler.DEFAULT_UNREACHABLE_AFTER, scheduler.DEFAULT_MAX_FAILURE_RATE)
    assert defaults["request_timeout"] == DEFAULT_TIMEOUT and defaults["max_in_flight"] is None
    # a request timeout that fits a long reasoning output (the longest max_tokens at 20 tokens/s) but is not forever
    longest = max(get_model(name).sampling["max_tokens"] for name in ("glm", "kimi"))
    assert longest / 20 <= DEFAULT_TIMEOUT <= 3600
    text = " ".join(parser.format_help().split())
    retry_delay = f"at most {scheduler.MAX_RETRY_DELAY:g}); after a 'busy' answer, the server's Retry-After instead (cut to that limit)"
    assert f"{retry_delay} (default: {scheduler.DEFAULT_RETRY_DELAY})" in text
    assert "--batch-size" not in text  # batches are gone: requests stream


def test_teacher_choice():
    assert {p: s.name for p, s in job.resolve_teachers(None, None, None).items()} == {1: "glm", 2: "kimi"}
    assert {p: s.name for p, s in job.resolve_teachers(None, "kimi", None).items()} == {1: "kimi"}
    with pytest.raises(ValueError, match="either --teachers or --pair-1/--pair-2"):
        job.resolve_teachers("glm", "kimi", None)
    with pytest.raises(ValueError, match="'glm' and 'glm' both fill pair 1"):
        job.resolve_teachers("glm,glm", None, None)
    with pytest.raises(ValueError, match="no pair number: place it with --pair-1 or --pair-2"):
        job.resolve_teachers("r1-onevision-7b", None, None)
    with pytest.raises(KeyError, match="unknown model 'gpt'"):
        job.resolve_teachers("gpt", None, None)


def test_custom_teacher_from_a_registry_file(tmp_path):
    registry = tmp_path / "models.json"
    registry.write_text(json.dumps({"my-vlm": {"model_id": "me/my-vlm", "sampling": {"max_tokens": 100}}}))
    chosen = job.resolve_teachers(None, None, "my-vlm", str(registry), {"temperature": 0.5})
    assert list(chosen) == [2]
    assert chosen[2].model_id == "me/my-vlm" and dict(chosen[2].sampling) == {"max_tokens": 100, "temperature": 0.5}


def test_engine_args_go_to_the_constructor_or_the_backend():
    from imagenet_think.regenerate.engines.hf_engine import TransformersEngine
    from imagenet_think.regenerate.engines.openai_engine import OpenAIEngine

    options = {"device": "cpu", "attn_implementation": "eager"}
    assert job.engine_kwargs(TransformersEngine, options) == {"device": "cpu", "model_kwargs": {"attn_implementation": "eager"}}
    assert job.engine_kwargs(OpenAIEngine, {"max_in_flight": 4}) == {"max_in_flight": 4}
    with pytest.raises(ValueError, match=r"--engine-arg \['gpu_memory_utilization'\] not understood by the openai-server engine"):
        job.engine_kwargs(OpenAIEngine, {"gpu_memory_utilization": 0.5})


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    image_folder(tmp_path / "imgs")
    status = cli.main([str(tmp_path / "imgs"), str(tmp_path / "out"), "-n", "5", "--num-shards", "2", "--dry-run"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "images selected:   5" in printed and "shard:             0 of 2" in printed
    assert "pair 1: glm" in printed and "pair 2: kimi" in printed
    assert not (tmp_path / "out").exists()


def test_push_to_hub_offline_fails_before_any_work(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    image_folder(tmp_path / "imgs")
    status = cli.main([str(tmp_path / "imgs"), str(tmp_path / "out"), "--push-to-hub", "me/corpus"])
    assert status == 2
    assert "regenerate: error: cannot push to me/corpus: the Hugging Face Hub is unreachable" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_options_are_clear_errors(tmp_path, capsys):
    image_folder(tmp_path / "imgs")
    base = [str(tmp_path / "imgs"), str(tmp_path / "out")]
    assert cli.main(base + ["--shard-index", "3", "--num-shards", "2"]) == 2
    assert cli.main(base + ["--engine", "transformers", "--base-url", "http://x:8000/v1", "--teachers", "glm"]) == 2
    assert cli.main(base + ["--engine-arg", "novalue"]) == 2
    assert cli.main(base + ["--max-in-flight", "0"]) == 2
    # the run's settings are refused before the lock, the selection or a model load
    bad = [("--max-attempts", "0"), ("--retry-delay", "-0.5"), ("--unreachable-after", "0"), ("--max-failure-rate", "1.5"),
           ("--rows-per-file", "0"), ("--request-timeout", "0")]
    for option, value in bad:
        assert cli.main(base + [option, value]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [
        "imagenet-think regenerate: error: shard index must be in [0, 2), got 3",
        "imagenet-think regenerate: error: --base-url is not used by the transformers engine",
        "imagenet-think regenerate: error: --engine-arg expects KEY=VALUE, got 'novalue'",
        "imagenet-think regenerate: error: --max-in-flight must be at least 1, got 0",
        "imagenet-think regenerate: error: --max-attempts must be at least 1, got 0",
        "imagenet-think regenerate: error: --retry-delay must be >= 0, got -0.5",
        "imagenet-think regenerate: error: --unreachable-after must be > 0, got 0.0",
        "imagenet-think regenerate: error: --max-failure-rate must be in [0, 1], got 1.5",
        "imagenet-think regenerate: error: --rows-per-file must be at least 1, got 0",
        "imagenet-think regenerate: error: --request-timeout must be > 0, got 0.0",
    ]
    assert not (tmp_path / "out").exists()


# --- the real engine on a tiny model -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_glm4v(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.fixtures.tiny_glm4v import build_tiny_glm4v

    return build_tiny_glm4v(tmp_path_factory.mktemp("tiny-glm4v"))


@pytest.fixture(scope="module")
def glm_engine(tiny_glm4v):
    from imagenet_think.regenerate.engines import make_engine

    with make_engine("transformers", get_model("glm"), model_path=tiny_glm4v, sampling={"max_tokens": 4}) as engine:
        yield engine


@pytest.mark.slow
def test_an_image_that_fails_is_retried_then_logged_and_skipped(tmp_path, glm_engine):
    root = image_folder(tmp_path / "imgs", per_synset=2, wnids=("n01440764",))
    bad = root / "n01440764" / "n01440764_bad.JPEG"
    noisy = io.BytesIO()
    Image.effect_noise((240, 230), 80).convert("RGB").save(noisy, "JPEG")
    bad.write_bytes(noisy.getvalue()[: len(noisy.getvalue()) // 2])  # header intact, pixels cut: fails decoding only
    # the selection would reject it ("truncated JPEG"): unchecked, it reaches the engine, which fails on it
    items = sources.select_items(sources.open_source(root), None, min_size=0, max_pixels=0).items
    assert len(items) == 3
    out = tmp_path / "out"
    stats = stream(out, {1: glm_engine}, items, max_attempts=2, retry_delay=0, max_failure_rate=1.0)
    assert (stats.written, stats.failed) == (2, 1)
    [failure] = [json.loads(line) for line in runner.failures_path(out, 0).read_text().splitlines()]
    assert failure["id"] == "n01440764_n01440764_bad" and failure["source"] == str(bad)
    assert failure["attempts"] == 2 and failure["error"].startswith("glm: ") and "truncated" in failure["error"]
    assert runner.make_plan(items, out, {1: get_model("glm")}).todo == []
    assert [i.id for i in runner.make_plan(items, out, {1: get_model("glm")}, retry_failed=True).todo] == [failure["id"]]


@pytest.mark.slow
def test_rows_hold_the_teachers_result_and_a_custom_pair_placement(tmp_path, glm_engine):
    items = sources.select_items(sources.open_source(image_folder(tmp_path / "imgs", per_synset=1)), None).items
    out = tmp_path / "out"
    stream(out, {2: glm_engine}, items, rows_per_file=1)
    table = pq.read_table(runner.data_files(out)[0])
    row = table.to_pylist()[0]
    assert row["model_2"] == "zai-org/GLM-4.1V-9B-Thinking" and row["num_tokens_2"] == 4
    assert (row["model_1"], row["think_1"], row["answer_1"], row["status_1"]) == ("", "", "", "missing")
    [generation] = row["generation"]
    assert generation["pair"] == 2 and generation["engine"].startswith("transformers ")
    assert json.loads(generation["sampling"])["max_tokens"] == 4
    # the raw text is what the engine writes for this image (greedy: the same again), and the
    # pair's columns are its split in GLM's style, cut at max_tokens
    image = next(item for item in items if item.id == row["id"]).read_bytes()
    [again] = glm_engine.generate([Request(row["id"], image)])
    assert generation["raw"] == again.raw and row["finish_reason_2"] == again.finish_reason == "length"
    split = split_reasoning(again.raw, "glm", finish_reason="length")
    assert (row["think_2"], row["answer_2"], row["status_2"]) == (split.think, split.answer, split.status)
    assert row["image"]["path"] == f"{row['id']}.JPEG"
    assert schema.FEATURES["default"].arrow_schema.names == table.schema.names
    assert len(runner.data_files(out)) == 2


def regenerate_command(tiny: str, out: Path, count: int) -> list[str]:
    return [
        sys.executable, "-m", "imagenet_think.regenerate", "sample", str(out), "-n", str(count),
        "--teachers", "glm", "--engine", "transformers", "--model-path", f"glm={tiny}",
        "--sampling", "max_tokens=3", "--engine-arg", "batch_size=1", "--rows-per-file", "1", "--no-progress",
    ]  # fmt: skip


def wait_for_rows(out: Path, process: subprocess.Popen, more_than: int, seconds: float) -> None:
    """Until ``out`` holds more than ``more_than`` rows, the process ends, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and len(parquet_ids(out)) <= more_than and time.monotonic() < deadline:
        time.sleep(0.02)


def check_no_duplicates(out: Path) -> list[str]:
    ids = parquet_ids(out)
    assert not [i for i, n in Counter(ids).items() if n > 1]
    return ids


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_exactly_one_row_per_image(tmp_path, tiny_glm4v):
    rng = random.Random(20251002)
    out = tmp_path / "out"
    count = 8
    command = regenerate_command(tiny_glm4v, out, count)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    kills = 0
    for attempt in range(3):
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        written = len(parquet_ids(out))
        if attempt == 0:  # anywhere in start-up (imports, selection, model loading) or the first row
            wait_for_rows(out, process, written, rng.uniform(0.5, 6.0))
        else:  # once this run made progress, anywhere before or in the write of its next row
            wait_for_rows(out, process, written, 600)
            wait_for_rows(out, process, written + 1, rng.uniform(0.0, 0.8))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        check_no_duplicates(out)
    assert kills == 3
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]

    wanted = [item.id for item in sources.select_items(sources.open_source("sample"), count).items]
    assert sorted(check_no_duplicates(out)) == sorted(wanted)
    assert not list((out / "data").glob(".*.tmp"))
    manifest = [json.loads(line) for line in runner.manifest_path(out, 0).read_text().splitlines()]
    assert sorted(i for line in manifest for i in line["ids"]) == sorted(wanted)
    assert sorted(line["file"] for line in manifest) == sorted(f"data/{f.name}" for f in runner.data_files(out))
    corpus = imagenet_think.load_dataset(str(out), split="train", validation_fraction=0.0)
    assert sorted(corpus["id"]) == sorted(wanted)
    assert set(corpus["status_2"]) == {"missing"} and set(corpus["model_1"]) == {"zai-org/GLM-4.1V-9B-Thinking"}
    sample = imagenet_think.load_dataset("sample", split="train", validation_fraction=0.0, decode_images=False)
    labels = dict(zip(sample["id"], sample["label"]))
    assert all(labels[row["id"]] == row["label"] for row in corpus.select_columns(["id", "label"]))
    assert (out / "README.md").is_file()
    # a rerun with everything written generates nothing and changes nothing
    files = runner.data_files(out)
    assert subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0
    assert runner.data_files(out) == files


# --- scale-out scripts -------------------------------------------------------------------


def run_script(name: str, args: list, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(REPO / "builder_scripts" / name), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True)  # fmt: skip


def test_slurm_array_task_is_the_shard(tmp_path):
    image_folder(tmp_path / "imgs")
    args = [tmp_path / "imgs", tmp_path / "out", "--dry-run"]
    done = run_script("slurm_regenerate.sh", args, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_MAX="2")
    assert done.returncode == 0, done.stderr
    assert "shard:             1 of 3" in done.stdout
    rerun = run_script("slurm_regenerate.sh", args, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_MAX="2", NUM_SHARDS="8")
    assert "shard:             1 of 8" in rerun.stdout
    wrong = run_script("slurm_regenerate.sh", args, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_MAX="2")
    assert wrong.returncode == 2 and "array indices must start at 0" in wrong.stderr
    outside = run_script("slurm_regenerate.sh", args, SLURM_ARRAY_TASK_ID="")
    assert outside.returncode != 0 and "submit with sbatch --array=0-N" in outside.stderr


@pytest.mark.slow
def test_multi_gpu_script_runs_a_process_per_gpu_on_disjoint_shards(tmp_path, tiny_glm4v):
    images = image_folder(tmp_path / "imgs", per_synset=3)
    out = tmp_path / "out"
    args = [images, out, "--teachers", "glm", "--engine", "transformers", "--model-path", f"glm={tiny_glm4v}",
            "--sampling", "max_tokens=2", "--rows-per-file", "2"]  # fmt: skip
    done = run_script("regenerate_multi_gpu.sh", args, GPUS="0 1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPU 0: shard 0 of 2" in done.stdout and "GPU 1: shard 1 of 2" in done.stdout
    wanted = [item.id for item in sources.select_items(sources.open_source(images), None).items]
    assert sorted(check_no_duplicates(out)) == sorted(wanted)
    for shard in (0, 1):
        ids = [i for f, ids in runner.ids_by_file(out).items() if f.name.startswith(f"train-{shard:05d}-") for i in ids]
        assert sorted(ids) == sorted(i for i in wanted if runner.shard_of(i, 2) == shard)
        assert "shard %d of 2 done" % shard in (out / "regenerate" / f"log-{shard:05d}.txt").read_text()
    assert (out / "README.md").is_file()
