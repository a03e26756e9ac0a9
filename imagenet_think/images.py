"""Image bytes: format detection from the leading signature ("magic") bytes.

Only the formats ImageNet files and generated samples come in are known: JPEG, PNG, GIF, BMP
and WebP.  No image library is imported.

>>> image_kind(b"\\x89PNG\\r\\n\\x1a\\n...")
('.png', 'image/png')
>>> image_kind(b"RIFF\\0\\0\\0\\0WEBPVP8 ")
('.webp', 'image/webp')
>>> image_kind(b"plain text") is None
True
"""

from __future__ import annotations

from typing import Optional

_SIGNATURES = (
    (b"\xff\xd8\xff", (".jpg", "image/jpeg")),
    (b"\x89PNG\r\n\x1a\n", (".png", "image/png")),
    (b"GIF87a", (".gif", "image/gif")),
    (b"GIF89a", (".gif", "image/gif")),
    (b"BM", (".bmp", "image/bmp")),
)


def image_kind(data: bytes) -> Optional[tuple[str, str]]:
    """``(file suffix, MIME type)`` of the image encoded in ``data``, or ``None`` when unknown.

    >>> image_kind(b"\\xff\\xd8\\xff\\xe0..."), image_kind(b"GIF89a...")
    (('.jpg', 'image/jpeg'), ('.gif', 'image/gif'))
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp", "image/webp"
    return next((kind for signature, kind in _SIGNATURES if data.startswith(signature)), None)
