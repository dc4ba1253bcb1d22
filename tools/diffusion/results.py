"""What the diffusion tool hands back: `GeneratedImage` per image, `StepEvent` per step, `ModelProfile` per model.

Example:
    >>> event = StepEvent(index=0, step=2, total=4, images=[0, 1])
    >>> f"{event.step}/{event.total} of images {event.images}"
    '2/4 of images [0, 1]'
    >>> ModelProfile(name=None, family="sd", steps=30, guidance=7.5, width=512, height=512, scheduler="euler").family
    'sd'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    family: str = ""  # the model family, e.g. "sd", "flux-schnell"
    schedule_type: str | None = None  # Forge's "Schedule type" where the sampler name alone does not say it
    prompts: dict[str, str] = field(default_factory=dict)  # prompt_2 / prompt_3 / negative_prompt_2 / _3 given
    # The memory and speed options it ran with: offload, vae_slicing, vae_tiling (as decided for this call),
    # attention_slicing, compile ("off", "regional" or "full"), attention_backend, cache, layerwise_casting.
    options: dict[str, Any] = field(default_factory=dict)

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
