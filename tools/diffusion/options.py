"""Memory and speed options, each one of diffusers' own features: offloading, VAE slicing and tiling, torch.compile,
attention backends, first-block caching and layerwise fp8 casting.

`RunOptions` is checked when a `DiffusionTool` is made (no torch needed); `_check_device` when the device is known,
before the weights load; `_apply_options` once per loaded pipeline; `_vae_for_call` before each pipeline call (slicing
and tiling left to `None` turn on for images of 1024 px or more on a side). `report()` is what every generated image
records, so a PNG says how it was made.

Example:
    >>> RunOptions(offload="model").report()["offload"]
    'model'
    >>> RunOptions(offload="disk")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: offload 'disk' is unknown; use none, model, sequential or group
    >>> _check_device(RunOptions(offload="sequential"), "cpu")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: offload 'sequential' moves weights between CPU RAM and an accelerator, but the device is 'cpu' (the weights already live in RAM); use offload='none' (--offload none) or a CUDA device
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ideaforge.errors import InputError
from ideaforge.tools._lazy import heavy_import
from ideaforge.tools.diffusion.families import Family
from ideaforge.tools.diffusion.source import _one_line

OFFLOADS = ("none", "model", "sequential", "group")
CACHES = ("first_block",)
CASTS = {"fp8": "float8_e4m3fn", "fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
LARGE_SIDE = 1024  # VAE slicing and tiling left to auto turn on from this side length up
FIRST_BLOCK_THRESHOLD = 0.05  # diffusers' default: the residual change below which a step reuses the cache


@dataclass(frozen=True)
class RunOptions:
    """How a pipeline runs: diffusers' memory and speed features, chosen once per `DiffusionTool`.

    Attributes:
        offload: "none"; "model" (`enable_model_cpu_offload`: whole components move to the GPU when used);
            "sequential" (`enable_sequential_cpu_offload`: layer by layer, least memory, slowest); "group"
            (`enable_group_offload`, block level with CUDA streams: between the two). All need an accelerator.
        vae_slicing: decode a batch one image at a time; None: on for sides of 1024 px or more.
        vae_tiling: decode in overlapping tiles (flat memory at any size); None: on for sides of 1024 px or more.
        attention_slicing: compute attention in slices (`enable_attention_slicing`), for small GPUs.
        compile: torch.compile the denoiser: of its repeated blocks only ("regional", `compile_repeated_blocks`)
            where the model names them, else the whole network.
        attention_backend: a diffusers attention backend (`set_attention_backend`), e.g. "flash", "sage",
            "_native_cudnn"; only for models whose attention goes through diffusers' dispatcher (e.g. FLUX).
        cache: "first_block": skip the rest of the network on steps where its first block's output barely changes
            (diffusers' `FirstBlockCacheConfig`); for denoisers with diffusers' cache hooks (e.g. FLUX).
        layerwise_casting: "fp8" (or "fp8_e5m2"): store the denoiser's weights in float8 and upcast each layer to
            the compute dtype when it runs (`enable_layerwise_casting`), halving their memory.
    """

    offload: str = "none"
    vae_slicing: bool | None = None
    vae_tiling: bool | None = None
    attention_slicing: bool = False
    compile: bool = False
    attention_backend: str | None = None
    cache: str | None = None
    layerwise_casting: str | None = None

    def __post_init__(self) -> None:
        if self.offload not in OFFLOADS:
            raise InputError(f"offload {self.offload!r} is unknown; use none, model, sequential or group")
        if self.cache is not None and self.cache not in CACHES:
            raise InputError(f"cache {self.cache!r} is unknown; use {' or '.join(CACHES)} (or leave it out)")
        if self.layerwise_casting is not None and self.layerwise_casting not in CASTS:
            raise InputError(
                f"layerwise_casting {self.layerwise_casting!r} is unknown; use fp8 or fp8_e5m2 (or leave it out)"
            )
        if self.attention_backend is not None and not self.attention_backend.strip():
            raise InputError("attention_backend '' is empty; name a diffusers backend, e.g. flash, or leave it out")

    def report(self, **applied: Any) -> dict[str, Any]:
        """The options as recorded on an image: these settings, with what was decided at load and call time."""
        return {**asdict(self), **applied}


def _check_device(options: RunOptions, device: str) -> None:
    """Refuse, before anything loads, what the device cannot do."""
    if options.offload != "none" and not device.startswith(("cuda", "xpu")):
        raise InputError(
            f"offload {options.offload!r} moves weights between CPU RAM and an accelerator, but the device is "
            f"{device!r} (the weights already live in RAM); use offload='none' (--offload none) or a CUDA device"
        )


def _denoiser(pipe: Any, family: Family) -> Any:
    for name in (family.denoiser, "transformer", "unet"):
        model = getattr(pipe, name, None) if name else None
        if model is not None:
            return model
    return None


def _apply_options(pipe: Any, options: RunOptions, family: Family, device: str, dtype: str) -> dict[str, Any]:
    """Apply the load-time options to a freshly loaded pipeline (it is not shared yet); returns what was done.

    Order as diffusers' guides have it: casting and caching hooks first, then placement (offload or `.to`), then
    the attention backend, then compilation (which traces whatever hooks are in place).
    """
    torch = heavy_import("torch")
    denoiser = _denoiser(pipe, family)
    name = type(denoiser).__name__ if denoiser is not None else "none"
    applied: dict[str, Any] = {"compile": "off"}
    if options.layerwise_casting is not None:
        storage = getattr(torch, CASTS[options.layerwise_casting], None)
        if denoiser is None or not hasattr(denoiser, "enable_layerwise_casting") or storage is None:
            raise InputError(
                f"layerwise_casting {options.layerwise_casting!r} needs a diffusers denoiser and torch float8 "
                f"dtypes; {name} with torch {torch.__version__} has not both: leave layerwise_casting out"
            )
        try:
            torch.ones(1, dtype=getattr(torch, dtype), device="cpu").to(storage).to(getattr(torch, dtype))
        except (RuntimeError, TypeError) as exc:
            raise InputError(
                f"layerwise_casting {options.layerwise_casting!r} is not supported here ({_one_line(exc)}); "
                f"leave layerwise_casting out"
            ) from None
        denoiser.enable_layerwise_casting(storage_dtype=storage, compute_dtype=getattr(torch, dtype))
    if options.cache is not None:
        if denoiser is None or not hasattr(denoiser, "enable_cache"):
            version = heavy_import("diffusers").__version__
            raise InputError(
                f"cache {options.cache!r} needs a denoiser with diffusers' cache hooks, and {name} has none in "
                f"diffusers {version} (FluxTransformer2DModel has them); leave cache out"
            )
        hooks = heavy_import("diffusers.hooks")
        denoiser.enable_cache(hooks.FirstBlockCacheConfig(threshold=FIRST_BLOCK_THRESHOLD))
    if options.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif options.offload == "group":
        pipe.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=True,
        )
    elif device != "cpu":
        pipe.to(device)
    if options.attention_slicing:
        pipe.enable_attention_slicing()
    if options.attention_backend is not None:
        _set_attention_backend(denoiser, name, options.attention_backend)
    if options.compile:
        if denoiser is None:
            raise InputError("compile needs a pipeline with a unet or transformer; leave compile out")
        if getattr(denoiser, "_repeated_blocks", None):
            denoiser.compile_repeated_blocks(fullgraph=True)
            applied["compile"] = "regional"
        else:
            denoiser.compile()
            applied["compile"] = "full"
    return applied


def _set_attention_backend(denoiser: Any, name: str, backend: str) -> None:
    dispatch = heavy_import("diffusers.models.attention_dispatch")
    known = sorted(member.value for member in dispatch.AttentionBackendName)
    if backend.lower() not in known:
        raise InputError(f"attention_backend {backend!r} is unknown to diffusers; use one of: {', '.join(known)}")
    dispatched = denoiser is not None and any(
        hasattr(getattr(module, "processor", None), "_attention_backend") for module in denoiser.modules()
    )
    if not dispatched:
        raise InputError(
            f"attention_backend {backend!r} needs a model whose attention goes through diffusers' dispatcher "
            f"(e.g. FLUX); {name}'s does not: leave attention_backend out"
        )
    try:
        denoiser.set_attention_backend(backend.lower())
    except (RuntimeError, ImportError, ValueError) as exc:
        raise InputError(f"attention_backend {backend!r} cannot run here: {_one_line(exc)}") from None


def _vae_for_call(pipe: Any, options: RunOptions, width: int, height: int) -> dict[str, bool]:
    """Set the shared VAE's slicing and tiling for one call (under the entry lock); returns what is on."""
    large = max(width, height) >= LARGE_SIDE
    slicing = large if options.vae_slicing is None else options.vae_slicing
    tiling = large if options.vae_tiling is None else options.vae_tiling
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_slicing() if slicing else vae.disable_slicing()
        vae.enable_tiling() if tiling else vae.disable_tiling()
    else:
        slicing = tiling = False
    return {"vae_slicing": slicing, "vae_tiling": tiling}
