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

Folder layouts list every entry named like an image, so that none goes unaccounted for: one
that is no regular file (a directory, a FIFO, a device, a broken link) or a symbolic link
leading out of SOURCE (unless ``follow_symlinks``: a tree of links onto other storage) carries
its :attr:`ImageItem.defect`, and the selection rejects it with that reason before reading a
byte (a FIFO would block the reader, a link could send any readable file to a teacher).
Symbolic links inside SOURCE are followed; directories linked out of SOURCE are not walked
(``folder``) or their images rejected (``synset-folders``).

The selection (:func:`select_items`) accepts an image only when Pillow reads its size from the
header, its sides are at least ``min_size``, its pixels at most ``max_pixels``
(:data:`DEFAULT_MAX_PIXELS`) and it decodes whole (:func:`check_decodes`: a truncated JPEG,
which passes a header check, does not); the checks run in a pool of :data:`CHECK_THREADS`
threads (Pillow releases the GIL while it decodes, and reading files waits on I/O: threads
overlap both without copying image bytes between processes), the same images being chosen
as one at a time.  Every rejected candidate is kept with a reason that says what is wrong.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "n01440764").mkdir()
>>> _ = (root / "n01440764" / "n01440764_1.JPEG").write_bytes(b"not decoded yet")
>>> [(i.id, i.label) for i in open_source(root).items("n01440764")]
[('n01440764_n01440764_1', 'tench, Tinca tinca')]
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import io
import itertools
import logging
import os
import random
import stat
import tarfile
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterator, Optional, Protocol, Union

from imagenet_think.labels import label_for
from imagenet_think.schema import record_id, wnid_from_name

if TYPE_CHECKING:
    import PIL.Image
    import pyarrow as pa

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

LAYOUTS = ("auto", "dataset", "synset-folders", "synset-tars", "winter21", "folder")

WINTER21_TRAIN_DIRS = ("train", "imagenet21k_train")

DEFAULT_MIN_SIZE = 224
"""The paper keeps images of at least 224 x 224 pixels."""

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image accepted (8000 x 8000): decoded as RGB it takes 192 MB, and the selection
decodes up to :data:`CHECK_THREADS` at once; the teachers' processors shrink larger images
anyway.  At most Pillow's own ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485), above which Pillow
warns of a decompression bomb (:func:`check_max_pixels`)."""

HEADER_BYTES = 64 * 1024
"""Bytes read to find an image's size (:func:`header_size`): enough for nearly every header."""

CHECK_THREADS = 8
"""Threads checking candidate images at selection (reading and decoding them)."""


