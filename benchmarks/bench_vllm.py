"""Throughput of our engines against the bare library on the same images (GPU; no network).

    # vLLM: our VLLMEngine (vLLM's engine fed continuously) vs bare LLM.chat on the whole list,
    # same model directory, same sampling
    python benchmarks/bench_vllm.py --engine vllm --model-path /models/GLM-4.1V-9B-Thinking -n 256
    # transformers: our TransformersEngine vs bare processor + generate (a tiny random GLM-4.1V
    # works when no weights are at hand: it measures the engine's overhead, not the model)
    python tests/fixtures/tiny_glm4v.py /tmp/tiny-glm4v
    python benchmarks/bench_vllm.py --engine transformers --model-path /tmp/tiny-glm4v -n 64

Each side runs in its own child process (a fresh GPU), ``--rounds`` times in alternating order
(best kept), warms up on ``--warmup`` images, then
generates for ``-n`` deterministic synthetic JPEGs (224-512 px, decoded from bytes inside the
timed region on both sides).  Sampling is GLM's (greedy) with ``--max-tokens``.  Prints one
JSON object: per side images/s, completion tokens/s, seconds and errors, and ours/bare ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import time
from datetime import date
from typing import Any

SIDES = ("ours", "bare")


def make_images(count: int, seed: int = 0) -> list[bytes]:
    """``count`` JPEGs of random sizes with smooth colour fields (so they compress like photos)."""
    from PIL import Image

    rng = random.Random(seed)
    images = []
    for _ in range(count):
        width, height = rng.randint(224, 512), rng.randint(224, 512)
        small = Image.new("RGB", (4, 4))
        small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(16)])
        buffer = io.BytesIO()
        small.resize((width, height), Image.BICUBIC).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def vllm_side(side: str, args: argparse.Namespace, images: list[bytes]) -> dict[str, Any]:
    from imagenet_think.regenerate.engines import Request, make_engine
    from imagenet_think.regenerate.engines.base import chat_messages, load_image
    from imagenet_think.regenerate.engines.vllm_engine import llm_kwargs, sampling_kwargs
    from imagenet_think.regenerate.models import get_model

    spec = get_model("glm")
    options = {"max_model_len": args.max_model_len, "gpu_memory_utilization": args.gpu_memory_utilization}
    sampling = {**spec.sampling, "max_tokens": args.max_tokens}
    requests = [Request(str(i), data) for i, data in enumerate(images)]
    if side == "ours":
        engine = make_engine("vllm", spec, model_path=args.model_path, sampling=sampling, engine_kwargs=options)
        engine.generate(requests[: args.warmup])
        start = time.perf_counter()
        results = engine.generate(requests[args.warmup :])
        seconds = time.perf_counter() - start
        return measure(seconds, [r.num_tokens or 0 for r in results], sum(r.error is not None for r in results))
    import vllm

    llm = vllm.LLM(**llm_kwargs(spec, args.model_path, overrides=options))
    params = vllm.SamplingParams(**sampling_kwargs(spec, sampling))

    def chat(batch: list[Request]) -> list[Any]:
        conversations = [
            chat_messages(r.prompt, {"type": "image_pil", "image_pil": load_image(r.image)}, spec.system_prompt) for r in batch
        ]
        return llm.chat(conversations, params, use_tqdm=False)

    chat(requests[: args.warmup])
    start = time.perf_counter()
    outputs = chat(requests[args.warmup :])
    seconds = time.perf_counter() - start
    return measure(seconds, [len(o.outputs[0].token_ids) for o in outputs], 0)


def transformers_side(side: str, args: argparse.Namespace, images: list[bytes]) -> dict[str, Any]:
    import torch

    from imagenet_think.regenerate.engines import Request, make_engine
    from imagenet_think.regenerate.engines.base import load_image
    from imagenet_think.regenerate.engines.hf_engine import load_processor
    from imagenet_think.regenerate.models import get_model

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    spec = get_model("glm")
    sampling = {**spec.sampling, "max_tokens": args.max_tokens}
    requests = [Request(str(i), data) for i, data in enumerate(images)]
    if side == "ours":
        engine = make_engine(
            "transformers", spec, model_path=args.model_path, sampling=sampling, batch_size=args.batch_size
        )
        engine.generate(requests[: args.warmup])
        sync()
        start = time.perf_counter()
        results = engine.generate(requests[args.warmup :])
        sync()
        seconds = time.perf_counter() - start
        return measure(seconds, [r.num_tokens or 0 for r in results], sum(r.error is not None for r in results))
    from transformers import AutoModelForImageTextToText

    processor = load_processor(args.model_path)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(args.model_path, dtype="auto").to(device).eval()
    stop = model.generation_config.eos_token_id
    stop = {stop} if isinstance(stop, int) else set(stop)

    def generate(batch: list[Request]) -> list[int]:
        conversations = [
            [{"role": "user", "content": [{"type": "image", "image": load_image(r.image)}, {"type": "text", "text": r.prompt}]}]
            for r in batch
        ]
        inputs = processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
        ).to(device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=args.max_tokens, do_sample=False, repetition_penalty=1.1)
        rows = out[:, inputs["input_ids"].shape[1] :].tolist()
        return [next((i + 1 for i, t in enumerate(row) if t in stop), len(row)) for row in rows]

    def run(batch: list[Request]) -> list[int]:
        return [n for start in range(0, len(batch), args.batch_size) for n in generate(batch[start : start + args.batch_size])]

    run(requests[: args.warmup])
    sync()
    start = time.perf_counter()
    tokens = run(requests[args.warmup :])
    sync()
    return measure(time.perf_counter() - start, tokens, 0)


def measure(seconds: float, tokens: list[int], errors: int) -> dict[str, Any]:
    return {
        "images": len(tokens),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(tokens) / seconds, 3),
        "tokens": sum(tokens),
        "tokens_per_s": round(sum(tokens) / seconds, 1),
        "errors": errors,
    }


def child(args: argparse.Namespace) -> None:
    images = make_images(args.num_images + args.warmup, args.seed)
    side = vllm_side if args.engine == "vllm" else transformers_side
    print("RESULT " + json.dumps(side(args.side, args, images)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--model-path", required=True, help="local model directory (no network on the GPU box)")
    parser.add_argument("-n", "--num-images", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers only: images per generate call")
    parser.add_argument("--max-model-len", type=int, default=8192, help="vLLM only")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vLLM only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, order alternating; the best is kept")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return
    import torch

    report: dict[str, Any] = {
        "date": date.today().isoformat(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "engine": args.engine,
        "model_path": args.model_path,
        "images": args.num_images,
        "max_tokens": args.max_tokens,
    }
    runs: dict[str, list] = {side: [] for side in SIDES}
    for round_index in range(args.rounds):  # alternate the order: the first process meets a cold GPU
        for side in SIDES if round_index % 2 == 0 else SIDES[::-1]:
            command = [sys.executable, __file__, *sys.argv[1:], "--side", side]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                runs[side].append({"error": done.stderr[-2000:]})
                continue
            runs[side].append(json.loads(lines[-1][len("RESULT ") :]))
    for side, results in runs.items():
        timed = [r for r in results if "images_per_s" in r]
        report[side] = max(timed, key=lambda r: r["images_per_s"]) if timed else results[-1]
        report[side]["runs_images_per_s"] = [r.get("images_per_s") for r in results]
    if all("images_per_s" in report[side] for side in SIDES):
        for key in ("images_per_s", "tokens_per_s"):
            report[f"ratio_{key}"] = round(report["ours"][key] / report["bare"][key], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
