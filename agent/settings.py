"""One settings object: defaults, then `IDEAFORGE_*` environment variables, then explicit options (which win)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ideaforge.agent.request import (
    Budget,
    Candidates,
    CriticName,
    Guidance,
    Images,
    LLMCalls,
    Rounds,
    SchedulerName,
    Seconds,
    Size,
    Steps,
    StyleName,
    Threshold,
    parse_size,
)
from ideaforge.errors import InputError, explain
from ideaforge.tools.sanitize import register_secret

__all__ = ["Settings", "load_settings", "parse_size"]

Engine = Literal["auto", "openai", "rules"]
StructuredMethod = Literal["auto", "json_schema", "function_calling", "json_mode"]


class Settings(BaseSettings):
    """ideaforge's settings. Every field can be set as `IDEAFORGE_<NAME>` in the environment.

    The OpenAI key is read from `OPENAI_API_KEY` (or `IDEAFORGE_OPENAI_API_KEY`) and kept as a `SecretStr`;
    it is never printed, logged or written to metadata.
    """

    model_config = SettingsConfigDict(env_prefix="IDEAFORGE_", extra="ignore", populate_by_name=True)

    # Models
    model: str = Field("stabilityai/sd-turbo", description="Diffusion model: Hub id, diffusers folder or .safetensors")
    clip_model: str = Field("openai/clip-vit-base-patch32", description="CLIP critic model: Hub id or folder")
    device: str | None = Field(None, description="cuda, mps or cpu (default: best available)")
    dtype: str | None = Field(None, description="float16, bfloat16 or float32 (default: by device)")
    allow_pickle: bool = False
    safety_checker: bool = True
    # Memory and speed (diffusers' own features; each is recorded in the PNG)
    offload: Literal["none", "model", "sequential", "group"] | None = Field(
        None, description="Move weights between RAM and the accelerator: none, model, sequential or group"
    )
    vae_slicing: bool | None = Field(None, description="Decode a batch one image at a time (default: auto)")
    vae_tiling: bool | None = Field(None, description="Decode in tiles (default: on from 1024 px a side)")
    compile: bool = Field(False, description="torch.compile the denoiser (regional where the model allows)")
    attention_backend: str | None = Field(None, description="diffusers attention backend, e.g. native, flash, sage")
    cache_acceleration: Literal["first_block"] | None = Field(
        None, description="First-block cache for DiT families (FLUX); `--cache first_block`"
    )
    layerwise_casting: Literal["fp8", "fp8_e5m2"] | None = Field(
        None, description="Store weights in fp8, compute in the run's dtype"
    )

    # Prompt engine
    engine: Engine = "auto"
    style: StyleName | None = None
    llm_model: str = Field("gpt-4o-mini", validation_alias=AliasChoices("IDEAFORGE_LLM_MODEL", "llm_model"))
    llm_base_url: str | None = Field(
        None, validation_alias=AliasChoices("IDEAFORGE_LLM_BASE_URL", "OPENAI_BASE_URL", "llm_base_url")
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("IDEAFORGE_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key")
    )
    llm_method: StructuredMethod = Field(
        "auto", description="auto: found out once per server (json_schema, else json_mode); or one of the three"
    )
    llm_max_tokens: int = Field(600, ge=32, le=8192, description="Most tokens one LLM reply may have")
    llm_repeat_penalty: float | None = Field(
        None, ge=1, le=2, description="Repetition penalty for servers that take one (llama.cpp), e.g. 1.1"
    )
    llm_budget: float = Field(
        120.0, gt=0, allow_inf_nan=False, description="Seconds the LLM may take for one idea, retries included"
    )
    require_llm: bool = Field(False, description="Fail instead of falling back to the rules engine")
    llm_timeout: float = Field(60.0, gt=0, allow_inf_nan=False, description="Seconds one LLM request may take in all")
    llm_max_retries: int = Field(2, ge=0, le=10)
    llm_temperature: float = Field(0.4, ge=0, le=2)
    llm_cooldown: float = Field(
        120.0, ge=0, description="Seconds the LLM is not asked again after a server failure (0: always ask)"
    )

    # Generation
    steps: Steps | None = None
    guidance: Guidance | None = None
    size: Size | None = None
    scheduler: SchedulerName | None = None
    n: Images = 1
    out: Path = Path("outputs")

    # Critics
    critic: CriticName = Field("clip", description="clip (CLIP per check), vlm (a vision LLM) or vlm+clip")
    vlm_base_url: str | None = Field(
        None, description="OpenAI-compatible server of the vision LLM critic (default: OpenAI's, with a key)"
    )
    vlm_model: str = Field("gpt-4o-mini", description="Vision LLM critic model name")
    vlm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("IDEAFORGE_VLM_API_KEY", "OPENAI_API_KEY", "vlm_api_key")
    )
    vlm_method: StructuredMethod = Field("auto", description="Structured-output method for the vision LLM")
    vlm_timeout: float = Field(60.0, gt=0, allow_inf_nan=False, description="Seconds one VLM request may take in all")
    vlm_max_retries: int = Field(2, ge=0, le=10)
    vlm_max_side: int = Field(768, ge=64, le=4096, description="Longest image side sent to the vision LLM")
    vlm_concurrency: int = Field(4, ge=1, le=32, description="VLM requests in flight at once")
    preference: str | None = Field(
        None, description="Preference (quality) model: Hub id or folder of a CLIP-architecture model, e.g. PickScore"
    )

    # Critic loop
    critique: bool = True
    threshold: Threshold | None = None
    max_attempts: Rounds = 3
    candidates: Candidates = 1
    keep_seed: bool = False
    max_images: Budget | None = None
    max_seconds: Seconds | None = None
    max_llm_calls: LLMCalls | None = None

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        for key in (self.openai_api_key, self.vlm_api_key):
            if key is not None:
                register_secret(key.get_secret_value())  # redacted from all output, any length
        return self

    def llm_configured(self) -> bool:
        return bool(self.openai_api_key and self.openai_api_key.get_secret_value()) or bool(self.llm_base_url)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with explicit, non-None overrides on top.

    Raises `InputError` naming the field and value when something does not validate, and for a name that is
    not a setting (a misspelt `stepz=2` must not be silently ignored).

    Example:
        >>> load_settings(steps=4, size="768x512").size
        '768x512'
        >>> load_settings(stepz=2)
        Traceback (most recent call last):
        ...
        ideaforge.errors.InputError: unknown setting(s) 'stepz'; see help(ideaforge.Settings)
    """
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(Settings.model_fields))
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(map(repr, unknown))}; see help(ideaforge.Settings)")
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InputError(explain(exc)) from None
