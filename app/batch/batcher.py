"""Merging the `generate()` calls of many worker threads into batched pipeline calls.

Each idea of a batch runs `IdeaForge.run`, critic loop included, in its own worker thread; their generators are
one `Batcher`, which holds each call until it can join others with the same generation parameters. So round 1
of every idea is batched, and revision rounds are batched with whichever ideas need one at the same time.

Example:
    >>> batcher = Batcher(pipeline, batch_size=8, cancel=threading.Event())  # doctest: +SKIP
    >>> with batcher.worker():  # doctest: +SKIP
    ...     images = batcher.generate(requests, params)  # doctest: +SKIP
    >>> batcher.close()  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ideaforge.errors import Cancelled, GenerationError

# How often the batcher re-checks `more_coming` and `cancel`, which change without notifying it.
_POLL_SECONDS = 0.05


@dataclass
class _Ticket:
    requests: list[Any]
    params: Any
    group: str
    images: int
    result: list[Any] | None = None
    error: BaseException | None = None
    done: bool = False


class Batcher:
    """A generator for many worker threads: their `generate()` calls are merged into batched pipeline calls.

    Calls whose generation parameters match are merged, up to `batch_size` images. A partial batch runs as
    soon as no more requests can come soon: every active worker is waiting, and either no work is left to hand
    out (`more_coming` is false) or the batcher is closing. If a merged call fails, its requests are retried one
    call each, so one bad idea fails alone. Once `cancel` is set, calls not yet started fail with `Cancelled`
    without reaching the pipeline; after `close()`, `generate()` fails at once.
    """

    def __init__(self, inner: Any, batch_size: int, cancel: threading.Event,
                 more_coming: Callable[[], bool] = lambda: False) -> None:
        self.inner = inner
        self.batch_size = batch_size
        self.cancel = cancel
        self.more_coming = more_coming
        self.calls = 0  # pipeline calls made (merged ones count once)
        self._cv = threading.Condition()
        self._pending: list[_Ticket] = []
        self._active = 0
        self._waiting = 0
        self._closed = False
        self._tokenizer: Any = None
        # Not a daemon: the interpreter waits for it rather than tearing it down inside a pipeline call.
        self._thread = threading.Thread(target=self._loop, name="ideaforge-batcher", daemon=False)
        self._thread.start()

    @property
    def tokenizer(self) -> Any:
        """A copy of the pipeline's tokenizer, for the prompt chain's token counts.

        Not the pipeline's own: a tokenizer called from two threads at once, one counting and one encoding a
        padded batch, can hand the pipeline an unpadded sequence ("Sizes of tensors must match").
        """
        with self._cv:
            if self._tokenizer is None:
                from ideaforge.tools.clip_tokenizer import counting_copy

                self._tokenizer = counting_copy(getattr(self.inner, "tokenizer", None))
            return self._tokenizer

    @contextmanager
    def worker(self) -> Iterator[None]:
        """Around one idea's work: while inside, this thread may still submit requests."""
        with self._cv:
            self._active += 1
        try:
            yield
        finally:
            with self._cv:
                self._active -= 1
                self._cv.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Run what is pending, then stop; later `generate()` calls raise `Cancelled`. Returns whether the
        batcher stopped within `timeout` seconds (None: wait as long as it takes)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def generate(self, requests: Any, params: Any, *, on_step: Any = None, cancel: Any = None) -> list[Any]:
        """The images of `requests`, from whichever pipeline call they joined (`on_step` is not supported)."""
        requests = list(requests)
        group = params.model_dump_json() if hasattr(params, "model_dump_json") else repr(params)
        ticket = _Ticket(requests, params, group, len(requests) * max(1, int(getattr(params, "n", 1) or 1)))
        with self._cv:
            if self._closed:
                raise Cancelled("the batch is closed; no more images are generated")
            self._pending.append(ticket)
            self._waiting += 1
            self._cv.notify_all()
            while not ticket.done:
                self._cv.wait()
            self._waiting -= 1
        if ticket.error is not None:
            raise ticket.error
        return ticket.result or []

    def _pick(self) -> list[_Ticket] | None:
        """The next call to make, or None to wait for more requests. Called with the lock held."""
        if not self._pending:
            return None
        groups: dict[str, list[_Ticket]] = {}
        for t in self._pending:
            groups.setdefault(t.group, []).append(t)
        ready = next((g for g in groups.values() if sum(t.images for t in g) >= self.batch_size), None)
        if ready is None:
            idle = self._waiting >= self._active
            if not (self._closed or (idle and not self.more_coming())):
                return None
            ready = groups[self._pending[0].group]
        batch: list[_Ticket] = []
        images = 0
        for t in ready:
            if batch and images + t.images > self.batch_size:
                break
            batch.append(t)
            images += t.images
        for t in batch:
            self._pending.remove(t)
        return batch

    def _cancel_pending(self) -> None:
        """Fail every call not yet started (lock held): a cancelled run waits for no pipeline."""
        for t in self._pending:
            t.error = Cancelled("the batch was cancelled")
            t.done = True
        self._pending.clear()
        self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                batch = None
                while batch is None:
                    if self.cancel.is_set():
                        self._cancel_pending()
                    if self._closed and not self._pending:
                        return
                    batch = self._pick()
                    if batch is None:
                        self._cv.wait(timeout=_POLL_SECONDS)
            try:
                self._run(batch)
            except BaseException as exc:  # noqa: BLE001 - never leave a worker waiting forever
                for t in batch:
                    t.error = t.error or exc
            with self._cv:
                for t in batch:
                    t.done = True
                self._cv.notify_all()

    def _run(self, batch: list[_Ticket]) -> None:
        try:
            self._call(batch)
        except Cancelled as exc:
            for t in batch:
                t.error = exc
        except Exception as exc:  # noqa: BLE001 - whatever broke the call is reported to its ideas
            if len(batch) == 1:
                batch[0].error = exc
                return
            for t in batch:  # find the one that broke the call; the others still get their images
                if self.cancel.is_set():
                    t.error = Cancelled("the batch was cancelled")
                    continue
                try:
                    self._call([t])
                except Exception as single:  # noqa: BLE001 - recorded as that idea's failure
                    t.error = single

    def _call(self, batch: list[_Ticket]) -> None:
        requests = [r for t in batch for r in t.requests]
        self.calls += 1
        self._share(batch, requests, self.inner.generate(requests, batch[0].params, cancel=self.cancel))

    @staticmethod
    def _share(batch: list[_Ticket], requests: list[Any], images: list[Any]) -> None:
        """Give each ticket its requests' images from one call's results (in request order, `n` each)."""
        per = len(images) // len(requests) if requests else 0
        if per * len(requests) != len(images) or per == 0:
            raise GenerationError(f"the generator returned {len(images)} images for {len(requests)} requests")
        start = 0
        for t in batch:
            t.result = images[start:start + per * len(t.requests)]
            start += per * len(t.requests)


class OneAtATime:
    """A scorer or critic shared by worker threads: one call at a time (CLIP on one device gains nothing from
    more; a VLM critic sends a review's images concurrently itself). It has the methods its inner one has."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self._lock = threading.Lock()
        self.threshold = getattr(scorer, "threshold", None)
        self.name = getattr(scorer, "name", "")
        for method in ("score", "review"):
            inner = getattr(scorer, method, None)
            if callable(inner):
                setattr(self, method, self._locked(inner))

    def _locked(self, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return fn(*args, **kwargs)

        return call
