"""Prompts datasets for RL with verifiable rewards (what ``imagenet-think export-rl`` runs).

One row per image: the image, a question, and the image's WordNet class (``wnid``), which
:mod:`imagenet_think.rewards` checks a model's answer against.  No teacher text goes in: the
policy writes its own reasoning and answer, and the reward says whether the answer names the
class.  Rows go to ``train`` or ``validation`` by the hash of their ``id``
(:mod:`imagenet_think.split`), the corpus' own split, whichever split they came in.

``out_dir`` is a dataset directory that ``datasets.load_dataset(out_dir)`` reads as itself,
from any working directory and with no import of this package: ``README.md`` (YAML
``configs`` + ``dataset_info``, the reward to use and the training command) and
``data/<split>-NNNNN-of-MMMMM-<hash>.parquet`` shards with the images embedded
(:class:`imagenet_think.writer.ShardWriter`).  Columns by format (:func:`rl_features`):

``trl``
    ``prompt`` (conversational: one user turn whose content is an image part and the question,
    parts typed ``{"type", "text"}`` like the SFT export's), ``images`` (``List(Image())``, one
    image), ``wnid``, ``label`` and ``id``.  TRL's ``GRPOTrainer`` (trl 1.16,
    ``trl/trainer/grpo_trainer.py``: ``_generate_and_score_completions`` reads ``images``, else
    ``image``, and fills the prompt's image placeholders with
    ``trl.data_utils.prepare_multimodal_messages``; ``_calculate_rewards`` passes every other
    column to each reward function as a keyword argument, one value per completion) gives
    :func:`imagenet_think.rewards.label_reward` its ``wnid``.
``easyr1``
    ``problem`` (``<image>`` then the question), ``answer`` (the wnid), ``images``, ``id``,
    ``label``.  Checked against EasyR1 (github.com/hiyouga/EasyR1 at
    b44b311b669bf1fd1aa2fc36f2251482ba33cb16): ``verl/utils/dataset.py`` ``RLHFDataset``
    splits ``prompt_key``'s text on ``<image>`` into image and text parts, opens each
    ``image_key`` entry (a PIL image, a ``{"bytes"}`` dict or a path) and hands
    ``answer_key``'s value to the reward function as ``ground_truth``; ``DIR@split`` names a
    local directory of one file type, so the trainer is pointed at ``OUT/data@train``
    (``datasets.load_dataset("parquet", data_dir=OUT/data, split="train")``, which finds the
    splits in the shard names).  Set ``data.prompt_key=problem`` (``examples/config.yaml``
    already does) and ``data.format_prompt=null``: the question asks for the answer's shape.
``verl``
    ``data_source``, ``prompt`` (chat messages: one user turn whose content is the string
    ``<image>`` + question), ``images``, ``ability``, ``reward_model`` (``{"style": "rule",
    "ground_truth": wnid}``) and ``extra_info`` (``split``, ``index``, ``id``, ``label``).
    Checked against verl (github.com/volcengine/verl at
    b178a3cd56f58b2d502255daba591e92833930a7): ``verl/utils/dataset/rl_dataset.py``
    ``RLHFDataset`` reads each ``data.train_files`` Parquet file with
    ``datasets.load_dataset("parquet", data_files=file)``, replaces ``<image>`` in a string
    ``content`` with the next entry of ``images`` (a PIL image or a ``{"bytes"}`` dict) and
    requires as many placeholders as images; ``verl/workers/reward_manager/naive.py`` calls
    ``compute_score(data_source=, solution_str=, ground_truth=reward_model["ground_truth"],
    extra_info=)``; ``examples/data_preprocess/geo3k.py`` writes the same columns.

The default question (:data:`DEFAULT_PROMPT`) asks for reasoning in ``<think>`` tags, then a
short class name: the shape :func:`imagenet_think.rewards.format_reward` checks (a closed
reasoning part and a non-empty answer, :func:`imagenet_think.reasoning.split_reasoning`), and
one :func:`~imagenet_think.rewards.label_reward` scores by its answer part alone.

The export is written in a staging directory and moved into place when whole; a non-empty
``out_dir`` is refused unless ``overwrite=True``, which replaces a previous export and nothing
else (:func:`imagenet_think.sft_export.check_replaceable`).

>>> row = {"id": ["n02084071_1"], "wnid": ["n02084071"], "label": ["dog"], "image": [{"bytes": b"...", "path": None}]}
>>> rl_table(pa.table(row), "easyr1", prompt="What is it?").to_pylist()[0]["problem"]
'<image>What is it?'
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagenet_think.fileio import atomic_write, staging_dir
from imagenet_think.sft_export import IMAGE_TOKEN, check_replaceable, move_into_place
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION, check_fraction, split_parts
from imagenet_think.writer import DEFAULT_MAX_SHARD_BYTES, ShardWriter, corpus_batches, corpus_splits, split_sizes

if TYPE_CHECKING:
    import datasets

    from imagenet_think.writer import Corpus

FORMATS = ("trl", "easyr1", "verl")

DEFAULT_PROMPT = (
    "What is the main object in this image? Think it through step by step inside <think> </think> tags first, "
    "then give your final answer after </think>: the object's class name, in a few words."
)
"""The question of every row unless ``prompt`` says otherwise: reasoning first, in the
``<think>`` tags :func:`imagenet_think.rewards.format_reward` looks for, then a short class name."""

DATA_SOURCE = "imagenet_think"
"""verl's ``data_source`` (how its reward manager groups rows in logs)."""

