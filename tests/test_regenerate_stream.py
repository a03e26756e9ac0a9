"""``imagenet-think regenerate`` end to end against simulated teacher servers (real processes on
127.0.0.1, tests/fixtures/sim_server.py): every id exactly once through SIGKILLs, outages and
concurrent shards; the failure policy; the lock; the records of failures and rejected images."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_think import PROMPT
from imagenet_think.regenerate import __main__ as cli
from imagenet_think.regenerate import runner, sources
from imagenet_think.regenerate.engines.base import chat_messages
from imagenet_think.regenerate.engines.openai_engine import image_data_url
from tests.fixtures.sim_server import SimProcess, request_key
from tests.test_engines_openai import server  # noqa: F401 (a fixture)

pytest.importorskip("openai")

REPO = Path(__file__).resolve().parent.parent
ERROR = "imagenet-think regenerate: error: "


def image_folder(root: Path, count: int, synsets: int = 4) -> Path:
    """``count`` small distinct JPEGs in ``synsets`` synset folders."""
    for index in range(count):
        wnid = f"n{index % synsets:08d}"
        (root / wnid).mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (index % 256, index // 256, 77)).save(buffer, "JPEG")
        (root / wnid / f"{wnid}_{index}.JPEG").write_bytes(buffer.getvalue())
    return root


def command(images: Path, out: Path, *sims: SimProcess, teachers: str = "glm,kimi", extra: tuple = ()) -> list[str]:
    urls = [f"{name}={sim.url}" for name, sim in zip(teachers.split(","), sims)]
    return [
        sys.executable, "-m", "imagenet_think.regenerate", str(images), str(out), "--min-size", "0",
        "--teachers", teachers, "--engine", "openai", *(a for url in urls for a in ("--base-url", url)),
        "--trust-remote-code", "--no-progress", *extra,
    ]  # fmt: skip


def main(args: list[str], capsys) -> tuple[int, str]:
    """``args`` (a :func:`command`) run in this process: (exit status, stderr)."""
    capsys.readouterr()
    status = cli.main(args[3:])
    return status, capsys.readouterr().err


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, **kwargs)


def written(out: Path) -> list[str]:
    return [i for ids in runner.ids_by_file(out).values() for i in ids]


def assert_once(out: Path, images: Path) -> None:
    ids = written(out)
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert sorted(ids) == sorted(item.id for item in sources.select_items(sources.open_source(images), None, min_size=0).items)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith(ERROR)]


def test_both_teachers_stream_at_once_and_every_id_is_written_once(tmp_path, capsys):
    images = image_folder(tmp_path / "images", 48)
    (images / "n00000000" / "n00000000_tiny.JPEG").write_bytes(image_bytes(8))
    cut = b"\xff\xd8\xff\xe0 not a whole jpeg"
    (images / "n00000001" / "n00000001_cut.JPEG").write_bytes(cut)
    out = tmp_path / "out"
    options = {"slots": 4, "step_ms": 5, "median": 20}
    with SimProcess(seed=1, **options) as glm, SimProcess(seed=2, **options) as kimi:
        extra = ("--min-size", "16", "--rows-per-file", "10", "--max-in-flight", "10")
        status, stderr = main(command(images, out, glm, kimi, extra=extra), capsys)
        stats = [glm.stats(), kimi.stats()]
    assert status == 0, stderr[-3000:]
    rows = pq.read_table(runner.data_files(out)).to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(f"n{i % 4:08d}_n{i % 4:08d}_{i}" for i in range(48))
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("zai-org/GLM-4.1V-9B-Thinking", "moonshotai/Kimi-VL-A3B-Thinking-2506")}
    assert {r["status_1"] for r in rows} <= {"ok", "unclosed_think"} and all(r["answer_1"] == "A simulated answer." for r in rows if r["status_1"] == "ok")
    # both servers worked at the same time, each sent a window of 10 requests for its 4 slots
    assert stats[0]["first_arrival"] < stats[1]["last_completion"] and stats[1]["first_arrival"] < stats[0]["last_completion"]
    assert [(s["requests"], s["max_in_system"]) for s in stats] == [(48, 10), (48, 10)]
    # every candidate is accounted for: written, or rejected at selection with its reason
    rejected = {Path(r["source"]).name: r["reason"] for r in runner.read_json_lines(runner.rejected_path(out))}
    assert rejected["n00000000_tiny.JPEG"] == "too small: 8x8 < 16x16"
    assert rejected["n00000001_cut.JPEG"] == f"a JPEG whose header Pillow cannot read (cut short or corrupt: {len(cut)} bytes in all)"
    assert len(rejected) == 2


def test_an_engine_option_can_be_one_teachers(tmp_path, capsys):
    images = image_folder(tmp_path / "images", 24)
    options = {"slots": 4, "step_ms": 5, "median": 20}
    with SimProcess(seed=1, **options) as glm, SimProcess(seed=2, **options) as kimi:
        extra = ("--engine-arg", "glm:max_in_flight=2", "--engine-arg", "kimi:max_in_flight=6")
        status, stderr = main(command(images, tmp_path / "out", glm, kimi, extra=extra), capsys)
        windows = [glm.stats()["max_in_system"], kimi.stats()["max_in_system"]]
    assert status == 0, stderr[-3000:]
    assert windows == [2, 6]
    status, stderr = main(command(images, tmp_path / "new", glm, kimi, extra=("--engine-arg", "qwen:device=cpu")), capsys)
    assert status == 2 and "unknown teacher 'qwen'; teachers of this run: glm, kimi" in stderr


def image_bytes(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "white").save(buffer, "JPEG")
    return buffer.getvalue()


def test_sigkill_at_random_points_then_rerun_gives_every_id_exactly_once(tmp_path):
    images = image_folder(tmp_path / "images", 120)
    out = tmp_path / "out"
    rng = random.Random(20261202)
    with SimProcess(slots=8, step_ms=5, median=25) as glm:
        args = command(images, out, glm, teachers="glm", extra=("--rows-per-file", "3"))
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for _ in range(2):
            before = len(written(out))
            process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while process.poll() is None and len(written(out)) <= before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.5))  # anywhere in the stream: mid-request, mid-write
            process.send_signal(signal.SIGKILL)
            process.wait()
            ids = written(out)
            assert len(ids) == len(set(ids))
        assert len(written(out)) < 120  # the kills did land mid-run
        finished = run(args)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_once(out, images)
    manifest = runner.read_json_lines(runner.manifest_path(out, 0))
    assert sorted(i for line in manifest for i in line["ids"]) == sorted(written(out))
    assert not list((out / "data").glob(".*.tmp"))


def test_an_outage_stops_the_run_writes_nothing_off_and_the_same_command_resumes(tmp_path):
    images = image_folder(tmp_path / "images", 150)
    out = tmp_path / "out"
    options = {"slots": 8, "step_ms": 5, "median": 25}
    with SimProcess(seed=1, **options) as glm, SimProcess(seed=2, **options) as kimi:
        args = command(images, out, glm, kimi, extra=("--unreachable-after", "1.5", "--retry-delay", "0.1", "--max-attempts", "1"))
        process = subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True)
        while glm.stats()["completed"] < 30:
            time.sleep(0.05)
        glm.kill()  # mid-run: requests in flight are reset, new ones refused
        killed_at = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert 1.5 <= time.monotonic() - killed_at < 30
        [line] = error_lines(stderr)
        assert line.startswith(ERROR + "the glm teacher is unreachable: no answer for ") and "nothing written off" in line
        assert runner.read_json_lines(runner.failures_path(out, 0)) == []  # --max-attempts 1, yet nothing written off
        done = len(written(out))
        assert 0 < done < 150  # complete rows were written before stopping
        kept = Counter(r["pair"] for r in runner.read_json_lines(runner.partial_path(out, 0)))
        assert kept[2] > 0  # kimi's answers for images glm did not answer
        asked = kimi.stats()["requests"]
        with SimProcess(port=glm.port, seed=1, **options) as glm_again:  # the server is back
            again = run(args)
            rerun_requests = [glm_again.stats()["requests"], kimi.stats()["requests"] - asked]
    assert again.returncode == 0, again.stderr[-3000:]
    assert_once(out, images)
    assert rerun_requests == [150 - done - kept[1], 150 - done - kept[2]]  # no teacher asked again for what it answered


def test_sigterm_writes_the_rows_completed_then_exits_and_the_rerun_completes(tmp_path):
    images = image_folder(tmp_path / "images", 40)
    out = tmp_path / "out"
    with SimProcess(slots=4, step_ms=5, median=40) as glm:
        args = command(images, out, glm, teachers="glm")  # 1000 rows per file: none written before the end
        process = subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True)
        while glm.stats()["completed"] < 10:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        answered = glm.stats()["completed"]
        assert process.returncode == 130
        assert error_lines(stderr) == [f"{ERROR}interrupted; the rows completed are written: rerun the same command to resume"]
        assert 10 <= len(written(out)) <= answered < 40
        again = run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_once(out, images)


def test_a_hung_server_stops_the_run_after_unreachable_after_whatever_the_request_timeout(tmp_path):
    images = image_folder(tmp_path / "images", 6)
    with SimProcess(hang=True) as glm:  # answers GET /models, never a chat request
        args = command(images, tmp_path / "out", glm, teachers="glm", extra=("--unreachable-after", "1"))  # timeout: 1800 s
        done = run(args, timeout=60)
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert re.match(rf"{ERROR}the glm teacher is unreachable: no answer for [12] s \(6 requests in flight, none answered: the glm server hangs", line)
    assert runner.read_json_lines(runner.failures_path(tmp_path / "out", 0)) == []


def test_a_burst_of_429_and_503_is_waited_out_and_writes_nothing_off(tmp_path):
    images = image_folder(tmp_path / "images", 60)
    out = tmp_path / "out"
    options = {"slots": 4, "step_ms": 10, "median": 25}
    with SimProcess(seed=1, **options) as glm, SimProcess(seed=2, **options) as kimi:
        extra = ("--max-in-flight", "8", "--max-attempts", "1", "--retry-delay", "0.1", "--unreachable-after", "30")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(command(images, out, glm, kimi, extra=extra), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        while glm.stats()["completed"] < 4:
            time.sleep(0.02)
        glm.fault(429, 2, retry_after=0.5)  # rate limited, Retry-After in seconds
        kimi.fault(503, 2, retry_after=1, retry_after_as="date", models=True)  # overloaded, an HTTP-date; probes get it too
        _, stderr = process.communicate(timeout=120)
        faulted = [glm.stats()["faulted"], kimi.stats()["faulted"]]
    assert process.returncode == 0, stderr[-3000:]
    assert min(faulted) > 0  # the burst hit both mid-run
    assert stderr.count("the glm server is busy") == stderr.count("the kimi server is busy") == 1  # one warning each
    assert "HTTP 429" in stderr and "HTTP 503" in stderr
    assert runner.read_json_lines(runner.failures_path(out, 0)) == []  # --max-attempts 1, yet nothing written off
    assert_once(out, images)


def test_a_server_down_at_start_is_one_line_and_writes_nothing(tmp_path):
    images = image_folder(tmp_path / "images", 4)
    with SimProcess() as glm:
        glm.kill()
        done = run(command(images, tmp_path / "out", glm, teachers="glm"))  # a process of its own: its whole stderr
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert line.startswith(f"{ERROR}cannot reach the glm server at {glm.url}: Connection error. (ConnectionRefusedError: ")
    assert line.endswith("; is it running?")
    assert runner.data_files(tmp_path / "out") == []


def start_and_wait_for(args: list[str], ready: Path, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``args`` as a process of its own, once it has written ``ready`` (it holds its shard's lock then)."""
    process = subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 60
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), f"the first process wrote no {ready}"
    return process


