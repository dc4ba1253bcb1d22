"""`ideaforge batch`: many ideas, the model loaded once, batched generation, a folder that survives a kill.

The flow, one module a step: read the idea list, each row validated by `GenerateRequest` (`readers`) -> plan every
row: its seed and resume key (`plan`) -> open the output folder: repair what a killed run left, find what is done
(`store`) -> the prompt stage for what is left, then every idea through `IdeaForge.run` in worker threads whose
`generate()` calls a `Batcher` merges into batched pipeline calls (`execute`, `batcher`) -> each idea's lines
appended when its images are in place (`store`, `manifest`).

`executor="ray"` (`ray_executor`) runs the prompt and image stages on a Ray cluster and sends the PNGs back to
this process, which places them: the folder's guarantees are the same.

Example:
    >>> from ideaforge import IdeaForge
    >>> forge = IdeaForge(model="path/to/sd", size="512x512", critique=False, out="out")  # doctest: +SKIP
    >>> summary = run_batch(forge, "ideas.tsv", batch_size=8)  # doctest: +SKIP
    >>> summary.done, summary.failed, summary.images_per_second  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.request import RunOptions
from ideaforge.app.batch.execute import chunks, optimize, run_jobs
from ideaforge.app.batch.plan import Job, idea_seed, plan_jobs
from ideaforge.app.batch.readers import read_ideas
from ideaforge.app.batch.store import DiskFull, Recovery, Store, disk_full_cause
from ideaforge.errors import InputError

__all__ = ["EXECUTORS", "BatchInterrupted", "BatchProgress", "BatchSummary", "DiskFull", "Job", "idea_seed",
           "plan_jobs", "run_batch"]

EXECUTORS = ("local", "ray")


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; `images` are the complete images of this run that are listed in `out`.

    The folder is the truth: an idea whose images all landed before the workers stopped is listed, whether or not
    its event arrived. What was cut short is left for the next run, which redoes it.
    """

    def __init__(self, out: Path, images: list[str]) -> None:
        self.out, self.images = out, images
        super().__init__(self.message)

    @property
    def message(self) -> str:
        shown = ", ".join(self.images[:10]) + (f" and {len(self.images) - 10} more" if len(self.images) > 10 else "")
        return (f"interrupted; kept {len(self.images)} complete image(s) of this run in {str(self.out)!r}"
                + (f": {shown}" if shown else "") + "; run the same command again to resume")


@contextmanager
def _one_interrupt(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl-C stops the batch (KeyboardInterrupt); the ones after it, while the workers finish the
    images in flight, are ignored: a second KeyboardInterrupt in the middle of shutting down would leave worker
    threads inside the pipeline as the interpreter exits."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # not ours to change: a caller's own handler, or not the main thread
        return
    hit: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        cancel.set()
        if not hit:
            hit.append(True)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _need_bytes(forge: Any, batch_size: int) -> int:
    """Roughly what the next step writes: a pipeline call's PNGs (at most 3 bytes a pixel) and their lines."""
    try:
        width, height = (int(v) for v in str(forge.settings.size).lower().split("x"))
    except (AttributeError, ValueError):
        width = height = 1024
    return batch_size * (width * height * 3 + (64 << 10)) + (1 << 20)


@dataclass
class BatchProgress:
    """Counts for a progress display, sent after every idea."""

    total: int  # ideas this run works on
    done: int = 0
    failed: int = 0
    images: int = 0
    started: float = field(default_factory=time.perf_counter)


@dataclass
class BatchSummary:
    """What a batch run did. `failed`: failure entries (as in failures.jsonl) of bad rows and failed ideas."""

    out: Path
    ideas: int
    done_before: int
    done: int
    failed: list[dict[str, Any]]
    images: int
    seconds: float
    cancelled: int = 0  # ideas left undone because the run was cancelled
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line, line it repeats)
    ignored_columns: list[str] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        rec = self.recovery
        return {
            "out": str(self.out), "ideas": self.ideas, "done_before": self.done_before, "done": self.done,
            "failed": self.failed, "cancelled": self.cancelled, "images": self.images,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
            "duplicates": [{"line": a, "repeats": b} for a, b in self.duplicates],
            "ignored_columns": self.ignored_columns,
            "recovered": {"adopted": rec.adopted, "removed": rec.removed, "dropped_lines": rec.dropped_lines,
                          "temp_files": rec.temp_files, "duplicates": rec.duplicates,
                          "foreign_lines": rec.foreign_lines},
        }


