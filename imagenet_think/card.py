"""Dataset cards (README.md): of a corpus directory in Hub layout, of a TRL SFT export and of an RL prompts export.

The corpus card's YAML header carries ``configs`` and a full ``dataset_info`` (features, split sizes) for
each config that plain ``datasets`` can serve from the shards: ``default`` (all columns),
``glm_1`` and ``kimi_2`` (the identity columns and that teacher's ``*_1`` / ``*_2`` columns,
selected with the Parquet builder's ``columns`` option).  They are not called ``glm`` and
``kimi``: the package's configs of those names rename the columns (``think``, ``answer``...),
add ``teacher`` and drop missing pairs, which plain ``datasets`` cannot do from these shards,
and one config name keeps one meaning.  The ``glm``, ``kimi`` and ``pairs`` reshapings need
this package (``imagenet_think.load_dataset(dir, "pairs")``).  :func:`render_sft_card`
describes the examples ``export-sft --format trl`` writes, with the settings they were made with;
:func:`render_rl_card` the prompts ``export-rl`` writes, with the reward and training command.

>>> text = render_card({"train": {"num_examples": 2, "num_bytes": 10, "download_size": 9}})
>>> text.startswith("---"), sorted({line.split()[-1] for line in text.splitlines() if "config_name:" in line})
(True, ['default', 'glm_1', 'kimi_2'])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Optional

from imagenet_think import __version__, schema
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION

if TYPE_CHECKING:
    import datasets


def config_columns() -> dict[str, Optional[list[str]]]:
    """Columns each YAML config keeps (``None``: all); a teacher's config is named
    ``<teacher>_<pair>`` after the column suffix it keeps.

    >>> list(config_columns()), config_columns()["kimi_2"][-1]
    (['default', 'glm_1', 'kimi_2'], 'num_tokens_2')
    """
    columns: dict[str, Optional[list[str]]] = {"default": None}
    for config, pair in schema.CONFIG_TEACHER.items():
        columns[f"{config}_{pair}"] = [*schema.IDENTITY_COLUMNS, *(f"{name}_{pair}" for name in schema.PAIR_FIELDS)]
    return columns


def card_header(
    sizes: dict[str, dict[str, int]],
    configs: Mapping[str, tuple[dict, Optional["datasets.Features"]]],
    *,
    pretty_name: str,
    task_categories: Sequence[str],
    tags: Sequence[str],
) -> str:
    """YAML front matter of a card: ``configs`` maps each config name to its ``configs:``
    entry (``data_files``, ``columns``...) and features; each config gets a ``dataset_info``
    with the per-split ``sizes`` (rows; bytes only where the entry keeps every column).

    >>> sizes = {"train": {"num_examples": 2, "num_bytes": 10, "download_size": 9}}
    >>> entry = {"data_files": [{"split": "train", "path": "data/train-*"}]}
    >>> text = card_header(sizes, {"default": (entry, None)}, pretty_name="P", task_categories=[], tags=[])
    >>> print(text[text.index("configs:"):])
    configs:
    - config_name: default
      data_files:
      - split: train
        path: data/train-*
    dataset_info:
      splits:
      - name: train
        num_bytes: 10
        num_examples: 2
      download_size: 9
      dataset_size: 10
    ---
    <BLANKLINE>
    """
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        license="cc-by-4.0",
        language=["en"],
        pretty_name=pretty_name,
        task_categories=list(task_categories),
        tags=list(tags),
        size_categories=[_size_category(sum(s["num_examples"] for s in sizes.values()))],
    )
    infos = {}
    for config, (entry, features) in configs.items():
        split_dict = datasets.SplitDict()
        for split, size in sizes.items():
            num_bytes = 0 if "columns" in entry else size["num_bytes"]
            split_dict.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=size["num_examples"]))
        infos[config] = datasets.DatasetInfo(
            features=features,
            splits=split_dict,
            download_size=sum(s["download_size"] for s in sizes.values()),
            dataset_size=sum(s["num_bytes"] for s in sizes.values()),
        )
    MetadataConfigs({config: entry for config, (entry, _) in configs.items()}).to_dataset_card_data(card_data)
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    return f"---\n{card_data.to_yaml()}\n---\n"


def _yaml_header(sizes: dict[str, dict[str, int]], pretty_name: str) -> str:
    import datasets

    configs = {}
    for config, columns in config_columns().items():
        entry = {"data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in sizes]}
        if columns is not None:
            entry["columns"] = columns
        if config == "default":
            entry["default"] = True
        features = schema.features("default")
        if columns is not None:
            features = datasets.Features({name: features[name] for name in columns})
        configs[config] = (entry, features)
    return card_header(
        sizes,
        configs,
        pretty_name=pretty_name,
        task_categories=["image-text-to-text", "visual-question-answering"],
        tags=["reasoning", "chain-of-thought", "imagenet", "synthetic", "vision-language"],
    )


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; ``|`` in a cell is escaped, a line break becomes a space.

    >>> print(markdown_table(("setting", "value"), [("prompt", "a | b"), ("rows", 3)]))
    | setting | value |
    |---|---|
    | prompt | a &#124; b |
    | rows | 3 |
    """
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "&#124;").replace("\n", " ") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def split_table(sizes: Mapping[str, Mapping[str, int]], noun: str) -> str:
    """The rows of each split (``sizes`` as :func:`imagenet_think.writer.split_sizes` gives them).

    >>> print(split_table({"train": {"num_examples": 1200}}, "prompts"))
    | split | prompts |
    |---|---|
    | train | 1,200 |
    """
    return markdown_table(("split", noun), ((split, f"{size['num_examples']:,}") for split, size in sizes.items()))


