"""`Batcher`: concurrent `generate()` calls merged into batched pipeline calls, with a fake pipeline.

Threads line up on barriers and events, never on sleeps; `join(timeout=...)` only bounds a test that would
otherwise hang, it measures nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from ideaforge.app.batch.batcher import Batcher, OneAtATime
from ideaforge.errors import Cancelled, GenerationError

BOUND = 30.0  # seconds before a stuck thread fails the test instead of hanging the suite


class Params(BaseModel):
    steps: int = 2
    n: int = 1


class FakePipeline:
    """Returns `"<request>#<k>"` for each request and image; records each call; fails calls holding `poison`."""

    def __init__(self, poison: str | None = None, images_per_request: int | None = None) -> None:
        self.poison = poison
        self.images_per_request = images_per_request
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def generate(self, requests: list[str], params: Params, *, cancel: Any = None) -> list[str]:
        with self.lock:
            self.calls.append(list(requests))
        if self.poison is not None and self.poison in requests:
            raise GenerationError(f"cannot draw {self.poison!r}")
        per = self.images_per_request if self.images_per_request is not None else params.n
        return [f"{r}#{k}" for r in requests for k in range(per)]


def in_workers(batcher: Batcher, jobs: list[tuple[str, Params]]) -> dict[str, Any]:
    """Each job in its own worker thread, all inside `worker()` before any submits: each job's images or error."""
    ready = threading.Barrier(len(jobs))
    results: dict[str, Any] = {}

    def work(request: str, params: Params) -> None:
        with batcher.worker():
            ready.wait(timeout=BOUND)
            try:
                results[request] = batcher.generate([request], params)
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                results[request] = exc

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=BOUND)
        assert not t.is_alive(), "a caller never got its images"
    return results


@pytest.fixture
def make() -> Any:
    made: list[Batcher] = []

    def build(pipeline: FakePipeline, batch_size: int, cancel: threading.Event | None = None,
              more_coming: Callable[[], bool] = lambda: False) -> Batcher:
        batcher = Batcher(pipeline, batch_size, cancel or threading.Event(), more_coming)
        made.append(batcher)
        return batcher

    yield build
    for batcher in made:
        batcher.close()


def test_requests_from_many_threads_become_one_call_and_each_gets_its_own_images(make: Any) -> None:
    pipeline = FakePipeline()
    batcher = make(pipeline, batch_size=4)
    results = in_workers(batcher, [(f"idea {i}", Params()) for i in range(4)])
    assert len(pipeline.calls) == 1 and sorted(pipeline.calls[0]) == [f"idea {i}" for i in range(4)]
    assert results == {f"idea {i}": [f"idea {i}#0"] for i in range(4)}
    assert batcher.calls == 1


def test_a_call_holds_at_most_batch_size_images(make: Any) -> None:
    pipeline = FakePipeline()
    results = in_workers(make(pipeline, batch_size=4), [(f"idea {i}", Params()) for i in range(6)])
    assert [len(c) for c in pipeline.calls] == [4, 2]
    assert all(results[f"idea {i}"] == [f"idea {i}#0"] for i in range(6))

    pipeline = FakePipeline()  # n=2: two images a request, so two requests fill a batch of 4
    results = in_workers(make(pipeline, batch_size=4), [(f"idea {i}", Params(n=2)) for i in range(3)])
    assert [len(c) for c in pipeline.calls] == [2, 1]
    assert all(results[f"idea {i}"] == [f"idea {i}#0", f"idea {i}#1"] for i in range(3))


def test_calls_with_other_parameters_are_never_merged(make: Any) -> None:
    pipeline = FakePipeline()
    jobs = [("a", Params(steps=2)), ("b", Params(steps=3)), ("c", Params(steps=2)), ("d", Params(steps=3))]
    results = in_workers(make(pipeline, batch_size=8), jobs)
    assert sorted(sorted(c) for c in pipeline.calls) == [["a", "c"], ["b", "d"]]
    assert results == {r: [f"{r}#0"] for r in "abcd"}


