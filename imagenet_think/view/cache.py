"""A thread-safe least-recently-used cache bounded by the bytes of its values.

The viewer keeps image row groups, text-search results and thumbnails in memory this way, so a
long browsing session never grows without bound (nothing is cached on disk).

>>> cache = BoundedCache(max_bytes=10)
>>> cache.put("a", b"12345"); cache.put("b", b"123456")
>>> cache.get("a") is None, cache.get("b")
(True, b'123456')
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional


def size_of(value: Any) -> int:
    """Bytes a cached value holds: ``nbytes`` of Arrow and NumPy arrays, ``len`` of bytes."""
    return int(getattr(value, "nbytes", None) or len(value))


class BoundedCache:
    """``get``/``put`` by key; the least recently used values go once ``max_bytes`` is passed.

    A value larger than ``max_bytes`` is not kept at all.
    """

    def __init__(self, max_bytes: int, size: Callable[[Any], int] = size_of):
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[Any]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = self._size(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes
