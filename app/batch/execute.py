"""Running planned jobs in this process: the prompt stage, then every idea in worker threads around a `Batcher`.

Both executors use it: the local one directly, the Ray one inside each generation actor
(`ideaforge.app.batch.ray_executor`). The prompt stage makes the specs of a chunk of ideas with concurrent LLM
calls (`PromptChain.batch`) while the previous chunk renders; each idea then goes through `IdeaForge.run`, critic
loop included, with a generator whose calls a `Batcher` merges across ideas. The loop itself is
`ideaforge.agent.loop`'s.

Example:
    >>> specs = optimize(forge.chain, jobs, concurrency=4)  # doctest: +SKIP
    >>> run_jobs(forge, zip(jobs, specs), batch_size=4, cancel=threading.Event(), on_ok=..., on_fail=...,
    ...          critique=False)  # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ideaforge.agent.models import PromptSpec
from ideaforge.app.batch.batcher import Batcher, OneAtATime
from ideaforge.app.batch.plan import Job
from ideaforge.errors import Cancelled, GenerationError

# --- the prompt stage ---------------------------------------------------------------------------------------


def optimize(chain: Any, jobs: list[Job], concurrency: int) -> list[PromptSpec | Exception]:
    """Specs for `jobs`, in order; the LLM calls of a style group run concurrently.

    A failure stays with its idea, as the exception in its place.
    """
    from ideaforge.agent.budget import count, fit_terms
    from ideaforge.agent.text import split_terms

    out: list[PromptSpec | Exception | None] = [None] * len(jobs)
    groups: dict[str | None, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(job.style, []).append(i)
    for style, indices in groups.items():
        ideas = [jobs[i].idea for i in indices]
        try:
            specs: list[Any] = list(chain.batch(ideas, style=style, max_concurrency=concurrency))
        except Exception:  # noqa: BLE001 - one idea broke the call: one by one, so the others survive
            specs = []
            for idea in ideas:
                try:
                    specs.append(chain.optimize(idea, style=style))
                except Exception as exc:  # noqa: BLE001 - recorded as this idea's failure
                    specs.append(exc)
        for i, spec in zip(indices, specs):
            negative = jobs[i].negative
            if isinstance(spec, PromptSpec) and negative is not None:
                text, warnings = fit_terms(split_terms(negative), chain.tokenizer, protected=0)
                spec = spec.model_copy(update={
                    "negative": text, "negative_tokens": count(text, chain.tokenizer),
                    "warnings": [*spec.warnings, *warnings],
                })
            out[i] = spec
    return out  # type: ignore[return-value]


def chunks(items: list[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# How long a cancelled run waits for its workers, which stop at the pipeline's next denoising step.
STOP_SECONDS = 60.0


def _stop(threads: list[threading.Thread], feed: queue.Queue[Any], deadline: float | None) -> None:
    """One stop sign per worker, after the work queued before it; then wait for them (until `deadline`)."""
    for _ in threads:
        while True:
            try:
                feed.put(None, timeout=0.2)  # a timeout, so Ctrl-C still reaches this thread
                break
            except queue.Full:
                if not any(t.is_alive() for t in threads) or (deadline is not None and time.monotonic() > deadline):
                    break
    for t in threads:
        while t.is_alive() and (deadline is None or time.monotonic() < deadline):
            t.join(timeout=0.2)


OnOk = Callable[[Job, list[tuple[Path, bool]]], None]
OnFail = Callable[[Job, str, BaseException], None]


def render(forge: Any, job: Job, spec: PromptSpec, cancel: threading.Event) -> list[tuple[Path, bool]]:
    """One idea through `IdeaForge.run`, critic loop included: its saved images, and which is the best."""
    result = forge.run(job.idea, spec=spec, seed=job.seed, cancel=cancel, tags=job.tags, **job.options)
    best = result.best_image_path
    if best is None:
        raise GenerationError("no usable image: every image was flagged by the safety checker or broken")
    return [(Path(p), p == best) for p in result.image_paths]


def worker_forge(forge: Any, generator: Any, scorer: Any) -> Any:
    """An IdeaForge sharing `forge`'s settings, chain and LoRAs, with the given generator and scorer."""
    from ideaforge.agent.forge import IdeaForge

    return IdeaForge.from_settings(forge.settings, chain=forge.chain, generator=generator, scorer=scorer, loras=forge.loras)


def run_jobs(
    forge: Any,
    items: Iterable[tuple[Job, PromptSpec | Exception]],
    *,
    batch_size: int,
    cancel: threading.Event,
    on_ok: OnOk,
    on_fail: OnFail,
    critique: bool,
) -> int:
    """Render `items` with `forge`'s models, merging generation across ideas; returns the pipeline calls made.

    `on_ok` gets each finished idea's images, `on_fail` each failure (stage "prompt", "generate" or "save");
    both are called from worker threads. A cancelled idea is reported to neither.
    """
    inner = forge.generator  # loads the model, once
    scorer = OneAtATime(forge.scorer) if critique else None
    workers = max(2, 2 * batch_size)  # half fill the next batch while the other half saves the last one
    feed: queue.Queue[tuple[Job, Any] | None] = queue.Queue(maxsize=2 * workers)
    state = {"queued": 0, "idle": workers}
    lock = threading.Lock()

    def more_coming() -> bool:
        with lock:
            return state["queued"] > 0 and state["idle"] > 0

    previous_max = getattr(inner, "max_batch", None)
    if previous_max is not None:
        inner.max_batch = max(previous_max, batch_size)
    batcher = Batcher(inner, batch_size, cancel, more_coming)
    try:
        view = worker_forge(forge, batcher, scorer)
    except BaseException:
        batcher.close()
        raise

    crashed: list[BaseException] = []  # e.g. the disk is full: the manifest cannot take a line

    def work() -> None:
        try:
            serve()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            crashed.append(exc)
            cancel.set()

    def serve() -> None:
        while True:
            item = feed.get()
            if item is None:
                return
            with lock:
                state["queued"] -= 1
                state["idle"] -= 1
            job, spec = item
            try:
                if cancel.is_set():
                    continue
                if isinstance(spec, BaseException):
                    on_fail(job, "prompt", spec)
                    continue
                try:
                    with batcher.worker():
                        images = render(view, job, spec, cancel)
                except Cancelled:
                    continue
                except Exception as exc:  # noqa: BLE001 - one idea's failure never stops the batch
                    on_fail(job, "generate", exc)
                    continue
                on_ok(job, images)
            finally:
                with lock:
                    state["idle"] += 1

    # Not daemons: the interpreter waits for them rather than tearing them down inside a pipeline call.
    threads = [threading.Thread(target=work, name=f"ideaforge-{i}", daemon=False) for i in range(workers)]
    for t in threads:
        t.start()
    try:
        for item in items:
            with lock:
                state["queued"] += 1
            while True:  # a timeout, so Ctrl-C reaches this thread while the queue is full
                try:
                    feed.put(item, timeout=0.2)
                    break
                except queue.Full:
                    if cancel.is_set():
                        break
            if cancel.is_set():
                break
        _stop(threads, feed, deadline=None)
        batcher.close()
    except BaseException:
        cancel.set()  # the images in flight finish (or stop at their next step); no new work starts
        _stop(threads, feed, deadline=time.monotonic() + STOP_SECONDS)
        batcher.close(timeout=max(0.0, STOP_SECONDS / 2))
        raise
    finally:
        if previous_max is not None:
            inner.max_batch = previous_max
    if crashed:
        raise crashed[0]
    return batcher.calls
