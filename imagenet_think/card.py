"""Dataset card (README.md) of a corpus directory in Hub layout.

The YAML header carries ``configs`` and a full ``dataset_info`` (features, split sizes) for
each config that plain ``datasets`` can serve from the shards: ``default`` (all columns),
``glm_1`` and ``kimi_2`` (the identity columns and that teacher's ``*_1`` / ``*_2`` columns,
selected with the Parquet builder's ``columns`` option).  They are not called ``glm`` and
``kimi``: the package's configs of those names rename the columns (``think``, ``answer``...),
add ``teacher`` and drop missing pairs, which plain ``datasets`` cannot do from these shards,
and one config name keeps one meaning.  The ``glm``, ``kimi`` and ``pairs`` reshapings need
this package (``imagenet_think.load_dataset(dir, "pairs")``).

>>> text = render_card({"train": {"num_examples": 2, "num_bytes": 10, "download_size": 9}})
>>> text.startswith("---"), sorted({line.split()[-1] for line in text.splitlines() if "config_name:" in line})
(True, ['default', 'glm_1', 'kimi_2'])
"""

from __future__ import annotations

from typing import Optional

from imagenet_think import __version__, schema
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION


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


def _yaml_header(sizes: dict[str, dict[str, int]], pretty_name: str) -> str:
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        license="cc-by-4.0",
        language=["en"],
        pretty_name=pretty_name,
        task_categories=["image-text-to-text", "visual-question-answering"],
        tags=["reasoning", "chain-of-thought", "imagenet", "synthetic", "vision-language"],
        size_categories=[_size_category(sum(s["num_examples"] for s in sizes.values()))],
    )
    configs, infos = {}, {}
    for config, columns in config_columns().items():
        entry = {"data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in sizes]}
        if columns is not None:
            entry["columns"] = columns
        if config == "default":
            entry["default"] = True
        configs[config] = entry
        features = schema.features("default")
        if columns is not None:
            features = datasets.Features({name: features[name] for name in columns})
        split_dict = datasets.SplitDict()
        for split, size in sizes.items():
            num_bytes = size["num_bytes"] if columns is None else 0
            split_dict.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=size["num_examples"]))
        infos[config] = datasets.DatasetInfo(
            features=features,
            splits=split_dict,
            download_size=sum(s["download_size"] for s in sizes.values()),
            dataset_size=sum(s["num_bytes"] for s in sizes.values()),
        )
    MetadataConfigs(configs).to_dataset_card_data(card_data)
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    return f"---\n{card_data.to_yaml()}\n---\n"


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def render_card(
    sizes: dict[str, dict[str, int]],
    *,
    pretty_name: str = "ImageNet-Think",
    source: Optional[str] = None,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    sample_note: Optional[str] = None,
) -> str:
    """Full README.md text for shards of the given per-split ``sizes``."""
    rows = "\n".join(f"| {split} | {size['num_examples']:,} |" for split, size in sizes.items())
    note = f"\n> **Note.** {sample_note}\n" if sample_note else ""
    columns = "\n".join(
        f"| `{name}` | {feature!r} |".replace("\n", " ") for name, feature in schema.features("default").items()
    )
    return f"""{_yaml_header(sizes, pretty_name)}
# {pretty_name}
{note}
ImageNet-21k images, each with two (thinking, answer) pairs from two reasoning vision-language
models, in the layout of the published corpus [`{schema.HUB_REPO}`](https://huggingface.co/datasets/{schema.HUB_REPO})
(arXiv [2510.01582](https://arxiv.org/abs/2510.01582)) plus provenance columns.
Written by `imagenet-think` {__version__}{f" from `{source}`" if source else ""}.

| split | rows |
|---|---|
{rows}

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

| column | feature |
|---|---|
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

## License

The texts are released under CC BY 4.0, like the published corpus. The images come from
ImageNet-21k, whose terms of access allow **non-commercial research and educational use
only**; you must agree to the ImageNet terms (https://image-net.org/download.php) to use them.

## Citation

```bibtex
{schema.CITATION}
```
"""
