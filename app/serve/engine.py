"""The server's work: worker threads that run `IdeaForge.run`, their generate calls merged by a `Batcher`.

Every request (a sync `images/generations` call or a stored job) becomes a `Task`; a fixed set of worker threads
takes tasks in order and runs each through `IdeaForge.run`, critic loop included, as `ideaforge batch` does. The
workers share one generator, a `ServeBatcher`: concurrent runs with the same generation parameters are merged into
one pipeline call, each run still getting its own step events and previews, and a call stops between steps when
every run in it was cancelled. Admission is bounded (`max_queue` tasks waiting or running); past that, the caller
answers 429.

Example:
    >>> engine = Engine(forge, ServeConfig(), store)  # doctest: +SKIP
    >>> engine.start()  # loads the models in the background; engine.ready is set when done  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import io
import math
import queue
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.request import GenerateRequest
from ideaforge.app.batch.batcher import Batcher, OneAtATime
from ideaforge.app.serve.config import ServeConfig
from ideaforge.app.serve.store import JobStore
from ideaforge.errors import Cancelled, IdeaForgeError

MAX_EVENTS = 2000  # per task, kept for late subscribers; older ones are dropped
PREVIEW_SIDE = 96  # px: previews in the event stream are small JPEGs


class _AnySet:
    """Set when the batcher is cancelled or every run in a merged call is: what the pipeline polls between steps."""

    def __init__(self, always: threading.Event, runs: list[threading.Event | None]) -> None:
        self.always, self.runs = always, runs

    def is_set(self) -> bool:
        if self.always.is_set():
            return True
        return bool(self.runs) and all(r is not None and r.is_set() for r in self.runs)


class ServeBatcher(Batcher):
    """`Batcher` that keeps each run's `on_step` and `cancel`: step events and previews reach the run whose
    images they are, and a merged call stops between steps once all its runs are cancelled."""

    def __init__(self, inner: Any, batch_size: int, cancel: threading.Event,
                 more_coming: Callable[[], bool] = lambda: False) -> None:
        self._hooks: dict[int, tuple[Any, threading.Event | None]] = {}
        super().__init__(inner, batch_size, cancel, more_coming)

    @property
    def family(self) -> Any:
        return getattr(self.inner, "family", None)

    def generate(self, requests: Any, params: Any, *, on_step: Any = None, cancel: Any = None) -> list[Any]:
        requests = list(requests)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the run was cancelled")
        for r in requests:
            self._hooks[id(r)] = (on_step, cancel)
        try:
            images = super().generate(requests, params)
        finally:
            for r in requests:
                self._hooks.pop(id(r), None)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the run was cancelled")
        return images

    def _call(self, batch: list[Any]) -> None:
        requests = [r for t in batch for r in t.requests]
        hooks = [self._hooks.get(id(r), (None, None)) for r in requests]

        def on_step(ev: Any) -> None:
            # `ev.images` are positions in this call's result list; images are in request order, `per` each.
            per = max(1, len(ev.images) // max(1, len(requests))) if ev.images else 1
            told: set[int] = set()
            for k, position in enumerate(ev.images or range(len(requests))):
                owner = min(position // per, len(requests) - 1)
                callback = hooks[owner][0]
                if callback is None or id(callback) in told:
                    continue
                told.add(id(callback))
                preview = ev.previews[k] if k < len(ev.previews) else None
                try:
                    callback(type(ev)(index=ev.index, step=ev.step, total=ev.total, preview=preview,
                                      previews=[preview] if preview is not None else [], batches=ev.batches))
                except Exception:  # noqa: BLE001 - a progress listener never breaks a merged call
                    pass

        self.calls += 1
        images = self.inner.generate(requests, batch[0].params, on_step=on_step,
                                     cancel=_AnySet(self.cancel, [h[1] for h in hooks]))
        self._share(batch, requests, images)


class EventLog:
    """A task's progress events, for any number of readers; `closed` once the task has finished."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self.closed = False

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(item)
            if len(self._items) > MAX_EVENTS:
                self._items.pop(0)
                self._dropped += 1

    def since(self, index: int) -> tuple[list[dict[str, Any]], int]:
        """Events from position `index` on (those dropped meanwhile are skipped) and the next position."""
        with self._lock:
            start = max(0, index - self._dropped)
            items = self._items[start:]
            return items, self._dropped + len(self._items)

    def close(self) -> None:
        self.closed = True


@dataclass
class Task:
    """One run to do: a stored job (`kind` "run") or a sync images request ("sync", with a `future`)."""

    id: str
    kind: str
    request: GenerateRequest
    out: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    events: EventLog = field(default_factory=EventLog)
    future: Future[Any] | None = None
    status: str = "queued"
    input_error: bool = False  # it failed on the caller's input (an HTTP 400), not on the server's side


