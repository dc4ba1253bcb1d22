"""The Stable Diffusion tool: load a diffusers pipeline once, generate reproducible images with live progress.

One `DiffusionTool` names a model (Hub id, diffusers folder or single `.safetensors` checkpoint) and how to run it;
`load()` fetches the pipeline from a module-level cache keyed by everything that changes its weights or hooks, so
the CLI, the critic loop and every Streamlit session share one copy. `generate()` batches the requests whose
settings match into one pipeline call, gives every image its own CPU `torch.Generator` (so a seed reproduces the
same pixels on any device and in any batch), reports steps and cheap latent previews, and stops between steps
when asked. torch, diffusers and transformers are imported on first use, so importing this module is instant.

Example:
    >>> tool = DiffusionTool("stabilityai/sd-turbo").load()
    >>> [result] = tool.generate([ImageRequest(positive="a red kitten in a basket", seed=7)], GenerationParams())
    >>> result.image.save("kitten.png"); (result.seed, result.steps, result.guidance)
    (7, 1, 0.0)
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ideaforge.errors import Cancelled, GenerationError, IdeaForgeError, InputError, ModelNotFoundError

MAX_SIDE = 4096
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# compel's emphasis syntax as the prompt engine writes it: "(red kitten)1.3", "(basket)++".
_WEIGHTED = re.compile(r"\(([^()]+)\)(?:[+-]+|\d+(?:\.\d+)?)")
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


# --- data ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("ideaforge.tools").joinpath("data", "profiles.json").read_text(encoding="utf-8")
    return json.loads(text)


def scheduler_names() -> list[str]:
    """The friendly scheduler names `GenerationParams.scheduler` accepts, e.g. `euler_a`, `dpm++_2m_karras`."""
    return list(_data()["schedulers"])


def _scheduler_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower()).replace("dpmpp", "dpm++")


@lru_cache(maxsize=1)
def _scheduler_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name, spec in _data()["schedulers"].items():
        aliases[_scheduler_key(spec["a1111"])] = name
        aliases[name] = name
    return aliases


def canonical_scheduler(name: str) -> str:
    """'DPM++ 2M Karras', 'dpm++-2m-karras' or 'dpm++_2m_karras' -> 'dpm++_2m_karras'; InputError if unknown."""
    found = _scheduler_aliases().get(_scheduler_key(name))
    if found is None:
        raise InputError(f"scheduler {name!r} is unknown; use one of: {', '.join(scheduler_names())}")
    return found


def a1111_sampler(scheduler: str) -> str:
    """The sampler name A1111 writes for a friendly scheduler name ('euler_a' -> 'Euler a')."""
    spec = _data()["schedulers"].get(scheduler)
    return spec["a1111"] if spec else scheduler


# --- parameters ---------------------------------------------------------------------------------------------


def _explain(exc: ValidationError) -> str:
    """The first validation error as one line that names the field, the bad value and what is allowed."""
    error = exc.errors()[0]
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    return f"{where} {error.get('input')!r} is invalid: {message[:1].lower()}{message[1:]}"


class _Validated(BaseModel):
    """A pydantic model whose construction errors are `InputError`s with a one-line message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(_explain(exc)) from None


