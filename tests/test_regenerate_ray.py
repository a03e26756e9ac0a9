"""``regenerate --ray`` on a local Ray runtime (2 CPUs, shared by the module's tests): the same job
as a local run, generation in Ray worker processes, against simulated teacher servers on
127.0.0.1 (tests/fixtures/sim_server.py) and the tiny transformers GLM-4.1V; a driver killed
with SIGKILL and rerun; each output shard read at most once per run, locally and on Ray."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_think.regenerate import __main__ as cli
from imagenet_think.regenerate import runner, sources
from imagenet_think.regenerate.engines.openai_engine import server_version
from tests.fixtures.sim_server import SimProcess
from tests.test_regenerate import tiny_glm4v  # noqa: F401 (a fixture)
from tests.test_regenerate_stream import ERROR, assert_once, command, error_lines, image_folder, main, written

ray = pytest.importorskip("ray")
pytest.importorskip("openai")

REPO = Path(__file__).resolve().parent.parent
SIM = {"slots": 4, "step_ms": 5, "median": 20}
ANSWERED = re.compile(r"^(\w+): (\d+) requests answered in Ray actors \((.*)\)$")


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray runtime with 2 CPUs for the module: its GCS address, for drivers in other processes."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def answered_by(caplog) -> dict[str, Counter]:
    """Per teacher, the requests each worker pid answered (the RayEngine's closing log line)."""
    found: dict[str, Counter] = {}
    for record in caplog.records:
        match = ANSWERED.match(record.getMessage())
        if match:
            pids = Counter({int(pid): int(n) for pid, n in re.findall(r"pid (\d+): (\d+)", match.group(3))})
            assert sum(pids.values()) == int(match.group(2))
            found[match.group(1)] = pids
    return found


def test_ray_streams_both_teachers_through_replicas_in_worker_processes(tmp_path, ray_address, capsys, caplog):
    caplog.set_level(logging.INFO, logger="imagenet_think.regenerate.engines.ray_engine")
    images = image_folder(tmp_path / "images", 30)
    out = tmp_path / "out"
    with SimProcess(seed=1, **SIM) as glm, SimProcess(seed=2, **SIM) as kimi:
        extra = ("--rows-per-file", "7", "--ray", "--replicas", "glm=2", "--replica-cpus", "0.5")
        status, stderr = main(command(images, out, glm, kimi, extra=extra), capsys)
        requests = [glm.stats()["requests"], kimi.stats()["requests"]]
        engine = f"openai-server {server_version(glm.url)} (ray {ray.__version__})"
    assert status == 0, stderr[-3000:]
    assert_once(out, images)
    assert requests == [30, 30]
    rows = pq.read_table(runner.data_files(out)).to_pylist()
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("zai-org/GLM-4.1V-9B-Thinking", "moonshotai/Kimi-VL-A3B-Thinking-2506")}
    assert all(r["answer_1"] == "A simulated answer." for r in rows if r["status_1"] == "ok")
    assert {e["engine"] for r in rows for e in r["generation"]} == {engine}
    # every request was answered in a Ray worker, none in this (the driver's) process; glm on two replicas
    pids = answered_by(caplog)
    assert sum(pids["glm"].values()) == 30 and sum(pids["kimi"].values()) == 30
    assert len(pids["glm"]) == 2 and len(pids["kimi"]) == 1
    assert os.getpid() not in set(pids["glm"]) | set(pids["kimi"])
    # the same job: manifest, card, rejected record
    manifest = runner.read_json_lines(runner.manifest_path(out, 0))
    assert sorted(i for line in manifest for i in line["ids"]) == sorted(written(out))
    assert (out / "README.md").is_file() and runner.rejected_path(out).read_text() == ""