def preview_url(image: Any) -> str:
    """A small JPEG data URL of a PIL preview."""
    thumb = image.convert("RGB")
    thumb.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def event_item(event: Any) -> dict[str, Any]:
    """An `Event` as the event stream sends it: its fields, the preview as a data URL, secrets redacted."""
    from ideaforge.app.integrations.runnable import event_data
    from ideaforge.tools.sanitize import safe_data

    item = safe_data(_jsonable(event_data(event)))
    if event.preview is not None:
        item["preview"] = preview_url(event.preview)
    return item


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def summarize(result: Any, root: Path) -> dict[str, Any]:
    """A finished run as the API shows it: attempts, checks with the best image's verdicts, the best image.

    Image paths become `file` names relative to the output folder (what `/v1/images/files/{file}` serves).
    """

    def rel(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return None

    attempts = []
    for a in result.attempts:
        attempts.append({
            "round": a.round, "candidate": a.candidate, "seed": a.seed, "score": a.score, "action": a.action,
            "seconds": a.seconds,
            "positive": a.spec.positive, "negative": a.spec.negative, "failed": a.failed,
            "images": [{"file": rel(i.path), "seed": i.seed, "flagged": i.flagged, "error": i.error} for i in a.images],
        })
    best = result.best
    image = best.best_image() if best is not None else None
    verdicts = {v.check: v for v in (image.review.verdicts if image is not None and image.review else [])}
    checks = []
    for c in (best.spec.checks if best is not None else []):
        v = verdicts.get(c.id)
        checks.append({"id": c.id, "question": c.question, "passed": v.passed if v else None,
                       "reason": v.reason if v else ""})
    summary = {
        "idea": result.idea, "passed": result.passed, "stopped": result.stopped, "critic": result.critic,
        "threshold": result.threshold, "spent": result.spent, "warnings": result.warnings,
        "attempts": attempts, "checks": checks,
        "best": None if best is None or image is None else {
            "file": rel(image.path), "seed": image.seed, "score": best.score, "round": best.round,
            "positive": best.spec.positive, "negative": best.spec.negative,
            "files": [rel(i.path) for i in best.images if i.path and not i.flagged and i.error is None],
        },
    }
    from ideaforge.tools.sanitize import safe_data

    return safe_data(_jsonable(summary))


class Engine:
    """Models loaded once, worker threads, the admission bound, and the live tasks by id."""

    def __init__(self, forge: Any, config: ServeConfig, store: JobStore, root: Path) -> None:
        self.forge = forge
        self.config = config
        self.store = store
        self.root = root  # the output folder; every image is written below it
        self.ready = threading.Event()
        self.error: str | None = None
        self.stopping = threading.Event()
        self.tasks: dict[str, Task] = {}
        self._feed: queue.Queue[Task] = queue.Queue()
        self._lock = threading.Lock()
        self._outstanding = 0
        self._idle = 0
        self._seconds: list[float] = []  # recent run durations, for Retry-After
        self._threads: list[threading.Thread] = []
        self._views: dict[str, Any] = {}
        self.batcher: ServeBatcher | None = None

    # -- life cycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the models and start the workers in the background; `ready` is set when requests can run."""
        threading.Thread(target=self._load, name="ideaforge-serve-load", daemon=True).start()

    def _load(self) -> None:
        from ideaforge.tools.sanitize import safe

        try:
            inner = self.forge.generator  # loads the model, once
            if getattr(inner, "max_batch", None) is not None:
                inner.max_batch = max(inner.max_batch, self.config.batch_size)
            self.batcher = ServeBatcher(inner, self.config.batch_size, self.stopping, self._more_coming)
            if self.forge.settings.critique:
                self._view(self.forge.settings.critic)  # the configured critic, built before the first request
            for i in range(self.config.threads):
                t = threading.Thread(target=self._work, name=f"ideaforge-serve-{i}", daemon=True)
                t.start()
                self._threads.append(t)
            for job_id in self.store.recover():  # resumed jobs are admitted whatever the bound
                job = self.store.get(job_id)
                if job is not None and job_id not in self.tasks:  # not one accepted during the load
                    with self._lock:
                        self._outstanding += 1
                    self._enqueue(self._job_task(job_id, job["request"]))
            self.ready.set()
        except Exception as exc:  # noqa: BLE001 - reported by /health and on every request
            self.error = " ".join(safe(str(exc) or type(exc).__name__).split())

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking tasks, cancel what runs (jobs stay stored and resume at the next start)."""
        self.stopping.set()
        for task in list(self.tasks.values()):
            task.cancel.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.batcher is not None:
            self.batcher.close(timeout=max(0.0, deadline - time.monotonic()))

    # -- admission ------------------------------------------------------------------------------------------
    def admit(self) -> bool:
        """Take one more task unless `max_queue` are waiting or running."""
        with self._lock:
            if self._outstanding >= self.config.max_queue:
                return False
            self._outstanding += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._outstanding -= 1

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the recent run time, times the queue per worker."""
        with self._lock:
            recent = sorted(self._seconds[-50:])
            per_run = recent[len(recent) // 2] if recent else 1.0
            waiting = self._outstanding
        return max(1, min(120, math.ceil(per_run * waiting / self.config.threads)))

    def _more_coming(self) -> bool:
        with self._lock:
            return self._feed.qsize() > 0 and self._idle > 0

    # -- tasks ----------------------------------------------------------------------------------------------
    def _job_task(self, job_id: str, request: dict[str, Any]) -> Task:
        return Task(job_id, "run", GenerateRequest.parse(**request), self.root / "runs" / job_id)

    def submit_job(self, request: GenerateRequest) -> str:
        """Store the job (committed before this returns), then queue it; the caller has admitted it."""
        job_id = self.store.add(request.model_dump(exclude_none=True))
        task = self._job_task(job_id, request.model_dump(exclude_none=True))
        self._enqueue(task)
        return job_id

    def submit_sync(self, task_id: str, request: GenerateRequest) -> Task:
        task = Task(task_id, "sync", request, self.root / "images" / task_id, future=Future())
        self._enqueue(task)
        return task

    def _enqueue(self, task: Task) -> None:
        with self._lock:
            self.tasks[task.id] = task
        self._feed.put(task)

    def cancel(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.cancel.set()

    def _work(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                self._idle += 1
            try:
                task = self._feed.get(timeout=0.2)
            except queue.Empty:
                continue
            finally:
                with self._lock:
                    self._idle -= 1
            try:
                self._do(task)
            finally:
                self.release()
                with self._lock:
                    self.tasks.pop(task.id, None)
                task.events.close()

    def _do(self, task: Task) -> None:
        from ideaforge.tools.sanitize import safe

        if task.kind == "run" and not self.store.claim(task.id):
            task.status = "cancelled"
            return
        if task.cancel.is_set():
            self._end(task, "cancelled", error="cancelled before it started")
            return
        task.status = "running"
        task.events.add({"stage": "status", "message": "running"})
        t0 = time.perf_counter()
        try:
            summary = self._run(task)
        except Cancelled:
            self._end(task, "cancelled", error="cancelled")
        except IdeaForgeError as exc:
            task.input_error = exc.exit_code == 2
            self._end(task, "failed", error=" ".join(safe(str(exc)).split()))
        except Exception as exc:  # noqa: BLE001 - one run's failure never stops the server
            self._end(task, "failed", error=" ".join(safe(f"{type(exc).__name__}: {exc}").split()))
        else:
            if summary["best"] is None:
                self._end(task, "failed", result=summary,
                          error="no usable image: every image was flagged by the safety checker or broken")
            else:
                self._end(task, "succeeded", result=summary)
        with self._lock:
            self._seconds.append(time.perf_counter() - t0)
            del self._seconds[:-100]

    def _end(self, task: Task, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        if task.kind == "run" and self.stopping.is_set() and status == "cancelled":
            # Stopped by the server going down, not by the client: the job stays running, to resume at start-up.
            task.status = "interrupted"
            return
        if task.kind == "run":
            self.store.finish(task.id, status, result=result, error=error)
        task.status = status
        task.events.add({"stage": "status", "message": status, "data": {"status": status, "error": error}})
        if task.future is not None and not task.future.done():
            task.future.set_result((status, result, error))

    def _view(self, critic: str | None) -> Any:
        """An IdeaForge on the shared batcher, chain and settings, with one shared (serialized) critic per name."""
        from ideaforge.agent.forge import IdeaForge

        name = critic or self.forge.settings.critic
        with self._lock:
            if name not in self._views:
                scorer = OneAtATime(self.forge.critic_for(name))
                self._views[name] = IdeaForge.from_settings(
                    self.forge.settings, chain=self.forge.chain, generator=self.batcher, scorer=scorer,
                    loras=self.forge.loras,
                )
            return self._views[name]

    def _run(self, task: Task) -> dict[str, Any]:
        from ideaforge.app.integrations.runnable import explicit_spec

        request = task.request
        overrides = request.given()
        view = self._view(overrides.get("critic"))
        last_check = [time.monotonic()]

        def emit(event: Any) -> None:
            task.events.add(event_item(event))
            if task.kind == "run" and time.monotonic() - last_check[0] > 0.5:  # a DELETE to another process
                last_check[0] = time.monotonic()
                if self.store.cancel_requested(task.id):
                    task.cancel.set()

        # A run starts from the beginning: an interrupted earlier try's images are removed first, so the job's
        # folder holds the images of its one finished run.
        shutil.rmtree(task.out, ignore_errors=True)
        spec = None
        if request.prompt is not None or request.negative_prompt is not None:
            spec = explicit_spec(view, request, style=overrides.get("style"))
        assert self.batcher is not None
        with self.batcher.worker():
            result = view.run(request.idea, spec=spec, on_event=emit, cancel=task.cancel, out=task.out,
                              **overrides)
        return summarize(result, self.root)