def state_of(out: Path) -> dict[str, tuple]:
    """Every file under ``out``: its inode, size and modification time (a rewrite changes them)."""
    return {str(f.relative_to(out)): (f.stat().st_ino, f.stat().st_size, f.stat().st_mtime_ns) for f in out.rglob("*") if f.is_file()}


def test_a_second_process_on_the_same_shard_refuses_with_exit_1_and_writes_nothing(tmp_path):
    """Two real processes: the first holds shard 1 (its teacher hangs); the second, whose
    selection rejects nothing, would rewrite rejected.jsonl if it wrote before taking the lock."""
    images = image_folder(tmp_path / "images", 8)
    for name in ("n00000000_tiny.JPEG", "n00000001_tiny.JPEG"):
        (images / name[:9] / name).write_bytes(image_bytes(8))
    out = tmp_path / "out"
    shard = ("--num-shards", "2", "--shard-index", "1")
    with SimProcess(hang=True) as glm:
        first = start_and_wait_for(command(images, out, glm, teachers="glm", extra=(*shard, "--min-size", "16")), runner.rejected_path(out))
        try:
            assert len(runner.read_json_lines(runner.rejected_path(out))) == 2
            before = state_of(out)
            second = run(command(images, out, glm, teachers="glm", extra=shard))  # --min-size 0: rejects nothing
            after = state_of(out)
            assert first.poll() is None  # still running, untouched
        finally:
            first.kill()
            first.wait()
    assert second.returncode == 1
    assert error_lines(second.stderr) == [
        f"{ERROR}shard 1 of {out} is being written by another process (pid {first.pid}, lock "
        f"{runner.lock_path(out, 1)}): let it finish, or give this one another --shard-index"
    ]
    assert after == before  # the first one's rejected.jsonl (2 lines) included
    assert len(runner.read_json_lines(runner.rejected_path(out))) == 2


