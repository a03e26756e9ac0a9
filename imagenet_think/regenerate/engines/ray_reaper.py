"""Ends the Ray agents a killed driver leaves running: ``python ray_reaper.py`` (Linux).

``ray.init(address="local")`` starts a Ray runtime whose processes are children of the driver and
die with it (Ray sets ``PR_SET_PDEATHSIG``), all but two, which the raylet starts:
``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``.  When the raylet is gone, each agent notices
within 2 s (five checks 0.4 s apart, ``ray._private.process_watcher``); then, the raylet's log
holding no SIGTERM, it reports the death to the GCS, dead too, through a call with a fixed 60 s
timeout (``ray._private.utils.publish_error_to_driver``), and exits when that call gives up: 62 to
65 s after a SIGKILLed driver (64.5 s measured with Ray 2.60).  No setting shortens that call.

:func:`start` (called by :func:`imagenet_think.regenerate.engines.ray_engine.connect` for a runtime
it starts) runs this file as a small process of its own (the standard library only, in a session
of its own), with a pipe on its stdin whose other end only the driver holds.  While the driver
lives, it notes every :data:`WATCH_S` seconds the processes below the driver titled ``ray::``
(the agents, and Ray's workers, which would exit by themselves within seconds of the raylet),
with their start times; once the pipe ends, which comes when the driver exits, however it exits
(SIGKILL included), it ends those still running (SIGTERM, then SIGKILL to any still running
:data:`GRACE_S` seconds later).  After a clean exit (``ray.shutdown()``) it finds nothing left.
Processes are known by their place below the driver, not by their environment: the agents'
process titles overwrite the start of it (``setproctitle``).

>>> ray_processes(os.getpid())
{}
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import Mapping, Optional

WATCH_S = 1.0
"""Seconds between two looks at the driver's processes."""

GRACE_S = 5.0
"""Seconds the processes get to exit after SIGTERM before SIGKILL."""

_STARTED: list[subprocess.Popen] = []
"""Reapers started by this process: kept, so that the pipe to each stays open until it exits."""


def _stat(pid: int) -> Optional[list[bytes]]:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), ``None`` when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> Optional[bytes]:
    """When ``pid`` started (clock ticks after boot), ``None`` when it is gone or a zombie."""
    fields = _stat(pid)
    return fields[19] if fields and fields[0] != b"Z" else None


def ray_processes(root: int) -> dict[int, bytes]:
    """The running processes below ``root`` whose title starts with ``ray::``: pid -> start time."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))):
            children.setdefault(int(fields[1]), []).append(int(name))
    found, frontier = {}, list(children.get(root, []))
    while frontier:
        pid = frontier.pop()
        frontier.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                titled = handle.read().startswith(b"ray::")
        except OSError:
            continue
        started = _start_time(pid)
        if titled and started is not None:
            found[pid] = started
    return found


def reap(known: Mapping[int, bytes], grace: float = GRACE_S) -> list[int]:
    """SIGTERM the processes of ``known`` (pid -> start time) still running (the same start time:
    never a pid reused since), SIGKILL those still running ``grace`` seconds later; returns the
    pids it signalled."""
    pids = [pid for pid, started in known.items() if _start_time(pid) == started]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_start_time(pid) is not None for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _start_time(pid) == known[pid]:
            _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def start() -> Optional[subprocess.Popen]:
    """Run this file to end this process's Ray agents once it exits (``None`` off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    reaper = subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C at the terminal is the driver's to handle, not this one's
    )
    _STARTED.append(reaper)
    return reaper


def main() -> int:
    """Note the driver's ``ray::`` processes until stdin ends (the driver exited), then :func:`reap` them."""
    driver = os.getppid()
    known: dict[int, bytes] = {}
    while True:
        known.update(ray_processes(driver))
        readable, _, _ = select.select([sys.stdin.buffer], [], [], WATCH_S)
        if readable and not os.read(sys.stdin.fileno(), 4096):
            break
    reap(known)
    return 0


if __name__ == "__main__":
    sys.exit(main())
