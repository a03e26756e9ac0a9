"""One real TRL ``SFTTrainer`` step on our SFT examples, on CPU: on ``export-sft --format trl``
directories loaded with plain ``datasets.load_dataset(OUT)`` from another working directory,
and on ``Dataset.map(sft_batch)``.

The model is a tiny, randomly initialised Idefics3 with a real ``Idefics3Processor``
(:mod:`tests.fixtures.tiny_idefics3`).  Idefics3 stands in for Qwen2.5-VL and GLM-4.1V because
their processors need torchvision in transformers 5; their templates are checked in
``test_chat_templates.py``.
"""

from __future__ import annotations

import datasets
import pytest

from imagenet_think import load_dataset
from imagenet_think.sft import sft_batch, to_sft_messages
from imagenet_think.sft_export import export_sft
from tests.fixtures.tiny_idefics3 import IMAGE_TOKENS, tiny_idefics3

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")


def examples_from_dataset_map(tmp_path) -> datasets.Dataset:
    """Bundled sample -> ``Dataset.map(sft_batch)`` in Arrow format, with a system prompt."""
    sample = load_dataset("sample", split="train").select(range(2))
    return sample.with_format("arrow").map(
        sft_batch, batched=True, remove_columns=sample.column_names,
        fn_kwargs={"teacher": 2, "think": "tags", "system_prompt": "Describe the image.", "on_unusable": "skip"},
    ).with_format(None)


def train_one_step(model, processor, dataset, tmp_path, max_length=None):
    """One SFTTrainer step; asserts a finite loss, returns the sub-models (under ``model.``) it changed."""
    from trl import SFTConfig, SFTTrainer

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=2,
                     learning_rate=1e-2, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                     max_length=max_length, dataloader_num_workers=0, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = {name.split(".")[1] for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}
    return changed


def test_one_sft_step_trains_on_dataset_map_examples(tmp_path):
    dataset = examples_from_dataset_map(tmp_path)
    assert dataset.num_rows >= 2 and dataset.features["images"].feature.decode
    model, processor = tiny_idefics3()
    rendered = processor.apply_chat_template(dataset[0]["messages"])
    assert "<image>" in rendered and dataset[0]["messages"][-1]["content"][0]["text"] in rendered
    assert {"vision_model", "text_model"} <= train_one_step(model, processor, dataset, tmp_path)


@pytest.fixture(scope="module")
def shared_idefics3():
    """One tiny model for the export tests (each step changes it; that is all they check)."""
    return tiny_idefics3()


MAX_LENGTH = 256
"""Tokens per example in the export tests: the byte-level tokenizer spends one per character,
so this keeps the image, the question and the start of the answer."""


@pytest.mark.parametrize("teacher, think, file_format", [
    (1, "tags", "parquet"),  # README command 1
    *(("both", think, "parquet") for think in ("tags", "native", "field", "none")),
    ("both", "tags", "jsonl"),
])
def test_export_loads_from_elsewhere_collates_and_trains(shared_idefics3, tmp_path, monkeypatch, teacher, think,
                                                         file_format):
    """``export-sft --format trl`` -> ``datasets.load_dataset(OUT)`` from another directory ->
    TRL's collator -> one ``SFTTrainer`` step."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    sample = load_dataset("sample", split="train").select(range(3))
    out = tmp_path / "sft-trl"
    export_sft(sample, out, format="trl", teacher=teacher, think=think, file_format=file_format, on_unusable="skip")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    dataset = datasets.load_dataset(str(out), split="train")
    expected = [example for row in sample for example in to_sft_messages(row, teacher=teacher, think=think,
                                                                         on_unusable="skip")]
    assert [(row["id"], row["teacher"]) for row in dataset] == [(e["id"], e["teacher"]) for e in expected]

    model, processor = shared_idefics3
    collator = DataCollatorForVisionLanguageModeling(processor, max_length=MAX_LENGTH)
    batch = collator([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == batch["pixel_values"].shape[0] == 2
    image_id = processor.image_token_id
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [IMAGE_TOKENS, IMAGE_TOKENS]
    for ids, example in zip(batch["input_ids"], expected):
        answer = example["messages"][-1]["content"][0]["text"]
        assert answer[:20] in processor.tokenizer.decode(ids)
    assert {"vision_model", "text_model"} <= train_one_step(model, processor, dataset.select(range(2)), tmp_path,
                                                            max_length=MAX_LENGTH)