def test_processes_with_another_num_shards_are_refused_and_the_corpus_has_every_id_once(tmp_path, capsys):
    """The reported case: --num-shards 2 and 3 on one OUT_DIR at once wrote rows twice.  Now the
    first records its sharding and the other is refused (exit 2) before writing a row, while
    the first runs and after it."""
    images = image_folder(tmp_path / "images", 40)
    out = tmp_path / "out"
    with SimProcess(hang=True) as hung:
        first = start_and_wait_for(command(images, out, hung, teachers="glm", extra=("--num-shards", "2")), runner.sharding_path(out))
        try:
            while_running = run(command(images, out, hung, teachers="glm", extra=("--num-shards", "3", "--shard-index", "1")))
        finally:
            first.kill()
            first.wait()
    refusal = (f"{ERROR}{out} was written with --num-shards 2 (recorded in {runner.sharding_path(out)}), not 3: one OUT_DIR "
               "holds one sharding; use --num-shards 2 (or another OUT_DIR; to change it, delete that file once no process "
               "writes OUT_DIR)")  # fmt: skip
    assert while_running.returncode == 2 and error_lines(while_running.stderr) == [refusal]
    assert runner.data_files(out) == []
    with SimProcess(slots=8, step_ms=3, median=20) as glm:
        status, stderr = main(command(images, out, glm, teachers="glm", extra=("--num-shards", "3", "--dry-run")), capsys)
        assert status == 2 and error_lines(stderr) == [refusal]
        for shard in (0, 1):
            status, stderr = main(command(images, out, glm, teachers="glm", extra=("--num-shards", "2", "--shard-index", str(shard))), capsys)
            assert status == 0, stderr[-3000:]
        status, stderr = main(command(images, out, glm, teachers="glm", extra=("--num-shards", "3", "--shard-index", "2")), capsys)
        assert status == 2 and error_lines(stderr) == [refusal]
    assert_once(out, images)
    status, stderr = main(command(images, out, glm, teachers="glm", extra=("--card-only",)), capsys)
    assert status == 0 and (out / "README.md").is_file()


