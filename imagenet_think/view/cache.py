"""A thread-safe least-recently-used cache bounded by the bytes of its values.

The viewer keeps image row groups, text-search results and thumbnails in memory this way, so a
long browsing session never grows without bound (nothing is cached on disk).
:meth:`BoundedCache.get_or_make` computes a missing value once however many threads ask for it
at the same time (the others wait for that result: a "single flight").

>>> cache = BoundedCache(max_bytes=10)
>>> cache.get_or_make("a", lambda: b"12345"), cache.get_or_make("b", lambda: b"123456")
(b'12345', b'123456')
>>> cache.get_or_make("a", lambda: b"made again")  # "a" went to make room for "b"
b'made again'
>>> cache.get_or_make("a", lambda: b"never made"), cache.nbytes
(b'made again', 10)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, Hashable


def size_of(value: Any) -> int:
    """Bytes a cached value holds: ``nbytes`` of Arrow and NumPy arrays, ``len`` of bytes."""
    return int(getattr(value, "nbytes", None) or len(value))


class BoundedCache:
    """Values by key (:meth:`get_or_make`); the least recently used go once ``max_bytes`` is passed.

    A value larger than ``max_bytes`` is not kept at all.
    """

    def __init__(self, max_bytes: int, size: Callable[[Any], int] = size_of):
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._making: dict[Hashable, Future] = {}

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of ``key``; when missing, ``make()`` is called and its value kept.

        Callers asking for a key that another thread is making wait for that result instead
        of making it again; an exception of ``make`` (or of sizing its value) reaches all of
        them and nothing is kept, so the next caller makes it again.
        """
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                return item[0]
            making = self._making.get(key)
            owner = making is None
            if owner:
                making = self._making[key] = Future()
        if not owner:
            return making.result()
        try:
            value = make()
            size = self._size(value)
        except BaseException as err:
            with self._lock:
                del self._making[key]
            making.set_exception(err)
            raise
        with self._lock:
            if size <= self.max_bytes:  # a larger value is not kept at all
                self._items[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
            del self._making[key]
        making.set_result(value)
        return value

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes
