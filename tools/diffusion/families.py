"""Model families as data (`tools/data/families.json`): how each kind of pipeline reads prompts and runs.

A `Family` says which pipeline classes a family uses (txt2img, img2img), its text encoders and each one's token
budget, the prompt form the engines write for it (`tags`, `tags+phrases` or `prose`), whether it takes a negative
prompt and compel weighting, its defaults and how A1111/Forge name its sampler. `family_of(pipeline)` detects the
family of a loaded pipeline from its class (and base classes), else from its denoiser's class and config, else
`generic`; `family_named(name)` gives one by name, without loading anything (what the prompt engines need).

Example:
    >>> flux = family_named("flux")
    >>> (flux.prompt_form, flux.negative_prompt, flux.weighting, [(e.name, e.max_tokens) for e in flux.encoders])
    ('prose', False, False, [('clip_l', 77), ('t5', 512)])
    >>> family_named("flux-schnell").budget("t5"), family_named("sd").prompt_form
    (256, 'tags')
    >>> family_named("sd3").pipeline_class("img2img")
    'StableDiffusion3Img2ImgPipeline'
    >>> family_named("dalle")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: family 'dalle' is unknown; use one of: sd, sdxl, sd3, flux, generic (or sd3-turbo, flux-schnell)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from ideaforge.errors import InputError

PromptForm = Literal["tags", "tags+phrases", "prose"]

# A tokenizer whose model_max_length is unset reports ~1e30; such a budget is no budget: use the T5 default.
_UNSET_LENGTH = 1_000_000
_FALLBACK_TOKENS = 512


@dataclass(frozen=True)
class Encoder:
    """One text encoder of a family: the pipeline attributes holding it and its tokenizer, and its token budget."""

    name: str  # "clip_l", "clip_g", "t5", ...
    tokenizer: str  # the pipeline attribute, e.g. "tokenizer_3"
    text_encoder: str
    max_tokens: int  # what ideaforge asks the pipeline to read
    limit: int  # the most it can read


@dataclass(frozen=True)
class Family:
    """How one model family reads prompts and runs; see tools/data/families.json for what each field means."""

    name: str  # "sd", "sdxl", "sd3", "flux" or "generic"
    label: str
    txt2img: str | None  # diffusers pipeline class names
    img2img: str | None
    encoders: tuple[Encoder, ...]
    prompt_form: PromptForm
    negative_prompt: bool
    weighting: bool  # compel emphasis applies
    steps: int
    guidance: float
    width: int | None  # None: the pipeline's own sample size
    height: int | None
    scheduler: str | None  # None: the scheduler the model ships
    scheduler_swaps: bool  # catalogue schedulers (euler_a, dpm++...) fit it
    denoiser: str | None  # "unet" or "transformer"
    latents: str  # "spatial", "packed" (2x2 tokens, FLUX) or "unknown"
    latent_rgb: dict[str, Any] | None = None
    samplers: dict[str, dict[str, str]] = field(default_factory=dict)
    variant: str | None = None  # "schnell", "turbo", ...

    @property
    def key(self) -> str:
        """The name with the variant, e.g. 'flux-schnell'."""
        return f"{self.name}-{self.variant}" if self.variant else self.name

    def budget(self, encoder: str) -> int:
        """The token budget of one encoder by name ('clip_l', 'clip_g', 't5'); InputError if the family lacks it."""
        for found in self.encoders:
            if found.name == encoder:
                return found.max_tokens
        names = ", ".join(e.name for e in self.encoders) or "none"
        raise InputError(f"family {self.key!r} has no {encoder!r} text encoder; its encoders: {names}")

    def pipeline_class(self, task: str) -> str | None:
        """The diffusers pipeline class for 'txt2img' or 'img2img' (None: the family has none, or it is generic)."""
        if task not in ("txt2img", "img2img"):
            raise InputError(f"task {task!r} is unknown; use txt2img or img2img")
        return self.txt2img if task == "txt2img" else self.img2img

    def sampler(self, scheduler: str) -> tuple[str, str | None] | None:
        """A1111/Forge's (sampler, schedule type) for a shipped scheduler class the catalogue lacks, if known."""
        spec = self.samplers.get(scheduler)
        return (spec["a1111"], spec.get("schedule_type")) if spec else None


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    """families.json, read once."""
    text = resources.files("ideaforge.tools").joinpath("data").joinpath("families.json").read_text(encoding="utf-8")
    return json.loads(text)["families"]


