"""Image sources for regeneration, and the deterministic, balanced choice of N images.

Supported layouts (``open_source(path, layout="auto")`` detects them in this order):

``dataset``
    An existing corpus to re-annotate: ``"sample"``, ``"imagenet-think"`` (the Hub copy), or a
    directory of its Parquet files (``data/*.parquet`` or ``*.parquet``; ours or the published
    six-column layout), read with :func:`imagenet_think.load_dataset` with undecoded images.
    ``id``, ``wnid`` and ``label`` come from the rows.
``synset-folders``
    One folder per synset: ``ROOT/nXXXXXXXX/*.JPEG`` (files directly inside each folder).
``synset-tars``
    One uncompressed tar per synset: ``ROOT/nXXXXXXXX.tar`` (the ImageNet-21k download).
    Members are read in memory at their offset; nothing is ever extracted to disk, and
    absolute names, ``..`` components and links are skipped with a warning.
``winter21``
    The processed winter-21 / fall-11 releases: synset folders or synset tars inside
    ``ROOT/train/`` or ``ROOT/imagenet21k_train/`` (the validation folders are not read).
    An outer ``*.tar.gz`` must be unpacked first: compressed tars cannot be read at an offset.
``folder``
    Any folder of images, searched recursively.  A file whose name starts with a WordNet id
    (``n01440764_10026.JPEG``) keeps it; others get ``wnid ""`` and their relative path
    without suffix as ``id``.

Items are lightweight (:class:`ImageItem`: id, wnid, label, where the bytes are); image
bytes are read only when :meth:`ImageItem.read_bytes` is called.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "n01440764").mkdir()
>>> _ = (root / "n01440764" / "n01440764_1.JPEG").write_bytes(b"not decoded yet")
>>> [(i.id, i.label) for i in open_source(root).items("n01440764")]
[('n01440764_n01440764_1', 'tench, Tinca tinca')]
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import os
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Optional, Protocol, Union

from imagenet_think.labels import label_for
from imagenet_think.schema import record_id, wnid_from_name

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

LAYOUTS = ("auto", "dataset", "synset-folders", "synset-tars", "winter21", "folder")

WINTER21_TRAIN_DIRS = ("train", "imagenet21k_train")

DEFAULT_MIN_SIZE = 224
"""The paper keeps images of at least 224 x 224 pixels."""

HEADER_BYTES = 64 * 1024
"""Bytes read to find an image's size (:func:`header_size`): enough for nearly every header."""


@dataclass(frozen=True)
class ImageItem:
    """One candidate image: identity plus where its bytes live (never the bytes).

    ``kind`` is ``"file"`` (``path`` is the image), ``"tar"`` (``member`` of the tar
    ``path``, ``size`` bytes at ``offset``) or ``"dataset"`` (row ``member`` = ``split/index``
    of the dataset ``path``, whose ``image`` column, memory-mapped Arrow, is ``images``; an
    item sent to another process without it opens the dataset there, :func:`corpus_images`).
    ``suffix`` is the original file name's (``.JPEG``).

    >>> item = ImageItem("n1_a", "n1", "", "file", "/x/n1/a.JPEG", suffix=".JPEG")
    >>> item.source, item.file_name
    ('/x/n1/a.JPEG', 'n1_a.JPEG')
    """

    id: str
    wnid: str
    label: str
    kind: str
    path: str
    member: str = ""
    suffix: str = field(default="", compare=False)
    offset: int = field(default=-1, compare=False)
    size: int = field(default=-1, compare=False)
    images: Optional["pa.ChunkedArray"] = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> str:
        """Where the image comes from, for logs and ``failures.jsonl``."""
        return f"{self.path}::{self.member}" if self.member else self.path

    @property
    def file_name(self) -> str:
        """Name stored in the ``image.path`` column: ``<id><original suffix>``, like the
        published ``n00005787_n00005787_11054.JPEG``."""
        return self.id.replace("/", "_") + (self.suffix or ".jpg")

    def read_bytes(self, limit: Optional[int] = None) -> bytes:
        """The encoded image, read now; only its first ``limit`` bytes when given.

        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/n1_a.JPEG"
        >>> _ = open(path, "wb").write(b"0123456789")
        >>> ImageItem("n1_a", "n1", "", "file", path).read_bytes(4)
        b'0123'
        """
        if self.kind == "file":
            return _read_at(self.path, 0, limit)
        if self.kind == "tar":
            size = self.size if limit is None else min(self.size, limit)
            data = _read_at(self.path, self.offset, size)
            if len(data) != size:
                raise OSError(f"{self.source}: tar member truncated ({len(data)} of {size} bytes)")
            return data
        if self.kind == "dataset":
            split, index = self.member.rsplit("/", 1)
            images = self.images if self.images is not None else corpus_images(self.path, split)
            image = images[int(index)].as_py()
            if image.get("bytes"):
                return image["bytes"][:limit]
            if image.get("path"):
                return _read_at(image["path"], 0, limit)
            raise ValueError(f"{self.source}: image has neither bytes nor path")
        raise ValueError(f"unknown image item kind {self.kind!r}")