def rejected_by(images: Path, fraction: float, seed: int) -> set[str]:
    """The ids whose requests the simulated server (``--reject-fraction``) answers with HTTP 400:
    its choice is keyed by the request's messages, so it is derived here from the same bytes."""
    chosen = set()
    for item in sources.select_items(sources.open_source(images), None, min_size=0).items:
        messages = chat_messages(PROMPT, {"type": "image_url", "image_url": {"url": image_data_url(item.read_bytes())}})
        if request_key({"messages": messages}, seed).random() < fraction:
            chosen.add(item.id)
    return chosen


def test_too_many_failures_exit_1_and_retry_failed_cleans_the_failures_file(tmp_path, capsys):
    images = image_folder(tmp_path / "images", 40)
    out = tmp_path / "out"
    bad = rejected_by(images, 0.2, seed=5)
    assert 0 < len(bad) < 40
    extra = ("--max-attempts", "2", "--retry-delay", "0.01")
    with SimProcess(seed=5, reject_fraction=0.2, slots=8, step_ms=2, median=5) as glm:
        status, stderr = main(command(images, out, glm, teachers="glm", extra=extra), capsys)
    assert status == 1
    rate = len(bad) / 40
    assert error_lines(stderr) == [
        f"{ERROR}{len(bad)} of 40 images failed ({rate:.1%}, more than --max-failure-rate 5.0%); "
        f"see {runner.failures_path(out, 0)}, fix the cause, then rerun with --retry-failed"
    ]
    failures = runner.read_json_lines(runner.failures_path(out, 0))
    assert {f["id"] for f in failures} == bad and all(f["attempts"] == 2 for f in failures)
    assert all(f["error"].startswith("glm: BadRequestError") and "simulated rejection of this image" in f["error"] for f in failures)
    assert sorted(written(out)) == sorted(set(i.id for i in sources.select_items(sources.open_source(images), None, min_size=0).items) - bad)
    with SimProcess(seed=5, slots=8, step_ms=2, median=5) as glm:  # the cause is fixed
        again, rerun_stderr = main(command(images, out, glm, teachers="glm", extra=extra), capsys)
        assert len(written(out)) == 40 - len(bad) and glm.stats()["requests"] == 0  # failed images wait for --retry-failed
        assert (again, error_lines(rerun_stderr)) == (status, error_lines(stderr))  # and still fail a plain rerun
        status, stderr = main(command(images, out, glm, teachers="glm", extra=(*extra, "--retry-failed")), capsys)
    assert status == 0, stderr[-3000:]
    assert_once(out, images)
    assert runner.read_json_lines(runner.failures_path(out, 0)) == []


