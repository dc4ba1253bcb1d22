"""`ideaforge batch`: many ideas, the model loaded once, batched generation, a folder that survives a kill.

The flow: read the idea list (`ideaforge.app.batch.readers`) -> plan every row (validate its options, fix its seed, compute
its resume key) -> open the output folder (`ideaforge.app.batch.store`: repair what a killed run left, find what is
done) -> the prompt stage for what is left (`PromptChain.batch`, concurrent LLM calls) -> every idea through
`IdeaForge.run`, critic loop included, in worker threads whose `generate()` calls a `Batcher` merges into
batched pipeline calls -> each idea's lines appended when its images are in place. So round 1 of every idea is
batched, and revision rounds are batched with whichever ideas need one at the same time; the loop itself is
`ideaforge.agent.loop`'s.

`executor="ray"` (`ideaforge.app.batch.ray_executor`) runs the prompt and image stages on a Ray cluster and sends the images
back to this process, which writes them: the folder's guarantees are the same.

Seeds: a row's `seed`, else the command's `seed`, else one derived from the idea's text, so a run is
reproducible and a resumed run makes the same images it would have made.

Example:
    >>> from agent import IdeaForge
    >>> forge = IdeaForge(model="path/to/sd", size="512x512", critique=False, out="out")  # doctest: +SKIP
    >>> summary = run_batch(forge, "ideas.tsv", batch_size=8)  # doctest: +SKIP
    >>> summary.done, summary.failed, summary.images_per_second  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.models import PromptSpec
from ideaforge.app.batch.readers import BadRow, Row, read_ideas
from ideaforge.app.batch.store import Recovery, Store
from ideaforge.errors import Cancelled, GenerationError, InputError

EXECUTORS = ("local", "ray")


@dataclass
class Job:
    """One idea to render, with everything that decides its images."""

    line: int
    idea: str
    key: str  # the resume key: a hash of the idea and its effective settings
    seed: int
    style: str | None  # the row's style, None: the command's
    negative: str | None  # replaces the prompt chain's negative when given
    options: dict[str, Any]  # IdeaForge.run overrides from the row (seed, negative and style excluded)
    images: int | None  # how many images make the result whole without the critic; None with it
    tags: dict[str, Any] = field(default_factory=dict)  # stored in each PNG record (see ideaforge.app.batch.store)


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
                          "temp_files": rec.temp_files},
        }


# --- planning -----------------------------------------------------------------------------------------------


def idea_seed(idea: str) -> int:
    """The seed of an idea when neither its row nor the command gives one: stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(idea.encode("utf-8")).digest()[:4], "big")


def resume_key(forge: Any, idea: str, settings: Any, seed: int, negative: str | None) -> str:
    """A hash of everything that decides an idea's images.

    Device and dtype are left out: moving a half-done run to another machine continues it rather than starting
    over.
    """
    s = settings
    engine = forge.chain.engine
    fields: dict[str, Any] = {
        "idea": idea, "seed": seed, "negative": negative, "model": s.model, "loras": list(forge.loras),
        "engine": engine, "llm_model": s.llm_model if engine == "openai" else None, "style": s.style,
        "steps": s.steps, "guidance": s.guidance, "size": s.size, "scheduler": s.scheduler, "n": s.n,
        "candidates": s.candidates, "critique": s.critique,
    }
    if s.critique:
        fields.update(clip_model=s.clip_model, threshold=s.threshold, max_attempts=s.max_attempts,
                      keep_seed=s.keep_seed)
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def plan_jobs(
    forge: Any, rows: list[Row], *, seed: int | None = None, negative: str | None = None
) -> tuple[list[Job], list[BadRow], list[tuple[int, int]]]:
    """Validate every row against the command's settings: jobs, bad rows, repeated rows as (line, first)."""
    from ideaforge.agent.rules import get_style

    jobs: list[Job] = []
    bad: list[BadRow] = []
    duplicates: list[tuple[int, int]] = []
    first_line: dict[str, int] = {}
    for row in rows:
        options = dict(row.options)
        row_seed = options.pop("seed", seed)
        row_negative = options.pop("negative", negative)
        job_seed = row_seed if row_seed is not None else idea_seed(row.idea)
        try:
            preset = get_style(options.get("style", forge.settings.style))
            if "style" in options:
                options["style"] = preset["name"] if preset else None
            plan = forge._plan({**options, "seed": job_seed})
        except InputError as exc:
            bad.append(BadRow(row.line, row.idea, str(exc)))
            continue
        s = plan.settings.model_copy(update={"style": preset["name"] if preset else None})  # "Watercolor" too
        key = resume_key(forge, row.idea, s, job_seed, row_negative)
        if key in first_line:
            duplicates.append((row.line, first_line[key]))
            continue
        first_line[key] = row.line
        jobs.append(Job(
            line=row.line, idea=row.idea, key=key, seed=job_seed, style=options.pop("style", None),
            negative=row_negative, options=options, images=None if s.critique else s.n * s.candidates,
        ))
    return jobs, bad, duplicates


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