def render_card(
    sizes: dict[str, dict[str, int]],
    *,
    pretty_name: str = "ImageNet-Think",
    source: Optional[str] = None,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    note: Optional[str] = None,
    where: Optional[str] = None,
) -> str:
    """Full README.md text for shards of the given per-split ``sizes``; ``note`` is shown first,
    ``where`` is the query that selected the rows (``export --where``)."""
    note_block = f"\n> **Note.** {note}\n" if note else ""
    columns = markdown_table(("column", "feature"), ((f"`{n}`", repr(f)) for n, f in schema.features("default").items()))
    return f"""{_yaml_header(sizes, pretty_name)}
# {pretty_name}
{note_block}
ImageNet-21k images, each with two (thinking, answer) pairs from two reasoning vision-language
models, in the layout of the published corpus [`{schema.HUB_REPO}`](https://huggingface.co/datasets/{schema.HUB_REPO})
(arXiv [2510.01582](https://arxiv.org/abs/2510.01582)) plus provenance columns.
Written by `imagenet-think` {__version__}{f" from `{source}`" if source else ""}.{f" Rows: those `imagenet-think view` lists for `{where}` (`export --where`)." if where else ""}

{split_table(sizes, "rows")}

`validation` holds the rows whose CRC-32 of `id` falls below {validation_fraction} of the hash
range (the published copy is train-only); the assignment depends on the id alone.

## Teachers and prompt

* pair 1 (`*_1`): `{schema.TEACHERS[1]}` (GLM-4.1V-9B-Thinking)
* pair 2 (`*_2`): `{schema.TEACHERS[2]}` (Kimi-VL-A3B-Thinking-2506)
* prompt (`question`): "{schema.PROMPT}"

`think_*` / `answer_*` are the split reasoning and final answer with teacher markers removed;
`status_*` says how the split went (`ok`, `no_think`, `unclosed_think` = cut at the token
limit, `empty_answer`, `malformed`, `missing`); raw outputs, engine and sampling settings are
kept in `generation` when the rows were generated by `imagenet-think regenerate`.

## Columns

{columns}

## Loading

```python
import datasets
ds = datasets.load_dataset("path/to/this/dir", split="train")            # no extra code needed
glm = datasets.load_dataset("path/to/this/dir", "glm_1", split="train")   # GLM's *_1 columns only

import imagenet_think                                                     # typed configs + SFT helpers
glm = imagenet_think.load_dataset("path/to/this/dir", "glm", split="train")      # think, answer, ...
pairs = imagenet_think.load_dataset("path/to/this/dir", "pairs", split="train")  # one row per pair
```

Configs here: `default` (every column), `glm_1` and `kimi_2` (the image columns and one
teacher's `*_1` or `*_2` columns). The package's `glm` / `kimi` configs (columns `think`,
`answer`, ..., `teacher`; missing pairs dropped) and `pairs` need `imagenet_think`.

## Fine-tuning

```python
from imagenet_think import to_sft_messages
example = to_sft_messages(ds[0], teacher=1, think="tags")                 # TRL conversational format
```

`imagenet-think export-sft DIR --format trl|llamafactory|llava --out OUT` writes
files for TRL's `SFTTrainer`, LLaMA-Factory (sharegpt + `dataset_info.json`) and LLaVA.

{LICENSE_AND_CITATION}"""