@functools.lru_cache(maxsize=4)
def corpus_images(path: str, split: str) -> "pa.ChunkedArray":
    """The ``image`` column of ``split`` of the corpus ``path`` (memory-mapped; once per process)."""
    import imagenet_think

    return imagenet_think.load_dataset(path, decode_images=False)[split].data.column("image")


def _read_at(path: str, offset: int, size: Optional[int]) -> bytes:
    """``size`` bytes (all the rest when ``None``) of the file ``path`` from ``offset``."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(-1 if size is None else size)


class ImageSource(Protocol):
    """Images grouped by synset; groups are listed cheaply, members only on demand."""

    def groups(self) -> list[str]:
        """Group keys (wnids, ``""`` for images without one), in any order."""

    def items(self, group: str) -> list[ImageItem]:
        """The group's images, sorted by id."""


def _is_wnid(name: str) -> bool:
    return wnid_from_name(name) == name


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix


def _is_image(name: str) -> bool:
    return _suffix(name).lower() in IMAGE_SUFFIXES


def _sorted_unique(items: list[ImageItem]) -> list[ImageItem]:
    """Items sorted by id; two files mapping to one id is an error naming both."""
    items = sorted(items, key=lambda i: (i.id, i.source))
    for a, b in itertools.pairwise(items):
        if a.id == b.id:
            raise ValueError(f"two images map to the same id {a.id!r}: {a.source} and {b.source}")
    return items


class SynsetFolders:
    """``ROOT/nXXXXXXXX/<image files>``."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    def groups(self) -> list[str]:
        return [e.name for e in os.scandir(self.root) if e.is_dir() and _is_wnid(e.name)]

    def items(self, group: str) -> list[ImageItem]:
        label = label_for(group)
        return _sorted_unique(
            [
                ImageItem(record_id(group, e.name), group, label, "file", e.path, suffix=_suffix(e.name))
                for e in os.scandir(self.root / group)
                if e.is_file() and _is_image(e.name)
            ]
        )


def _unsafe_reason(member: tarfile.TarInfo) -> Optional[str]:
    """Why a tar member must not be read, or ``None`` for a plain file with a safe name."""
    if member.isdir():
        return None
    if member.issym() or member.islnk():
        return "a link"
    if not member.isfile():
        return "a special file"
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or "\\" in member.name:
        return "an absolute or parent-relative name"
    return None


def tar_members(tar_path: Union[str, Path]) -> list[tarfile.TarInfo]:
    """Regular image members of an uncompressed tar with safe names; others are skipped
    (unsafe ones with a warning naming the tar and member).

    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/n1.tar"
    >>> with tarfile.open(path, "w") as tar:
    ...     info = tarfile.TarInfo("../evil.JPEG"); info.size = 1
    ...     tar.addfile(info, io.BytesIO(b"x"))
    >>> tar_members(path)
    []
    """
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            members = tar.getmembers()
    except tarfile.ReadError as error:
        raise ValueError(f"{tar_path}: not an uncompressed tar ({error})") from error
    safe = []
    for member in members:
        reason = _unsafe_reason(member)
        if reason:
            logger.warning("skipping tar member %s::%s: %s", tar_path, member.name, reason)
        elif member.isfile() and _is_image(member.name):
            safe.append(member)
    return safe


class SynsetTars:
    """``ROOT/nXXXXXXXX.tar``, each holding that synset's images."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    def groups(self) -> list[str]:
        return [e.name[:-4] for e in os.scandir(self.root) if e.is_file() and e.name.endswith(".tar") and _is_wnid(e.name[:-4])]

    def items(self, group: str) -> list[ImageItem]:
        label = label_for(group)
        tar_path = str(self.root / f"{group}.tar")
        return _sorted_unique(
            [
                ImageItem(record_id(group, m.name), group, label, "tar", tar_path, m.name, _suffix(m.name), m.offset_data, m.size)
                for m in tar_members(tar_path)
            ]
        )