# --- batching concurrent generate() calls -------------------------------------------------------------------


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
    out or every worker is busy. If a merged call fails, its requests are retried one call each, so one bad
    idea fails alone.
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
        self._thread = threading.Thread(target=self._loop, name="ideaforge-batcher", daemon=True)
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

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()

    def generate(self, requests: Any, params: Any, *, on_step: Any = None, cancel: Any = None) -> list[Any]:
        requests = list(requests)
        group = params.model_dump_json() if hasattr(params, "model_dump_json") else repr(params)
        ticket = _Ticket(requests, params, group, len(requests) * max(1, int(getattr(params, "n", 1) or 1)))
        with self._cv:
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
        if not self._pending:
            return None
        groups: dict[str, list[_Ticket]] = {}
        for t in self._pending:
            groups.setdefault(t.group, []).append(t)
        ready = next((g for g in groups.values() if sum(t.images for t in g) >= self.batch_size), None)
        if ready is None:
            idle = self._waiting >= self._active
            if not (self._closed or self.cancel.is_set() or (idle and not self.more_coming())):
                return None
            ready = groups[self._pending[0].group]
        batch, images = [], 0
        for t in ready:
            if batch and images + t.images > self.batch_size:
                break
            batch.append(t)
            images += t.images
        for t in batch:
            self._pending.remove(t)
        return batch

    def _loop(self) -> None:
        while True:
            with self._cv:
                batch = self._pick()
                while batch is None:
                    if self._closed and not self._pending:
                        return
                    self._cv.wait(timeout=0.05)  # also re-checks `more_coming`, which changes without notice
                    batch = self._pick()
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
                try:
                    self._call([t])
                except Exception as single:  # noqa: BLE001 - recorded as that idea's failure
                    t.error = single

    def _call(self, batch: list[_Ticket]) -> None:
        requests = [r for t in batch for r in t.requests]
        self.calls += 1
        images = self.inner.generate(requests, batch[0].params, cancel=self.cancel)
        per = len(images) // len(requests) if requests else 0
        if per * len(requests) != len(images) or per == 0:
            raise GenerationError(f"the generator returned {len(images)} images for {len(requests)} requests")
        start = 0
        for t in batch:
            t.result = images[start:start + per * len(t.requests)]
            start += per * len(t.requests)


class _OneAtATime:
    """A scorer shared by worker threads: one call at a time (CLIP on one device gains nothing from more)."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self._lock = threading.Lock()
        self.threshold = scorer.threshold

    def score(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._scorer.score(*args, **kwargs)


# --- running ideas in worker threads ------------------------------------------------------------------------


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
    scorer = _OneAtATime(forge.scorer) if critique else None
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
    view = worker_forge(forge, batcher, scorer)

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

    threads = [threading.Thread(target=work, name=f"ideaforge-{i}", daemon=True) for i in range(workers)]
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
    except BaseException:
        cancel.set()
        raise
    finally:
        for _ in threads:  # one stop sign per worker, after the work queued before it
            while True:
                try:
                    feed.put(None, timeout=0.2)  # a timeout, so Ctrl-C still reaches this thread
                    break
                except queue.Full:
                    if not any(t.is_alive() for t in threads):
                        break
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)
        batcher.close()
        if previous_max is not None:
            inner.max_batch = previous_max
    if crashed:
        raise crashed[0]
    return batcher.calls


# --- the batch ----------------------------------------------------------------------------------------------


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
        KeyboardInterrupt: interrupted; everything finished so far is in the folder.
    """
    if executor not in EXECUTORS:
        raise InputError(f"executor {executor!r} is unknown; use one of: {', '.join(EXECUTORS)}")
    for name, value in (("batch_size", batch_size), ("llm_concurrency", llm_concurrency)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} {value!r} is invalid: use a whole number of 1 or more")
    if seed is not None and not 0 <= seed < 2**32:
        raise InputError(f"seed {seed!r} is invalid; use a whole number from 0 to 4294967295")
    listing = read_ideas(ideas)
    jobs, bad, duplicates = plan_jobs(forge, listing.rows, seed=seed, negative=negative)
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    store = Store(forge.settings.out)
    try:
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
    finally:
        store.close()
    return summary


def _versions() -> dict[str, str]:
    from ideaforge.tools.metadata import package_versions

    return package_versions()