@dataclass(frozen=True)
class ImageItem:
    """One candidate image: identity plus where its bytes live (never the bytes).

    ``kind`` is ``"file"`` (``path`` is the image), ``"tar"`` (``member`` of the tar
    ``path``, ``size`` bytes at ``offset``) or ``"dataset"`` (row ``member`` = ``split/index``
    of the dataset ``path``, whose ``image`` column, memory-mapped Arrow, is ``images``; an
    item sent to another process without it opens the dataset there, :func:`corpus_images`).
    ``suffix`` is the original file name's (``.JPEG``).  ``defect`` says why the entry cannot
    be an image, found when listing it (``"not a regular file: a directory"``, a symbolic link
    out of SOURCE); the selection rejects it with that reason, reading nothing.

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
    defect: str = field(default="", compare=False)

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


def _file_kind(mode: int) -> str:
    """What a file that is no regular file is, from its ``st_mode``.

    >>> _file_kind(stat.S_IFIFO | 0o644), _file_kind(stat.S_IFDIR | 0o755)
    ('a FIFO (named pipe)', 'a directory')
    """
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _inside(path: str, root: str) -> bool:
    """Whether the real path ``path`` is ``root`` (a real path) or below it."""
    return os.path.commonpath([path, root]) == root


def _outside_link(path: str, root: str) -> str:
    """The defect of a symbolic link ``path`` whose target lies out of ``root``, else ``""``."""
    target = os.path.realpath(path)
    if _inside(target, root):
        return ""
    return f"a symbolic link to {target}, outside SOURCE: not followed (--follow-symlinks reads it)"


def entry_defect(entry: os.DirEntry, root: str, follow_symlinks: bool = False) -> str:
    """Why the directory entry ``entry``, named like an image, cannot be read as one, or ``""``:
    not a regular file (a directory, a FIFO, a device, a socket, a broken link), or a symbolic
    link whose target is out of ``root`` (SOURCE's real path) unless ``follow_symlinks``.  A
    regular file costs no system call (the entry's type comes with the directory listing).

    >>> import tempfile
    >>> root, elsewhere = os.path.realpath(tempfile.mkdtemp()), os.path.realpath(tempfile.mkdtemp())
    >>> os.mkdir(os.path.join(root, "x.JPEG")); os.symlink(f"{elsewhere}/z.png", os.path.join(root, "y.JPEG"))
    >>> [(e.name, entry_defect(e, root).replace(elsewhere, "ELSEWHERE")) for e in sorted(os.scandir(root), key=lambda e: e.name)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('x.JPEG', 'not a regular file: a directory'),
     ('y.JPEG', 'a symbolic link to ELSEWHERE/z.png, outside SOURCE: not followed (--follow-symlinks reads it)')]
    """
    if entry.is_file(follow_symlinks=False):
        return ""
    if not entry.is_symlink():
        return f"not a regular file: {_file_kind(entry.stat(follow_symlinks=False).st_mode)}"
    outside = "" if follow_symlinks else _outside_link(entry.path, root)
    if outside:
        return outside
    try:
        mode = os.stat(entry.path).st_mode
    except OSError:
        return f"a broken symbolic link (to {os.readlink(entry.path)})"
    return "" if stat.S_ISREG(mode) else f"a symbolic link to {_file_kind(mode)}, not to a regular file"


def _sorted_unique(items: list[ImageItem]) -> list[ImageItem]:
    """Items sorted by id; two files mapping to one id is an error naming both."""
    items = sorted(items, key=lambda i: (i.id, i.source))
    for a, b in itertools.pairwise(items):
        if a.id == b.id:
            raise ValueError(f"two images map to the same id {a.id!r}: {a.source} and {b.source}")
    return items


class SynsetFolders:
    """``ROOT/nXXXXXXXX/<image files>``; a synset folder linked out of ROOT has its images
    rejected unless ``follow_symlinks``."""

    def __init__(self, root: Union[str, Path], follow_symlinks: bool = False):
        self.root = Path(root)
        self.follow_symlinks = follow_symlinks
        self._real_root = os.path.realpath(root)

    def groups(self) -> list[str]:
        return [e.name for e in os.scandir(self.root) if e.is_dir() and _is_wnid(e.name)]

    def items(self, group: str) -> list[ImageItem]:
        label, folder = label_for(group), self.root / group
        outside = "" if self.follow_symlinks else _outside_link(str(folder), self._real_root)
        if outside:
            outside = f"in {folder}, {outside}"
        return _sorted_unique(
            [
                ImageItem(
                    record_id(group, e.name), group, label, "file", e.path, suffix=_suffix(e.name),
                    defect=outside or entry_defect(e, self._real_root, self.follow_symlinks),
                )  # fmt: skip
                for e in os.scandir(folder)
                if _is_image(e.name)
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
    """Any folder of images (recursive, not into linked directories); wnid from the file name
    when it starts with one."""

    def __init__(self, root: Union[str, Path], follow_symlinks: bool = False):
        self.root = Path(root)
        self.follow_symlinks = follow_symlinks
        self._real_root = os.path.realpath(root)

    def _entries(self, directory: Union[str, Path]) -> "Iterator[os.DirEntry]":
        """Entries named like an image below ``directory`` (directories so named included)."""
        with os.scandir(directory) as entries:
            for entry in entries:
                if _is_image(entry.name):
                    yield entry
                if entry.is_dir(follow_symlinks=False):
                    yield from self._entries(entry.path)

    @functools.cached_property
    def _by_group(self) -> dict[str, list[ImageItem]]:
        by_group: dict[str, list[ImageItem]] = {}
        for entry in self._entries(self.root):
            name, path = entry.name, entry.path
            wnid = wnid_from_name(name) or ""
            if wnid:
                item_id = record_id(wnid, name)
            else:
                item_id = PurePosixPath(Path(path).relative_to(self.root).as_posix()).with_suffix("").as_posix()
            label = label_for(wnid) if wnid else ""
            defect = entry_defect(entry, self._real_root, self.follow_symlinks)
            by_group.setdefault(wnid, []).append(ImageItem(item_id, wnid, label, "file", path, suffix=_suffix(name), defect=defect))
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


def open_source(path: Union[str, Path], layout: str = "auto", follow_symlinks: bool = False) -> ImageSource:
    """The :class:`ImageSource` reading ``path`` as ``layout`` (see the module docstring);
    ``follow_symlinks`` reads images linked from out of ``path`` (folder layouts)."""
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
                    return SynsetTars(root / name) if tars else SynsetFolders(root / name, follow_symlinks)
        raise ValueError(f"{root}: no synset folders or tars under {' or '.join(WINTER21_TRAIN_DIRS)}/")
    if layout == "synset-tars":
        return SynsetTars(root)
    return {"synset-folders": SynsetFolders, "folder": ImageFolder}[layout](root, follow_symlinks)


class UnusableImage(ValueError):
    """An image Pillow cannot open or decode; the message says what is wrong with it."""


def not_an_image(data: bytes) -> str:
    """What to say of bytes Pillow cannot open as an image.

    >>> not_an_image(b"<!DOCTYPE html><html><body>Not Found")
    "not an image Pillow can read (it starts with b'<!DOCTYPE html><')"
    >>> not_an_image(b"\\xff\\xd8\\xff\\xe0 cut")
    'a JPEG whose header Pillow cannot read (cut short or corrupt: 8 bytes in all)'
    >>> not_an_image(b"")
    'an empty file'
    """
    from imagenet_think.images import image_kind

    if not data:
        return "an empty file"
    kind = image_kind(data)
    if kind:
        return f"a {kind[1].split('/')[1].upper()} whose header Pillow cannot read (cut short or corrupt: {len(data):,} bytes in all)"
    return f"not an image Pillow can read (it starts with {data[:16]!r})"


def opened(data: bytes) -> "PIL.Image.Image":
    """The image ``data`` holds, its header read (nothing decoded yet); an image Pillow cannot
    open is an :class:`UnusableImage` saying why."""
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise UnusableImage(f"too large: {error}") from None
    except (OSError, ValueError) as error:
        raise UnusableImage(not_an_image(data)) from error


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the image header, without decoding the pixels (:func:`opened`).

    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("RGB", (300, 240)).save(buffer, "PNG")
    >>> image_size(buffer.getvalue())
    (300, 240)
    """
    with opened(data) as image:
        return image.size


def header_size(item: ImageItem) -> tuple[int, int]:
    """``(width, height)`` of ``item`` from its first :data:`HEADER_BYTES` bytes, or from the
    whole image when its header is longer (large metadata, a TIFF directory at the end)."""
    return _header(item)[0]


def _header(item: ImageItem) -> tuple[tuple[int, int], Optional[bytes]]:
    """:func:`header_size`, and the whole image when that read it all (``None`` otherwise)."""
    head = item.read_bytes(HEADER_BYTES)
    whole = head if len(head) < HEADER_BYTES else None
    try:
        return image_size(head), whole
    except UnusableImage:
        if whole is not None:
            raise
        whole = item.read_bytes()
        return image_size(whole), whole


def decoded(data: bytes, draft: bool = False) -> "PIL.Image.Image":
    """The image ``data`` decodes to, or an :class:`UnusableImage` saying what is wrong
    (``"truncated JPEG ..."``, ``"corrupt PNG ..."``).  ``draft`` decodes a JPEG at 1/8 scale
    (every byte of it is still read and checked).

    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("RGB", (64, 64), "red").save(buffer, "JPEG")
    >>> decoded(buffer.getvalue()).size
    (64, 64)
    >>> decoded(buffer.getvalue()[:-50])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imagenet_think.regenerate.sources.UnusableImage: truncated JPEG: its data ends after ... bytes (image file is truncated ...)
    """
    image = opened(data)
    if draft:
        image.draft("RGB", (1, 1))  # JPEG: the smallest scale; other formats ignore it
    try:
        image.load()
    except Exception as error:  # Pillow's decoders raise many types; all mean "cannot decode"
        image.close()
        what = str(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
        if "truncated" in what.lower():
            raise UnusableImage(f"truncated {image.format}: its data ends after {len(data):,} bytes ({what})") from error
        raise UnusableImage(f"corrupt {image.format}: {what}") from error
    return image


def check_decodes(data: bytes) -> None:
    """Raise an :class:`UnusableImage` unless ``data`` decodes whole (:func:`decoded`, JPEG at
    1/8 scale): a header check passes an image cut short, a teacher does not."""
    decoded(data, draft=True).close()


def check_max_pixels(max_pixels: int) -> int:
    """``max_pixels`` when it is a pixel limit the selection can apply: 0 (none) or at most
    Pillow's ``MAX_IMAGE_PIXELS`` (beyond it Pillow warns of a decompression bomb, and at twice
    it refuses to open the image).

    >>> check_max_pixels(10**9)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --max-pixels 1,000,000,000 is above Pillow's limit PIL.Image.MAX_IMAGE_PIXELS (89,478,485)...
    """
    from PIL import Image

    if max_pixels < 0:
        raise ValueError(f"--max-pixels must be 0 (no limit) or more, got {max_pixels}")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and max_pixels > limit:
        raise ValueError(f"--max-pixels {max_pixels:,} is above Pillow's limit PIL.Image.MAX_IMAGE_PIXELS ({limit:,}); give at most that")
    return max_pixels


def rejection(
    item: ImageItem, min_size: int, max_pixels: int = DEFAULT_MAX_PIXELS, known_good: Collection[str] = frozenset()
) -> Optional[str]:
    """Why ``item`` cannot go to the teachers, or ``None`` when it can: its :attr:`ImageItem.defect`;
    unreadable; not an image; smaller than ``min_size`` on a side or larger than ``max_pixels``
    (from the header); or it does not decode whole (:func:`check_decodes`).  With ``min_size``
    and ``max_pixels`` 0 nothing is read; ids in ``known_good`` (already written) are not read
    again."""
    if item.defect:
        return item.defect
    if item.id in known_good or (min_size <= 0 and max_pixels <= 0):
        return None
    try:
        (width, height), whole = _header(item)
        if width < min_size or height < min_size:
            return f"too small: {width}x{height} < {min_size}x{min_size}"
        if max_pixels and width * height > max_pixels:
            return f"too large: {width}x{height} = {width * height:,} pixels > --max-pixels {max_pixels:,}"
        check_decodes(item.read_bytes() if whole is None else whole)  # read once when the header read it all
    except UnusableImage as error:
        return str(error)
    except (OSError, ValueError) as error:
        return f"cannot read it: {error}"
    return None


@dataclass
class Selection:
    """The chosen items, in choice order, and every candidate skipped as ``(source, reason)``."""

    items: list[ImageItem]
    skipped: list[tuple[str, str]]


def select_items(
    source: ImageSource,
    count: Optional[int],
    seed: int = 0,
    min_size: int = DEFAULT_MIN_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    known_good: Collection[str] = frozenset(),
    threads: int = CHECK_THREADS,
) -> Selection:
    """Choose ``count`` images (all when ``None``) deterministically, balanced over synsets.

    Groups are sorted then shuffled with ``seed`` (so a partial last round favours no part
    of the WordNet tree); each group's images are shuffled with ``seed`` and the group key.
    Rounds take the next acceptable image of every group in turn until ``count`` are chosen,
    so no synset gets two images before every synset with images left has one.  Each
    candidate is checked (:func:`rejection`, with ``min_size``, ``max_pixels`` and
    ``known_good``; rejected ones are kept with their reason and logged), the next groups of
    a round at the same time in ``threads`` threads: the choice is the same as one at a time.
    Groups are listed only when first reached.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for w in ("n00000001", "n00000002"):
    ...     (root / w).mkdir()
    ...     for k in range(3):
    ...         _ = (root / w / f"{w}_{k}.JPEG").write_bytes(b"")
    >>> chosen = select_items(open_source(root), 3, seed=1, min_size=0, max_pixels=0).items
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

    def next_acceptable(queue: list[ImageItem]) -> tuple[Optional[ImageItem], list[tuple[str, str]]]:
        """The queue's next acceptable item (``None``: none left) and those rejected before it."""
        rejected = []
        while queue:
            item = queue.pop()
            reason = rejection(item, min_size, max_pixels, known_good)
            if reason is None:
                return item, rejected
            rejected.append((item.source, reason))
        return None, rejected

    def start(group: str) -> concurrent.futures.Future:
        if group not in queues:  # listed here, in this thread: a source lists each group once
            queue = list(source.items(group))
            random.Random(f"{seed}/{group}").shuffle(queue)
            queue.reverse()  # pop() from the end takes the shuffled order
            queues[group] = queue
        return pool.submit(next_acceptable, queues[group])

    active = order
    with warnings.catch_warnings(), concurrent.futures.ThreadPoolExecutor(threads, "check") as pool:
        if min_size > 0 or max_pixels > 0:  # --max-pixels decides what is too large, not Pillow's warning
            from PIL import Image

            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        while active and (count is None or len(chosen) < count):
            still_active = []
            groups = iter(active)
            ahead: collections.deque = collections.deque()  # (group, its check), in the round's order
            while True:
                while len(ahead) < 4 * threads and (group := next(groups, None)) is not None:
                    ahead.append((group, start(group)))
                if not ahead or (count is not None and len(chosen) >= count):
                    break
                group, check = ahead.popleft()
                item, rejected = check.result()
                for source_name, reason in rejected:
                    skipped.append((source_name, reason))
                    log = logger.debug if reason.startswith("too small") else logger.warning
                    log("skipping %s: %s", source_name, reason)
                if item is not None:
                    chosen.append(item)
                    still_active.append(group)
            for _, check in ahead:  # checked ahead of a round the count ended
                check.cancel()
            active = still_active
    if count is not None and len(chosen) < count:
        logger.warning("only %d usable images found, %d requested", len(chosen), count)
    return Selection(chosen, skipped)
