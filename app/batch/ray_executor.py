"""`ideaforge batch --executor ray`: the prompt and image stages on a Ray cluster, with Ray Data.

The ideas become a dataset; the prompt stage runs as CPU tasks (`map_batches` with a function), generation in
`map_batches` with an actor class that loads the pipeline (and the critic) once per actor: `gpus_per_worker`
GPUs each, as many actors as the cluster has GPUs for, or one on a CPU-only cluster. Inside an actor the ideas
of a Ray batch go through the same worker threads and `Batcher` as the local executor, so every row's own seed
reaches the pipeline in its `ImageRequest`, and a batched call gives the pixels separate calls would (within
8-bit rounding).

The actors send each idea's PNG files back as they wrote them, bytes unchanged (never decoded and encoded again);
this process places them under the name `ideaforge.tools.metadata.save_png` would give (temporary file, fsync,
link: never over an existing file) and appends the manifest lines, so the output folder's guarantees (see
`ideaforge.app.batch.store`) are the local executor's.

The cluster: `address`, else `RAY_ADDRESS`, else a new local one. The OpenAI key is not sent with the
settings; workers read it from their own environment (a local cluster inherits this process's).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import shutil
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ideaforge.agent.models import PromptSpec
from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.execute import OnFail, OnOk, optimize, run_jobs
from ideaforge.app.batch.plan import Job
from ideaforge.app.batch.store import link_new
from ideaforge.errors import GenerationError, InputError

_CHAINS: dict[str, Any] = {}  # per worker process: one prompt chain per settings


def _forge(settings: dict[str, Any], loras: list[str], **extra: Any) -> Any:
    from ideaforge.agent.forge import IdeaForge

    return IdeaForge(loras=loras, **{**settings, **extra})


def prompt_stage(batch: dict[str, np.ndarray], settings: dict[str, Any], loras: list[str],
                 concurrency: int) -> dict[str, np.ndarray]:
    """Ray Data task: a `spec` column (JSON, or "" when the prompt stage failed) and an `error` column."""
    cache_key = json.dumps([settings, loras], sort_keys=True, default=str)
    if cache_key not in _CHAINS:
        _CHAINS[cache_key] = _forge(settings, loras).chain
    jobs = [Job(**json.loads(text)) for text in batch["job"]]
    specs = optimize(_CHAINS[cache_key], jobs, concurrency)
    batch["spec"] = np.array([s.model_dump_json() if isinstance(s, PromptSpec) else "" for s in specs],
                             dtype=object)
    batch["error"] = np.array([str(s) if isinstance(s, BaseException) else "" for s in specs], dtype=object)
    return batch


class Renderer:
    """Ray Data actor: loads the pipeline once, renders batches of ideas, returns their PNGs as bytes."""

    def __init__(self, settings: dict[str, Any], loras: list[str], batch_size: int, critique: bool) -> None:
        self.folder = tempfile.mkdtemp(prefix="ideaforge-ray-")
        self.forge = _forge(settings, loras, out=self.folder)
        self.batch_size = batch_size
        self.critique = critique
        self.forge.generator  # noqa: B018 - load the model now, once per actor
        if critique:
            self.forge.scorer  # noqa: B018

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [Job(**json.loads(text)) for text in batch["job"]]
        items: list[tuple[Job, Any]] = []
        for job, spec, error in zip(jobs, batch["spec"], batch["error"]):
            items.append((job, PromptSpec.model_validate_json(spec) if spec else InputError(error)))
        outcomes: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()

        def on_ok(job: Job, images: list[tuple[Path, bool]]) -> None:
            files = []
            for path, best in images:
                files.append({"png": base64.b64encode(path.read_bytes()).decode("ascii"), "best": best})
                path.unlink(missing_ok=True)
            with lock:
                outcomes[job.key] = {"status": "ok", "images": files}

        def on_fail(job: Job, stage: str, exc: BaseException) -> None:
            with lock:
                error = str(exc) or type(exc).__name__
                outcomes[job.key] = {"status": "failed", "stage": stage, "error": error}

        run_jobs(self.forge, items, batch_size=self.batch_size, cancel=threading.Event(), on_ok=on_ok,
                 on_fail=on_fail, critique=self.critique)
        for leftover in Path(self.folder).glob("*"):  # images of ideas that failed midway
            leftover.unlink(missing_ok=True)
        missing = {"status": "failed", "stage": "generate", "error": "the worker returned no result"}
        batch["outcome"] = np.array([json.dumps(outcomes.get(j.key, missing)) for j in jobs], dtype=object)
        del batch["spec"]
        return batch

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


def png_record(data: bytes) -> PngRecord:
    """The ideaforge record of PNG bytes, from the header chunks (the pixels are not decoded)."""
    from PIL import Image, UnidentifiedImageError

    from ideaforge.tools.metadata import RECORD_KEY

    try:
        with Image.open(io.BytesIO(data)) as image:
            text = image.info.get(RECORD_KEY)
        record = json.loads(text) if isinstance(text, str) else None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"a PNG from a Ray worker is damaged ({exc})") from None
    return PngRecord.from_data(record, source="a PNG from a Ray worker")


def place_png(data: bytes, out: Path) -> Path:
    """Write PNG bytes received from a worker into `out` as they are, under the name the local executor gives.

    Like `save_png`: a temporary file, fsynced, linked to `<slug of idea>-<seed>.png` (`-2`, `-3`, ... when
    taken), so neither a half-written PNG nor an overwritten file can result.
    """
    from ideaforge.tools.metadata import fsync_dir, slugify

    record = png_record(data)
    root = Path(out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{slugify(record.idea)}-{int(record.seed)}"
    fd, temp_name = tempfile.mkstemp(prefix=".ideaforge-", suffix=".png.tmp", dir=root)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        for attempt in range(1, 100_000):
            target = root / (f"{stem}.png" if attempt == 1 else f"{stem}-{attempt}.png")
            if link_new(temp, target):
                fsync_dir(root)
                return target
        raise InputError(f"too many images named {stem}-*.png in {str(root)!r}; use another --out folder")
    finally:
        temp.unlink(missing_ok=True)


def run_ray(
    forge: Any,
    jobs: list[Job],
    *,
    batch_size: int,
    llm_concurrency: int,
    address: str | None,
    gpus_per_worker: float | None,
    critique: bool,
    on_ok: OnOk,
    on_fail: OnFail,
    cancel: threading.Event,
) -> None:
    """Run `jobs` on Ray; results reach `on_ok` / `on_fail` in this process as they arrive."""
    try:
        import ray
        from ray.data import ActorPoolStrategy, DataContext, Dataset
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install 'ideaforge[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address or None)  # None: RAY_ADDRESS, else a new local cluster
        except ConnectionError as exc:
            raise InputError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    DataContext.get_current().enable_progress_bars = False  # ideaforge shows its own
    gpus = float(ray.cluster_resources().get("GPU", 0))
    per_actor = gpus_per_worker if gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if per_actor < 0 or (per_actor > 0 and per_actor > gpus):
        raise InputError(f"gpus_per_worker {per_actor:g} is invalid: the cluster has {gpus:g} GPU(s)")
    actors = max(1, int(gpus // per_actor)) if per_actor > 0 else 1

    settings = forge.settings.model_dump(mode="json", exclude={"openai_api_key", "out"})
    settings["engine"] = forge.chain.engine  # resolved here, so workers cannot pick another engine
    loras = list(forge.loras)
    by_key = {j.key: j for j in jobs}
    rows = [{"key": j.key, "job": json.dumps(asdict(j))} for j in jobs]
    ds: Dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), len(rows) // batch_size + 1)))
    ds = ds.map_batches(
        functools.partial(prompt_stage, settings=settings, loras=loras, concurrency=llm_concurrency),
        # Half a CPU: the stage mostly waits for the LLM. Resources unlike the actors' also keep Ray Data from
        # fusing the two stages, so prompts for later ideas are made while the actors render earlier ones.
        batch_size=max(batch_size, llm_concurrency), num_cpus=0.5,
    )
    ds = ds.map_batches(
        Renderer, fn_constructor_kwargs={"settings": settings, "loras": loras, "batch_size": batch_size,
                                         "critique": critique},
        batch_size=batch_size, num_cpus=1, num_gpus=per_actor, compute=ActorPoolStrategy(size=actors),
    )
    out = Path(forge.settings.out)
    try:
        for row in ds.iter_rows():
            job = by_key[row["key"]]
            outcome = json.loads(row["outcome"])
            if outcome["status"] != "ok":
                on_fail(job, outcome["stage"], GenerationError(outcome["error"]))
                continue
            placed = []
            try:
                for image in outcome["images"]:
                    placed.append((place_png(base64.b64decode(image["png"]), out), bool(image["best"])))
            except Exception as exc:  # noqa: BLE001 - a damaged transfer fails this idea only
                on_fail(job, "save", exc)
                continue
            on_ok(job, placed)
            if cancel.is_set():
                break
    except (ray.exceptions.RayError, GenerationError) as exc:
        raise GenerationError(f"the Ray pipeline failed: {exc}") from exc
