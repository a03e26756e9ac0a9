"""``imagenet_think.load_dataset``: resolve a source, then build it with our builder.

Sources: ``"imagenet-think"`` (the Hub copy, :data:`schema.HUB_REPO`, or ``hub_repo=``),
``"sample"`` (the bundled sample), a local directory (ours or in the published layout), or
any Hub dataset id.  Offline (``HF_HUB_OFFLINE=1`` or no route to the Hub) a Hub source is
served from the local cache or fails at once with what to do, not after a retry storm.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from urllib.parse import urlsplit
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import datasets

from imagenet_think import schema
from imagenet_think.fileio import atomic_write
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION

SOURCE_ALIASES = ("imagenet-think", "imagenet_think")


class OfflineError(ConnectionError):
    """The Hub cannot be reached and nothing usable is cached."""


class IdentifiedImage(datasets.Image):
    """``datasets.Image`` whose decode errors name the image file (its stem is the row id).

    It serialises as a plain ``Image`` and compares equal to one with the same settings;
    only datasets returned by :func:`load_dataset` use it.
    """

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, datasets.Image):
            return NotImplemented
        return (self.mode, self.decode, self.id) == (other.mode, other.decode, other.id)

    __hash__ = None

    def decode_example(self, value, token_per_repo_id=None):
        try:
            return super().decode_example(value, token_per_repo_id=token_per_repo_id)
        except Exception as err:  # PIL raises many types; all mean "cannot decode"
            name = value.get("path") if isinstance(value, dict) else value
            row_id = str(name).rsplit("/", 1)[-1].rsplit(".", 1)[0] if name else "?"
            raise ValueError(f"cannot decode the image of row {row_id!r} (file {name!r}): {err}") from err


def sample_dir() -> Path:
    """Directory of the bundled sample (Hub layout).

    >>> (sample_dir() / "README.md").is_file()
    True
    """
    return Path(str(resources.files("imagenet_think").joinpath("sample")))


def local_data_files(directory: Union[str, os.PathLike]) -> dict[str, list[str]]:
    """Parquet files of a local corpus directory, by split.

    Split names come from the file names as ``datasets`` reads them
    (``data/train-00000-of-00002.parquet``); files with no split name are ``train``.
    """
    from datasets.data_files import DataFilesDict, EmptyDatasetError, get_data_patterns

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    try:
        patterns = get_data_patterns(str(directory))
        files = DataFilesDict.from_patterns(patterns, base_path=str(directory))
    except (datasets.exceptions.DataFilesNotFoundError, EmptyDatasetError):
        files = {}
    by_split = {str(k): [f for f in v if f.endswith(".parquet")] for k, v in files.items()}
    by_split = {k: v for k, v in by_split.items() if v}
    if not by_split:
        raise FileNotFoundError(
            f"{directory}: no Parquet files found (expected data/{{split}}-NNNNN-of-MMMMM.parquet or *.parquet); "
            "export a corpus with `imagenet-think export` or point to a directory of ImageNet-Think Parquet shards"
        )
    return by_split


def _fingerprint(files: dict[str, list[str]], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for split, names in sorted(files.items()):
        for name in names:
            stat = os.stat(name) if os.path.exists(name) else None
            digest.update(f"{split}|{name}|{stat.st_size if stat else ''}|{stat.st_mtime_ns if stat else ''}".encode())
    return digest.hexdigest()[:16]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (False when ``HF_HUB_OFFLINE`` is set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE:
        return False
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_listing_path(repo: str, revision: Optional[str]) -> Path:
    safe = repo.replace("/", "--")
    return Path(datasets.config.HF_DATASETS_CACHE) / "imagenet_think" / "hub_files" / f"{safe}@{revision or 'main'}.json"


def hub_data_files(repo: str, revision: Optional[str] = None) -> tuple[dict[str, list[str]], str]:
    """Parquet files of a Hub dataset by split, and the commit they come from.

    The listing is cached next to the ``datasets`` cache so an offline run can reuse a
    corpus prepared online.
    """
    listing = _hub_listing_path(repo, revision)
    if not hub_reachable():
        cached = _read_listing(listing)
        if cached is not None:
            return cached["files"], cached["commit"]
        raise OfflineError(f"cannot load {repo!r}: {_unreachable(repo)}")
    from datasets.data_files import DataFilesDict, get_data_patterns
    from huggingface_hub import HfApi

    commit = HfApi().dataset_info(repo, revision=revision).sha
    base = f"hf://datasets/{repo}@{commit}"
    found = DataFilesDict.from_patterns(get_data_patterns(base), base_path=base)
    files = {str(k): [f for f in v if f.endswith(".parquet")] for k, v in found.items()}
    with atomic_write(listing) as f:
        json.dump({"files": files, "commit": commit}, f)
    return files, commit


def _unreachable(repo: str) -> str:
    return (
        f"the Hugging Face Hub is unreachable (HF_HUB_OFFLINE=1 or no network) and {repo} is not in the local "
        "cache. Run once online (set HF_HUB_DISABLE_XET=1 if downloads stall), or load a local copy with "
        'imagenet_think.load_dataset("/path/to/dir"), or try the bundled sample: load_dataset("sample").'
    )


def _read_listing(listing: Path) -> Optional[dict]:
    """A cached Hub listing, or ``None`` when absent or unreadable (then it is ignored)."""
    try:
        cached = json.loads(listing.read_text())
        return cached if isinstance(cached.get("files"), dict) and cached.get("commit") else None
    except (OSError, ValueError, AttributeError):
        return None


def is_corpus_source(name: str) -> bool:
    """Whether :func:`load_dataset` can read ``name`` as a corpus: ``"sample"``, an alias of
    the Hub copy, a directory holding Parquet files, or a Hub dataset id ``owner/name``.

    >>> is_corpus_source("sample"), is_corpus_source("imagenet_think"), is_corpus_source("/no/such/dir")
    (True, True, False)
    """
    if name == "sample" or name in SOURCE_ALIASES:
        return True
    if os.path.isdir(name):
        return any(Path(name).rglob("*.parquet"))
    return _is_hub_id(name)


def _is_hub_id(name: str) -> bool:
    owner, _, repo = name.partition("/")
    return bool(owner and repo) and "/" not in repo and not name.startswith((".", "/", "~")) and not os.path.exists(name)


def resolve_source(path: str, hub_repo: str = schema.HUB_REPO, revision: Optional[str] = None) -> tuple[dict, str]:
    """``(data_files by split, fingerprint)`` for a source name, directory or Hub id.

    The names ``"sample"``, ``"imagenet-think"`` and ``"imagenet_think"`` win over a directory
    of the same name in the working directory (such as this repository's package folder);
    write ``./imagenet-think`` to load a local directory of that name.
    """
    if path == "sample":
        files = local_data_files(sample_dir())
        return files, _fingerprint(files)
    if path not in SOURCE_ALIASES and os.path.isdir(path):
        files = local_data_files(path)
        return files, _fingerprint(files)
    repo = hub_repo if path in SOURCE_ALIASES else path
    if not _is_hub_id(repo):
        raise FileNotFoundError(
            f"{path}: no such directory (a corpus is 'sample', 'imagenet-think', a directory of Parquet files, "
            "or a Hub dataset id owner/name)"
        )
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        files, commit = hub_data_files(repo, revision)
    except OfflineError as err:
        if path in SOURCE_ALIASES:
            raise
        raise OfflineError(f"{path}: no such directory, and not reachable as a Hub id: {_unreachable(repo)}") from err
    except RepositoryNotFoundError as err:
        where = "no such directory, and" if path == repo else f"{path!r} stands for {repo}, but there is"
        raise FileNotFoundError(
            f"{path}: {where} no dataset {repo} on the Hub (or it is private: log in with `hf auth login`)"
        ) from err
    return files, _fingerprint({}, f"{repo}@{commit}")


def _as_dataset(builder: datasets.DatasetBuilder, split: Optional[str]):
    """``builder.as_dataset`` where a hash split that got no rows (or, for pre-split shards,
    no file) is an empty, typed dataset (``datasets`` refuses to read a split with no data)."""
    sizes = {name: info.num_examples for name, info in builder.info.splits.items()}
    if split is not None:
        if sizes.get(split, 0 if split in schema.SPLITS else None) == 0:
            return datasets.Dataset.from_dict({k: [] for k in builder.info.features}, features=builder.info.features)
        return builder.as_dataset(split=split)
    return datasets.DatasetDict({name: _as_dataset(builder, name) for name in sizes})


def load_dataset(
    path: str = "imagenet-think",
    name: str = "default",
    split: Optional[str] = None,
    streaming: bool = False,
    *,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    decode_images: bool = True,
    hub_repo: str = schema.HUB_REPO,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    columns: Optional[Sequence[str]] = None,
    **kw: Any,
):
    """Load ImageNet-Think with typed features; returns what ``datasets.load_dataset`` would.

    ``name`` is a config (``default``, ``glm``, ``kimi``, ``pairs``); ``validation_fraction``
    sizes the hash split; ``decode_images=False`` yields ``{"bytes", "path"}`` dicts;
    ``columns`` keeps only those columns (the others, images included, are never copied
    into the Arrow cache); other keywords (``num_proc``, ``download_mode``...) go to
    ``download_and_prepare``.

    >>> ds = load_dataset("sample", "pairs", split="train")
    >>> ds.features["teacher"].dtype, ds[0]["teacher"]
    ('int8', 1)
    >>> load_dataset("sample", "glm", split="train", columns=["id", "answer"]).column_names
    ['id', 'answer']
    """
    from imagenet_think.builder import ImageNetThink, builder_hash
    from imagenet_think.normalize import LayoutError
    from imagenet_think.split import check_fraction

    schema.check_config(name)
    check_fraction(validation_fraction)
    data_files, fingerprint = resolve_source(str(path), hub_repo=hub_repo, revision=revision)
    builder = ImageNetThink(
        cache_dir=cache_dir,
        config_name=name,
        data_files=data_files,
        hash=builder_hash(fingerprint),
        dataset_name="imagenet_think",
        validation_fraction=validation_fraction,
        **({} if columns is None else {"columns": list(columns)}),
    )
    image = IdentifiedImage() if decode_images else datasets.Image(decode=False)
    if streaming:
        result = builder.as_streaming_dataset(split=split)
    else:
        try:
            builder.download_and_prepare(**kw)
        except datasets.exceptions.DatasetGenerationError as err:
            cause = err.__cause__ or err.__context__
            if isinstance(cause, LayoutError):
                raise LayoutError(str(cause)) from err
            raise
        result = _as_dataset(builder, split)
    if "image" not in builder.info.features:
        return result
    if isinstance(result, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        for key in list(result):
            result[key] = result[key].cast_column("image", image)
        return result
    return result.cast_column("image", image)
