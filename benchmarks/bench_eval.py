"""Cost of each evaluation metric on texts of the corpus's length, per 100 (prediction, reference) pairs,
and ROUGE ours vs ``rouge-score``.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/bench_eval.py [--pairs 64] [--think-words 600]
[--answer-words 250] [--device cpu] [--repeat 2] [--metrics ...]``.  Texts are ASCII words drawn
(seeded) from the bundled sample's teacher texts, so ``rouge-score``'s own tokenizer sees the
same tokens as ours; the model-based metrics use the bundled all-MiniLM-L6-v2 (BERTScore on
roberta-large costs far more, and needs the Hub).  Each row is the best wall time of
``--repeat`` runs after one warm-up call (model loading excluded) and the CPU seconds of that
run: on a shared machine wall time depends on the load, CPU time much less so.  Ours is timed
through ``score_texts`` (tokenisation included); ``rouge-score`` is
``RougeScorer([type], use_stemmer=...).score`` per pair, and both must agree to 1e-9."""

from __future__ import annotations

import argparse
import platform
import random
import time
from datetime import date

from imagenet_think import load_dataset
from imagenet_think.evaluate.metrics import METRIC_NAMES, MetricSettings, score_texts
from imagenet_think.text import word_tokens


def make_texts(count: int, words: int, seed: int) -> list[str]:
    rows = load_dataset("sample", split="train", decode_images=False)
    texts = [t or "" for column in ("think_1", "answer_1", "think_2", "answer_2") for t in rows[column]]
    vocabulary = [w for t in texts for w in word_tokens(t) if w.isascii()]
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, k=words)) + "." for _ in range(count)]


def best_of(repeat: int, run) -> tuple[float, float, object]:
    """Best (wall s, CPU s) of ``repeat`` calls of ``run()`` after a warm-up call, and its result."""
    result = run()
    best = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        timing = (time.perf_counter() - wall, time.process_time() - cpu)
        best = timing if best is None or timing[0] < best[0] else best
    return (*best, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--think-words", type=int, default=600)
    parser.add_argument("--answer-words", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--metrics", nargs="+", default=list(METRIC_NAMES), choices=METRIC_NAMES)
    args = parser.parse_args()
    from rouge_score import rouge_scorer

    settings = MetricSettings(bertscore_model="all-MiniLM-L6-v2", device=args.device)
    scale = 100 / args.pairs
    print(f"{date.today()} {platform.node()} {platform.processor() or platform.machine()}, device {args.device}")
    print("| metric | part (words) | s / 100 pairs (wall) | CPU s / 100 pairs |")
    print("| --- | --- | --- | --- |")
    comparisons = []
    for part, words in (("think", args.think_words), ("answer", args.answer_words)):
        predictions = make_texts(args.pairs, words, seed=1)
        references = make_texts(args.pairs, words, seed=2)
        for name in args.metrics:
            wall, cpu, _ = best_of(args.repeat, lambda: score_texts(predictions, references, [name], settings))
            print(f"| {name} | {part} ({words}) | {wall * scale:.3f} | {cpu * scale:.3f} |")
        for rouge_type, name in (("rouge1", "rouge1_f"), ("rougeL", "rougeL_f")):
            for stemmer in (False, True):
                ours_settings = MetricSettings(rouge_stemmer=stemmer)
                scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=stemmer)
                ours = best_of(args.repeat, lambda: score_texts(predictions, references, [name], ours_settings)[name])
                theirs = best_of(
                    args.repeat, lambda: [scorer.score(r, p)[rouge_type].fmeasure for p, r in zip(predictions, references)]
                )
                difference = max(abs(a - b) for a, b in zip(ours[2], theirs[2]))
                assert difference < 1e-9, f"{name} differs from rouge-score by {difference}"
                comparisons.append((name, stemmer, part, words, ours, theirs, difference))
    print()
    print("| metric | stemmer | part (words) | ours CPU s / 100 pairs | rouge-score CPU s / 100 pairs | speed-up (CPU) | max abs difference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, stemmer, part, words, ours, theirs, difference in comparisons:
        print(f"| {name} | {'yes' if stemmer else 'no'} | {part} ({words}) | {ours[1] * scale:.4f} | {theirs[1] * scale:.3f} "
              f"| {theirs[1] / ours[1]:.0f}x | {difference:.1e} |")


if __name__ == "__main__":
    main()