class GenerationParams(_Validated):
    """How to generate: checked once, before anything is loaded. `None` means 'the model profile's value'."""

    steps: int | None = Field(
        None, ge=1, le=500, description="Denoising steps (1-500); None: the model's default"
    )
    guidance: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Classifier-free guidance scale; at 1 or below the negative prompt has no effect",
    )
    width: int | None = Field(None, description="Image width in pixels, a multiple of 8 up to 4096")
    height: int | None = Field(None, description="Image height in pixels, a multiple of 8 up to 4096")
    scheduler: str | None = Field(
        None, description="Scheduler by friendly name, e.g. euler_a or dpm++_2m_karras"
    )
    n: int = Field(1, ge=1, le=16, description="Images per request, with seeds seed, seed+1, ...")
    strength: float = Field(
        0.75,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="img2img only: how far to move away from the init image (0 < strength <= 1)",
    )
    init_image: Path | None = Field(None, description="Start from this image (img2img) instead of pure noise")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str | None) -> str | None:
        return None if value is None else canonical_scheduler(value)

    @field_validator("init_image")
    @classmethod
    def _init_image_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(
                f"init image {str(value)!r} does not exist; pass --init-image with an image file"
            )
        return None if value is None else Path(value).expanduser()

    @model_validator(mode="after")
    def _size(self) -> GenerationParams:
        w, h = self.width, self.height
        if (w is None) != (h is None):
            raise ValueError(
                f"size needs both width and height, got width={w!r} height={h!r} (e.g. --size 512x512)"
            )
        if (
            w is not None
            and h is not None
            and any(side <= 0 or side % 8 or side > MAX_SIDE for side in (w, h))
        ):
            raise ValueError(
                f"size {w}x{h} is invalid: width and height must be multiples of 8 between 8 and {MAX_SIDE} "
                f"(e.g. --size 512x512)"
            )
        return self


