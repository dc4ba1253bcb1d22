"""`DiffusionTool`: one model and how to run it; `generate()` groups requests into batched pipeline calls.

Requests whose settings match go into one call; every image gets its own CPU `torch.Generator`, so a seed reproduces
the same pixels on any device and in any batch. Steps are reported with previews, and a set `cancel` event stops the
call between steps.

Example:
    >>> tool = DiffusionTool("stabilityai/sd-turbo", device="cpu")  # nothing is loaded or downloaded yet
    >>> tool
    DiffusionTool('stabilityai/sd-turbo', loaded=False)
    >>> DiffusionTool("stabilityai/sd-turbo", dtype="int8")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: dtype 'int8' is unknown; use float16, bfloat16 or float32
"""

from __future__ import annotations

import inspect
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ideaforge.errors import Cancelled, GenerationError, InputError
from ideaforge.tools._lazy import first_use, heavy_import
from ideaforge.tools.diffusion.families import Family, encoder_budgets
from ideaforge.tools.diffusion.images import _all_black, _open_init_image
from ideaforge.tools.diffusion.loading import _load_entry, _Loaded
from ideaforge.tools.diffusion.loras import LoraSpec, _check_lora, parse_lora
from ideaforge.tools.diffusion.options import RunOptions, _vae_for_call
from ideaforge.tools.diffusion.params import MAX_SEED, GenerationParams, ImageRequest
from ideaforge.tools.diffusion.previews import _previews
from ideaforge.tools.diffusion.prompt_warnings import _prompt_warnings
from ideaforge.tools.diffusion.results import GeneratedImage, ModelProfile, StepEvent
from ideaforge.tools.diffusion.schedulers import _make_scheduler, a1111_sampler, scheduler_names
from ideaforge.tools.diffusion.source import _classify, _one_line
from ideaforge.tools.diffusion.weighting import _WEIGHTED, _weighted_embeddings, plain_prompt

