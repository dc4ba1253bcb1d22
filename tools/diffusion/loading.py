"""Loading a pipeline once: device and dtype, the pipeline class, its family, LoRAs, memory and speed options and the
shared cache.

`_load_entry` keys the module-level cache (a `LoadOnce`) by everything that changes the weights or hooks, so the CLI,
the critic loop and every Streamlit session share one copy; each key loads once, however many threads ask at once.

Example:
    >>> _pick_device("cpu", None)
    ('cpu', 'float32')
    >>> clear_cache()  # forget every loaded pipeline
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ideaforge.errors import IdeaForgeError, InputError, ModelNotFoundError
from ideaforge.tools._lazy import LoadOnce, heavy_import
from ideaforge.tools.diffusion.catalogue import match_profile
from ideaforge.tools.diffusion.families import Family, family_of
from ideaforge.tools.diffusion.loras import _load_loras
from ideaforge.tools.diffusion.options import RunOptions, _apply_options, _check_device
from ideaforge.tools.diffusion.results import ModelProfile
from ideaforge.tools.diffusion.schedulers import _friendly_scheduler
from ideaforge.tools.diffusion.source import SAFETENSORS_SUFFIXES, _hub_model_index, _offline, _one_line

if TYPE_CHECKING:
    from ideaforge.tools.diffusion.tool import DiffusionTool


@dataclass
class _Loaded:
    pipe: Any
    profile: ModelProfile
    shipped_scheduler: str
    device: str
    dtype: str
    cpu_offload: bool  # model or sequential offload: pipeline views need their own hooks
    taesd: Any | None
    family: Family | None = None
    options: RunOptions = field(default_factory=RunOptions)
    applied: dict[str, Any] = field(default_factory=dict)  # what load-time options did (e.g. compile: regional)
    compel: tuple[Any, ...] | None = None  # built on the first weighted prompt
    lock: threading.Lock = field(default_factory=threading.Lock)
    views: dict[tuple[str, str], Any] = field(default_factory=dict)


_PIPELINES: LoadOnce[tuple[Any, ...], _Loaded] = LoadOnce()


def clear_cache() -> None:
    """Forget every loaded pipeline (their memory is freed once no tool holds them)."""
    _PIPELINES.clear()


def _pick_device(device: str | None, dtype: str | None) -> tuple[str, str]:
    torch = heavy_import("torch")

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


def _pipeline_class_for_file(path: str, config: str | None) -> Any:
    diffusers = heavy_import("diffusers")

    if config and (Path(config) / "model_index.json").is_file():
        index = json.loads((Path(config) / "model_index.json").read_text(encoding="utf-8"))
        return getattr(diffusers, index["_class_name"])
    name = Path(path).name.lower()
    kind = "xl" if "xl" in name else "flux" if "flux" in name else "sd3" if "sd3" in name else "sd"
    if Path(path).suffix.lower() in SAFETENSORS_SUFFIXES:
        with heavy_import("safetensors").safe_open(path, framework="pt") as handle:
            keys = list(handle.keys())  # safe_open is not a dict: `in handle` does not work
        # The original layouts: SDXL's second text encoder, FLUX's double-stream blocks, SD 3's joint blocks.
        kind = "sd"
        for marker, found in (("conditioner.embedders.1.", "xl"), ("double_blocks.", "flux"), ("joint_blocks.", "sd3")):
            if any(key.startswith(marker) or key.startswith("model.diffusion_model." + marker) for key in keys):
                kind = found
                break
    return {
        "xl": diffusers.StableDiffusionXLPipeline,
        "flux": diffusers.FluxPipeline,
        "sd3": diffusers.StableDiffusion3Pipeline,
    }.get(kind, diffusers.StableDiffusionPipeline)


def _load_pipeline(tool: DiffusionTool, device: str, dtype: str) -> Any:
    torch = heavy_import("torch")
    diffusers = heavy_import("diffusers")
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
        class_name = components.get("_class_name", "")
        if class_name and not _auto_maps(diffusers, class_name):
            # A text-to-image pipeline AutoPipeline does not map (the generic family): its own class loads it.
            return diffusers.DiffusionPipeline.from_pretrained(source.ref, **kwargs)
        return diffusers.AutoPipelineForText2Image.from_pretrained(source.ref, **kwargs)
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


def _auto_maps(diffusers: Any, class_name: str) -> bool:
    """Whether AutoPipelineForText2Image knows the pipeline class a model_index.json names."""
    auto = heavy_import("diffusers.pipelines.auto_pipeline")
    known = {cls.__name__ for cls in auto.AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()}
    known |= {cls.__name__ for cls in auto.AUTO_IMAGE2IMAGE_PIPELINES_MAPPING.values()}
    known |= {cls.__name__ for cls in auto.AUTO_INPAINT_PIPELINES_MAPPING.values()}
    return class_name in known or not hasattr(diffusers, class_name)


def _default_side(pipe: Any, family: Family) -> int:
    """The pipeline's own image side: its denoiser's sample_size x the VAE factor, else the VAE's, else the family's."""
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    for name in ("unet", "transformer"):
        model = getattr(pipe, name, None)
        sample = getattr(getattr(model, "config", None), "sample_size", None) if model is not None else None
        if sample:
            return int((sample if isinstance(sample, int) else sample[0]) * scale)
    vae_sample = getattr(getattr(getattr(pipe, "vae", None), "config", None), "sample_size", None)
    if vae_sample:  # FLUX's transformer has no sample size; its VAE's config names the image side (1024)
        return int(vae_sample if isinstance(vae_sample, int) else vae_sample[0])
    return family.width or 1024


def _profile_for(tool: DiffusionTool, pipe: Any, shipped: str, family: Family | None = None) -> ModelProfile:
    family = family or family_of(pipe)
    match, lora_match = match_profile(tool._source.display, [spec.source for spec in tool.loras])
    if match is not None and match.get("family", family.name) != family.name:
        match = None  # named like another family's model: the loaded pipeline says what it is
    values: dict[str, Any] = {"steps": family.steps, "guidance": family.guidance, "scheduler": shipped}
    if type(pipe).__name__.startswith("LatentConsistencyModel"):
        values.update(steps=4, guidance=8.0)
    values["width"] = values["height"] = _default_side(pipe, family)
    for override in (match, lora_match):
        for key in ("steps", "guidance", "width", "height", "scheduler"):
            if override and override.get(key) is not None:
                values[key] = override[key]
    names = [p["name"] for p in (match, lora_match) if p]
    return ModelProfile(name="+".join(names) or None, family=family.name, **values)


def _load_entry(tool: DiffusionTool) -> _Loaded:
    if tool._source.kind == "hub":  # fail fast on an uncached model, before importing torch and diffusers
        _hub_model_index(tool._source.ref)
    device, dtype = _pick_device(tool.device, tool.dtype)
    _check_device(tool.options, device)
    key = (
        tool._source.ref,
        tool.config,
        device,
        dtype,
        tuple(tool.loras),
        tool.safety_checker,
        tool.preview_vae,
        # Only the options that change the weights or hooks: VAE slicing and tiling are set per call.
        tool.options.offload,
        tool.options.attention_slicing,
        tool.options.compile,
        tool.options.attention_backend,
        tool.options.cache,
        tool.options.layerwise_casting,
    )
    return _PIPELINES.get(key, lambda: _build_entry(tool, device, dtype))


def _build_entry(tool: DiffusionTool, device: str, dtype: str) -> _Loaded:
    """Load the pipeline and apply LoRAs and memory savers: run once per cache key, by `_PIPELINES`."""
    pipe = _load_pipeline(tool, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    if tool.loras:
        _load_loras(pipe, tool.loras, tool.allow_pickle)
    family = family_of(pipe)
    applied = _apply_options(pipe, tool.options, family, device, dtype)
    taesd = None
    if tool.preview_vae:
        torch, diffusers = heavy_import("torch"), heavy_import("diffusers")
        try:
            taesd = diffusers.AutoencoderTiny.from_pretrained(
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
    return _Loaded(
        pipe=pipe,
        profile=_profile_for(tool, pipe, shipped, family),
        shipped_scheduler=shipped,
        device=device,
        dtype=dtype,
        cpu_offload=tool.options.offload in ("model", "sequential"),
        taesd=taesd,
        family=family,
        options=tool.options,
        applied=applied,
    )