def test_ray_with_the_tiny_transformers_glm(tmp_path, ray_address, tiny_glm4v, capsys, caplog):
    caplog.set_level(logging.INFO, logger="imagenet_think.regenerate.engines.ray_engine")
    out = tmp_path / "out"
    args = ["sample", str(out), "-n", "4", "--teachers", "glm", "--engine", "transformers", "--model-path", f"glm={tiny_glm4v}",
            "--sampling", "max_tokens=3", "--engine-arg", "batch_size=2", "--no-progress", "--ray"]  # fmt: skip
    capsys.readouterr()
    assert cli.main(args) == 0, capsys.readouterr().err[-3000:]
    rows = pq.read_table(runner.data_files(out)).to_pylist()
    wanted = [item.id for item in sources.select_items(sources.open_source("sample"), 4).items]
    assert sorted(r["id"] for r in rows) == sorted(wanted)
    assert all(r["num_tokens_1"] and r["num_tokens_1"] <= 3 and r["status_2"] == "missing" for r in rows)
    assert {e["engine"].split()[0] for r in rows for e in r["generation"]} == {"transformers"}
    [pid] = answered_by(caplog)["glm"]
    assert pid != os.getpid()


def test_a_killed_driver_reruns_to_every_id_exactly_once(tmp_path, ray_address):
    images = image_folder(tmp_path / "images", 60)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with SimProcess(slots=4, step_ms=5, median=25) as glm:
        args = command(images, out, glm, teachers="glm", extra=("--rows-per-file", "3", "--ray", ray_address))
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and len(written(out)) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        ids = written(out)
        assert len(ids) == len(set(ids)) and 6 <= len(ids) < 60  # killed mid-run, nothing doubled
        finished = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_once(out, images)
    assert not list((out / "data").glob(".*.tmp"))


def descendants(root: int) -> dict[int, str]:
    """The processes below ``root`` (children, their children...): pid -> command line."""
    parents, commands = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{name}/stat", "rb") as stat, open(f"/proc/{name}/cmdline", "rb") as cmdline:
                    parents[int(name)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
                    commands[int(name)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands[pid]
                frontier.append(pid)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is no zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_until(condition, what: str, guard_s: float = 120) -> None:
    """Poll ``condition`` until it holds; ``guard_s`` only turns a hang into a failure naming ``what``."""
    deadline = time.monotonic() + guard_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def test_a_replica_dead_for_good_stops_the_run_at_once_saying_it_died(tmp_path, ray_address, capsys):
    """The replica's process is SIGKILLed twice: Ray restarts it once (MAX_RESTARTS) and the run
    goes on; the second time it is dead for good, and the run stops with Ray's cause instead of
    retrying a server that will never answer (which took --unreachable-after seconds)."""
    images = image_folder(tmp_path / "images", 60)
    out = tmp_path / "out"
    killed = []

    def replicas() -> set[int]:  # this test's runtime only: its raylet is a child of this process
        return {pid for pid, command in descendants(os.getpid()).items() if command.startswith("ray::Replica")}

    def kill_twice() -> None:
        for _ in range(2):
            wait_until(lambda: (replicas() - set(killed)) and glm.stats()["completed"] >= 3 * (len(killed) + 1), "a replica serving")
            [pid] = replicas() - set(killed)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with SimProcess(slots=2, step_ms=10, median=40) as glm:
        killer = threading.Thread(target=kill_twice, daemon=True)
        killer.start()
        extra = ("--ray", "--rows-per-file", "1", "--unreachable-after", "60", "--retry-delay", "0.1")
        status, stderr = main(command(images, out, glm, teachers="glm", extra=extra), capsys)
        killer.join(timeout=5)
        assert len(killed) == 2, stderr[-3000:]
        assert status == 1
        [line] = error_lines(stderr)
        assert line.startswith(
            f"{ERROR}the glm engine failed: ReplicaDied: the glm replica 0 (pid {killed[1]}) died and Ray will not restart it "
            "again (restarts: 1): The actor is dead because its worker process has died."
        ) and line.endswith("; rerun the same command to resume with new replicas"), line
        assert runner.read_json_lines(runner.failures_path(out, 0)) == []  # nothing written off
        assert 0 < len(written(out)) < 60
        status, stderr = main(command(images, out, glm, teachers="glm", extra=("--ray",)), capsys)  # new replicas
    assert status == 0, stderr[-3000:]
    assert_once(out, images)


def test_a_killed_driver_leaves_no_process_of_its_local_ray_runtime(tmp_path):
    """A driver that starts its own local runtime (no address) is SIGKILLed mid-run: Ray's dashboard
    and runtime-env agents, which would outlive it by about a minute, end with it (ray_reaper)."""
    images = image_folder(tmp_path / "images", 20)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env["HF_HUB_OFFLINE"] = "1"
    with SimProcess(slots=1, step_ms=20, median=200) as glm:  # a request takes seconds: the run is long
        args = command(images, tmp_path / "out", glm, teachers="glm", extra=("--ray",))
        driver = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: glm.stats()["requests"] > 0 or driver.poll() is not None, "the replica's first request")
            tree = descendants(driver.pid)
        finally:
            driver.kill()
            driver.wait()
    agents = {pid for pid, command in tree.items() if command.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))}
    [reaper] = [pid for pid, command in tree.items() if "ray_reaper.py" in command]
    assert len(agents) == 2, tree
    wait_until(lambda: not running(reaper), "the reaper to end")  # it ends once the agents are gone
    assert [pid for pid in agents if running(pid)] == []
    assert [tree[pid] for pid in tree if running(pid)] == []  # nothing else of the runtime is left either