class ImageFolder:
    """Any folder of images (recursive); wnid from the file name when it starts with one."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    @functools.cached_property
    def _by_group(self) -> dict[str, list[ImageItem]]:
        by_group: dict[str, list[ImageItem]] = {}
        for directory, _, files in os.walk(self.root):
            for name in files:
                if not _is_image(name):
                    continue
                path = os.path.join(directory, name)
                wnid = wnid_from_name(name) or ""
                if wnid:
                    item_id = record_id(wnid, name)
                else:
                    item_id = PurePosixPath(Path(path).relative_to(self.root).as_posix()).with_suffix("").as_posix()
                label = label_for(wnid) if wnid else ""
                by_group.setdefault(wnid, []).append(ImageItem(item_id, wnid, label, "file", path, suffix=_suffix(name)))
        return {group: _sorted_unique(items) for group, items in by_group.items()}

    def groups(self) -> list[str]:
        return list(self._by_group)

    def items(self, group: str) -> list[ImageItem]:
        return self._by_group.get(group, [])


class CorpusDataset:
    """Rows of an existing corpus (every split), to re-annotate their images.

    The corpus is loaded once; its items keep the splits' ``image`` columns to read from.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = str(path)

    @functools.cached_property
    def _by_group(self) -> dict[str, list[ImageItem]]:
        import pyarrow.compute as pc

        import imagenet_think

        splits = imagenet_think.load_dataset(self.path, decode_images=False)
        by_group: dict[str, list[ImageItem]] = {}
        for split in sorted(splits):
            table = splits[split].data
            images = table.column("image")
            names = pc.struct_field(images, "path").to_pylist()
            rows = zip(*(table.column(c).to_pylist() for c in ("id", "wnid", "label")), names, strict=True)
            for index, (item_id, wnid, label, name) in enumerate(rows):
                member = f"{split}/{index}"
                item = ImageItem(
                    item_id, wnid, label or label_for(wnid), "dataset", self.path, member, _suffix(name or ""), images=images
                )
                by_group.setdefault(wnid, []).append(item)
        return {group: _sorted_unique(items) for group, items in by_group.items()}

    def groups(self) -> list[str]:
        return list(self._by_group)

    def items(self, group: str) -> list[ImageItem]:
        return self._by_group.get(group, [])


def _has_synsets(root: Path, tars: bool) -> bool:
    if not root.is_dir():
        return False
    source = SynsetTars(root) if tars else SynsetFolders(root)
    return bool(source.groups())


def detect_layout(path: Union[str, Path]) -> str:
    """The layout of ``path`` (one of :data:`LAYOUTS` except ``auto``).

    A name that is not a directory is a corpus when :func:`imagenet_think.loading.is_corpus_source`
    says so (``"sample"``, ``"imagenet-think"``/``"imagenet_think"``, a Hub id ``owner/name``).
    A directory is a corpus when it holds Parquet files: at the top or in ``data/`` (looked
    at first, cheaply), or anywhere below when it holds no synset layout.

    >>> detect_layout("sample"), detect_layout("imagenet_think"), detect_layout("someone/their-corpus")
    ('dataset', 'dataset', 'dataset')
    """
    from imagenet_think.loading import is_corpus_source

    root = Path(path)
    if str(path) == "sample" or not root.is_dir():
        if is_corpus_source(str(path)):
            return "dataset"
        raise ValueError(f"image source {path!s} is neither a directory, 'sample', 'imagenet-think' nor a Hub id owner/name")
    if any(root.glob("*.parquet")) or any(root.glob("data/*.parquet")):
        return "dataset"
    if _has_synsets(root, tars=False):
        return "synset-folders"
    if _has_synsets(root, tars=True):
        return "synset-tars"
    if any(_has_synsets(root / d, tars=t) for d in WINTER21_TRAIN_DIRS for t in (False, True)):
        return "winter21"
    return "dataset" if is_corpus_source(str(root)) else "folder"


