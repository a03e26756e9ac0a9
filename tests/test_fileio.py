"""imagenet_think.fileio: atomic_write (whole file or nothing, no temp files left behind) and
staging_dir (the staging directories of killed exports are cleaned up by the next one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from imagenet_think.fileio import atomic_write


@pytest.mark.parametrize("durable", [True, False])
def test_error_keeps_the_old_file_and_leaves_no_temp(tmp_path, durable):
    target = tmp_path / "sub" / "data.bin"
    with atomic_write(target, "wb", durable=durable) as f:
        f.write(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb", durable=durable) as f:
            f.write(b"new, half written")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]


def test_text_mode_and_bad_mode(tmp_path):
    with atomic_write(tmp_path / "a.txt") as f:
        f.write("é")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "é"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(tmp_path / "b.txt", "a"):
            pass


STAGE_AND = """
import os, signal, sys, time
from imagenet_think.fileio import staging_dir
with staging_dir(sys.argv[1]) as staging:
    (staging / "part.parquet").write_bytes(b"half an export")
    print(staging.name, flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # as a killed export: no cleanup runs
    time.sleep(120)
"""


def _stage(target, how: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", STAGE_AND, str(target), how], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


@pytest.mark.parametrize("export", ["export-sft", "export"])
def test_an_export_removes_what_killed_exports_left_and_nothing_else(tmp_path, export):
    target = tmp_path / "out"
    live, live_name = _stage(target, "live")  # first: it would clean up the killed one's
    killed, killed_name = _stage(target, "die")
    killed.wait()
    other_host = tmp_path / ".out.staging-elsewhere.example-1-0123abcd"  # another host on a shared file system
    other_host.mkdir()
    try:
        assert killed_name and killed.returncode == -signal.SIGKILL and (tmp_path / killed_name).is_dir()
        args = ["sample", "--format", "trl", "--out", str(target)] if export == "export-sft" else ["sample", str(target)]
        done = subprocess.run([sys.executable, "-m", "imagenet_think.cli", export, *args], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out."))
        assert left == sorted([live_name, other_host.name])  # the dead process's staging is gone
        assert (target / "README.md").is_file()
    finally:
        live.kill()
        live.wait()
