"""Throughput of imagenet_think.sft on ``default``-config rows with realistic text lengths.

Run: ``python benchmarks/bench_sft.py [--rows 200000] [--image-bytes 64] [--repeat 3]``.
Prints rows/s (input records per second) of ``sft_table`` for each ``think`` mode with one
teacher and with ``teacher="both"``, then of the full ``Dataset.map(sft_batch, batched=True)``
path (Arrow format in, cache file written).  Images are passed through as their stored
``{"bytes", "path"}`` structs; ``--image-bytes`` sets their size (about 30000 is a real
224 px JPEG, the default 64 measures the text work alone).
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
from datetime import date

import datasets
import pyarrow as pa

from imagenet_think import PROMPT
from imagenet_think.schema import FEATURES
from imagenet_think.sft import THINK_MODES, sft_batch, sft_table

WORDS = (
    "the image shows a tiger lying on green grass with orange fur and black stripes its eyes are "
    "half closed behind it there is a wooden fence and trees in soft afternoon light Got it let's "
    "look at the details first the animal is large feline élégant café"
).split()


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high) // 6))


def corpus_table(rows: int, image_bytes: int, seed: int = 0) -> pa.Table:
    """``rows`` records: thinks of 1-4 KB, answers of 0.5-2 KB, all statuses ``ok``."""
    rng = random.Random(seed)
    pool = 512
    thinks = [_text(rng, 1000, 4000) for _ in range(pool)]
    answers = [_text(rng, 500, 2000) for _ in range(pool)]
    image = {"bytes": bytes(rng.getrandbits(8) for _ in range(image_bytes)), "path": None}
    columns = {
        "id": [f"n{i:08d}_n{i:08d}_{i}" for i in range(rows)],
        "image": [image] * rows,
        "question": [PROMPT] * rows,
    }
    for t in (1, 2):
        columns[f"think_{t}"] = [thinks[(i * 7 + t) % pool] for i in range(rows)]
        columns[f"answer_{t}"] = [answers[(i * 13 + t) % pool] for i in range(rows)]
        columns[f"status_{t}"] = ["ok"] * rows
    schema = pa.schema([FEATURES["default"].arrow_schema.field(name) for name in columns])
    return pa.table(columns, schema=schema)


def best_rate(rows: int, repeat: int, work) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return rows / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--image-bytes", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per sft_table call, as in Dataset.map")
    args = parser.parse_args()

    table = corpus_table(args.rows, args.image_bytes)
    batches = [table.slice(start, args.batch_size) for start in range(0, args.rows, args.batch_size)]
    print(f"# {date.today()} {platform.node()} {platform.processor() or platform.machine()} "
          f"python {platform.python_version()} pyarrow {pa.__version__} datasets {datasets.__version__}")
    print(f"# {args.rows} rows, {table.nbytes / args.rows:.0f} bytes/row, images of {args.image_bytes} bytes, "
          f"batches of {args.batch_size}")
    for teacher in (1, "both"):
        for think in THINK_MODES:
            rate = best_rate(args.rows, args.repeat, lambda: [sft_table(b, teacher=teacher, think=think) for b in batches])
            print(f"sft_table teacher={teacher!s:<4} think={think:<6} {rate:>10,.0f} rows/s")

    dataset = datasets.Dataset(table)
    datasets.disable_progress_bars()
    for teacher in (1, "both"):
        with tempfile.TemporaryDirectory() as cache:
            def map_once() -> None:
                dataset.with_format("arrow").map(
                    sft_batch, batched=True, batch_size=args.batch_size, remove_columns=dataset.column_names,
                    fn_kwargs={"teacher": teacher}, cache_file_name=f"{cache}/sft.arrow", load_from_cache_file=False,
                )

            rate = best_rate(args.rows, args.repeat, map_once)
        print(f"Dataset.map(sft_batch) teacher={teacher!s:<4} think=tags   {rate:>10,.0f} rows/s (cache file written)")

if __name__ == "__main__":
    main()
