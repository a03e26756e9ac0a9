"""Throughput of imagenet_think.reasoning on realistic 2-4 KB teacher outputs.

Run: ``python benchmarks/bench_reasoning.py [--count 100000] [--repeat 3] [--no-dataset]``.
Prints strings/s for one process (``split_reasoning`` loop and ``split_batch``), for two processes
splitting their own texts at the same time (each makes its share first, so no copy-on-write of
the parent's strings is timed), and end to end through Arrow with ``Dataset.map(batched=True)``,
1 and 2 processes.  Each row gives the best wall time of ``--repeat`` runs and the CPU time of
that run (this process plus reaped children; the workers' own for the two-process row): on a
shared machine wall time depends on the load, strings per CPU-second much less so."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import resource
import tempfile
import time
from collections import Counter
from datetime import date

from imagenet_think.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    KIMI_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    join_reasoning,
    split_batch,
    split_reasoning,
)

WORDS = (
    "the image shows a tiger lying on green grass with orange fur and black stripes its eyes are "
    "half closed behind it there is a wooden fence and trees in soft afternoon light Got it let's "
    "look at the details first the animal is large feline élégant café"
).split()
CHINESE = "这是一只老虎，躺在草地上。"
"""Added to a few outputs: CJK text makes CPython store the whole string with 2 bytes a character."""

def _prose(rng: random.Random, size: int) -> str:
    words = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def make_texts(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``count`` outputs, half GLM and half Kimi, 2-4 KB each: 5 % cut by the token limit, GLM
    answers with and without a box and ``</answer>``, 3 % with Chinese text."""
    rng = random.Random(seed)
    texts, finish_reasons = [], []
    for index in range(count):
        think = _prose(rng, rng.randint(1500, 3000))
        answer = _prose(rng, rng.randint(400, 900)) + (CHINESE if rng.random() < 0.03 else "")
        roll = rng.random()
        if index % 2 == 0:
            if roll < 0.05:
                text, reason = THINK_OPEN + "\n" + think + " " + answer, "length"
            else:
                box = f" {BOX_OPEN}tiger{BOX_CLOSE}" if roll < 0.5 else ""
                close = "" if roll > 0.7 else ANSWER_CLOSE  # vLLM drops the stop string
                text, reason = f"{THINK_OPEN}\n{think}{THINK_CLOSE}{ANSWER_OPEN}{answer}{box}{close}", "stop"
        else:
            if roll < 0.05:
                text, reason = KIMI_OPEN + think + " " + answer, "length"
            else:
                text, reason = join_reasoning(think, answer, "kimi"), "stop"
        texts.append(text)
        finish_reasons.append(reason)
    return texts, finish_reasons


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers are reaped on exit)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _best(function, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeat`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        function()
        best = min(best, (time.perf_counter() - started, _cpu_seconds() - cpu_started))
    return best


def _loop(texts: list[str], finish_reasons: list[str]) -> None:
    for text, reason in zip(texts, finish_reasons):
        split_reasoning(text, finish_reason=reason)


def _worker(count: int, seed: int, start, results) -> None:
    """Make this worker's own texts (no copy-on-write of the parent's), wait, split, report times."""
    texts, finish_reasons = make_texts(count, seed)
    start.wait()
    cpu_started, started = time.process_time(), time.perf_counter()
    split_batch(texts, "auto", finish_reasons)
    results.put((time.perf_counter() - started, time.process_time() - cpu_started))


def _two_workers(count: int, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds for two processes splitting ``count // 2`` texts each at the same time.

    Wall runs from the moment both workers are ready until the later one is done."""
    context = multiprocessing.get_context("fork")
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        start, results = context.Barrier(3), context.Queue()
        workers = [context.Process(target=_worker, args=(count // 2, seed, start, results)) for seed in (1, 2)]
        for worker in workers:
            worker.start()
        start.wait()
        started = time.perf_counter()
        times = [results.get(), results.get()]
        wall = time.perf_counter() - started
        for worker in workers:
            worker.join()
        best = min(best, (max(wall, *(w for w, _ in times)), sum(cpu for _, cpu in times)))
    return best


def _split_columns(batch: dict[str, list]) -> dict[str, list]:
    return split_batch(batch["raw"], "auto", batch["finish_reason"])


def _dataset_map_timings(texts: list[str], finish_reasons: list[str], repeat: int) -> dict[str, tuple]:
    """End to end through Arrow: ``Dataset.map(split_batch, batched=True)`` with 1 and 2 processes,
    on a dataset memory-mapped from disk (as ``load_dataset`` returns it)."""
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as directory:
        datasets.Dataset.from_dict({"raw": texts, "finish_reason": finish_reasons}).save_to_disk(directory)
        dataset = datasets.load_from_disk(directory)
        return {
            f"Dataset.map(batched=True, num_proc={num_proc})": _best(
                lambda: dataset.map(_split_columns, batched=True, num_proc=num_proc, load_from_cache_file=False),
                repeat,
            )
            for num_proc in (None, 2)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dataset", action="store_true", help="skip the Dataset.map rows")
    args = parser.parse_args()

    texts, finish_reasons = make_texts(args.count)
    sizes = sorted(len(text.encode()) for text in texts)
    statuses = Counter(split_batch(texts, "auto", finish_reasons)["status"])
    print(f"{args.count} texts, {sizes[0]}-{sizes[-1]} bytes (median {sizes[len(sizes) // 2]}), statuses {dict(statuses)}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")

    timings = {
        "1 process, split_reasoning loop": _best(lambda: _loop(texts, finish_reasons), args.repeat),
        "1 process, split_batch": _best(lambda: split_batch(texts, "auto", finish_reasons), args.repeat),
        "2 processes, split_batch on their own texts": _two_workers(args.count, args.repeat),
    }
    if not args.no_dataset:
        timings.update(_dataset_map_timings(texts, finish_reasons, args.repeat))

    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"machine: {multiprocessing.cpu_count()} cores, {_cpu_model()}, Python {platform.python_version()}, {date.today()}")
    print("| run | strings/s (wall) | strings per CPU-second |")
    print("| --- | ---: | ---: |")
    for name, (wall, cpu) in timings.items():
        print(f"| {name} | {args.count / wall:,.0f} | {args.count / cpu:,.0f} |")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