def _settings_for_record(forge: Any) -> dict[str, Any]:
    """The settings for run.json: no key, and no credentials inside a URL."""
    from urllib.parse import urlsplit, urlunsplit

    data = forge.settings.model_dump(mode="json", exclude={"openai_api_key"})
    url = data.get("llm_base_url")
    if url:
        parts = urlsplit(url)
        if parts.username or parts.password:
            host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            data["llm_base_url"] = urlunsplit(parts._replace(netloc=host))
    data["loras"] = list(forge.loras)
    return data


def run_batch(
    forge: Any,
    ideas: str | Path,
    *,
    seed: int | None = None,
    negative: str | None = None,
    batch_size: int = 4,
    llm_concurrency: int = 4,
    executor: str = "local",
    ray_address: str | None = None,
    gpus_per_worker: float | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> BatchSummary:
    """Render every idea of an idea list into `forge.settings.out`, resuming what an earlier run left undone.

    Args:
        forge: the configured `IdeaForge`; its settings are the command's, each row may override some.
        ideas: a .txt, .csv, .tsv or .jsonl idea list (see `ideaforge.app.batch.readers`).
        seed: the seed of every idea without its own; default one derived from each idea's text.
        negative: a negative prompt for every idea without its own (replaces the prompt chain's).
        batch_size: images per pipeline call at most.
        llm_concurrency: concurrent LLM calls in the prompt stage.
        executor: "local", or "ray" for a Ray cluster (`ray_address`, else RAY_ADDRESS, else a local one).
        gpus_per_worker: GPUs per Ray generation actor (default 1 when the cluster has GPUs, else 0).
        on_progress: called after each idea with the counts so far.
        cancel: set it to stop after the images in flight.

    Raises:
        InputError: the idea file cannot be read or a batch option is wrong (nothing is written then).
        DiskFull: the disk filled up; the folder is whole and the same call resumes it.
        BatchInterrupted: Ctrl-C (a KeyboardInterrupt); everything finished so far is in the folder, listed.

    A run that fails before listing any image (a model that does not load, say) leaves the folder as it found
    it.
    """
    if executor not in EXECUTORS:
        raise InputError(f"executor {executor!r} is unknown; use one of: {', '.join(EXECUTORS)}")
    for name, value in (("batch_size", batch_size), ("llm_concurrency", llm_concurrency)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} {value!r} is invalid: use a whole number of 1 or more")
    RunOptions.parse(seed=seed)  # the command's seed, checked as a row's is
    listing = read_ideas(ideas)
    jobs, bad, duplicates = plan_jobs(forge, listing.rows, seed=seed, negative=negative)
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    store = Store(forge.settings.out)
    store.need_bytes = _need_bytes(forge, batch_size)
    with _one_interrupt(cancel):
        try:
            summary = _run(forge, store, ideas, listing, jobs, bad, duplicates, cancel, started, seed=seed,
                           negative=negative, batch_size=batch_size, llm_concurrency=llm_concurrency,
                           executor=executor, ray_address=ray_address, gpus_per_worker=gpus_per_worker,
                           on_progress=on_progress)
        except KeyboardInterrupt:
            cancel.set()
            kept = [*store.added, *_adopt(store)]  # the folder is the truth, not the events that arrived
            if not kept:
                store.undo()
            raise BatchInterrupted(store.out, kept) from None
        except BaseException:
            if not store.added:  # failed before any image (a bad model, a full disk): leave the folder as it was
                store.undo()
            raise
        finally:
            store.close()
    return summary


def _adopt(store: Store) -> list[str]:
    try:
        return store.adopt_complete()
    except (OSError, InputError):  # a full disk: the next run adopts them
        return []


def _run(forge: Any, store: Store, ideas: str | Path, listing: Any, jobs: list[Job], bad: list[Any],
         duplicates: list[tuple[int, int]], cancel: threading.Event, started: float, *, seed: int | None,
         negative: str | None, batch_size: int, llm_concurrency: int, executor: str, ray_address: str | None,
         gpus_per_worker: float | None, on_progress: Callable[[BatchProgress], None] | None) -> BatchSummary:
    recovery = store.open()
    pending = [j for j in jobs if j.key not in store.done]
    for job in pending:
        job.tags = store.tag(job.key, job.line, job.seed, job.images)
    store.reset_failures({j.key for j in jobs})
    bad = sorted([*listing.bad, *bad], key=lambda b: b.line)
    failed = [store.fail(idea=b.idea, line=b.line, key=None, stage="input", error=b.error) for b in bad]
    run_info: dict[str, Any] = {
        "command": "batch",
        "input": {"path": str(Path(ideas).resolve()), "rows": len(listing.rows) + len(listing.bad),
                  "sha256": hashlib.sha256(Path(ideas).read_bytes()).hexdigest()},
        "executor": executor, "batch_size": batch_size, "llm_concurrency": llm_concurrency, "seed": seed,
        "negative": negative, "settings": _settings_for_record(forge), "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None, "summary": None,
    }
    store.write_run(run_info)
    progress = BatchProgress(total=len(pending))
    lock = threading.Lock()

    def report() -> None:
        if on_progress is not None:
            on_progress(progress)

    def on_ok(job: Job, images: list[tuple[Path, bool]]) -> None:
        try:
            lines = store.add(job.key, images)
        except Exception as exc:  # noqa: BLE001 - an image that cannot be read back fails its idea only
            on_fail(job, "save", exc)
            return
        with lock:
            progress.done += 1
            progress.images += len(lines)
            report()

    def on_fail(job: Job, stage: str, exc: BaseException) -> None:
        if isinstance(exc, DiskFull):
            raise exc
        if disk_full_cause(exc) is not None:  # not this idea's failure: nothing more can be saved
            raise store.disk_full() from None
        message = str(exc) or type(exc).__name__
        entry = store.fail(idea=job.idea, line=job.line, key=job.key, stage=stage, error=message)
        if stage != "prompt":
            store.remove_unlisted(job.key)  # images of rounds that finished before the failure
        with lock:
            failed.append(entry)
            progress.failed += 1
            report()

    report()
    critique = any(j.images is None for j in pending)
    if pending and executor == "local":
        def items() -> Iterator[tuple[Job, Any]]:
            size = max(4 * batch_size, 4 * llm_concurrency)
            for chunk in chunks(pending, size):  # prompts for the next chunk come while this one renders
                yield from zip(chunk, optimize(forge.chain, chunk, llm_concurrency))

        run_jobs(forge, items(), batch_size=batch_size, cancel=cancel, on_ok=on_ok, on_fail=on_fail,
                 critique=critique)
    elif pending:
        from ideaforge.app.batch.ray_executor import run_ray

        run_ray(forge, pending, batch_size=batch_size, llm_concurrency=llm_concurrency,
                address=ray_address, gpus_per_worker=gpus_per_worker, critique=critique, on_ok=on_ok,
                on_fail=on_fail, cancel=cancel)
    summary = BatchSummary(
        out=store.out, ideas=len(listing.rows) + len(listing.bad), done_before=len(jobs) - len(pending),
        done=progress.done, failed=failed, images=progress.images, seconds=time.perf_counter() - started,
        cancelled=len(pending) - progress.done - progress.failed,
        duplicates=duplicates, ignored_columns=listing.ignored, recovery=recovery,
    )
    finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.write_run({**run_info, "finished": finished, "summary": summary.as_dict()})
    return summary


def _versions() -> dict[str, str]:
    from ideaforge.tools.metadata import package_versions

    return package_versions()
