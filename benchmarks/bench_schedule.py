"""How much of two GPUs' time ``regenerate`` uses: old batch loop vs streaming, on simulated servers.

    python benchmarks/bench_schedule.py                 # 2000 images, 64 slots, 10 ms steps
    python benchmarks/bench_schedule.py -n 400 --old-images 400 --step-ms 20 --median 60 --max-tokens 100000

Two simulated continuous-batching GPUs (``tests/fixtures/sim_server.py``: ``--slots``
sequences at once, one token each per ``--step-ms`` step, extra requests queue; seeded
lognormal output lengths, median ``--median`` tokens, sigma 0.8, cut at ``--max-tokens``
(default 5.3 x the median, the ratio of GLM's 8,192 cap to its ~1.5k median)), one per teacher,
fresh for each run:

* ``old``: the loop ``regenerate`` ran before streaming (``Runner.run`` of ``c4e4602``):
  ``--batch-size`` images at a time, teacher 1 then teacher 2, each batch through
  ``Engine.generate`` with 32 requests in flight (the old OpenAI engine's ``concurrency``),
  rows written after each batch; on the first ``--old-images`` images (it is slow);
* ``stream``: the plain command ``python -m imagenet_think.regenerate IMAGES OUT --engine openai
  --base-url glm=URL1 --base-url kimi=URL2 --trust-remote-code --sampling max_tokens=N`` with
  every scheduling option at its default.

For each run, from the servers' own records: ``window_s``, first request to last answer over
both servers; ``efficiency`` = (tokens / (slots x step rate)) / window, summed over the two
servers (1.0: both GPUs full all the time); ``vs_ideal`` = the time a perfect online client
needs for the same requests (all sent at once in arrival order, each to the first free slot,
drain included; the slower server's) / window.  ``ideal_efficiency`` is what that perfect client
would score: with few requests per slot the drain alone keeps it far below 1.  Also the
command's whole wall time (start-up and writing included).  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_vllm import make_images  # noqa: E402
from tests.fixtures.sim_server import SimProcess  # noqa: E402


def image_folder(root: Path, count: int, seed: int) -> Path:
    """``count`` JPEGs (224-512 px) in synset folders of 100."""
    for index, data in enumerate(make_images(count, seed)):
        folder = root / f"n{index // 100:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"n{index // 100:08d}_{index}.JPEG").write_bytes(data)
    return root


def servers(args: argparse.Namespace) -> tuple[SimProcess, SimProcess]:
    options = {"slots": args.slots, "step_ms": args.step_ms, "median": args.median, "sigma": args.sigma}
    return SimProcess(seed=1, **options), SimProcess(seed=2, **options)


def measure(sims: tuple[SimProcess, SimProcess], wall: float) -> dict[str, Any]:
    stats = [sim.stats() for sim in sims]
    window = max(s["last_completion"] for s in stats) - min(s["first_arrival"] for s in stats)
    ideal = max(s["ideal_s"] for s in stats)
    capacity = sum(s["capacity_s"] for s in stats) / len(stats)
    return {
        "requests": [s["requests"] for s in stats],
        "tokens": sum(s["tokens"] for s in stats),
        "window_s": round(window, 2),
        "command_wall_s": round(wall, 2),
        "efficiency": round(capacity / window, 3),
        "vs_ideal": round(ideal / window, 3),
        "ideal_efficiency": round(capacity / ideal, 3),
        "max_waiting": [s["max_waiting"] for s in stats],
        "idle_by_tenth": [s["idle_by_tenth"] for s in stats],
    }


def old_batch_loop(images: Path, out: Path, urls: list[str], args: argparse.Namespace) -> None:
    """The pre-streaming ``Runner.run``: batches, one teacher after the other, then write."""
    from imagenet_think.regenerate import runner, sources
    from imagenet_think.regenerate.engines import Request, make_engine
    from imagenet_think.regenerate.models import get_model

    todo = sources.select_items(sources.open_source(images), args.old_images).items
    sampling = {"max_tokens": args.max_tokens}
    engines = {
        pair: make_engine("openai", get_model(name), base_url=url, sampling=sampling, max_in_flight=32)
        for pair, name, url in ((1, "glm", urls[0]), (2, "kimi", urls[1]))
    }
    with runner.ShardWriter(out) as writer:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            data = [item.read_bytes() for item in batch]
            pairs: list[dict] = [{} for _ in batch]
            generation: list[list] = [[] for _ in batch]
            for pair, engine in engines.items():
                for index, result in enumerate(engine.generate([Request(i.id, d) for i, d in zip(batch, data)])):
                    pairs[index][pair] = runner.pair_columns(pair, engine.spec, result)
                    generation[index].append(engine.generation_entry(pair, result))
            for item, image, columns, entries in zip(batch, data, pairs, generation):
                writer.add(runner.build_row(item, image, columns, entries))
    for engine in engines.values():
        engine.close()


def stream(images: Path, out: Path, urls: list[str], args: argparse.Namespace) -> None:
    command = [
        sys.executable, "-m", "imagenet_think.regenerate", str(images), str(out), "--engine", "openai",
        "--base-url", f"glm={urls[0]}", "--base-url", f"kimi={urls[1]}", "--trust-remote-code",
        "--sampling", f"max_tokens={args.max_tokens}", "--no-progress", "--log-level", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"regenerate failed ({done.returncode}): {done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--num-images", type=int, default=2000, help="images of the streaming run")
    parser.add_argument("--old-images", type=int, default=1024, help="images of the old loop's run")
    parser.add_argument("--batch-size", type=int, default=256, help="the old loop's --batch-size (its default)")
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--step-ms", type=float, default=10.0)
    parser.add_argument("--median", type=float, default=120.0)
    parser.add_argument("--sigma", type=float, default=0.8)
    parser.add_argument("--max-tokens", type=int, help="cap of the outputs (default: 5.3 x median)")
    parser.add_argument("--runs", default="old,stream", help="which runs, in order")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.max_tokens = args.max_tokens or round(5.3 * args.median)
    report: dict[str, Any] = {
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k != "runs"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        images = image_folder(Path(tmp, "images"), args.num_images, args.seed)
        for run in args.runs.split(","):
            sims = servers(args)
            try:
                started = time.monotonic()
                (old_batch_loop if run == "old" else stream)(images, Path(tmp, f"out-{run}"), [s.url for s in sims], args)
                report[run] = measure(sims, time.monotonic() - started)
            finally:
                for sim in sims:
                    sim.stop()
            report[run]["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
