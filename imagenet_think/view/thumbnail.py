"""Thumbnails of the viewer, decoded within a pixel limit.

A record's image is stored encoded (JPEG, PNG, ...); decoding it costs about 3-4 bytes per pixel,
so a small file can hold a huge image (a 449 KB PNG of 12000×12000 pixels decodes to 432 MB).
The viewer therefore never decodes more than :data:`MAX_IMAGE_PIXELS` pixels for one image:

* JPEG is decoded at reduced scale (Pillow's ``draft``: 1/2, 1/4 or 1/8 a side, the smallest
  that still covers the thumbnail), so the limit applies to that reduced decode: a JPEG up to
  64 × the limit still gets a thumbnail.  Other formats (PNG, GIF, BMP, WebP) have no reduced
  decode in Pillow and count their full size.
* An image over the limit is not decoded: its thumbnail is a placeholder saying so and the record
  page shows its size and a link to the stored file instead of the image.
* The size is read from the header (:func:`describe`), which decodes nothing.

>>> import io; from PIL import Image
>>> png = io.BytesIO(); Image.new("RGB", (3000, 2000), "red").save(png, "PNG")
>>> describe(png.getvalue(), max_pixels=5_000_000)["too_large"]
'3000×2000 pixels, over the limit of 5,000,000'
>>> make_thumbnail(png.getvalue(), max_pixels=5_000_000)
Traceback (most recent call last):
...
imagenet_think.view.thumbnail.ImageTooLarge: 3000×2000 pixels, over the limit of 5,000,000
"""

from __future__ import annotations

import html
import io
from typing import Any

THUMBNAIL_SIZE = 240
"""Longest side of a thumbnail in pixels."""

MAX_IMAGE_PIXELS = 40_000_000
"""Most pixels the viewer decodes for one image (40 MP, e.g. 8000×5000: 160 MB decoded, as Pillow
keeps 4 bytes a pixel for RGB); also the largest image a record page shows inline."""

_PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240">'
    '<rect width="240" height="240" fill="#ddd"/><text x="120" y="115" font-family="sans-serif" font-size="16" '
    'text-anchor="middle" fill="#666">{}</text><text x="120" y="140" font-family="sans-serif" font-size="13" '
    'text-anchor="middle" fill="#666">{}</text></svg>'
)


class ImageTooLarge(ValueError):
    """An image whose decode would pass the pixel limit; ``size`` says how large, shortly."""

    def __init__(self, size: str, limit: str):
        super().__init__(f"{size}, {limit}")
        self.size = size


def over_limit(size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """Why an image of ``size`` (width, height) is not decoded, or ``""`` when it may be.

    >>> over_limit((12000, 12000))
    '12000×12000 pixels, over the limit of 40,000,000'
    >>> over_limit((4000, 3000))
    ''
    """
    return "" if size[0] * size[1] <= max_pixels else str(_over_the_limit(size, max_pixels))


def _over_the_limit(size: tuple[int, int], max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(f"{size[0]}×{size[1]} pixels", f"over the limit of {max_pixels:,}")


def _over_pillows_limit() -> ImageTooLarge:
    from PIL import Image

    return ImageTooLarge(f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels", "Pillow's own limit")


def describe(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> dict[str, Any]:
    """What the header of an image says (nothing is decoded): ``width`` and ``height``
    (``None`` when Pillow cannot read it) and ``too_large``, the reason it is not shown
    (``""`` when it is).

    >>> import io; from PIL import Image
    >>> png = io.BytesIO(); Image.new("L", (300, 200)).save(png, "PNG")
    >>> describe(png.getvalue(), max_pixels=50_000)
    {'width': 300, 'height': 200, 'too_large': '300×200 pixels, over the limit of 50,000'}
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"width": image.width, "height": image.height, "too_large": over_limit(image.size, max_pixels)}
    except Image.DecompressionBombError:  # Pillow refuses to open images over twice its own limit
        return {"width": None, "height": None, "too_large": str(_over_pillows_limit())}
    except Exception:  # Pillow raises many types; all mean "cannot read"
        return {"width": None, "height": None, "too_large": ""}


def make_thumbnail(data: bytes, size: int = THUMBNAIL_SIZE, max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """A JPEG no larger than ``size`` pixels a side, the EXIF orientation applied; raises
    :class:`ImageTooLarge` instead of decoding more than ``max_pixels`` pixels.

    >>> import io; from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("RGB", (640, 320), "red").save(buffer, "PNG")
    >>> Image.open(io.BytesIO(make_thumbnail(buffer.getvalue(), 100))).size
    (100, 50)
    """
    from PIL import Image, ImageOps

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise _over_pillows_limit() from err
    with image:
        stored = image.size
        image.draft("RGB", (size, size))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale; the size follows
        if over_limit(image.size, max_pixels):
            raise _over_the_limit(stored, max_pixels)
        image.thumbnail((size, size))
        thumb = ImageOps.exif_transpose(image)  # turned once small: the turn copies the image
        if thumb.mode not in ("RGB", "L"):
            thumb = thumb.convert("RGB")
        out = io.BytesIO()
        thumb.save(out, "JPEG", quality=82)
        return out.getvalue()


def placeholder(note: str, detail: str = "") -> bytes:
    """An SVG thumbnail saying why there is no picture.

    >>> b"too large" in placeholder("too large", "12000×12000")
    True
    """
    return _PLACEHOLDER.format(html.escape(note), html.escape(detail)).encode()
