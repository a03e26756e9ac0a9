"""Cost of each evaluation metric on texts of the corpus's length, per 100 (prediction, reference) pairs.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/bench_eval.py [--pairs 64] [--think-words 600]
[--answer-words 250] [--device cpu] [--repeat 2]``.  Texts are words drawn (seeded) from the
bundled sample's teacher texts; the model-based metrics use the bundled all-MiniLM-L6-v2
(BERTScore on roberta-large costs far more, and needs the Hub).  Each row is the best wall time
of ``--repeat`` runs after one warm-up call (model loading excluded) and the CPU seconds of
that run: on a shared machine wall time depends on the load, CPU time much less so."""

from __future__ import annotations

import argparse
import platform
import random
import time
from datetime import date

from imagenet_think import load_dataset
from imagenet_think.evaluate.metrics import METRIC_NAMES, METRICS, MetricSettings, word_tokens


def make_texts(count: int, words: int, seed: int) -> list[str]:
    rows = load_dataset("sample", split="train", decode_images=False)
    vocabulary = [w for column in ("think_1", "answer_1", "think_2", "answer_2") for t in rows[column] for w in word_tokens(t or "")]
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, k=words)) + "." for _ in range(count)]


def time_metric(name: str, predictions: list[str], references: list[str], settings: MetricSettings, repeat: int):
    METRICS[name](predictions[:2], references[:2], settings)  # warm-up: loads models
    best = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        METRICS[name](predictions, references, settings)
        run = (time.perf_counter() - wall, time.process_time() - cpu)
        best = run if best is None or run[0] < best[0] else best
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--think-words", type=int, default=600)
    parser.add_argument("--answer-words", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = MetricSettings(bertscore_model="all-MiniLM-L6-v2", device=args.device)
    print(f"{date.today()} {platform.node()} {platform.processor() or platform.machine()}, device {args.device}")
    print("| metric | part (words) | s / 100 pairs (wall) | CPU s / 100 pairs |")
    print("| --- | --- | --- | --- |")
    for part, words in (("think", args.think_words), ("answer", args.answer_words)):
        predictions = make_texts(args.pairs, words, seed=1)
        references = make_texts(args.pairs, words, seed=2)
        for name in METRIC_NAMES:
            wall, cpu = time_metric(name, predictions, references, settings, args.repeat)
            scale = 100 / args.pairs
            print(f"| {name} | {part} ({words}) | {wall * scale:.2f} | {cpu * scale:.2f} |")


if __name__ == "__main__":
    main()
