"""The diffusion tool: load a diffusers pipeline once, generate reproducible images with live progress.

One `DiffusionTool` names a model (Hub id, diffusers folder or single `.safetensors` checkpoint) of any family (SD
1.x/2.x, SDXL, SD 3, FLUX.1 or another diffusers text-to-image pipeline) and how to run it (`RunOptions`: diffusers'
offloading, VAE slicing/tiling, torch.compile, attention backends, first-block cache, fp8 layerwise casting);
`load()` fetches the pipeline from a module-level cache keyed by everything that changes its weights or hooks, so
the CLI, the critic loop and every Streamlit session share one copy. `generate()` batches the requests whose
settings match into one pipeline call, gives every image its own CPU `torch.Generator` (so a seed reproduces the
same pixels on any device and in any batch), reports steps and cheap latent previews, and stops between steps
when asked. torch, diffusers and transformers are imported on first use, so importing this package is instant.

The modules, one idea each: `catalogue` (profiles.json), `families` (families.json), `options` (memory and speed),
`schedulers`, `params` (what to generate), `loras`, `results`, `source` (where the model comes from), `loading` (and
the pipeline cache), `weighting` (compel), `prompt_warnings`, `previews`, `images` (init image, all-black check) and
`tool` (`DiffusionTool`).

Example:
    >>> tool = DiffusionTool("stabilityai/sd-turbo").load()  # doctest: +SKIP
    >>> [result] = tool.generate([ImageRequest(positive="a red kitten in a basket", seed=7)], GenerationParams())  # doctest: +SKIP
    >>> result.image.save("kitten.png"); (result.seed, result.steps, result.guidance)  # doctest: +SKIP
    (7, 1, 0.0)

    Settings are checked before anything loads:

    >>> GenerationParams(steps=4, scheduler="DPM++ 2M Karras").scheduler
    'dpm++_2m_karras'
    >>> GenerationParams(width=100, height=64)
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: size 100x64 is invalid: width and height must be multiples of 8 between 8 and 4096 ...
"""

from ideaforge.tools.diffusion.catalogue import _data as _data  # tests read the catalogue
from ideaforge.tools.diffusion.catalogue import match_profile
from ideaforge.tools.diffusion.families import (
    Encoder,
    Family,
    encoder_budgets,
    family_named,
    family_names,
    family_of,
    family_of_model,
)
from ideaforge.tools.diffusion.loading import _load_pipeline as _load_pipeline  # bench/bench_cold_warm.py
from ideaforge.tools.diffusion.loading import clear_cache
from ideaforge.tools.diffusion.loras import LoraSpec, parse_lora
from ideaforge.tools.diffusion.options import RunOptions
from ideaforge.tools.diffusion.params import MAX_SEED, MAX_SIDE, GenerationParams, ImageRequest
from ideaforge.tools.diffusion.results import GeneratedImage, ModelProfile, StepEvent
from ideaforge.tools.diffusion.schedulers import a1111_sampler, canonical_scheduler, scheduler_names
from ideaforge.tools.diffusion.source import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES
from ideaforge.tools.diffusion.tool import DiffusionTool
from ideaforge.tools.diffusion.weighting import plain_prompt

__all__ = [
    "MAX_SEED",
    "MAX_SIDE",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "DiffusionTool",
    "Encoder",
    "Family",
    "GeneratedImage",
    "GenerationParams",
    "ImageRequest",
    "LoraSpec",
    "ModelProfile",
    "RunOptions",
    "StepEvent",
    "a1111_sampler",
    "canonical_scheduler",
    "clear_cache",
    "encoder_budgets",
    "family_named",
    "family_names",
    "family_of",
    "family_of_model",
    "match_profile",
    "parse_lora",
    "plain_prompt",
    "scheduler_names",
]