_DTYPES = {
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


class _Stop(Exception):
    """Raised from the step callback to leave the pipeline call between steps."""


class DiffusionTool:
    """A diffusers text-to-image model (SD 1.x/2.x, SDXL, SD 3, FLUX.1 or another) and how to run it; `load()` shares
    one pipeline per configuration.

    Args:
        model: a Hub id (e.g. "stabilityai/sd-turbo"), a diffusers folder, or a `.safetensors` checkpoint.
        device: "cuda", "mps" or "cpu"; default the best available.
        dtype: "float16", "bfloat16" or "float32"; default float16 on GPUs, float32 on CPU.
        loras: LoRAs to load, as `LoraSpec`s or "ID_OR_PATH[:SCALE]" strings.
        safety_checker: keep the model's safety checker as it ships (False removes it explicitly).
        allow_pickle: allow pickle (.ckpt/.pt/.bin) weights, for the model and its LoRAs; they can run code when
            loaded.
        offload: "none" (default), "model", "sequential" or "group": diffusers' CPU offloading, for GPUs too small
            for the model; it needs an accelerator (on CPU it is an `InputError`).
        cpu_offload: the older spelling of `offload="model"`.
        vae_slicing, vae_tiling: decode one image at a time / in tiles; None (default): on for sides >= 1024 px.
        attention_slicing: attention in slices, for small GPUs.
        compile: torch.compile the denoiser (regionally, its repeated blocks, where the model names them).
        attention_backend: a diffusers attention backend, e.g. "flash", "sage" (models on diffusers' dispatcher).
        cache: "first_block": diffusers' first-block cache (denoisers with cache hooks, e.g. FLUX).
        layerwise_casting: "fp8": the denoiser's weights stored in float8, computed in `dtype`.
        preview_vae: an AutoencoderTiny (TAESD) id or folder for nicer live previews.
        config: for single-file checkpoints, a diffusers folder (or Hub id) of the same architecture whose
            component configs to use; without it diffusers looks up the base model's configs on the Hub.
        max_batch: most images in one pipeline call.

    Example:
        >>> tool = DiffusionTool("stabilityai/sd-turbo", device="cpu").load()  # doctest: +SKIP
        >>> tool.resolve(GenerationParams()).steps  # doctest: +SKIP
        1
    """

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        loras: Sequence[LoraSpec | str] = (),
        safety_checker: bool = True,
        allow_pickle: bool = False,
        offload: str | None = None,
        cpu_offload: bool = False,
        attention_slicing: bool = False,
        vae_slicing: bool | None = None,
        vae_tiling: bool | None = None,
        compile: bool = False,
        attention_backend: str | None = None,
        cache: str | None = None,
        layerwise_casting: str | None = None,
        preview_vae: str | None = None,
        config: str | None = None,
        max_batch: int = 8,
    ) -> None:
        if device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
            raise InputError(f"device {device!r} is unknown; use cuda, cuda:N, mps or cpu")
        if dtype is not None and dtype.lower() not in _DTYPES:
            raise InputError(f"dtype {dtype!r} is unknown; use float16, bfloat16 or float32")
        if max_batch < 1:
            raise InputError(f"max_batch {max_batch!r} is invalid: use 1 or more")
        self.model = model
        self.device = device
        self.dtype = _DTYPES[dtype.lower()] if dtype else None
        self.loras: tuple[LoraSpec, ...] = tuple(parse_lora(x) if isinstance(x, str) else x for x in loras)
        self.safety_checker = safety_checker
        self.allow_pickle = allow_pickle
        self.options = RunOptions(
            offload=offload or ("model" if cpu_offload else "none"),
            vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
            attention_slicing=attention_slicing,
            compile=compile,
            attention_backend=attention_backend,
            cache=cache,
            layerwise_casting=layerwise_casting,
        )
        self.cpu_offload = self.options.offload == "model"
        self.attention_slicing = attention_slicing
        self.vae_tiling = vae_tiling
        self.preview_vae = preview_vae
        self.config = (
            str(Path(config).expanduser()) if config and Path(config).expanduser().exists() else config
        )
        self.max_batch = max_batch
        self._source = _classify(model, allow_pickle)
        for spec in self.loras:  # LoRAs are weights too: the same checks, pickle included, before anything loads
            _check_lora(spec, allow_pickle)
        self._entry: _Loaded | None = None

    def __repr__(self) -> str:
        return f"DiffusionTool({self.model!r}, loaded={self._entry is not None})"

    def load(self) -> DiffusionTool:
        """Load (or fetch from the cache) this configuration's pipeline; returns self."""
        self._loaded()
        return self

    def _loaded(self) -> _Loaded:
        if self._entry is None:
            self._entry = _load_entry(self)
        return self._entry

    @property
    def pipeline(self) -> Any:
        """The shared text-to-image diffusers pipeline (loaded on first use). Do not mutate it per call."""
        return self._loaded().pipe

    @property
    def tokenizer(self) -> Any:
        """The loaded pipeline's CLIP tokenizer, for counting prompt tokens."""
        return self.pipeline.tokenizer

    @property
    def family(self) -> Family:
        """The loaded model's family (sd, sdxl, sd3, flux or generic), detected from the pipeline."""
        entry = self._loaded()
        assert entry.family is not None
        return entry.family

    def encoder_budgets(self) -> list[tuple[str, Any, int]]:
        """Each text encoder as (name, its tokenizer, token budget), e.g. [('clip_l', ..., 77), ('t5', ..., 256)]."""
        return encoder_budgets(self.pipeline)

    @property
    def profile(self) -> ModelProfile:
        """The defaults this model runs with when an option is left out."""
        return self._loaded().profile

    @property
    def device_name(self) -> str:
        """The device the pipeline runs on, e.g. "cuda" or "cpu"."""
        return self._loaded().device

    def resolve(self, params: GenerationParams) -> GenerationParams:
        """Fill every `None` in `params` from the model profile; explicit values always win.

        For img2img with the step count left to the profile, steps grow until steps x strength >= 1, since
        diffusers runs int(steps x strength) denoising steps.
        """
        profile = self.profile
        update: dict[str, Any] = {
            key: getattr(profile, key)
            for key in ("steps", "guidance", "width", "height", "scheduler")
            if getattr(params, key) is None
        }
        steps: int = profile.steps if params.steps is None else params.steps
        if params.init_image is not None:
            if params.steps is None:
                while int(steps * params.strength) < 1:
                    steps += 1
                update["steps"] = steps
            elif int(steps * params.strength) < 1:
                needed = math.ceil(1 / params.strength)
                raise InputError(
                    f"img2img with steps={steps} and strength={params.strength:g} runs no denoising step: "
                    f"steps x strength must be at least 1 (e.g. --steps {needed})"
                )
        family = self.family
        chosen = params.scheduler
        if chosen is not None and chosen != profile.scheduler:
            if not family.scheduler_swaps:
                raise InputError(
                    f"scheduler {chosen!r} does not fit the {family.name} family: it runs only the scheduler its "
                    f"model ships ({profile.scheduler}); leave --scheduler out"
                )
            if chosen not in scheduler_names():
                raise InputError(
                    f"scheduler {chosen!r} is not this model's ({profile.scheduler}); use one of: "
                    f"{', '.join(scheduler_names())}"
                )
        shipped = update.pop("scheduler") if update.get("scheduler") not in (None, *scheduler_names()) else None
        resolved = params.replace(**update)
        if shipped is not None:
            # The model's own scheduler, which the catalogue lacks: it runs as shipped, so only its name is recorded.
            resolved = GenerationParams.model_construct(**{**resolved.model_dump(), "scheduler": shipped})
        return resolved

    def generate(
        self,
        requests: Sequence[ImageRequest],
        params: GenerationParams,
        *,
        on_step: Callable[[StepEvent], None] | None = None,
        cancel: threading.Event | None = None,
        preview_every: int | None = None,
    ) -> list[GeneratedImage]:
        """Render `params.n` images per request; results come in request order, n per request.

        Requests whose settings match go into one batched pipeline call (at most `max_batch` images). Each image
        gets a fresh CPU `torch.Generator` seeded with its own seed, so batching does not change the image (beyond
        float rounding of batched kernels). Prompts may carry compel emphasis, `(red kitten)1.3`, which is
        applied with compel; prompts without it are encoded by the pipeline itself.

        Args:
            requests: the prompts to render.
            params: the settings shared by all of them (`None` fields come from the model profile).
            on_step: called after every denoising step with a `StepEvent`.
            cancel: when set, generation stops before the next step and `Cancelled` is raised.
            preview_every: decode a preview every this many steps (and at the last); None: about 4 per call;
                0: never.

        Raises:
            InputError: a bad init image or step/strength combination.
            Cancelled: `cancel` was set.
            GenerationError: the pipeline failed (e.g. out of memory).
        """
        if not requests:
            return []
        params = self.resolve(params)
        entry = self._entry
        assert entry is not None
        assert params.steps is not None and params.guidance is not None and params.scheduler is not None
        assert params.width is not None and params.height is not None
        init: Any = None
        init_warnings: list[str] = []
        if params.init_image is not None:
            init, init_warnings = _open_init_image(params.init_image, params.width, params.height)

        jobs: list[tuple[int, ImageRequest, int]] = []
        for i, request in enumerate(requests):
            base = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
            jobs.extend((i, request, (base + k) % (MAX_SEED + 1)) for k in range(params.n))
        # Batch only what one call renders exactly as separate calls would: SDXL encodes an all-empty negative as
        # zeros but a mixed batch's empty ones as text, so empty and non-empty negatives go in separate calls.
        order = sorted(range(len(jobs)), key=lambda j: not jobs[j][1].negative.strip())
        groups: list[list[int]] = []
        for j in order:
            same = groups and bool(jobs[groups[-1][-1]][1].negative.strip()) == bool(
                jobs[j][1].negative.strip()
            )
            if same and len(groups[-1]) < self.max_batch:
                groups[-1].append(j)
            else:
                groups.append([j])

        results: list[GeneratedImage | None] = [None] * len(jobs)
        with entry.lock:
            pipe = self._view(entry, "img2img" if init is not None else "txt2img", params.scheduler)
            notes = _prompt_warnings(pipe, jobs, params.guidance, entry.family)
            # This tool's options: tools differing only in call-time options (VAE slicing, tiling) share one entry.
            vae = _vae_for_call(pipe, self.options, params.width, params.height)
            options = self.options.report(**entry.applied, **vae)
            sampler = a1111_sampler(params.scheduler)
            forge = entry.family.sampler(params.scheduler) if entry.family is not None else None
            sampler, schedule_type = forge if forge else (sampler, None)
            for b, group in enumerate(groups):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"cancelled before batch {b + 1} of {len(groups)}")
                images, flags, seconds = self._run(
                    pipe,
                    entry,
                    [jobs[j] for j in group],
                    params,
                    init,
                    b,
                    len(groups),
                    group,
                    on_step,
                    cancel,
                    preview_every,
                )
                for j, image, flagged in zip(group, images, flags):
                    request_index, request, seed = jobs[j]
                    warnings = list(notes[request_index]) + init_warnings
                    error = None
                    if flagged:
                        warnings.append(
                            "the model's safety checker flagged this image and blacked it out; "
                            "try another seed or prompt"
                        )
                    elif _all_black(image):
                        error = (
                            "the image came out all black (NaN values in decoding, often float16 VAE overflow); "
                            "try --dtype float32 or another seed"
                        )
                    results[j] = GeneratedImage(
                        image=image,
                        seed=seed,
                        positive=request.positive,
                        negative=request.negative,
                        flagged=flagged,
                        steps=params.steps,
                        guidance=params.guidance,
                        width=params.width,
                        height=params.height,
                        scheduler=params.scheduler,
                        model=self.model,
                        warnings=warnings,
                        seconds=seconds / len(group),
                        sampler=sampler,
                        schedule_type=schedule_type,
                        family=entry.family.key if entry.family is not None else "",
                        prompts={
                            key: value
                            for key in ("prompt_2", "prompt_3", "negative_prompt_2", "negative_prompt_3")
                            if (value := getattr(request, key)) is not None
                        },
                        options=dict(options),
                        loras=[
                            {"source": s.source, "scale": s.scale, "weight_name": s.weight_name}
                            for s in self.loras
                        ],
                        strength=params.strength if init is not None else None,
                        init_image=str(params.init_image) if init is not None else None,
                        request_index=request_index,
                        device=entry.device,
                        dtype=entry.dtype,
                        profile=entry.profile.name,
                        error=error,
                    )
        return [r for r in results if r is not None]

    def _view(self, entry: _Loaded, task: str, scheduler: str) -> Any:
        """The pipeline for a task and scheduler, sharing the loaded modules (no second copy of the weights)."""
        key = (task, scheduler)
        if key not in entry.views:
            family = entry.family
            if task == "img2img" and family is not None and family.name == "generic":
                raise InputError(
                    f"img2img needs a pipeline with an image-to-image counterpart; {type(entry.pipe).__name__} "
                    f"(the generic family) has none in diffusers' AutoPipeline: drop --init-image"
                )
            with first_use():  # building it may import more of diffusers
                diffusers = heavy_import("diffusers")
                base = entry.pipe
                swap = (
                    {}
                    if scheduler == entry.shipped_scheduler
                    else {"scheduler": _make_scheduler(scheduler, base.scheduler.config)}
                )
                if task == "txt2img" and not swap:
                    view = base
                else:
                    auto = (
                        diffusers.AutoPipelineForImage2Image if task == "img2img" else diffusers.AutoPipelineForText2Image
                    )
                    view = auto.from_pipe(base, **swap)
                    view.set_progress_bar_config(disable=True)
                    if entry.options.offload == "sequential":  # a view has its own offload hooks
                        view.enable_sequential_cpu_offload(device=entry.device)
                    elif entry.cpu_offload:
                        view.enable_model_cpu_offload(device=entry.device)
                entry.views[key] = view
        return entry.views[key]

    def _run(
        self,
        pipe: Any,
        entry: _Loaded,
        batch: list[tuple[int, ImageRequest, int]],
        params: GenerationParams,
        init: Any,
        index: int,
        batches: int,
        positions: list[int],
        on_step: Callable[[StepEvent], None] | None,
        cancel: threading.Event | None,
        preview_every: int | None,
    ) -> tuple[list[Any], list[bool], float]:
        torch = heavy_import("torch")

        size = (params.width or 0, params.height or 0)

        def callback(pipeline: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            step, total = i + 1, pipeline.num_timesteps
            if on_step is not None:
                every = max(1, round(total / 4)) if preview_every is None else preview_every
                previews = []
                if every and (step % every == 0 or step == total):
                    previews = _previews(tensors["latents"], entry, size)
                on_step(
                    StepEvent(
                        index=index,
                        step=step,
                        total=total,
                        preview=previews[0] if previews else None,
                        previews=previews,
                        batches=batches,
                        images=list(positions),
                    )
                )
            if cancel is not None and cancel.is_set():  # checked after on_step, which may be what set it
                raise _Stop(step, total)
            return {}

        kwargs: dict[str, Any] = dict(
            **_prompt_kwargs(entry, pipe, [request for _, request, _ in batch]),
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            generator=[torch.Generator("cpu").manual_seed(seed) for _, _, seed in batch],
            output_type="pil",
            width=params.width,
            height=params.height,
        )
        if on_step is not None or cancel is not None:  # nobody listening: no callback for diffusers to call
            kwargs.update(callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])
        if init is not None:
            kwargs.update(image=[init] * len(batch), strength=params.strength)
        kwargs = _accepted(pipe, kwargs)
        started = time.perf_counter()
        try:
            output = pipe(**kwargs)
        except _Stop as stop:
            step, total = stop.args
            raise Cancelled(f"cancelled after step {step} of {total}") from None
        except torch.OutOfMemoryError as exc:
            raise GenerationError(
                f"out of memory generating {len(batch)} image(s) at {params.width}x{params.height} on "
                f"{entry.device}: lower --n or --size, or turn on CPU offload / attention slicing"
            ) from exc
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise GenerationError(f"image generation with {self.model!r} failed: {_one_line(exc)}") from exc
        seconds = time.perf_counter() - started
        flags = getattr(output, "nsfw_content_detected", None) or [False] * len(batch)
        return list(output.images), [bool(f) for f in flags], seconds


