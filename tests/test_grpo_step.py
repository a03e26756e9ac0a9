"""One real TRL ``GRPOTrainer`` step on CPU, on ``export-rl --format trl`` loaded with plain
``datasets.load_dataset(OUT)`` from another working directory, rewarded by
:func:`imagenet_think.rewards.label_reward` and :func:`~imagenet_think.rewards.format_reward`.

The policy is the tiny, randomly initialised Idefics3 of :mod:`tests.fixtures.tiny_idefics3`,
steered by transformers' ``sequence_bias`` logits processor (a ``GRPOConfig.generation_kwargs``
setting, so generation runs as usual) to write :data:`ANSWER`: a closed reasoning part, then
"banana".  Trained on two prompts, a banana's and an airliner's, the rewards are known by hand:
``label_reward`` 1.0 for the banana's completions and 0.0 for the airliner's (the answer names
another class), ``format_reward`` 1.0 for all.  Checked: the prompt's image part meets the
dataset's image, the trainer generates, calls both reward functions with the generated
completions and the export's ``wnid`` column, logs their rewards under their names, and takes a
step with a finite loss.
"""

from __future__ import annotations

import functools
import math

import datasets
import pytest

from imagenet_think import rewards
from imagenet_think.rl_export import export_rl
from tests.fixtures.tiny_idefics3 import tiny_idefics3

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

PROMPTS, GENERATIONS = 2, 2

ANSWER = "<think>It is yellow and curved.</think>banana"

ROWS = {"n07753592_n07753592_1000": 1.0, "n02690373_n02690373_1003": 0.0}
"""The two prompts trained on (a banana, an airliner) and the ``label_reward`` of :data:`ANSWER` for each."""


def steer_to(text: str, tokenizer) -> list:
    """``sequence_bias`` that makes any model write ``text`` then stop: every prefix of its tokens
    (and the end-of-sequence token) biased by 10 a token, so the longest prefix written so far
    decides the next token whatever the model's own logits."""
    tokens = [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return [[tokens[:k], 10.0 * k] for k in range(1, len(tokens) + 1)]


def recording(reward_function, calls: list):
    """``reward_function`` unchanged (same name, same result), each call's arguments and result
    appended to ``calls``."""

    @functools.wraps(reward_function)
    def record(completions, **kwargs):
        result = reward_function(completions, **kwargs)
        calls.append({"completions": completions, "kwargs": kwargs, "result": result})
        return result

    return record


def test_one_grpo_step_on_the_trl_export_with_the_label_and_format_rewards(tmp_path, monkeypatch):
    from trl import GRPOConfig, GRPOTrainer

    out = tmp_path / "rl-trl"
    export_rl("sample", out, format="trl")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    train = datasets.load_dataset(str(out), split="train")
    train = train.select([i for i, record_id in enumerate(train["id"]) if record_id in ROWS])
    by_id = {row["id"]: row["wnid"] for row in train.remove_columns("images")}
    assert sorted(by_id) == sorted(ROWS)

    model, processor = tiny_idefics3()
    label_calls, format_calls = [], []
    args = GRPOConfig(
        output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=PROMPTS * GENERATIONS,
        num_generations=GENERATIONS, max_completion_length=64, learning_rate=1e-2, use_cpu=True, report_to=[],
        save_strategy="no", logging_steps=1, dataloader_num_workers=0, seed=0,
        generation_kwargs={"sequence_bias": steer_to(ANSWER, processor.tokenizer)},
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[recording(rewards.label_reward, label_calls), recording(rewards.format_reward, format_calls)],
        args=args,
        train_dataset=train,
        processing_class=processor,
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss)

    [label_call], [format_call] = label_calls, format_calls
    completions = label_call["completions"]
    assert len(completions) == PROMPTS * GENERATIONS and format_call["completions"] == completions
    # what the model generated: TRL decodes the completion tokens it passes alongside
    decoded = processor.batch_decode(label_call["kwargs"]["completion_ids"], skip_special_tokens=True)
    assert [completion[-1]["content"] for completion in completions] == decoded == [ANSWER] * len(completions)
    assert all(completion[-1]["role"] == "assistant" for completion in completions)
    # the export's columns, one value per completion, each prompt's repeated for its generations
    ids, wnids = label_call["kwargs"]["id"], label_call["kwargs"]["wnid"]
    assert len(set(ids)) == PROMPTS and wnids == [by_id[i] for i in ids]
    assert all(ids[i] == ids[i - i % GENERATIONS] for i in range(len(ids)))
    assert label_call["result"] == [ROWS[i] for i in ids] and format_call["result"] == [1.0] * len(ids)

    [logged] = [entry for entry in trainer.state.log_history if "rewards/label_reward/mean" in entry]
    assert logged["rewards/label_reward/mean"] == pytest.approx(0.5)
    assert logged["rewards/format_reward/mean"] == pytest.approx(1.0)
    assert logged["reward"] == pytest.approx(1.5)  # the two summed, weight 1 each
    assert math.isfinite(logged["loss"])
