"""Response times of ``imagenet-think view`` on a synthetic corpus of 250k records.

Writes (or reuses, with ``--corpus DIR``) a Hub-layout corpus: 10,000 records per shard,
100-row row groups (as ``imagenet-think export`` and ``regenerate`` write them), texts of realistic
length and entropy (reasoning 1-4 KB, answers 0.5-2 KB, cut from a 64 MB stream of random words
so no two rows share text), 1,000 classes, statuses mixed as in a real run (about 4 % cut while
reasoning), and small JPEGs (``--image-side``).  Then, in one process: prepares the index
(``Corpus.refresh``), starts the real server on 127.0.0.1 in a thread and times HTTP requests
with ``http.client``: the first page, a deep page, filters, sort, text search (first and cached,
with the hits shown), record pages, the thumbnails of a page, the finish reason and token
filters, class suggestions, the quality signals (agreement, label checks: how long until they
are computed on first use, then filters and sorts on them), and a reload after a new shard
appears.  The synthetic classes are not WordNet synsets, so their label checks cost nothing:
``signals_10k_wordnet_classes_s`` times the signals of 10,000 of the records with real classes.
Besides wall time each measurement gives the process's CPU time (``cpu_…``: server and client
threads together), which other load on a shared machine inflates much less.

    python benchmarks/bench_view.py                       # 250k rows in a temporary directory
    python benchmarks/bench_view.py --corpus /tmp/view-250k --rows 250000   # keep it for reruns
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROWS_PER_SHARD = 10_000
STATUS_MIX = {"ok": 0.90, "unclosed_think": 0.04, "malformed": 0.025, "no_think": 0.02, "empty_answer": 0.015}


def _word_stream(rng: np.random.Generator, megabytes: int = 64) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(5000)]
    return " ".join(rng.choice(vocabulary, size=megabytes * 2**20 // 7))


def _jpegs(rng: np.random.Generator, side: int, count: int = 256) -> list[bytes]:
    from PIL import Image

    images = []
    for _ in range(count):
        pixels = rng.integers(0, 256, size=(side * 3 // 4, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        images.append(buffer.getvalue())
    return images


def make_corpus(out: Path, rows: int, image_side: int, seed: int = 0, first_shard: int = 0) -> None:
    """Write ``rows`` synthetic records as ``out/data/train-SSSSS-of-NNNNN.parquet`` shards."""
    import pyarrow as pa

    from imagenet_think import PROMPT, schema
    from imagenet_think.writer import shard_name, write_shard

    rng = np.random.default_rng(seed)
    stream = _word_stream(rng)
    jpegs = _jpegs(rng, image_side)
    statuses = np.array(list(STATUS_MIX))
    total = first_shard + -(-rows // ROWS_PER_SHARD)
    for shard in range(first_shard, total):
        start = shard * ROWS_PER_SHARD
        n = min(ROWS_PER_SHARD, rows - (shard - first_shard) * ROWS_PER_SHARD)
        wnids = [f"n{k:08d}" for k in rng.integers(1, 1001, size=n)]
        ids = [f"{w}_{w}_{start + i}" for i, w in enumerate(wnids)]
        columns = {
            "id": ids,
            "wnid": wnids,
            "label": [f"class {int(w[1:])}" for w in wnids],
            "image": [{"bytes": jpegs[i % len(jpegs)], "path": f"{ids[i]}.JPEG"} for i in range(n)],
            "question": [PROMPT] * n,
            "generation": [[]] * n,
        }
        for pair in (1, 2):
            status = rng.choice(statuses, size=n, p=list(STATUS_MIX.values()))
            think_len, answer_len = rng.integers(1000, 4000, size=n), rng.integers(500, 2000, size=n)
            offsets = rng.integers(0, len(stream) - 6000, size=n)
            think = [stream[o : o + t] if s != "no_think" else "" for o, t, s in zip(offsets, think_len, status)]
            answer = [
                stream[o + 4000 : o + 4000 + a] if s not in ("unclosed_think", "empty_answer") else ""
                for o, a, s in zip(offsets, answer_len, status)
            ]
            columns.update(
                {
                    f"model_{pair}": [schema.TEACHERS[pair]] * n,
                    f"think_{pair}": think,
                    f"answer_{pair}": answer,
                    f"status_{pair}": status.tolist(),
                    f"finish_reason_{pair}": ["length" if s == "unclosed_think" else "stop" for s in status],
                    f"num_tokens_{pair}": (think_len // 4).astype(np.int32).tolist(),
                }
            )
        table = pa.table(columns, schema=schema.arrow_schema("default"))
        write_shard(table, out / "data" / shard_name("train", shard, total))


def _in_child(function, *args) -> None:
    """Run ``function(*args)`` in a fresh process, so the writer's memory is not the viewer's."""
    process = multiprocessing.get_context("spawn").Process(target=function, args=args)
    process.start()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{function.__name__} failed with exit code {process.exitcode}")


def _get(port: int, path: str) -> tuple[float, bytes, float]:
    """Wall time, body and process CPU time of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start, cpu = time.perf_counter(), time.process_time()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:300]!r}")
    return elapsed, body, cpu