class ImageRequest(_Validated):
    """One prompt pair to render; `seed=None` draws a random seed, which the result records."""

    positive: str = Field(description="The prompt: what the image shows")
    negative: str = Field("", description="What to steer away from (needs guidance > 1)")
    seed: int | None = Field(None, ge=0, lt=2**64, description="Seed of the image's CPU torch.Generator")


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to load: a Hub id, a folder or a `.safetensors` file, with its strength."""

    source: str
    scale: float = 1.0
    weight_name: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.scale:g}"


def parse_lora(text: str) -> LoraSpec:
    """'ID_OR_PATH[:SCALE]' -> LoraSpec. A trailing ':number' is the scale (default 1.0).

    Example:
        >>> parse_lora("loras/ink.safetensors:0.8")
        LoraSpec(source='loras/ink.safetensors', scale=0.8, weight_name=None)
    """
    raw = text.strip()
    if not raw:
        raise InputError(
            "lora '' is empty; use --lora ID_OR_PATH[:SCALE], e.g. --lora loras/ink.safetensors:0.8"
        )
    source, scale = raw, 1.0
    head, sep, tail = raw.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
            source = head
        except ValueError:
            pass  # a ':' that is part of the path or id, e.g. C:\loras\ink.safetensors
    if not math.isfinite(scale) or abs(scale) > 10:
        raise InputError(
            f"lora scale {tail!r} in {text!r} is invalid: use a number between -10 and 10, e.g. :0.8"
        )
    weight_name = None
    path = Path(source).expanduser()
    if not path.exists():
        parts = source.split("/")
        if len(parts) >= 3 and Path(source).suffix in SAFETENSORS_SUFFIXES:  # owner/repo/file.safetensors
            source, weight_name = "/".join(parts[:2]), "/".join(parts[2:])
    return LoraSpec(source=source, scale=scale, weight_name=weight_name)


# --- results and events -------------------------------------------------------------------------------------


@dataclass
class GeneratedImage:
    """One generated image and everything needed to reproduce or describe it."""

    image: Any  # PIL.Image.Image
    seed: int
    positive: str
    negative: str
    flagged: bool  # the model's safety checker flagged it (the image is then black): not a success
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str  # friendly name, e.g. "euler_a"
    model: str
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # this image's share of its batched pipeline call's wall time
    sampler: str = ""  # the A1111 sampler name, e.g. "Euler a"
    loras: list[dict[str, Any]] = field(default_factory=list)
    strength: float | None = None  # img2img only
    init_image: str | None = None
    request_index: int = 0  # which request of the generate() call this image belongs to
    device: str = ""
    dtype: str = ""
    profile: str | None = None  # the model profile that supplied defaults; None: pipeline defaults
    error: str | None = None  # why the image is unusable although it was not flagged (e.g. all black: NaN)

    @property
    def usable(self) -> bool:
        return not self.flagged and self.error is None


@dataclass
class StepEvent:
    """Progress of one batched pipeline call: after `step` of `total` denoising steps."""

    index: int | None  # which batched pipeline call of this generate() (0-based)
    step: int
    total: int
    preview: Any | None = None  # PIL image of the batch's first image, on preview steps
    previews: list[Any] = field(default_factory=list)  # one per image in the batch, on preview steps
    batches: int = 1
    images: list[int] = field(default_factory=list)  # positions in generate()'s result list


@dataclass(frozen=True)
class ModelProfile:
    """Defaults for one model: from profiles.json, else from its pipeline class and scheduler config."""

    name: str | None
    family: str
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str


# --- where the model comes from -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    kind: str  # "hub" | "folder" | "file"
    ref: str  # Hub id or absolute path
    display: str  # the name profiles are matched against


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _display_name(path: Path) -> str:
    # Inside the HF cache a snapshot folder is named by commit; the repo name is further up.
    for part in path.parts:
        if part.startswith("models--"):
            return part[len("models--") :].replace("--", "/")
    return path.stem if path.is_file() else path.name


def _classify(model: str, allow_pickle: bool) -> _Source:
    if not model or not model.strip():
        raise InputError(
            "model '' is empty; pass --model with a Hub id, a diffusers folder or a .safetensors file"
        )
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"model folder {model!r} has no model_index.json; pass a diffusers folder (saved with "
                f"save_pretrained) or a .safetensors checkpoint"
            )
        return _Source("folder", str(path.resolve()), _display_name(path.resolve()))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise InputError(
                f"model {model!r} is a pickle checkpoint ({suffix}), which can run arbitrary code when loaded; "
                f"convert it to .safetensors, or pass --allow-pickle if you trust where it came from"
            )
        if suffix not in PICKLE_SUFFIXES | SAFETENSORS_SUFFIXES:
            raise InputError(f"model {model!r} is not a .safetensors checkpoint or a diffusers folder")
        return _Source("file", str(path.resolve()), _display_name(path))
    looks_like_path = (
        model.startswith((".", "/", "~"))
        or "\\" in model
        or path.suffix.lower() in (PICKLE_SUFFIXES | SAFETENSORS_SUFFIXES)
    )
    if looks_like_path or not _HUB_ID.match(model):
        raise ModelNotFoundError(
            f"model {model!r} does not exist; pass --model with a Hub id (e.g. stabilityai/sd-turbo), "
            f"a diffusers folder or a .safetensors file"
        )
    return _Source("hub", model, model)


def _not_cached(repo_id: str, why: str) -> ModelNotFoundError:
    if _offline():
        fix = f"unset HF_HUB_OFFLINE and download it once (`hf download {repo_id}`)"
    else:
        fix = (
            f"download it once where the Hub is reachable (`hf download {repo_id}`; "
            f"HF_HUB_OFFLINE=1 then uses the cache)"
        )
    return ModelNotFoundError(
        f"model {repo_id!r} is not in the local Hugging Face cache and {why}: {fix}, "
        f"or pass --model PATH to a local diffusers folder or .safetensors file"
    )


def _hub_model_index(repo_id: str) -> Path | None:
    """The cached model_index.json of a Hub model; fails fast when the model is neither cached nor reachable."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise _not_cached(repo_id, "HF_HUB_OFFLINE is set")
    try:
        HfApi().model_info(repo_id, timeout=8)
    except GatedRepoError:
        raise ModelNotFoundError(
            f"model {repo_id!r} is gated on the Hugging Face Hub: accept its license on huggingface.co and log in "
            f"with `hf auth login`, or pass --model PATH"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"model {repo_id!r} does not exist on the Hugging Face Hub (or is private: log in with "
            f"`hf auth login`); check the id or pass --model PATH"
        ) from None
    except Exception as exc:  # connection refused, DNS failure, timeout, proxy error: all mean 'unreachable'
        raise _not_cached(repo_id, f"the Hugging Face Hub is unreachable ({type(exc).__name__})") from exc
    return None


