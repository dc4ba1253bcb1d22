"""What to generate and how: `ImageRequest` (one prompt pair and its seed) and `GenerationParams` (shared settings).

Both are frozen pydantic models checked once, before anything is loaded; a bad value is an `InputError` whose one-line
message names the argument and the value. Copies made with `replace` or `model_copy(update=...)` are checked again.

Example:
    >>> params = GenerationParams(steps=4, width=512, height=512)
    >>> params.replace(scheduler="Euler a").scheduler
    'euler_a'
    >>> params.model_copy(update={"steps": 0})
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: steps = 0: Input should be greater than or equal to 1
    >>> ImageRequest(positive="a red kitten", seed=MAX_SEED + 1)
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: seed = 4294967296: Input should be less than or equal to 4294967295
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from ideaforge.errors import InputError, explain
from ideaforge.tools.diffusion.schedulers import canonical_scheduler

MAX_SIDE = 4096
MAX_SEED = 2**32 - 1  # seeds are 0..4294967295 everywhere in ideaforge (A1111 and ComfyUI use the same range)


class _Validated(BaseModel):
    """A pydantic model whose construction errors are `InputError`s with a one-line message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(explain(exc)) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied, validated like a new instance: a bad value is an `InputError`."""
        data = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**data, **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """pydantic's `model_copy`, except that an `update` is validated (it goes through `replace`)."""
        if update:
            return self.replace(**update)
        return super().model_copy(deep=deep)


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
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description=f"Seed of the image's CPU torch.Generator (0-{MAX_SEED})"
    )
    prompt_2: str | None = Field(
        default=None,
        description="The prompt of the pipeline's second text encoder, as diffusers names it (SDXL: CLIP-G; SD 3: "
        "CLIP-G; FLUX: T5); None: the same as `positive`",
    )
    prompt_3: str | None = Field(
        default=None, description="The prompt of the third text encoder (SD 3: T5); None: the same as `positive`"
    )
    negative_prompt_2: str | None = Field(
        default=None, description="The negative prompt of the second text encoder; None: the same as `negative`"
    )
    negative_prompt_3: str | None = Field(
        default=None, description="The negative prompt of the third text encoder (SD 3: T5); None: the same as `negative`"
    )

    def prompt_for(self, index: int) -> str:
        """The prompt text encoder `index` (0, 1, 2) reads: `positive`, or `prompt_2`/`prompt_3` when given."""
        extra = (None, self.prompt_2, self.prompt_3)[index] if index < 3 else None
        return self.positive if extra is None else extra

    def negative_for(self, index: int) -> str:
        """The negative prompt text encoder `index` reads: `negative`, or `negative_prompt_2`/`_3` when given."""
        extra = (None, self.negative_prompt_2, self.negative_prompt_3)[index] if index < 3 else None
        return self.negative if extra is None else extra