def _times(port: int, path: str, repeat: int) -> dict:
    runs = [_get(port, path) for _ in range(repeat)]
    return {"first_ms": round(runs[0][0] * 1000, 1), "median_ms": round(statistics.median(r[0] for r in runs) * 1000, 1),
            "cpu_median_ms": round(statistics.median(r[2] for r in runs) * 1000, 1)}


def _until_computed(port: int, path: str) -> float:
    """Seconds until ``path`` (a filter on the quality signals) stops answering 503."""
    start = time.perf_counter()
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status == 200:
            return time.perf_counter() - start
        if response.status != 503:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        time.sleep(0.5)


def _signals_with_wordnet_classes(corpus, snapshot, rows: int = 10_000) -> float:
    """Seconds :func:`signal_table` takes on the answers of ``rows`` records given real WordNet classes."""
    import pyarrow as pa

    from imagenet_think.labels import synset_ids
    from imagenet_think.view.signals import SOURCE_COLUMNS, signal_table

    table = pa.concat_tables(snapshot.files[0].row_groups(SOURCE_COLUMNS)).slice(0, rows)
    classes = np.random.default_rng(2).choice(synset_ids(), size=table.num_rows)
    table = table.set_column(table.column_names.index("wnid"), "wnid", pa.array(classes.tolist()))
    start = time.perf_counter()
    signal_table(table)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--corpus", help="directory to write the corpus to, or to reuse when it holds data/")
    parser.add_argument("--image-side", type=int, default=128, help="width of the synthetic JPEGs in pixels")
    parser.add_argument("--repeat", type=int, default=5, help="requests per measurement (first and median kept)")
    args = parser.parse_args()

    from imagenet_think.view.corpus import Corpus
    from imagenet_think.view.server import Viewer, ViewServer

    tmp = tempfile.TemporaryDirectory() if not args.corpus else None
    corpus_dir = Path(args.corpus or tmp.name) / "corpus"
    if not (corpus_dir / "data").is_dir():
        start = time.perf_counter()
        _in_child(make_corpus, corpus_dir, args.rows, args.image_side)
        print(f"# wrote {args.rows:,} rows in {time.perf_counter() - start:.0f} s to {corpus_dir}", flush=True)
    size = sum(f.stat().st_size for f in (corpus_dir / "data").glob("*.parquet"))
    print(f"# {date.today()} {platform.node()} {platform.processor() or platform.machine()} nproc {os.cpu_count()} "
          f"python {platform.python_version()}; load average before: {os.getloadavg()}; corpus {size / 2**30:.2f} GiB")

    results: dict = {}
    corpus = Corpus(str(corpus_dir))
    start, cpu = time.perf_counter(), time.process_time()
    snapshot = corpus.refresh(strict=True)
    results["prepare_index_s"] = round(time.perf_counter() - start, 2)
    results["prepare_index_cpu_s"] = round(time.process_time() - cpu, 2)
    results["rows"] = snapshot.index.num_rows
    results["index_mb"] = round(snapshot.index.nbytes / 2**20, 1)
    server = ViewServer(Viewer(corpus), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    ids = snapshot.index["id"]
    wnid = snapshot.index["wnid"][12345 % len(ids)].as_py()
    results["first_page"] = _times(port, "/", args.repeat)
    results["first_page_json"] = _times(port, "/api/records", args.repeat)
    results["page_2000"] = _times(port, "/?page=2000", args.repeat)
    results["status_unclosed"] = _times(port, "/?status=unclosed_think", args.repeat)
    results["kimi_malformed_longest"] = _times(port, "/?teacher=kimi&status=malformed&sort=-think", args.repeat)
    results["wnid"] = _times(port, f"/?wnid={wnid}", args.repeat)
    results["sort_longest_reasoning"] = _times(port, "/?sort=-think", args.repeat)
    ok = snapshot.index["status_1"].to_pylist().index("ok")
    phrase = "+".join(corpus.record(snapshot, ok)["think_1"].split()[5:7])
    results["search_two_words"] = _times(port, f"/?q={phrase}", args.repeat)
    records = [_get(port, "/record/" + ids[position].as_py())
               for position in np.random.default_rng(1).integers(0, len(ids), size=20).tolist()]
    record_times = [r[0] for r in records]
    results["record_pages"] = {"first_ms": round(record_times[0] * 1000, 1),
                               "median_ms": round(statistics.median(record_times) * 1000, 1),
                               "max_ms": round(max(record_times) * 1000, 1),
                               "cpu_median_ms": round(statistics.median(r[2] for r in records) * 1000, 1)}
    results["finish_length"] = _times(port, "/?finish=length", args.repeat)
    results["tokens_range_most_first"] = _times(port, "/?tokens_min=300&tokens_max=600&sort=-tokens", args.repeat)
    results["class_suggestions"] = _times(port, "/api/classes?q=class+12", args.repeat)
    results["signals_computed_s"] = round(_until_computed(port, "/api/records?check=unknown"), 1)
    results["check_unknown"] = _times(port, "/?check=unknown&teacher=kimi", args.repeat)
    results["agreement_range_most_first"] = _times(port, "/?agree_min=0.05&agree_max=0.2&sort=-agree", args.repeat)
    for label, query in (("thumbnails_first_page", "/api/records"), ("thumbnails_longest_page", "/api/records?sort=-think")):
        thumbs = [r["thumbnail"] for r in json.loads(_get(port, query)[1])["records"]]
        start = time.perf_counter()
        with ThreadPoolExecutor(6) as pool:  # a browser opens about six connections per host
            list(pool.map(lambda path: _get(port, path), thumbs))
        results[label] = {"count": len(thumbs), "all_ms": round((time.perf_counter() - start) * 1000, 1)}
    # a regenerate run adds a shard: the next page view indexes only that file
    before = set((corpus_dir / "data").iterdir())
    _in_child(make_corpus, corpus_dir, ROWS_PER_SHARD, args.image_side, 1, len(snapshot.files))
    reload_ms = _get(port, "/")[0]
    results["reload_after_new_shard_ms"] = round(reload_ms * 1000, 1)
    results["rows_after_reload"] = corpus.snapshot.index.num_rows
    for added in set((corpus_dir / "data").iterdir()) - before:  # leave a reused corpus as it was
        added.unlink()
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["signals_10k_wordnet_classes_s"] = round(_signals_with_wordnet_classes(corpus, snapshot), 1)  # after: not the server's memory
    results["load_average_after"] = os.getloadavg()
    server.shutdown()
    server.server_close()  # and the worker processes of the signals
    print(json.dumps(results, indent=1))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