def plain_prompt(text: str) -> str:
    """The prompt without compel's weight syntax: '(red kitten)1.3, basket' -> 'red kitten, basket'."""
    return _WEIGHTED.sub(r"\1", text)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


# --- loading and the pipeline cache -------------------------------------------------------------------------


@dataclass
class _Loaded:
    pipe: Any
    profile: ModelProfile
    shipped_scheduler: str
    device: str
    dtype: str
    cpu_offload: bool
    taesd: Any | None
    compel: tuple[Any, ...] | None = None  # built on the first weighted prompt
    lock: threading.Lock = field(default_factory=threading.Lock)
    views: dict[tuple[str, str], Any] = field(default_factory=dict)


_CACHE: dict[tuple[Any, ...], _Loaded] = {}
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}


def clear_cache() -> None:
    """Forget every loaded pipeline (their memory is freed once no tool holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _KEY_LOCKS.clear()


def _pick_device(device: str | None, dtype: str | None) -> tuple[str, str]:
    import torch

    mps = getattr(torch.backends, "mps", None)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} is not available: torch finds no CUDA GPU here; use --device cpu"
        )
    elif device == "mps" and not (mps and mps.is_available()):
        raise InputError("device 'mps' is not available: torch finds no Apple GPU here; use --device cpu")
    if dtype is None:
        dtype = "float32" if device == "cpu" else "float16"
    return device, dtype


def _friendly_scheduler(scheduler: Any) -> str:
    name, config = type(scheduler).__name__, scheduler.config
    for friendly, spec in _data()["schedulers"].items():
        if spec["class"] == name and all(config.get(k) == v for k, v in spec["config"].items()):
            return friendly
    return name


def _make_scheduler(name: str, base_config: Any) -> Any:
    import diffusers

    spec = _data()["schedulers"][name]
    return getattr(diffusers, spec["class"]).from_config(base_config, **spec["config"])


def _pipeline_class_for_file(path: str, config: str | None) -> Any:
    import diffusers

    if config and (Path(config) / "model_index.json").is_file():
        index = json.loads((Path(config) / "model_index.json").read_text(encoding="utf-8"))
        return getattr(diffusers, index["_class_name"])
    is_xl = "xl" in Path(path).name.lower()
    if Path(path).suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            keys = handle.keys()  # safe_open is not a dict: `in handle` does not work
            is_xl = any(key.startswith("conditioner.embedders.1.") for key in keys)
    return diffusers.StableDiffusionXLPipeline if is_xl else diffusers.StableDiffusionPipeline


def _load_pipeline(tool: DiffusionTool, device: str, dtype: str) -> Any:
    import torch
    from diffusers import AutoPipelineForText2Image

    source = tool._source
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    index_path: Path | None = None
    if source.kind == "hub":
        index_path = _hub_model_index(source.ref)
        kwargs["local_files_only"] = _offline()
    elif source.kind == "folder":
        index_path = Path(source.ref) / "model_index.json"
    try:
        components = json.loads(index_path.read_text(encoding="utf-8")) if index_path else {}
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"model {tool.model!r} has an unreadable model_index.json ({_one_line(exc)}); the download or copy is "
            f"corrupt: download it again, or pass --model PATH to a complete diffusers folder"
        ) from None
    if source.kind == "folder" and not tool.allow_pickle:
        pickled = [
            part.name
            for part in Path(source.ref).iterdir()
            if part.is_dir() and any(part.glob("*.bin")) and not any(part.glob("*.safetensors"))
        ]
        if pickled:
            raise InputError(
                f"model folder {tool.model!r} has only pickle weights (.bin) for {', '.join(sorted(pickled))}, which "
                f"can run arbitrary code when loaded; convert them to .safetensors, or pass --allow-pickle if you "
                f"trust where they came from"
            )
    if not tool.safety_checker and "safety_checker" in components:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        if source.kind == "file":
            cls = _pipeline_class_for_file(source.ref, tool.config)
            if tool.config is not None:
                kwargs["config"] = tool.config
                kwargs["local_files_only"] = _offline() or Path(tool.config).is_dir()
            return cls.from_single_file(source.ref, **kwargs)
        if not tool.allow_pickle:
            kwargs["use_safetensors"] = True
        return AutoPipelineForText2Image.from_pretrained(source.ref, **kwargs)
    except IdeaForgeError:
        raise
    except Exception as exc:
        if source.kind == "file" and tool.config is None:
            raise ModelNotFoundError(
                f"could not load checkpoint {tool.model!r}: {_one_line(exc)}; a single-file checkpoint needs the "
                f"diffusers configs of its base model: load it once online so they are cached, or give a local "
                f"diffusers folder of the same architecture as its config"
            ) from exc
        raise ModelNotFoundError(
            f"could not load model {tool.model!r}: {_one_line(exc)}; check that it is a complete Stable Diffusion "
            f"model (download it again, or pass --model PATH)"
        ) from exc


def _load_loras(pipe: Any, loras: Sequence[LoraSpec]) -> None:
    names = []
    for i, spec in enumerate(loras):
        path = Path(spec.source).expanduser()
        name = f"lora_{i}"
        try:
            if path.is_file():
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            else:
                pipe.load_lora_weights(
                    str(path) if path.is_dir() else spec.source,
                    weight_name=spec.weight_name,
                    adapter_name=name,
                    local_files_only=_offline() or path.is_dir(),
                )
        except Exception as exc:
            raise ModelNotFoundError(
                f"could not load LoRA {spec.source!r}: {_one_line(exc)}; pass --lora with a .safetensors file, "
                f"a LoRA folder, or a cached Hub id (owner/repo/weights.safetensors)"
            ) from exc
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[spec.scale for spec in loras])


def match_profile(
    model: str, loras: Sequence[str] = ()
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The profiles.json entries for a model name (Hub id or file/folder name) and for its LoRAs, if any match."""
    data = _data()
    match = next((p for p in data["profiles"] if re.search(p["match"], model, re.IGNORECASE)), None)
    lora_match = next(
        (p for p in data["lora_profiles"] for lora in loras if re.search(p["match"], lora, re.IGNORECASE)),
        None,
    )
    return match, lora_match