def family_names() -> list[str]:
    """The family names, e.g. ['sd', 'sdxl', 'sd3', 'flux', 'generic']."""
    return list(_table())


def _variants() -> list[str]:
    return [f"{name}-{variant}" for name, spec in _table().items() for variant in spec["variants"]]


def _build(name: str, variant: str | None = None) -> Family:
    spec = _table()[name]
    defaults = dict(spec["defaults"])
    budgets: dict[str, int] = {}
    if variant is not None:
        extra = spec["variants"][variant]
        defaults.update(extra.get("defaults", {}))
        budgets = extra.get("encoders", {})
    encoders = tuple(
        Encoder(
            name=e["name"],
            tokenizer=e["tokenizer"],
            text_encoder=e["text_encoder"],
            max_tokens=budgets.get(e["name"], e["max_tokens"]),
            limit=e["limit"],
        )
        for e in spec["encoders"]
    )
    return Family(
        name=name,
        label=spec["label"],
        txt2img=spec["pipelines"]["txt2img"],
        img2img=spec["pipelines"]["img2img"],
        encoders=encoders,
        prompt_form=spec["prompt_form"],
        negative_prompt=spec["negative_prompt"],
        weighting=spec["weighting"],
        steps=defaults["steps"],
        guidance=defaults["guidance"],
        width=defaults["width"],
        height=defaults["height"],
        scheduler=defaults["scheduler"],
        scheduler_swaps=spec["scheduler_swaps"],
        denoiser=spec["denoiser"],
        latents=spec["latents"],
        latent_rgb=spec["latent_rgb"],
        samplers=spec["samplers"],
        variant=variant,
    )


def family_named(name: str) -> Family:
    """The family called `name` ('sd', 'sdxl', 'sd3', 'flux', 'generic', or a variant: 'flux-schnell', 'sd3-turbo').

    Case and `.`/`_` spellings are forgiven ('FLUX', 'sd_xl' -> 'sdxl'); an unknown name is an `InputError`.
    """
    key = name.strip().lower().replace("_", "").replace(".", "")
    key = {"sd1": "sd", "sd15": "sd", "sd2": "sd", "sd35": "sd3", "flux1": "flux"}.get(key, key)
    table = _table()
    if key in table:
        return _build(key)
    base, _, variant = key.partition("-")
    if base in table and variant in table[base]["variants"]:
        return _build(base, variant)
    raise InputError(
        f"family {name!r} is unknown; use one of: {', '.join(table)} (or {', '.join(_variants())})"
    )


def _class_names(obj: Any) -> list[str]:
    return [cls.__name__ for cls in type(obj).__mro__]


def _config_matches(model: Any, wanted: dict[str, Any]) -> bool:
    config = getattr(model, "config", None) or {}
    return all(config.get(key) == value for key, value in wanted.items())


def _detect_name(pipeline: Any) -> str:
    table = _table()
    # A pipeline class of the family, or a subclass of one (custom pipelines keep working).
    for base in _class_names(pipeline):
        for name, spec in table.items():
            pipes = spec["pipelines"]
            if base in (pipes["txt2img"], pipes["img2img"], *pipes["also"]):
                return name
    # Else the denoiser: the network that decides what the model is, whatever pipeline wraps it.
    for name, spec in table.items():
        for denoiser in spec["denoisers"]:
            model = getattr(pipeline, spec["denoiser"], None)
            if (
                model is not None
                and denoiser["class"] in _class_names(model)
                and _config_matches(model, denoiser["config"])
            ):
                return name
    return "generic"


def _detect_variant(name: str, pipeline: Any) -> str | None:
    spec = _table()[name]
    for variant, extra in spec["variants"].items():
        detect = extra.get("detect")
        model = getattr(pipeline, spec["denoiser"] or "", None)
        if detect and model is not None and _config_matches(model, detect):
            return variant
    return None