def test_failed_images_left_exit_1_unless_accepted_and_the_card_counts_them(tmp_path, capsys):
    images = image_folder(tmp_path / "images", 40)
    out = tmp_path / "out"
    bad = rejected_by(images, 0.2, seed=5)
    tolerant = ("--max-attempts", "1", "--max-failure-rate", "0.5")

    def refusal(where):
        return (f"{ERROR}{len(bad)} of 40 images failed (see {where}): rerun with --retry-failed once the cause is fixed, "
                "or add --accept-failed to finish without them")  # fmt: skip

    with SimProcess(seed=5, reject_fraction=0.2, slots=8, step_ms=2, median=5) as glm:
        for _ in range(2):  # the run, then a plain rerun (nothing left to generate): the same answer
            status, stderr = main(command(images, out, glm, teachers="glm", extra=tolerant), capsys)
            assert (status, error_lines(stderr)) == (1, [refusal(runner.failures_path(out, 0))])
            assert not (out / "README.md").exists()  # no card for a corpus with holes nobody accepted
        status, stderr = main(command(images, out, glm, teachers="glm", extra=(*tolerant, "--card-only")), capsys)
        assert (status, error_lines(stderr)) == (1, [refusal(f"{out / 'regenerate'}/failures-*.jsonl")])
        for last in ("--accept-failed", "--card-only"):
            status, stderr = main(command(images, out, glm, teachers="glm", extra=(*tolerant, "--accept-failed", last)), capsys)
            assert status == 0 and error_lines(stderr) == []
            card = (out / "README.md").read_text()
            assert f"> **Note.** {len(bad)} images of the selection failed generation and are not in this corpus" in card
        assert glm.stats()["requests"] == 40 - len(bad)  # (rejections not counted) each image once: reruns ask nothing
    with SimProcess(seed=5, slots=8, step_ms=2, median=5) as glm:  # the cause is fixed
        status, stderr = main(command(images, out, glm, teachers="glm", extra=(*tolerant, "--retry-failed")), capsys)
    assert status == 0 and error_lines(stderr) == []
    assert "**Note.**" not in (out / "README.md").read_text()
    assert_once(out, images)