def _profile_for(tool: DiffusionTool, pipe: Any, shipped: str) -> ModelProfile:
    data = _data()
    match, lora_match = match_profile(tool._source.display, [spec.source for spec in tool.loras])
    class_name = type(pipe).__name__
    family = "sdxl" if "XL" in class_name else "sd"
    family = (match or {}).get("family", family)
    values: dict[str, Any] = {
        "steps": data["families"][family]["steps"],
        "guidance": data["families"][family]["guidance"],
        "scheduler": shipped,
    }
    if class_name.startswith("LatentConsistencyModel"):
        values.update(steps=4, guidance=8.0)
    sample = pipe.unet.config.sample_size
    sample = sample if isinstance(sample, int) else sample[0]
    values["width"] = values["height"] = int(sample * getattr(pipe, "vae_scale_factor", 8))
    for override in (match, lora_match):
        for key in ("steps", "guidance", "width", "height", "scheduler"):
            if override and override.get(key) is not None:
                values[key] = override[key]
    names = [p["name"] for p in (match, lora_match) if p]
    return ModelProfile(name="+".join(names) or None, family=family, **values)


def _load_entry(tool: DiffusionTool) -> _Loaded:
    if tool._source.kind == "hub":  # fail fast on an uncached model, before importing torch and diffusers
        _hub_model_index(tool._source.ref)
    device, dtype = _pick_device(tool.device, tool.dtype)
    if tool.cpu_offload and not device.startswith("cuda"):
        raise InputError(f"cpu offload needs a CUDA device, but the device is {device!r}; drop --cpu-offload")
    key = (
        tool._source.ref,
        tool.config,
        device,
        dtype,
        tuple(tool.loras),
        tool.safety_checker,
        tool.cpu_offload,
        tool.attention_slicing,
        tool.vae_tiling,
        tool.preview_vae,
    )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one load per key; other keys load concurrently
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        pipe = _load_pipeline(tool, device, dtype)
        pipe.set_progress_bar_config(disable=True)
        if tool.loras:
            _load_loras(pipe, tool.loras)
        if tool.cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        elif device != "cpu":
            pipe.to(device)
        if tool.attention_slicing:
            pipe.enable_attention_slicing()
        if tool.vae_tiling:
            pipe.vae.enable_tiling()
        taesd = None
        if tool.preview_vae:
            import torch
            from diffusers import AutoencoderTiny

            try:
                taesd = AutoencoderTiny.from_pretrained(
                    tool.preview_vae,
                    dtype=getattr(torch, dtype),
                    local_files_only=_offline() or Path(tool.preview_vae).is_dir(),
                ).to(device)
            except Exception as exc:
                raise ModelNotFoundError(
                    f"could not load preview VAE {tool.preview_vae!r}: {_one_line(exc)}; pass a cached TAESD "
                    f"(e.g. madebyollin/taesd) or a local AutoencoderTiny folder, or leave previews to the built-in "
                    f"latent approximation"
                ) from exc
        shipped = _friendly_scheduler(pipe.scheduler)
        entry = _Loaded(
            pipe=pipe,
            profile=_profile_for(tool, pipe, shipped),
            shipped_scheduler=shipped,
            device=device,
            dtype=dtype,
            cpu_offload=tool.cpu_offload,
            taesd=taesd,
        )
        with _CACHE_LOCK:
            _CACHE[key] = entry
        return entry


