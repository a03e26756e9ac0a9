"""Prepare + iterate N synthetic rows: our builder vs ``datasets``' packaged Parquet builder.

Both read the same ``train`` shards (Hub layout written by
``imagenet_think.writer.write_split_shards``, small JPEGs embedded; about 1 % of the rows go to
``validation`` files by id hash).  Each measurement runs in a fresh subprocess with a fresh
cache, so peak RSS is the reader's own: ``peak_rss_mb`` (``ru_maxrss``, which counts the file
pages of the memory-mapped Arrow cache touched while iterating) and ``peak_anon_rss_mb`` (heap
memory, sampled every 5 ms).  Prints one JSON line per N.

    python benchmarks/bench_load.py --rows 10000 50000 250000
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

READER = r"""
import json, resource, sys, threading, time
import datasets

peak_anon = [0]
def sample_anon():  # RssAnon: heap memory, without the file pages of memory-mapped Arrow files
    while True:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
        peak_anon[0] = max(peak_anon[0], kb)
        time.sleep(0.005)
threading.Thread(target=sample_anon, daemon=True).start()
kind, corpus, cache = sys.argv[1:4]
start = time.perf_counter()
if kind == "ours":
    import imagenet_think
    ds = imagenet_think.load_dataset(corpus, split="train", cache_dir=cache, decode_images=False)
else:
    files = sorted(str(p) for p in __import__("pathlib").Path(corpus, "data").glob("train-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=cache)
    ds = ds.cast_column("image", datasets.Image(decode=False))
prepared = time.perf_counter() - start
rows = 0
for batch in ds.iter(batch_size=1000):
    rows += len(batch["id"])
total = time.perf_counter() - start
print(json.dumps({"kind": kind, "rows": rows, "prepare_s": prepared, "total_s": total,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_anon_rss_mb": peak_anon[0] / 1024}))
"""


def make_corpus(out: Path, rows: int, rows_per_shard: int = 10_000) -> None:
    """Write ``rows`` synthetic rows in Hub layout under ``out``."""
    import pyarrow as pa
    from PIL import Image

    from imagenet_think import PROMPT, schema
    from imagenet_think.writer import write_split_shards

    rng = random.Random(0)
    jpegs = []
    for k in range(64):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (rng.randrange(256), rng.randrange(256), k * 4)).save(buf, "JPEG", quality=80)
        jpegs.append(buf.getvalue())
    words = "the a cat dog bird red blue green sits on under table grass sky image shows".split()
    total = -(-rows // rows_per_shard)
    for shard in range(total):
        n = min(rows_per_shard, rows - shard * rows_per_shard)
        batch = []
        for i in range(shard * rows_per_shard, shard * rows_per_shard + n):
            think = " ".join(rng.choices(words, k=60))
            answer = " ".join(rng.choices(words, k=30))
            file_name = f"n00000001_n00000001_{i}.JPEG"
            row = {"id": f"n00000001_n00000001_{i}", "wnid": "n00000001", "label": "synthetic",
                   "image": {"bytes": jpegs[i % 64], "path": file_name}, "question": PROMPT, "generation": []}
            for pair in (1, 2):
                row.update({f"model_{pair}": schema.TEACHERS[pair], f"think_{pair}": think, f"answer_{pair}": answer,
                            f"status_{pair}": "ok", f"finish_reason_{pair}": "stop", f"num_tokens_{pair}": 120})
            batch.append(row)
        table = pa.Table.from_pylist(batch, schema=schema.arrow_schema("default"))
        write_split_shards(table, out / "data", shard, total, validation_fraction=0.01)


def measure(kind: str, corpus: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", READER, kind, str(corpus), cache], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs per reader; the best time is kept")
    args = parser.parse_args()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            make_corpus(corpus, rows)
            results = {}
            for kind in ("parquet", "ours"):
                runs = [measure(kind, corpus) for _ in range(args.repeat)]
                results[kind] = min(runs, key=lambda r: r["total_s"]) | {
                    key: max(r[key] for r in runs) for key in ("peak_rss_mb", "peak_anon_rss_mb")
                }
            ratio = results["parquet"]["total_s"] / results["ours"]["total_s"]
            print(json.dumps({"rows": rows, "speed_ratio_ours_vs_parquet": round(ratio, 3), **results}), flush=True)


if __name__ == "__main__":
    main()