ABILITY = "visual_recognition"
"""verl's ``ability`` column (free text; geo3k writes ``math``)."""

PLACEHOLDERS = (IMAGE_TOKEN, "<video>")
"""Markers EasyR1 and verl split a prompt on: a question holding one would misplace the image."""


def rl_features(format: str) -> "datasets.Features":
    """``datasets.Features`` of a ``format`` export's rows.

    >>> list(rl_features("trl")), rl_features("verl")["reward_model"]
    (['prompt', 'images', 'wnid', 'label', 'id'], {'style': Value('string'), 'ground_truth': Value('string')})
    """
    return _rl_features(format).copy()


@functools.lru_cache(maxsize=None)
def _rl_features(format: str) -> "datasets.Features":
    import datasets

    check_format(format)
    string = datasets.Value("string")
    images = datasets.List(datasets.Image())
    if format == "trl":
        message = {"role": string, "content": datasets.List({"type": string, "text": string})}
        columns = {"prompt": datasets.List(message), "images": images, "wnid": string, "label": string, "id": string}
    elif format == "easyr1":
        columns = {"problem": string, "answer": string, "images": images, "id": string, "label": string}
    else:
        columns = {
            "data_source": string,
            "prompt": datasets.List({"role": string, "content": string}),
            "images": images,
            "ability": string,
            "reward_model": {"style": string, "ground_truth": string},
            "extra_info": {"split": string, "index": datasets.Value("int64"), "id": string, "label": string},
        }
    return datasets.Features(columns)


def check_format(format: str) -> None:
    """Raise ``ValueError`` unless ``format`` is one of :data:`FORMATS`."""
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(FORMATS)}, got {format!r}")