# --- the tool -----------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised from the step callback to leave the pipeline call between steps."""


class DiffusionTool:
    """A Stable Diffusion model and how to run it; `load()` shares one pipeline per configuration.

    Args:
        model: a Hub id (e.g. "stabilityai/sd-turbo"), a diffusers folder, or a `.safetensors` checkpoint.
        device: "cuda", "mps" or "cpu"; default the best available.
        dtype: "float16", "bfloat16" or "float32"; default float16 on GPUs, float32 on CPU.
        loras: LoRAs to load, as `LoraSpec`s or "ID_OR_PATH[:SCALE]" strings.
        safety_checker: keep the model's safety checker as it ships (False removes it explicitly).
        allow_pickle: allow pickle (.ckpt/.bin) weights, which can run code when loaded.
        cpu_offload, attention_slicing, vae_tiling: memory savers for small GPUs and large sizes.
        preview_vae: an AutoencoderTiny (TAESD) id or folder for nicer live previews.
        config: for single-file checkpoints, a diffusers folder (or Hub id) of the same architecture whose
            component configs to use; without it diffusers looks up the base model's configs on the Hub.
        max_batch: most images in one pipeline call.

    Example:
        >>> tool = DiffusionTool("stabilityai/sd-turbo", device="cpu").load()
        >>> tool.resolve(GenerationParams()).steps
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
        cpu_offload: bool = False,
        attention_slicing: bool = False,
        vae_tiling: bool = False,
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
        self.cpu_offload = cpu_offload
        self.attention_slicing = attention_slicing
        self.vae_tiling = vae_tiling
        self.preview_vae = preview_vae
        self.config = (
            str(Path(config).expanduser()) if config and Path(config).expanduser().exists() else config
        )
        self.max_batch = max_batch
        self._source = _classify(model, allow_pickle)
        self._entry: _Loaded | None = None

    def __repr__(self) -> str:
        return f"DiffusionTool({self.model!r}, loaded={self._entry is not None})"

    def load(self) -> DiffusionTool:
        """Load (or fetch from the cache) this configuration's pipeline; returns self."""
        if self._entry is None:
            self._entry = _load_entry(self)
        return self

    @property
    def pipeline(self) -> Any:
        """The shared text-to-image diffusers pipeline (loaded on first use). Do not mutate it per call."""
        return self.load()._entry.pipe  # type: ignore[union-attr]

    @property
    def tokenizer(self) -> Any:
        """The loaded pipeline's CLIP tokenizer, for counting prompt tokens."""
        return self.pipeline.tokenizer

    @property
    def profile(self) -> ModelProfile:
        """The defaults this model runs with when an option is left out."""
        return self.load()._entry.profile  # type: ignore[union-attr]

    @property
    def device_name(self) -> str:
        return self.load()._entry.device  # type: ignore[union-attr]

    def resolve(self, params: GenerationParams) -> GenerationParams:
        """Fill every `None` in `params` from the model profile; explicit values always win.

        For img2img with the step count left to the profile, steps grow until steps x strength >= 1, since
        diffusers runs int(steps x strength) denoising steps.
        """
        profile = self.profile
        update = {
            key: getattr(profile, key)
            for key in ("steps", "guidance", "width", "height", "scheduler")
            if getattr(params, key) is None
        }
        steps = update.get("steps", params.steps)
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
        return params.model_copy(update=update)

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
        init, init_warnings = (None, [])
        if params.init_image is not None:
            init, init_warnings = _open_init_image(params.init_image, params.width, params.height)

        jobs: list[tuple[int, ImageRequest, int]] = []
        for i, request in enumerate(requests):
            base = request.seed if request.seed is not None else secrets.randbelow(2**32)
            jobs.extend((i, request, (base + k) % 2**64) for k in range(params.n))
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
            notes = _prompt_warnings(pipe, jobs, params.guidance)
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
                        sampler=a1111_sampler(params.scheduler),
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
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

            base = entry.pipe
            swap = (
                {}
                if scheduler == entry.shipped_scheduler
                else {"scheduler": _make_scheduler(scheduler, base.scheduler.config)}
            )
            if task == "txt2img" and not swap:
                view = base
            else:
                auto = AutoPipelineForImage2Image if task == "img2img" else AutoPipelineForText2Image
                view = auto.from_pipe(base, **swap)
                view.set_progress_bar_config(disable=True)
                if entry.cpu_offload:
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
        import torch

        def callback(pipeline: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            step, total = i + 1, pipeline.num_timesteps
            if on_step is not None:
                every = max(1, round(total / 4)) if preview_every is None else preview_every
                previews = []
                if every and (step % every == 0 or step == total):
                    previews = _previews(tensors["latents"], entry)
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

        positives = [request.positive for _, request, _ in batch]
        negatives = [request.negative for _, request, _ in batch]
        use_negatives = any(n.strip() for n in negatives)
        if any(_WEIGHTED.search(text) for text in positives + negatives):
            prompts = _weighted_embeddings(entry, pipe, positives, negatives if use_negatives else None)
        else:
            prompts = {"prompt": positives, "negative_prompt": negatives if use_negatives else None}
        kwargs: dict[str, Any] = dict(
            **prompts,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            generator=[torch.Generator("cpu").manual_seed(seed) for _, _, seed in batch],
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["latents"],
            output_type="pil",
        )
        if init is None:
            kwargs.update(width=params.width, height=params.height)
        else:
            kwargs.update(image=[init] * len(batch), strength=params.strength)
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


def _all_black(image: Any) -> bool:
    """True when every pixel is (almost) black: what NaN latents or a blacked-out image decode to."""
    extrema = image.convert("RGB").getextrema()
    return all(high <= 2 for _, high in extrema)


def _weighted_embeddings(
    entry: _Loaded, pipe: Any, positives: list[str], negatives: list[str] | None
) -> dict[str, Any]:
    """Prompt embeddings with compel's `(term)1.3` emphasis applied; unweighted text encodes exactly as diffusers'."""
    import torch
    from compel import Compel, ReturnedEmbeddingsType

    if entry.compel is None:
        device = pipe._execution_device
        common = {
            "truncate_long_prompts": True,
            "device": str(device),
            "dtype_for_device_getter": lambda _: pipe.text_encoder.dtype,
        }
        if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL: both encoders, pooled from the second
            penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            entry.compel = (
                Compel(
                    tokenizer=pipe.tokenizer,
                    text_encoder=pipe.text_encoder,
                    returned_embeddings_type=penultimate,
                    **common,
                ),
                Compel(
                    tokenizer=pipe.tokenizer_2,
                    text_encoder=pipe.text_encoder_2,
                    returned_embeddings_type=penultimate,
                    requires_pooled=True,
                    **common,
                ),
            )
        else:
            entry.compel = (Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, **common),)

    def encode(texts: list[str]) -> tuple[Any, Any]:
        if len(entry.compel) == 1:
            return entry.compel[0](texts), None
        left = entry.compel[0](texts)
        right, pooled = entry.compel[1](texts)
        return torch.cat([left, right], dim=-1), pooled

    with torch.no_grad():
        embeds, pooled = encode(positives)
        found: dict[str, Any] = {"prompt_embeds": embeds}
        if pooled is not None:
            found["pooled_prompt_embeds"] = pooled
        if negatives is not None:
            embeds, pooled = encode(negatives)
            found["negative_prompt_embeds"] = embeds
            if pooled is not None:
                found["negative_pooled_prompt_embeds"] = pooled
    return found