def test_an_engine_error_in_a_replica_is_one_line_and_writes_nothing(tmp_path, ray_address, capsys):
    images = image_folder(tmp_path / "images", 4)
    with SimProcess() as glm:
        glm.kill()  # the replica's engine cannot reach it: its error comes back as itself
        status, stderr = main(command(images, tmp_path / "out", glm, teachers="glm", extra=("--ray",)), capsys)
    assert status == 1
    [line] = error_lines(stderr)
    assert line.startswith(f"{ERROR}cannot reach the glm server at {glm.url}: Connection error.") and line.endswith("is it running?")
    assert runner.data_files(tmp_path / "out") == []


def test_bad_ray_options_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ray, "init", None)  # every error comes before Ray would start
    images = image_folder(tmp_path / "images", 2)
    base = [str(images), str(tmp_path / "out"), "--min-size", "0", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    assert cli.main([*base, "--ray", "headnode"]) == 2  # no port
    assert cli.main([*base, "--replicas", "2"]) == 2
    assert cli.main([*base, "--ray", "--replicas", "glm=0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith(ERROR)]
    assert errors == [
        f"{ERROR}--ray 'headnode' is not a Ray address (auto, local, ray://host:10001, host:6379); "
        "give --ray after SOURCE OUT_DIR when it has no address",
        f"{ERROR}--replicas, --replica-cpus, --replica-gpus and --ray-data place Ray actors: add --ray [ADDRESS]",
        f"{ERROR}--replicas glm=0: must be at least 1",
    ]
    assert not (tmp_path / "out" / "data").exists()


class ReadCounter:
    """Counts every Parquet read of files under ``root`` (whole tables, column reads, footers)."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.reads = str(root), Counter()
        for name in ("read_table", "read_metadata", "read_schema", "ParquetFile"):
            monkeypatch.setattr(pq, name, self._counting(getattr(pq, name)))

    def _counting(self, function):
        def counted(source, *args, **kwargs):
            if str(source).startswith(self.root):
                self.reads[Path(source).name] += 1
            return function(source, *args, **kwargs)

        return counted


@pytest.mark.parametrize("where", ["local", "ray"])
def test_each_shard_file_is_read_at_most_once_per_run(tmp_path, where, request, capsys, monkeypatch):
    extra = ("--rows-per-file", "2") + (("--ray",) if where == "ray" else ())
    if where == "ray":
        request.getfixturevalue("ray_address")
    images = image_folder(tmp_path / "images", 16)
    out = tmp_path / "out"
    with SimProcess(**SIM) as glm:
        status, _ = main(command(images, out, glm, teachers="glm", extra=(*extra, "--max-items", "7")), capsys)
        assert status == 0 and len(runner.data_files(out)) == 4
        counter = ReadCounter(out / "data", monkeypatch)
        status, stderr = main(command(images, out, glm, teachers="glm", extra=extra), capsys)
    assert status == 0, stderr[-3000:]
    reads = dict(counter.reads)
    assert len(runner.data_files(out)) == 9 and set(reads) == {f.name for f in runner.data_files(out)}
    assert max(reads.values()) == 1, reads
    assert_once(out, images)


# --- --ray-data: a teacher as a Ray Data pipeline ----------------------------------------


def test_ray_data_pipeline_runs_the_same_job_with_the_tiny_transformers_glm(tmp_path, ray_address, tiny_glm4v, capsys):
    out = tmp_path / "out"
    args = ["sample", str(out), "-n", "5", "--teachers", "glm", "--engine", "transformers", "--model-path", f"glm={tiny_glm4v}",
            "--sampling", "max_tokens=3", "--engine-arg", "batch_size=2", "--rows-per-file", "2", "--no-progress",
            "--ray", "--ray-data", "--ray-batch-size", "2"]  # fmt: skip
    capsys.readouterr()
    assert cli.main([*args, "--max-items", "2"]) == 0, capsys.readouterr().err[-3000:]
    assert cli.main(args) == 0, capsys.readouterr().err[-3000:]  # resumes: the pipeline gets the 3 images left
    rows = pq.read_table(runner.data_files(out)).to_pylist()
    # the sample is a corpus: its items reach the workers without the image column, which they open themselves
    wanted = {item.id: item.read_bytes() for item in sources.select_items(sources.open_source("sample"), 5).items}
    assert sorted(r["id"] for r in rows) == sorted(wanted) and all(r["image"]["bytes"] == wanted[r["id"]] for r in rows)
    assert all(0 < r["num_tokens_1"] <= 3 and r["finish_reason_1"] in ("stop", "length") for r in rows)
    assert {e["engine"] for r in rows for e in r["generation"]} == {f"transformers (ray {ray.__version__} data)"}
    assert [len(line["ids"]) for line in runner.read_json_lines(runner.manifest_path(out, 0))] == [2, 2, 1]


def test_ray_data_llm_vllm_processor_is_built_from_the_runs_vllm_options(tiny_glm4v, ray_address):
    pytest.importorskip("ray.data.llm", reason="Ray Data LLM's classes (ray[llm]; they import without vLLM)")
    from imagenet_think.regenerate import job
    from imagenet_think.regenerate.engines import ray_data_engine

    args = cli.build_parser().parse_args(["sample", "out", "--teachers", "glm", "--engine", "vllm", "--model-path", f"glm={tiny_glm4v}",
                                          "--engine-arg", "gpu_memory_utilization=0.45", "--ray", "--ray-data", "--replicas", "2"])  # fmt: skip
    teachers = job.resolve_teachers(args.teachers, None, None, sampling={"max_tokens": 64})
    settings = job.engine_settings(args, teachers, "vllm")
    processor = ray_data_engine.vllm_processor(teachers[1], settings[1], 2, args.ray_batch_size, teachers[1].sampling)
    # vLLM prepares the image and detokenizes (skip_special_tokens=False keeps GLM's markers): no Ray detokenizer
    assert [type(stage).__name__ for stage in processor.stages.values()] == [
        "PrepareMultimodalStage", "ChatTemplateStage", "TokenizeStage", "vLLMEngineStage"]
    engine = list(processor.stages.values())[-1]
    kwargs = engine.fn_constructor_kwargs
    assert kwargs["model"] == tiny_glm4v and kwargs["should_continue_on_error"] is True and kwargs["batch_size"] == 16
    assert {k: kwargs["engine_kwargs"][k] for k in ("limit_mm_per_prompt", "max_model_len", "gpu_memory_utilization")} == {
        "limit_mm_per_prompt": {"image": 1, "video": 0}, "max_model_len": 65536, "gpu_memory_utilization": 0.45}
    assert engine.map_batches_kwargs["compute"].max_size == 2  # --replicas
    # the rows it gets: chat messages with the image as a data URL, the teacher's sampling
    jpeg = next(iter(sources.select_items(sources.open_source("sample"), 1).items)).read_bytes()
    params = {"max_tokens": 64, "skip_special_tokens": False}
    request = ray_data_engine.vllm_request({"id": "a", "image": jpeg}, teachers[1], params)
    assert request["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert request["sampling_params"] == params
    error = {"id": "b", "generated_text": "", "num_generated_tokens": 0, "__inference_error__": "ValueError: bad image"}
    assert ray_data_engine.result_of(ray_data_engine.output_row(error, 64)).error == "ValueError: bad image"


def test_ray_data_finish_reason_is_length_from_exactly_max_tokens():
    from imagenet_think.regenerate.engines import ray_data_engine

    def finish(tokens, **row):
        output = {"id": "a", "generated_text": "x", "num_generated_tokens": tokens, "__inference_error__": "", **row}
        return ray_data_engine.result_of(ray_data_engine.output_row(output, 64)).finish_reason

    # Ray Data LLM rows carry no finish reason: a completion that used the whole budget was cut there
    assert [finish(63), finish(64), finish(65)] == ["stop", "length", "length"]
    assert finish(64, finish_reason="stop") == "stop"  # a row that says why it ended is believed


def test_launch_ray_is_a_thin_wrapper_of_regenerate_ray(tmp_path):
    script = REPO / "builder_scripts" / "launch_ray.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), "sample", str(tmp_path / "out"), "--teachers", "glm", "--dry-run"],
                          cwd=REPO, env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "to generate:       24 images x 1 teachers" in done.stdout and not (tmp_path / "out").exists()


CLUSTER_SCRIPT = REPO / "builder_scripts" / "ray_cluster.sh"


def cluster_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of builder_scripts/ray_cluster.sh for a head and a worker raylet on this
    machine (LAUNCH instead of srun/ssh), one CPU each, with a fresh HOME and no RAY_ variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", NODES="127.0.0.1 127.0.0.1", HEAD_IP="127.0.0.1",
               LAUNCH=str(REPO / "tests" / "fixtures" / "launch_here.sh"), CPUS_PER_NODE="1", PYTHON=sys.executable,
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")  # fmt: skip
    return {**env, **settings}


def test_ray_cluster_script_refuses_a_port_in_rays_worker_range_before_starting_anything(tmp_path):
    env = cluster_env(tmp_path, RAY_PORT="12345", RAY_WAIT_S="600")
    done = subprocess.run(["bash", str(CLUSTER_SCRIPT), "images", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ray_cluster.sh: RAY_PORT=12345 is inside Ray's worker port range 10002-19999 (ray start would refuse it): use another, e.g. 6379"
    ]
    assert not (tmp_path / "home" / ".ray").exists()  # not even the token was made


def test_ray_cluster_script_reports_a_head_that_failed_when_it_fails(tmp_path, unused_port):
    """`ray start --head` exits at once on a bad option: the script says so with Ray's own error,
    instead of waiting RAY_WAIT_S (600 s here; the guard below is shorter) and blaming tokens."""
    env = cluster_env(tmp_path, RAY_PORT=str(unused_port), RAY_WAIT_S="600", CPUS_PER_NODE="lots")
    done = subprocess.run(["bash", str(CLUSTER_SCRIPT), "images", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.splitlines()  # after the token set-up's own lines
    said = lines.index("ray_cluster.sh: the Ray head did not start (ray start exited with status 2); its last lines:")
    assert "Error: Invalid value for '--num-cpus': 'lots' is not a valid integer." in lines[said + 1 :], done.stderr
    assert "could not join" not in done.stderr and "RAY_AUTH_MODE" not in done.stderr  # no blame on authentication
    assert not (tmp_path / "out").exists()


def test_ray_cluster_script_starts_a_two_node_cluster_runs_the_job_and_stops_it(tmp_path, unused_port):
    """builder_scripts/ray_cluster.sh (under slurm_ray.sh and pbs_ray.sh) for real: a head and a
    worker raylet (on this machine, LAUNCH instead of srun/ssh), one CPU each, so glm's and kimi's
    replicas run on different nodes; a fresh HOME without a Ray token and no RAY_AUTH_MODE, as on
    a new cluster, where Ray enables token authentication on the head only."""
    images = image_folder(tmp_path / "images", 12)
    out = tmp_path / "out"
    port = unused_port
    env = cluster_env(tmp_path, RAY_PORT=str(port), RAY_WAIT_S="30")
    with SimProcess(**SIM) as glm, SimProcess(**SIM) as kimi:
        args = command(images, out, glm, kimi)[3:]  # SOURCE OUT_DIR [options] of regenerate
        script = subprocess.Popen(["bash", str(CLUSTER_SCRIPT), *args], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            stdout, stderr = script.communicate(timeout=240)
        finally:  # a hung script: its trap stops the raylets on SIGTERM
            if script.poll() is None:
                os.killpg(script.pid, signal.SIGTERM)
                script.communicate(timeout=60)
        requests = [glm.stats()["requests"], kimi.stats()["requests"]]
    assert script.returncode == 0, stderr[-3000:]
    assert re.search(rf"^Ray cluster at 127\.0\.0\.1:{port}: 2 nodes, .*'CPU': 2\.0", stdout, re.M), stdout
    assert_once(out, images)
    assert requests == [12, 12]
    rows = pq.read_table(runner.data_files(out)).to_pylist()
    assert {e["engine"].endswith(f"(ray {ray.__version__})") for r in rows for e in r["generation"]} == {True}
    assert (tmp_path / "home" / ".ray" / "auth_token").stat().st_size > 0  # the script made the token
    with pytest.raises(ConnectionRefusedError):  # the head is gone with the script
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_joining_a_token_cluster_by_address_without_the_auth_mode_is_one_line_with_the_fix(tmp_path, unused_port):
    """`ray start --head` turns token authentication on when it finds a token, but ray.init(address)
    sends the token only with RAY_AUTH_MODE=token: the error says so; with it, the run joins (and
    then stops at the teacher server, which is not running)."""
    port = unused_port
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    ray_bin = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray_bin, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "1", "--include-dashboard", "false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    images = image_folder(tmp_path / "images", 2)
    args = [sys.executable, "-m", "imagenet_think.regenerate", str(images), str(tmp_path / "out"), "--min-size", "0",
            "--teachers", "glm", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-progress",
            "--ray", f"127.0.0.1:{port}"]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while head.poll() is None and time.monotonic() < deadline:  # until the head's GCS listens
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        without = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        with_mode = subprocess.run(args, cwd=REPO, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=180)
    finally:  # `ray start` stops its GCS and raylet on SIGTERM (sent to them too, it waits 30 s for the GCS)
        head.terminate()
        try:
            head.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # anything left of it
                os.killpg(head.pid, signal.SIGKILL)
    assert without.returncode == 1
    [line] = error_lines(without.stderr)
    assert line.startswith(f"{ERROR}Failed to connect to Ray cluster at ") and line.endswith(
        "and Ray sends it to an address you give only with RAY_AUTH_MODE=token set here"
    )
    assert with_mode.returncode == 1
    assert error_lines(with_mode.stderr) == [
        f"{ERROR}cannot reach the glm server at http://127.0.0.1:9/v1: Connection error. (ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 9)); is it running?"
    ]
    assert runner.data_files(tmp_path / "out") == []