def _prompt_kwargs(entry: _Loaded, pipe: Any, requests: list[ImageRequest]) -> dict[str, Any]:
    """The prompt arguments of one batched call, in the family's terms.

    Only sd and sdxl apply compel weighting; the other families get the words without the emphasis syntax (a warning
    says so). Each text encoder gets its own prompt (`prompt_2`, `prompt_3` where given, else the main one); FLUX
    gets no negative prompt, and the T5 families read their T5 budget (`max_sequence_length`).
    """
    family = entry.family
    assert family is not None
    count = max(len(family.encoders), 1)
    clean = (lambda text: text) if family.weighting else plain_prompt
    positives = [[clean(r.prompt_for(i)) for r in requests] for i in range(count)]
    negatives = [[clean(r.negative_for(i)) for r in requests] for i in range(count)]
    use_negatives = family.negative_prompt and any(n.strip() for row in negatives for n in row)
    extra_given = any(r.prompt_2 or r.prompt_3 or r.negative_prompt_2 or r.negative_prompt_3 for r in requests)
    if family.weighting and any(_WEIGHTED.search(t) for t in positives[0] + negatives[0]):
        return _weighted_embeddings(entry, pipe, positives[0], negatives[0] if use_negatives else None)
    found: dict[str, Any] = {"prompt": positives[0], "negative_prompt": negatives[0] if use_negatives else None}
    if family.name != "sd" and (extra_given or family.name in ("sd3", "flux")):
        for i in range(1, min(count, 3)):
            found[f"prompt_{i + 1}"] = positives[i]
            if use_negatives:
                found[f"negative_prompt_{i + 1}"] = negatives[i]
    t5 = next((e for e in family.encoders if e.name == "t5"), None)
    if t5 is not None:
        found["max_sequence_length"] = t5.max_tokens
    return found


def _accepted(pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments the pipeline's `__call__` takes (img2img pipelines of SD take no size; generic ones vary)."""
    cls = type(pipe)
    if cls not in _PARAMETERS:  # inspecting the signature costs more than a tiny model's step
        parameters = inspect.signature(cls.__call__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        _PARAMETERS[cls] = None if takes_any else frozenset(parameters)
    names = _PARAMETERS[cls]
    if names is None:
        return kwargs
    return {key: value for key, value in kwargs.items() if key in names}


# The names `__call__` of each pipeline class takes; None when it takes any keyword.
_PARAMETERS: dict[type, frozenset[str] | None] = {}