def check_prompt(prompt: str) -> None:
    """Raise ``ValueError`` unless ``prompt`` can be the question of every row: text, not blank,
    free of the ``<image>`` / ``<video>`` placeholders (the export places the image itself).

    >>> check_prompt("<image> What is it?")
    Traceback (most recent call last):
    ...
    ValueError: `prompt` holds '<image>', which EasyR1 and verl read as an image placeholder; the export puts the image before the question itself
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"`prompt` must be a non-blank text, got {prompt!r}")
    for marker in PLACEHOLDERS:
        if marker in prompt:
            raise ValueError(
                f"`prompt` holds {marker!r}, which EasyR1 and verl read as an image placeholder; "
                "the export puts the image before the question itself"
            )


def rl_table(
    rows: pa.Table, format: str, prompt: str = DEFAULT_PROMPT, split: str = "train", first_index: int = 0
) -> pa.Table:
    """The ``format`` rows (:func:`rl_features`) of ``default``-config corpus ``rows`` (columns
    ``id``, ``wnid``, ``label``, ``image``; images passed through as stored, never decoded).

    ``split`` and ``first_index`` (the first row's index in its split) fill verl's
    ``extra_info``.  A row without a wnid or an image raises ``ValueError`` naming its id.

    >>> row = {"id": ["n02084071_1"], "wnid": ["n02084071"], "label": ["dog"], "image": [{"bytes": b"...", "path": None}]}
    >>> verl = rl_table(pa.table(row), "verl", prompt="What is it?").to_pylist()[0]
    >>> verl["prompt"], verl["reward_model"], verl["extra_info"]
    ([{'role': 'user', 'content': '<image>What is it?'}], {'style': 'rule', 'ground_truth': 'n02084071'}, {'split': 'train', 'index': 0, 'id': 'n02084071_1', 'label': 'dog'})
    >>> rl_table(pa.table(row), "trl", prompt="What is it?").to_pylist()[0]["prompt"][0]["content"]
    [{'type': 'image', 'text': None}, {'type': 'text', 'text': 'What is it?'}]
    """
    check_format(format)
    check_prompt(prompt)
    _check_rows(rows)
    schema = _rl_features(format).arrow_schema
    n = rows.num_rows

    def repeat(value, type: pa.DataType) -> pa.Array:
        return pa.array([value], type).take(np.zeros(n, dtype=np.int64))

    def constant(name: str, value) -> pa.Array:
        return repeat(value, schema.field(name).type)

    image = rows["image"].combine_chunks() if n else pa.array([], schema.field("images").type.value_type)
    images = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), image)
    wnid, label, ids = rows["wnid"], rows["label"], rows["id"]
    if format == "trl":
        turn = {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt}]}
        columns = [constant("prompt", [turn]), images, wnid, label, ids]
    elif format == "easyr1":
        columns = [constant("problem", IMAGE_TOKEN + prompt), wnid, images, ids, label]
    else:
        reward_model = pa.StructArray.from_arrays(
            [repeat("rule", pa.string()), wnid.combine_chunks()], ["style", "ground_truth"]
        )
        index = pa.array(np.arange(first_index, first_index + n, dtype=np.int64))
        extra_info = pa.StructArray.from_arrays(
            [repeat(split, pa.string()), index, ids.combine_chunks(), label.combine_chunks()],
            ["split", "index", "id", "label"],
        )
        columns = [
            constant("data_source", DATA_SOURCE),
            constant("prompt", [{"role": "user", "content": IMAGE_TOKEN + prompt}]),
            images,
            constant("ability", ABILITY),
            reward_model,
            extra_info,
        ]
    return pa.Table.from_arrays([column.cast(field.type) for column, field in zip(columns, schema, strict=True)], schema=schema)


def _check_rows(rows: pa.Table) -> None:
    """Raise ``ValueError`` naming the first row with no wnid or no image (bytes or path)."""
    missing = [name for name in ("id", "wnid", "label", "image") if name not in rows.column_names]
    if missing:
        raise ValueError(f"the rows lack the column(s) {', '.join(missing)} of the corpus' default config")
    image = rows["image"]
    no_image = pc.or_(pc.is_null(image), pc.and_(pc.is_null(pc.struct_field(image, "bytes")),
                                                 pc.is_null(pc.struct_field(image, "path"))))
    for problem, bad in (("no wnid", pc.or_(pc.is_null(rows["wnid"]), pc.equal(rows["wnid"], ""))), ("no image", no_image)):
        bad = bad.combine_chunks().fill_null(True) if isinstance(bad, pa.ChunkedArray) else bad.fill_null(True)
        if pc.any(bad).as_py():
            first = pc.index(bad, True).as_py()
            raise ValueError(f"record {rows['id'][first].as_py()!r} has {problem}: it cannot be an RL prompt")


def export_rl(
    source: "Corpus",
    out_dir: Union[str, os.PathLike],
    format: str = "trl",
    prompt: str = DEFAULT_PROMPT,
    *,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    limit: Optional[int] = None,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    source_name: Optional[str] = None,
    batch_size: int = 256,
    progress: bool = False,
    where: Optional[str] = None,
) -> dict:
    """Write the RL prompts of every image of ``source`` into ``out_dir`` as ``format``.

    ``source`` is anything :func:`imagenet_think.writer.corpus_splits` takes (``"sample"``, a
    corpus directory, a Hub id, a loaded ``Dataset`` / ``DatasetDict`` / ``IterableDataset``
    of ``default``-config rows); ``where`` (the viewer's query string,
    :func:`imagenet_think.view.query.parse_where`: ``"status=ok&q=dog"``) keeps the images
    ``imagenet-think view`` lists for it; ``limit`` keeps the first rows of each of its splits
    (of those ``where`` keeps).  Each
    row lands in the split its id hashes to at ``validation_fraction``; shards hold about
    ``max_shard_bytes`` of Arrow data (a shard closes between batches of ``batch_size`` source
    rows); ``source_name`` is how the card names the source (default: ``source`` when it is a
    name).
    Returns the rows per split and the directory: ``{"train", "validation", "path"}``.

    >>> import datasets, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = export_rl("sample", tmp + "/rl", format="trl", limit=4)
    ...     train = datasets.load_dataset(tmp + "/rl", split="train")
    >>> summary["train"], train.column_names, train[0]["wnid"] == train[0]["id"].split("_")[0]
    (4, ['prompt', 'images', 'wnid', 'label', 'id'], True)
    """
    check_format(format)
    check_prompt(prompt)
    check_fraction(validation_fraction)
    from imagenet_think.view.query import parse_where

    query = parse_where(where) if where else None
    if limit is not None and limit < 0:
        raise ValueError(f"`limit` must be >= 0, got {limit}")
    target = Path(out_dir).resolve()
    check_replaceable(target, overwrite)
    if source_name is None and isinstance(source, (str, os.PathLike)):
        source_name = str(source)
    splits = corpus_splits(source, validation_fraction)
    with staging_dir(target) as staging:
        with ShardWriter(staging / "data", "train", max_shard_bytes) as train, ShardWriter(
            staging / "data", "validation", max_shard_bytes
        ) as validation:
            writers = {"train": train, "validation": validation}
            for batch in corpus_batches(splits, limit, batch_size, f"export-rl {format}", progress, query):
                for split, part in split_parts(batch, validation_fraction):
                    writer = writers[split]
                    writer.write(rl_table(part, format, prompt, split, writer.num_rows))
        counts = {split: writer.num_rows for split, writer in writers.items()}
        if not any(counts.values()):
            matches = f" (none matches --where {where!r})" if where else ""
            raise ValueError(f"{source_name or 'the source'}: no rows to export{matches}")
        shards = {split: [f"data/{path.name}" for path in writer.paths] for split, writer in writers.items() if writer.paths}
        settings = {
            "source": f"`{source_name}`" if source_name else "a loaded dataset",
            **({"images": f"those `imagenet-think view` lists for `{query.where()}` (`--where`)"} if query else {}),
            "validation": f"rows whose CRC-32 of `id` falls below {validation_fraction} of the hash range",
        }
        _write_rl_card(staging, format, prompt, shards, settings)
        move_into_place(staging, target, overwrite)
    return {**counts, "path": str(out_dir)}


def _write_rl_card(directory: Path, format: str, prompt: str, shards: dict[str, list[str]], settings: dict) -> None:
    """``README.md`` of an RL export: its config names each split's shards, typed by :func:`rl_features`."""
    from imagenet_think.card import render_rl_card

    card = render_rl_card(
        split_sizes(directory), format, prompt, shards, settings, features=rl_features(format)
    )
    with atomic_write(directory / "README.md") as handle:
        handle.write(card)