def render_sft_card(
    sizes: dict[str, dict[str, int]],
    settings: Mapping[str, str],
    *,
    data_files: Optional[list[dict]] = None,
    features: Optional["datasets.Features"] = None,
    pretty_name: str = "ImageNet-Think SFT",
) -> str:
    """Full README.md text of a TRL SFT export made with ``settings`` (rows of a table).

    ``data_files`` (the ``default`` config's entry) and ``features`` go into the YAML; without
    ``data_files`` it declares no config, so ``datasets`` infers the layout (an image folder).

    >>> sizes = {"train": {"num_examples": 3, "num_bytes": 10, "download_size": 9}}
    >>> text = render_sft_card(sizes, {"teacher": "both"}, data_files=[{"split": "train", "path": "data/train-*"}])
    >>> "| teacher | both |" in text and "config_name: default" in text and "configs:" not in render_sft_card(sizes, {})
    True
    >>> "| system prompt | a &#124; b |" in render_sft_card(sizes, {"system prompt": "a | b"})
    True
    """
    configs = {} if data_files is None else {"default": ({"data_files": data_files}, features)}
    header = card_header(
        sizes,
        configs,
        pretty_name=pretty_name,
        task_categories=["image-text-to-text"],
        tags=["reasoning", "chain-of-thought", "imagenet", "synthetic", "vision-language", "sft", "trl"],
    )
    return f"""{header}
# {pretty_name}

Supervised fine-tuning examples in TRL's conversational vision format: ImageNet-21k images and
the teachers' reasoning from [`{schema.HUB_REPO}`](https://huggingface.co/datasets/{schema.HUB_REPO})
(arXiv [2510.01582](https://arxiv.org/abs/2510.01582)), written by `imagenet-think` {__version__}
(`imagenet-think export-sft --format trl`).

{split_table(sizes, "examples")}

{markdown_table(("setting", "value"), settings.items())}

## Columns

| column | content |
|---|---|
| `id` | id of the corpus record (`<wnid>_<file stem>`) |
| `teacher` | 1 = GLM-4.1V-9B-Thinking, 2 = Kimi-VL-A3B-Thinking-2506 |
| `images` | the record's image (one per example) |
| `messages` | the system turn if any, the user turn (image placeholder and question), the teacher's assistant turn; content parts are `{{"type", "text"}}` |

## Training with TRL

```python
from datasets import load_dataset
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, SFTTrainer

train = load_dataset("path/to/this/dir", split="{next(iter(sizes))}")  # or the Hub id it was pushed to
model_id = "Qwen/Qwen2.5-VL-3B-Instruct"
trainer = SFTTrainer(
    model=AutoModelForImageTextToText.from_pretrained(model_id),
    processing_class=AutoProcessor.from_pretrained(model_id),
    args=SFTConfig(output_dir="out/sft", max_length=None, per_device_train_batch_size=2),
    train_dataset=train,
)
trainer.train()
```

{LICENSE_AND_CITATION}"""


RL_FRAMEWORKS = {"trl": "TRL", "easyr1": "EasyR1", "verl": "verl"}