def open_source(path: Union[str, Path], layout: str = "auto") -> ImageSource:
    """The :class:`ImageSource` reading ``path`` as ``layout`` (see the module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(path)
    if layout == "dataset":
        return CorpusDataset(path)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"image source {path!s} is not a directory")
    if layout == "winter21":
        for name in WINTER21_TRAIN_DIRS:
            for tars in (False, True):
                if _has_synsets(root / name, tars):
                    return SynsetTars(root / name) if tars else SynsetFolders(root / name)
        raise ValueError(f"{root}: no synset folders or tars under {' or '.join(WINTER21_TRAIN_DIRS)}/")
    return {"synset-folders": SynsetFolders, "synset-tars": SynsetTars, "folder": ImageFolder}[layout](root)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the image header, without decoding the pixels.

    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("RGB", (300, 240)).save(buffer, "PNG")
    >>> image_size(buffer.getvalue())
    (300, 240)
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def header_size(item: ImageItem) -> tuple[int, int]:
    """``(width, height)`` of ``item`` from its first :data:`HEADER_BYTES` bytes, or from the
    whole image when its header is longer (large metadata, a TIFF directory at the end)."""
    head = item.read_bytes(HEADER_BYTES)
    try:
        return image_size(head)
    except (OSError, ValueError):
        if len(head) < HEADER_BYTES:  # that was the whole image
            raise
        return image_size(item.read_bytes())


def rejection(item: ImageItem, min_size: int) -> Optional[str]:
    """Why ``item`` cannot be used (unreadable, corrupt header, smaller than ``min_size``
    on a side), or ``None`` when it can."""
    from PIL import Image

    try:
        width, height = header_size(item)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return f"corrupt or unreadable image: {error}"
    if width < min_size or height < min_size:
        return f"too small: {width}x{height} < {min_size}x{min_size}"
    return None


@dataclass
class Selection:
    """The chosen items, in choice order, and every candidate skipped as ``(source, reason)``."""

    items: list[ImageItem]
    skipped: list[tuple[str, str]]


def select_items(
    source: ImageSource, count: Optional[int], seed: int = 0, min_size: int = DEFAULT_MIN_SIZE
) -> Selection:
    """Choose ``count`` images (all when ``None``) deterministically, balanced over synsets.

    Groups are sorted then shuffled with ``seed`` (so a partial last round favours no part
    of the WordNet tree); each group's images are shuffled with ``seed`` and the group key.
    Rounds take the next acceptable image of every group in turn until ``count`` are chosen,
    so no synset gets two images before every synset with images left has one.  With
    ``min_size > 0`` each candidate's header is read: corrupt ones and those smaller than
    ``min_size`` on a side are skipped (corrupt ones logged with their path).  Groups are
    listed only when first reached.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for w in ("n00000001", "n00000002"):
    ...     (root / w).mkdir()
    ...     for k in range(3):
    ...         _ = (root / w / f"{w}_{k}.JPEG").write_bytes(b"")
    >>> chosen = select_items(open_source(root), 3, seed=1, min_size=0).items
    >>> sorted(sum(i.wnid == w for i in chosen) for w in ("n00000001", "n00000002"))
    [1, 2]
    """
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    order = sorted(source.groups())
    random.Random(seed).shuffle(order)
    queues: dict[str, list[ImageItem]] = {}
    chosen: list[ImageItem] = []
    skipped: list[tuple[str, str]] = []
    active = order
    while active and (count is None or len(chosen) < count):
        still_active = []
        for group in active:
            if count is not None and len(chosen) >= count:
                break
            if group not in queues:
                queue = list(source.items(group))
                random.Random(f"{seed}/{group}").shuffle(queue)
                queue.reverse()  # pop() from the end takes the shuffled order
                queues[group] = queue
            item = _next_acceptable(queues[group], min_size, skipped)
            if item is None:
                continue
            chosen.append(item)
            still_active.append(group)
        active = still_active
    if count is not None and len(chosen) < count:
        logger.warning("only %d usable images found, %d requested", len(chosen), count)
    return Selection(chosen, skipped)


def _next_acceptable(queue: list[ImageItem], min_size: int, skipped: list[tuple[str, str]]) -> Optional[ImageItem]:
    while queue:
        item = queue.pop()
        reason = rejection(item, min_size) if min_size > 0 else None
        if reason is None:
            return item
        skipped.append((item.source, reason))
        log = logger.warning if reason.startswith("corrupt") else logger.debug
        log("skipping %s: %s", item.source, reason)
    return None