def _generic_encoders(pipeline: Any) -> tuple[Encoder, ...]:
    """Every `tokenizer*` of a pipeline ideaforge does not know, with its own model_max_length."""
    found = []
    for attribute in ("tokenizer", "tokenizer_2", "tokenizer_3", "tokenizer_4"):
        tokenizer = getattr(pipeline, attribute, None)
        if tokenizer is None:
            continue
        length = int(getattr(tokenizer, "model_max_length", _FALLBACK_TOKENS) or _FALLBACK_TOKENS)
        length = _FALLBACK_TOKENS if length > _UNSET_LENGTH else length
        kind = "clip" if "CLIP" in type(tokenizer).__name__ else type(tokenizer).__name__.lower().removesuffix("fast")
        suffix = attribute.removeprefix("tokenizer")
        encoder = attribute.replace("tokenizer", "text_encoder")
        found.append(Encoder(name=f"{kind}{suffix}", tokenizer=attribute, text_encoder=encoder, max_tokens=length, limit=length))
    return tuple(found)


def family_of(pipeline: Any) -> Family:
    """The family of a loaded diffusers pipeline, from its class and its denoiser's class and config.

    `generic` (for any other text-to-image pipeline) lists the pipeline's own tokenizers with their own limits,
    and takes a negative prompt only when the pipeline's `__call__` accepts one.
    """
    name = _detect_name(pipeline)
    family = _build(name, _detect_variant(name, pipeline))
    if name == "generic":
        import inspect

        try:
            parameters = inspect.signature(pipeline.__call__).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        family = replace(
            family,
            txt2img=type(pipeline).__name__,
            encoders=_generic_encoders(pipeline),
            negative_prompt="negative_prompt" in parameters,
        )
    return family


def family_of_model(model: str) -> Family | None:
    """The family of a diffusers folder or a cached Hub model, read from its `model_index.json` (and its
    denoiser's config for the variant) without loading anything; None when that cannot tell (a single file, a
    model not in the cache).

    Example:
        >>> family_of_model("no/such-model-anywhere") is None
        True
    """
    import json
    from pathlib import Path

    folder = Path(model).expanduser()
    index: Path | None = folder / "model_index.json" if folder.is_dir() else None
    if index is None and not folder.suffix and model.count("/") == 1:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "model_index.json")
        except Exception:  # noqa: BLE001 - not an id the cache knows: nothing to read
            cached = None
        index = Path(cached) if isinstance(cached, str) else None
    if index is None or not index.is_file():
        return None
    try:
        pipeline_class = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError):
        return None
    table = _table()
    name = next((n for n, spec in table.items() if pipeline_class in (
        spec["pipelines"]["txt2img"], spec["pipelines"]["img2img"], *spec["pipelines"]["also"])), None)
    if name is None:
        return None
    variant = None
    denoiser = table[name]["denoiser"]
    config = index.parent / (denoiser or "") / "config.json"
    if denoiser and config.is_file():
        try:
            values = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            values = {}
        for key, extra in table[name]["variants"].items():
            detect = extra.get("detect") or {}
            if detect and all(values.get(k) == v for k, v in detect.items()):
                variant = key
    return _build(name, variant)


def encoder_budgets(pipeline: Any) -> list[tuple[str, Any, int]]:
    """Each text encoder of a loaded pipeline as (name, its own tokenizer, token budget), to count prompts with.

    Example:
        >>> tool = DiffusionTool("stabilityai/stable-diffusion-3.5-medium").load()  # doctest: +SKIP
        >>> [(name, budget) for name, _, budget in encoder_budgets(tool.pipeline)]  # doctest: +SKIP
        [('clip_l', 77), ('clip_g', 77), ('t5', 256)]
    """
    family = family_of(pipeline)
    return [
        (encoder.name, tokenizer, encoder.max_tokens)
        for encoder in family.encoders
        if (tokenizer := getattr(pipeline, encoder.tokenizer, None)) is not None
    ]
