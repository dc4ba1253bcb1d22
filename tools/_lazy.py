"""Lazy loading that is safe from any thread: heavy libraries imported, and each model loaded, once.

transformers, diffusers and huggingface_hub put a lazy module in `sys.modules` while their `__init__` still runs,
and import their parts (and peft, accelerate, compel, ...) on first use; a second thread that gets there meanwhile
sees a half-built module and fails with `ImportError: cannot import name 'CLIPTokenizer'`. So in `ideaforge.tools`:

- every import of torch, transformers, diffusers, compel, safetensors or huggingface_hub goes through `heavy_import`;
- every load (pipelines, CLIP models, tokenizers) goes through a `LoadOnce` cache, and every other first use of
  those libraries (a pipeline view, a compel encoder) runs inside `first_use()`.

All three hold one process-wide lock, so no two threads ever run a library's first imports at once. Loads of
different models therefore run one after another; generating and scoring, the long part, stay concurrent. When N
threads ask a `LoadOnce` for the same key at once, one loads it and the others get that copy.

Example:
    >>> heavy_import("json").dumps([1])
    '[1]'
    >>> squares: LoadOnce[int, int] = LoadOnce()
    >>> squares.get(3, lambda: 3 * 3), squares.get(3, lambda: 0)  # the second loader never runs
    (9, 9)
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Re-entrant: a load imports, and an import may run code that imports again.
_LOCK = threading.RLock()
_IMPORTED: set[str] = set()


def heavy_import(module_name: str) -> ModuleType:
    """`module_name`, imported under the process-wide lock, so concurrent first imports wait for one."""
    module = sys.modules.get(module_name)
    if module is not None and module_name in _IMPORTED:  # fully imported: no lock needed
        return module
    with _LOCK:
        module = importlib.import_module(module_name)
        _IMPORTED.add(module_name)
        return module


@contextmanager
def first_use() -> Iterator[None]:
    """Hold the process-wide lock while building something from a heavy library, which may import more of it."""
    with _LOCK:
        yield


class LoadOnce(Generic[K, V]):
    """A process-wide cache whose loader runs once per key, however many threads ask at once.

    A loader that raises caches nothing: the next caller tries again (and sees the same error, with its fix).
    """

    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()  # guards `_values` only; never held while loading

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value for `key`, calling `load()` only if no thread has loaded it yet."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        with first_use():  # a load imports all the way down
            with self._lock:
                if key in self._values:  # loaded by the thread this one waited for
                    return self._values[key]
            value = load()
            with self._lock:
                self._values[key] = value
            return value

    def clear(self) -> None:
        """Forget every value (its memory is freed once nothing else holds it)."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