def test_one_failing_request_fails_alone(make: Any) -> None:
    pipeline = FakePipeline(poison="poisoned apple")
    batcher = make(pipeline, batch_size=3)
    results = in_workers(batcher, [("a", Params()), ("poisoned apple", Params()), ("b", Params())])
    assert len(pipeline.calls[0]) == 3  # merged first
    assert sorted(pipeline.calls[1:]) == [["a"], ["b"], ["poisoned apple"]]  # then one call each
    assert isinstance(results["poisoned apple"], GenerationError)
    assert "cannot draw 'poisoned apple'" in str(results["poisoned apple"])
    assert results["a"] == ["a#0"] and results["b"] == ["b#0"] and batcher.calls == 4


def test_a_pipeline_returning_the_wrong_number_of_images_fails_its_callers(make: Any) -> None:
    results = in_workers(make(FakePipeline(images_per_request=0), batch_size=1), [("a", Params())])
    assert isinstance(results["a"], GenerationError) and "0 images for 1 requests" in str(results["a"])


def test_more_coming_holds_a_partial_batch_until_it_fills(make: Any) -> None:
    pipeline = FakePipeline()
    batcher = make(pipeline, batch_size=2, more_coming=lambda: True)
    results: dict[str, Any] = {}

    def work(request: str) -> None:  # no barrier: whichever comes first waits for the other
        with batcher.worker():
            results[request] = batcher.generate([request], Params())

    threads = [threading.Thread(target=work, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=BOUND)
        assert not t.is_alive()
    assert [sorted(c) for c in pipeline.calls] == [["a", "b"]] and results == {"a": ["a#0"], "b": ["b#0"]}


def waiting_caller(batcher: Batcher) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """A caller whose request cannot run yet: a second worker is active but holds its request back."""
    release, inside = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def holder() -> None:
        with batcher.worker():
            inside.set()
            release.wait(timeout=BOUND)

    def caller() -> None:
        with batcher.worker():
            try:
                outcome["images"] = batcher.generate(["a"], Params())
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                outcome["error"] = exc

    threading.Thread(target=holder, daemon=True).start()
    inside.wait(timeout=BOUND)
    thread = threading.Thread(target=caller)
    thread.start()
    return thread, outcome, release


def test_cancel_ends_waiting_callers_without_calling_the_pipeline(make: Any) -> None:
    pipeline, cancel = FakePipeline(), threading.Event()
    batcher = make(pipeline, batch_size=4, cancel=cancel)
    thread, outcome, release = waiting_caller(batcher)
    cancel.set()
    thread.join(timeout=BOUND)
    release.set()
    assert not thread.is_alive() and isinstance(outcome.get("error"), Cancelled)
    assert pipeline.calls == []


def test_close_runs_what_waits_then_refuses_new_calls(make: Any) -> None:
    pipeline = FakePipeline()
    batcher = make(pipeline, batch_size=4)
    thread, outcome, release = waiting_caller(batcher)
    with batcher._cv:  # the caller's request is pending before closing (no sleep: wait on the batcher's own lock)
        batcher._cv.wait_for(lambda: batcher._waiting == 1, timeout=BOUND)
    batcher.close()
    thread.join(timeout=BOUND)
    release.set()
    assert not thread.is_alive() and outcome == {"images": ["a#0"]} and pipeline.calls == [["a"]]
    with pytest.raises(Cancelled, match="closed"):
        batcher.generate(["b"], Params())


def test_one_at_a_time_never_scores_two_images_at_once() -> None:
    class Scorer:
        threshold = 30.0

        def __init__(self) -> None:
            self.inside = 0
            self.most = 0
            self.lock = threading.Lock()

        def score(self, image: str) -> str:
            with self.lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
            with self.lock:
                self.inside -= 1
            return image.upper()

    scorer = Scorer()
    shared = OneAtATime(scorer)
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait(timeout=BOUND)
        for _ in range(50):
            assert shared.score(f"image {i}") == f"IMAGE {i}"

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=BOUND)
    assert scorer.most == 1 and shared.threshold == 30.0