RL_COLUMNS = {
    "trl": {
        "prompt": "one user turn: an image part (`{\"type\": \"image\"}`) and the question",
        "images": "the record's image (one)",
        "wnid": "WordNet id of the image's class: what `label_reward` checks the answer against",
        "label": "the class's WordNet lemmas",
        "id": "id of the corpus record (`<wnid>_<file stem>`)",
    },
    "easyr1": {
        "problem": "`<image>` then the question (`data.prompt_key`)",
        "answer": "WordNet id of the image's class (`data.answer_key`): the reward's `ground_truth`",
        "images": "the record's image (one; `data.image_key`)",
        "id": "id of the corpus record (`<wnid>_<file stem>`)",
        "label": "the class's WordNet lemmas",
    },
    "verl": {
        "data_source": "`imagenet_think`",
        "prompt": "one user turn whose content is `<image>` then the question",
        "images": "the record's image (one)",
        "ability": "`visual_recognition`",
        "reward_model": "`{\"style\": \"rule\", \"ground_truth\": wnid}`: the WordNet id of the image's class",
        "extra_info": "`split`, `index` (row in its split), `id` of the corpus record, `label` (the class's lemmas)",
    },
}
"""What each RL export's columns hold (for the card)."""

RL_REWARD_USE = {
    "trl": "Pass them as `reward_funcs`: TRL hands each function the completions and the `wnid` column.",
    "easyr1": "EasyR1 calls `easyr1_score` (a batch function: `response` and `ground_truth` = `answer` in, "
              "`overall`, `format`, `accuracy` out) through `worker.reward.reward_function`.",
    "verl": "verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` through "
            "`custom_reward_function.path` and `.name`, with `ground_truth` = `reward_model.ground_truth`.",
}

REWARDS_PATH = "REWARDS=$(python -c 'import imagenet_think.rewards as r; print(r.__file__)')"
"""Shell line that finds the installed ``imagenet_think/rewards.py`` (EasyR1 loads it by path)."""


def rl_training(format: str, shards: Mapping[str, Sequence[str]], dataset: str = "path/to/this/dir") -> str:
    """The training example of an RL export card: TRL Python, or an EasyR1 / verl command line
    whose data settings name ``shards`` (the export's data files by split, relative to it).

    >>> text = rl_training("verl", {"train": ["data/train-0.parquet", "data/train-1.parquet"]}, "/x")
    >>> for line in text.splitlines():  # no validation split: validate on train
    ...     if "_files=" in line:
    ...         print(line.strip(" \\\\"))
    data.train_files="['/x/data/train-0.parquet', '/x/data/train-1.parquet']"
    data.val_files="['/x/data/train-0.parquet', '/x/data/train-1.parquet']"
    """
    val_split = "validation" if "validation" in shards else "train"
    if format == "trl":
        return f"""```python
from datasets import load_dataset
from trl import GRPOConfig, GRPOTrainer
from imagenet_think.rewards import format_reward, label_reward

train = load_dataset("{dataset}", split="train")  # or the Hub id it was pushed to
trainer = GRPOTrainer(
    model="Qwen/Qwen2.5-VL-3B-Instruct",
    reward_funcs=[label_reward, format_reward],
    args=GRPOConfig(output_dir="out/grpo", num_generations=8, per_device_train_batch_size=8,
                    max_completion_length=1024, learning_rate=1e-6, bf16=True),
    train_dataset=train,
)
trainer.train()
```"""
    if format == "easyr1":
        return f"""```bash
{REWARDS_PATH}
python3 -m verl.trainer.main config=examples/config.yaml \\
  data.train_files={dataset}/data@train \\
  data.val_files={dataset}/data@{val_split} \\
  data.prompt_key=problem data.answer_key=answer data.image_key=images data.format_prompt=null \\
  worker.reward.reward_function=$REWARDS:easyr1_score \\
  worker.actor.model.model_path=Qwen/Qwen2.5-VL-7B-Instruct
```

`DIR@split` makes EasyR1 read a local directory with `datasets.load_dataset("parquet", data_dir=DIR,
split=split)`: name `data/`, where the shards are, not the export itself (whose card is no Parquet file)."""

    def files(split: str) -> str:
        return "[" + ", ".join(f"'{dataset}/{path}'" for path in shards[split]) + "]"

    return f"""```bash
python3 -m verl.trainer.main_ppo algorithm.adv_estimator=grpo \\
  custom_reward_function.path=pkg://imagenet_think.rewards custom_reward_function.name=compute_score \\
  data.prompt_key=prompt data.image_key=images \\
  data.train_files="{files("train")}" \\
  data.val_files="{files(val_split)}" \\
  actor_rollout_ref.model.path=Qwen/Qwen2.5-VL-7B-Instruct actor_rollout_ref.rollout.n=5
```

verl reads Parquet files, one by one: `data.train_files` lists the `train` shards of this export;
`pkg://` makes verl import the reward module from the installed package."""