def _prompt_warnings(
    pipe: Any, jobs: list[tuple[int, ImageRequest, int]], guidance: float
) -> dict[int, list[str]]:
    """Per request: what the pipeline will silently do differently from what the prompt asks."""
    tokenizer = getattr(pipe, "tokenizer", None)
    notes: dict[int, list[str]] = {}
    for request_index, request, _ in jobs:
        if request_index in notes:
            continue
        found = notes[request_index] = []
        if request.negative.strip() and guidance <= 1:
            found.append(
                f"negative prompt has no effect at guidance {guidance:g}: diffusers only uses it with "
                f"classifier-free guidance, i.e. guidance > 1"
            )
        if tokenizer is not None:
            limit = tokenizer.model_max_length
            for label, text in (("prompt", request.positive), ("negative prompt", request.negative)):
                count = len(tokenizer(plain_prompt(text), truncation=False)["input_ids"])
                if count > limit:
                    found.append(
                        f"{label} is {count} CLIP tokens; the text encoder reads only the first {limit}, "
                        f"so the rest was cut"
                    )
    return notes


def _open_init_image(path: Path, width: int, height: int) -> tuple[Any, list[str]]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(
            f"init image {str(path)!r} is not a readable image ({_one_line(exc)}); pass a PNG or JPEG"
        ) from None
    warnings = []
    if image.size != (width, height):
        warnings.append(f"init image {image.width}x{image.height} was resized to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image, warnings


def _previews(latents: Any, entry: _Loaded) -> list[Any]:
    """Cheap RGB previews of the current latents: TAESD when loaded, else the linear latent-to-RGB map."""
    import torch
    from PIL import Image

    with torch.no_grad():
        if entry.taesd is not None:
            decoded = entry.taesd.decode(latents.to(entry.taesd.dtype)).sample.float()
            rgb = (decoded.clamp(-1, 1) + 1) / 2
        else:
            spec = _data()["families"][entry.profile.family]["latent_rgb"]
            factors = torch.tensor(spec["factors"], dtype=torch.float32, device=latents.device)
            if latents.shape[1] != factors.shape[0]:
                return []
            bias = torch.tensor(spec["bias"], dtype=torch.float32, device=latents.device)
            mixed = torch.einsum("bchw,cr->brhw", latents.float(), factors) + bias[None, :, None, None]
            rgb = ((mixed + 1) / 2).clamp(0, 1)
        pixels = (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]
