"""Throughput of imagenet_think.rewards.label_reward beside TRL's think_format_reward.

Run: ``python benchmarks/bench_rewards.py [--count 10000] [--repeat 3]``.

The completions are built deterministically (``random.Random(0)``): about 200 words each in the
GLM format ``<think>…</think><answer>…</answer>``, conversational (``[{"role": "assistant",
"content": ...}]``, as TRL's GRPOTrainer passes them to reward functions), a reasoning part of
~140 words and a descriptive answer of ~60, written from a vocabulary of common descriptive words
and the lemmas of 1,000 synsets of the vendored table.  Each is labelled with one synset; its
answer names the label (40 %), a hyponym (15 %), an ancestor (15 %), another class besides the
label (15 %) or none of them (15 %).

Every reward function runs on the same completions in the same process, one core (Python is
single-threaded here), best of ``--repeat`` runs; rows give completions per wall second and per
CPU second (``time.process_time``).  The first ``label_reward`` call, which builds the lemma
index, is timed apart.
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from datetime import date

from imagenet_think import labels, rewards
from imagenet_think.reasoning import split_reasoning

DESCRIPTIVE = (
    "the image shows a on in with and of at near behind under beside its it is are was has there this that "
    "small large bright dark soft warm cold green brown white black red blue yellow grey wooden metal old new "
    "round flat tall short wide narrow light shadow background foreground left right centre corner edge surface "
    "texture colour pattern shape detail scene view frame photo picture looks appears seems lying standing sitting "
    "resting hanging placed visible clearly slightly partly mostly several some many few two three grass ground "
    "floor wall table water sky tree leaves field road street window door building room outdoor indoor daylight "
    "sunlight evening morning focus blurred sharp close distance top bottom side front back middle part piece "
    "let me look first then next also so because probably likely features suggests typical characteristic"
).split()


def _synset_pool(size: int, rng: random.Random) -> list[str]:
    """``size`` synsets of the table that have a parent and a usable first lemma."""
    table = labels._synsets()
    candidates = sorted(w for w, (parents, _) in table.items() if parents)
    return rng.sample(candidates, size)


def _prose(rng: random.Random, words: int, nouns: list[str]) -> str:
    out = []
    while len(out) < words:
        out += rng.choices(DESCRIPTIVE, k=rng.randint(4, 9))
        out.append(rng.choice(nouns))
    return " ".join(out[:words])


def make_completions(count: int, seed: int = 0) -> tuple[list[list[dict]], list[str]]:
    """``count`` conversational completions of ~200 words and their wnids (see the module docstring)."""
    rng = random.Random(seed)
    pool = _synset_pool(1000, rng)
    children: dict[str, list[str]] = {}
    for wnid, (parents, _) in labels._synsets().items():
        for parent in parents:
            children.setdefault(parent, []).append(wnid)
    nouns = [labels.lemmas(w)[0] for w in pool]
    completions, wnids = [], []
    for _ in range(count):
        label = rng.choice(pool)
        roll = rng.random()
        if roll < 0.40:
            named = label
        elif roll < 0.55:
            named = rng.choice(children.get(label) or [label])
        elif roll < 0.70:
            named = rng.choice(labels.hypernyms(label, max_depth=3))
        elif roll < 0.85:
            named = rng.choice(pool)
        else:
            named = None
        think = _prose(rng, 140, nouns) + f" it could be a {labels.lemmas(label)[0]}"
        answer = _prose(rng, 55, [n for n in nouns if n.count(" ") == 0] or nouns)
        if named is not None:
            answer = f"The image shows a {rng.choice(labels.lemmas(named))}. " + answer
        completions.append([{"role": "assistant", "content": f"<think>{think}</think><answer>{answer}</answer>"}])
        wnids.append(label)
    return completions, wnids


def _best(function, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeat`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from trl.rewards import think_format_reward

    completions, wnids = make_completions(args.count)
    texts = [c[0]["content"] for c in completions]
    words = sorted(len(t.split()) for t in texts)
    answer_words = sorted(len(split_reasoning(t).answer.split()) for t in texts)
    cpu, wall = time.process_time(), time.perf_counter()
    rewards.label_reward(completions[:1], wnids[:1])
    build = (time.perf_counter() - wall, time.process_time() - cpu)

    runs = {
        "TRL `think_format_reward`": lambda: think_format_reward(completions),
        "`format_reward`": lambda: rewards.format_reward(completions),
        "`label_reward` (exclusive=True, default)": lambda: rewards.label_reward(completions, wnids),
        "`label_reward` (exclusive=False)": lambda: rewards.label_reward(completions, wnids, exclusive=False),
        "`easyr1_score` (plain-text responses)": lambda: rewards.easyr1_score(
            [{"response": t, "response_length": 0, "ground_truth": w} for t, w in zip(texts, wnids)]
        ),
    }
    print(f"{date.today()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{args.count} completions: {words[len(words) // 2]} words (median; answer {answer_words[len(answer_words) // 2]}),"
          f" {min(words)}-{max(words)}; best of {args.repeat}")
    print(f"first label_reward call (builds the lemma index): {build[0]:.2f} s wall, {build[1]:.2f} s CPU")
    print("| reward function | completions/s (wall) | completions per CPU-second |")
    print("| --- | ---: | ---: |")
    results = {}
    for name, function in runs.items():
        wall, cpu = _best(function, args.repeat)
        results[name] = args.count / cpu
        print(f"| {name} | {args.count / wall:,.0f} | {args.count / cpu:,.0f} |")
    default = results["`label_reward` (exclusive=True, default)"]
    print(f"label_reward / think_format_reward (CPU): {default / results['TRL `think_format_reward`']:.2f}")
    hits = rewards.label_reward(completions, wnids)
    print(f"rewards: {sum(r == 1.0 for r in hits)} of 1.0, {sum(0 < r < 1 for r in hits)} partial, "
          f"{sum(r == 0 for r in hits)} zero")


if __name__ == "__main__":
    main()