def render_rl_card(
    sizes: dict[str, dict[str, int]],
    format: str,
    prompt: str,
    shards: Mapping[str, Sequence[str]],
    settings: Mapping[str, str],
    *,
    features: Optional["datasets.Features"] = None,
    pretty_name: str = "ImageNet-Think RL prompts",
) -> str:
    """Full README.md text of an RL prompts export (``imagenet-think export-rl``): its ``default``
    config names each split's ``shards`` typed by ``features``, then the reward to use and the
    training example (:func:`rl_training`).

    >>> sizes = {"train": {"num_examples": 3, "num_bytes": 10, "download_size": 9}}
    >>> text = render_rl_card(sizes, "easyr1", "What is it?", {"train": ["data/train-0.parquet"]}, {})
    >>> "- data/train-0.parquet" in text, "worker.reward.reward_function=$REWARDS:easyr1_score" in text
    (True, True)
    """
    framework = RL_FRAMEWORKS[format]
    data_files = [{"split": split, "path": list(paths)} for split, paths in shards.items()]
    header = card_header(
        sizes,
        {"default": ({"data_files": data_files}, features)},
        pretty_name=pretty_name,
        task_categories=["image-text-to-text"],
        tags=["imagenet", "vision-language", "reinforcement-learning", "grpo", "rlvr", format],
    )
    made_with = {"format": f"`{format}` ({framework})", "prompt": json.dumps(prompt, ensure_ascii=False), **settings}
    columns = markdown_table(("column", "content"), ((f"`{name}`", text) for name, text in RL_COLUMNS[format].items()))
    return f"""{header}
# {pretty_name}

Prompts for reinforcement learning with verifiable rewards in {framework}'s layout: ImageNet-21k
images from [`{schema.HUB_REPO}`](https://huggingface.co/datasets/{schema.HUB_REPO})
(arXiv [2510.01582](https://arxiv.org/abs/2510.01582)), one row per image, each with a question
and the image's WordNet class, written by `imagenet-think` {__version__}
(`imagenet-think export-rl --format {format}`).

{split_table(sizes, "prompts")}

{markdown_table(("setting", "value"), made_with.items())}

## Columns

{columns}

## Reward

With `imagenet-think` installed (the rewards need no GPU), score completions with `imagenet_think.rewards`:
`label_reward` checks the answer (the text after the reasoning) against the WordNet class:
1.0 when it names the class or a more specific one, less for an ancestor only, 0 for anything
else or a hedge across classes; `format_reward` gives 1.0 to closed reasoning followed by a
non-empty answer. {RL_REWARD_USE[format]}

## Training with {framework}

{rl_training(format, shards)}

{LICENSE_AND_CITATION}"""


LICENSE_AND_CITATION = f"""## License

The texts are released under CC BY 4.0, like the published corpus. The images come from
ImageNet-21k, whose terms of access allow **non-commercial research and educational use
only**; you must agree to the ImageNet terms (https://image-net.org/download.php) to use them.

## Citation

```bibtex
{schema.CITATION}
```
"""