def test_the_multi_gpu_script_gives_its_card_step_the_accepted_failures(tmp_path):
    images = image_folder(tmp_path / "images", 40)
    out = tmp_path / "out"
    bad = rejected_by(images, 0.2, seed=5)
    with SimProcess(seed=5, reject_fraction=0.2, slots=8, step_ms=2, median=5) as glm:
        args = [*command(images, out, glm, teachers="glm")[3:], "--max-attempts", "1", "--max-failure-rate", "0.5", "--accept-failed"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable, "GPUS": "0 1"}
        done = subprocess.run(["bash", str(REPO / "builder_scripts" / "regenerate_multi_gpu.sh"), *args], cwd=REPO, env=env,
                              capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"> **Note.** {len(bad)} images of the selection failed generation" in (out / "README.md").read_text()


def test_concurrent_shards_write_every_id_exactly_once(tmp_path):
    images = image_folder(tmp_path / "images", 60)
    out = tmp_path / "out"
    with SimProcess(slots=8, step_ms=3, median=20) as glm:
        processes = [
            subprocess.Popen(
                command(images, out, glm, teachers="glm", extra=("--num-shards", "2", "--shard-index", str(shard), "--rows-per-file", "4")),
                cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for shard in (0, 1)
        ]  # fmt: skip
        results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert [code for code, _ in results] == [0, 0], results
    assert_once(out, images)
    for shard in (0, 1):
        ids = [i for f, ids in runner.ids_by_file(out).items() if f.name.startswith(f"train-{shard:05d}-") for i in ids]
        assert ids and all(runner.shard_of(i, 2) == shard for i in ids)


def encoded(size: tuple, color: tuple, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, kind)
    return buffer.getvalue()


def test_hostile_sources_reach_no_teacher_and_a_tiff_travels_as_png(tmp_path, server, capsys):
    """A truncated JPEG, a directory, a FIFO and a link out of SOURCE, all named like images, go
    to rejected.jsonl with what is wrong and never to the teacher; a TIFF is sent as a PNG and
    stored as it was.  The teacher is tests/fixtures/openai_server.py: it logs every request and
    answers with the size and first pixel of the image it decoded."""
    base_url, log = server
    images = image_folder(tmp_path / "images", 4)
    folder = images / "n00000000"
    tiff = encoded((40, 30), (200, 10, 10), "TIFF")
    (folder / "n00000000_scan.tif").write_bytes(tiff)
    noise = io.BytesIO()
    Image.effect_noise((128, 128), 60).convert("RGB").save(noise, "JPEG")  # most of its bytes are image data
    whole = noise.getvalue()
    (folder / "n00000000_cut.JPEG").write_bytes(whole[:-1000])
    (folder / "n00000000_dir.JPEG").mkdir()
    os.mkfifo(folder / "n00000000_pipe.JPEG")
    (tmp_path / "private.JPEG").write_bytes(whole)
    os.symlink(tmp_path / "private.JPEG", folder / "n00000000_link.JPEG")
    out = tmp_path / "out"
    args = [str(images), str(out), "--min-size", "16", "--teachers", "glm", "--engine", "openai", "--base-url", base_url, "--no-progress"]
    capsys.readouterr()
    assert cli.main(args) == 0, capsys.readouterr().err[-3000:]
    rejected = {Path(r["source"]).name: r["reason"] for r in runner.read_json_lines(runner.rejected_path(out))}
    assert rejected.pop("n00000000_cut.JPEG").startswith(f"truncated JPEG: its data ends after {len(whole) - 1000:,} bytes")
    assert rejected == {
        "n00000000_dir.JPEG": "not a regular file: a directory",
        "n00000000_pipe.JPEG": "not a regular file: a FIFO (named pipe)",
        "n00000000_link.JPEG": f"a symbolic link to {tmp_path / 'private.JPEG'}, outside SOURCE: not followed (--follow-symlinks reads it)",
    }
    bodies = [json.loads(line) for line in log.read_text().splitlines()]
    urls = [part["image_url"]["url"] for body in bodies for part in body["messages"][-1]["content"] if part["type"] == "image_url"]
    assert sorted(url.split(";")[0] for url in urls) == ["data:image/jpeg"] * 4 + ["data:image/png"]
    [scan] = [row for row in pq.read_table(runner.data_files(out)).to_pylist() if row["id"] == "n00000000_n00000000_scan"]
    assert scan["image"] == {"bytes": tiff, "path": "n00000000_n00000000_scan.tif"}
    assert scan["think_1"] == "The image is 40 by 30 pixels and its top-left pixel is (200, 10, 10)."


def test_a_slow_decode_stalls_no_request_in_flight(tmp_path, monkeypatch):
    """An image in a format servers may not take is decoded (to PNG) in the reader pool while the
    other images' requests go out and come back.  Its decoder, a Pillow plugin registered here,
    holds the decode until the simulated server has received every other image's request: two
    at a time (--max-in-flight 2), so most of them after earlier answers were read.  Decoded on
    the event loop, it would hold those answers and requests back, and see at most two."""
    from PIL import ImageFile

    from imagenet_think.regenerate.engines import make_engine
    from imagenet_think.regenerate.models import get_model
    from imagenet_think.regenerate.scheduler import Scheduler

    images = image_folder(tmp_path / "images", 8)
    others = sources.select_items(sources.open_source(images), None, min_size=0).items
    seen_while_decoding = []

    class SlowImageFile(ImageFile.ImageFile):
        format = "SLOWTEST"
        format_description = "an image that decodes once the server has seen the others"

        def _open(self):
            self._size, self._mode, self.tile = (64, 48), "RGB", []

        def load(self):
            if self._im is None:
                deadline = time.monotonic() + 60  # a guard only: the wait ends on the server's count
                while (received := sim.stats()["requests"]) < len(others) and time.monotonic() < deadline:
                    time.sleep(0.02)
                seen_while_decoding.append(received)
                self.im = Image.core.fill("RGB", self.size, (5, 6, 7))
            return Image.Image.load(self)

    Image.init()  # every plugin registered first: the patched registry is restored after the test
    monkeypatch.setattr(Image, "ID", [*Image.ID, "SLOWTEST"])
    monkeypatch.setitem(Image.OPEN, "SLOWTEST", (SlowImageFile, lambda prefix: prefix[:8] == b"SLOWTEST"))
    (tmp_path / "slow.img").write_bytes(b"SLOWTEST" + bytes(56))
    slow = sources.ImageItem("n00000009_slow", "n00000009", "", "file", str(tmp_path / "slow.img"), suffix=".img")
    out = tmp_path / "out"
    with SimProcess(slots=2, step_ms=5, median=5) as sim:
        with make_engine("openai", get_model("glm"), base_url=sim.url, max_in_flight=2) as engine, runner.ShardWriter(out) as writer:
            stats = Scheduler({1: engine}, writer, progress=False).run([slow, *others])
        assert sim.stats()["requests"] == len(others) + 1
    assert seen_while_decoding == [len(others)]
    assert stats.written == len(others) + 1
