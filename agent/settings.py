"""One settings object: defaults, then `IDEAFORGE_*` environment variables, then explicit options (which win)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ideaforge.errors import InputError

Engine = Literal["auto", "openai", "rules"]
StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]


def parse_size(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'512x768' -> (512, 768). Both sides must be positive multiples of 8 and at most 4096."""
    if value is None or value == "":
        return None
    if isinstance(value, tuple):
        w, h = value
    else:
        text = str(value).lower().replace("×", "x").strip()
        parts = text.split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise InputError(f"size {value!r} is not WIDTHxHEIGHT; use e.g. --size 512x512")
        w, h = int(parts[0]), int(parts[1])
    for side in (w, h):
        if side <= 0 or side % 8 or side > 4096:
            raise InputError(
                f"size {w}x{h} is invalid: width and height must be multiples of 8 between 8 and 4096 "
                f"(e.g. --size 512x512)"
            )
    return (w, h)


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

    # Prompt engine
    engine: Engine = "auto"
    style: str | None = None
    llm_model: str = Field("gpt-4o-mini", validation_alias=AliasChoices("IDEAFORGE_LLM_MODEL", "llm_model"))
    llm_base_url: str | None = Field(
        None, validation_alias=AliasChoices("IDEAFORGE_LLM_BASE_URL", "OPENAI_BASE_URL", "llm_base_url")
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("IDEAFORGE_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key")
    )
    llm_method: StructuredMethod = "json_schema"
    llm_timeout: float = Field(60.0, gt=0)
    llm_max_retries: int = Field(2, ge=0, le=10)
    llm_temperature: float = Field(0.4, ge=0, le=2)

    # Generation
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=50)
    size: str | None = None
    scheduler: str | None = None
    n: int = Field(1, ge=1, le=16)
    out: Path = Path("outputs")

    # Critic loop
    critique: bool = True
    threshold: float | None = None
    max_attempts: int = Field(3, ge=1, le=20)
    candidates: int = Field(1, ge=1, le=8)
    keep_seed: bool = False

    @field_validator("size")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        if v:
            w, h = parse_size(v)  # type: ignore[misc]
            return f"{w}x{h}"
        return None

    @field_validator("guidance")
    @classmethod
    def _guidance(cls, v: float | None) -> float | None:
        if v is not None and v != v:  # NaN
            raise ValueError("guidance must be a number, not NaN")
        return v

    def llm_configured(self) -> bool:
        return bool(self.openai_api_key and self.openai_api_key.get_secret_value()) or bool(self.llm_base_url)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with explicit, non-None overrides on top.

    Raises `InputError` with the offending field and value when something does not validate.
    """
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "setting"
        value = err.get("input")
        shown = "***" if "key" in field else repr(value)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise InputError(f"{field} = {shown}: {msg}") from None
