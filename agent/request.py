"""One validated request for a run: every option with its type and range, parsed once before anything expensive.

The fields here are the schema of every entry point: `IdeaForge.run(idea, **options)`, the CLI, batch rows, the
LangChain and MCP tools (and so the JSON schema an agent sees, ranges included). `GenerateRequest` is what any
caller may ask for; `RunOptions` (what `run` takes besides the idea) adds the options that touch the local file
system (output folder, init image), which the agent-facing tools do not offer. Both forbid unknown fields, and `parse` turns the first problem into one
`InputError` line.

Example:
    >>> GenerateRequest.parse(idea="a red kitten", seed=7, size="512x768").size
    '512x768'
    >>> GenerateRequest.parse(idea="a red kitten", steps=0)
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: steps = 0: Input should be greater than or equal to 1
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from ideaforge import prompts
from ideaforge.agent.text import MAX_IDEA_CHARS
from ideaforge.errors import InputError, explain
from ideaforge.tools.diffusion import MAX_SEED, MAX_SIDE, canonical_scheduler, scheduler_names

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×X]\s*(\d{1,5})\s*$")


def parse_size(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'512x768' -> (512, 768). Both sides must be multiples of 8 from 8 to 4096.

    Example:
        >>> parse_size("512x768")
        (512, 768)
    """
    if value is None or value == "":
        return None
    if isinstance(value, tuple):
        w, h = value
    else:
        m = _SIZE.match(str(value))
        if m is None:
            raise InputError(f"size {value!r} is not WIDTHxHEIGHT; use e.g. --size 512x512")
        w, h = int(m[1]), int(m[2])
    if any(side <= 0 or side % 8 or side > MAX_SIDE for side in (w, h)):
        raise InputError(
            f"size {w}x{h} is invalid: width and height must be multiples of 8 between 8 and {MAX_SIDE} "
            "(e.g. --size 512x512)"
        )
    return (w, h)


def _size(value: str) -> str:
    w, h = parse_size(value) or (0, 0)
    return f"{w}x{h}"


def _style(value: object) -> object:
    """'Watercolor', 'pixel art' or 'pixel_art' -> the preset's name; '' means "no style" (over a default)."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return ""
    key = value.strip().lower().replace(" ", "-").replace("_", "-")
    if key not in prompts.styles():
        raise ValueError(f"unknown style; choose one of: {', '.join(prompts.style_names())}")
    return key


def _scheduler(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return canonical_scheduler(value)
    except InputError:
        raise ValueError(f"unknown scheduler; choose one of: {', '.join(scheduler_names())}") from None


def _not_bool(value: object) -> object:
    """`True` is an int to Python; as a step count or an image count it is a mistake, not 1."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    return value


# The option types, each written once and shared with `Settings`: ranges live in the schema, not in prose.
Count = BeforeValidator(_not_bool)
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
Steps = Annotated[int, Field(ge=1, le=500), Count]
Guidance = Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)]
Size = Annotated[
    str,
    Field(pattern=r"^\s*\d{1,5}\s*[x×X]\s*\d{1,5}\s*$", examples=["512x512", "768x512"]),
    AfterValidator(_size),
]
StyleName = Annotated[
    str,
    BeforeValidator(_style),
    WithJsonSchema({"type": "string", "enum": prompts.style_names()}),
]
SchedulerName = Annotated[
    str,
    BeforeValidator(_scheduler),
    WithJsonSchema({"type": "string", "enum": scheduler_names()}),
]
Images = Annotated[int, Field(ge=1, le=16), Count]
Threshold = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Rounds = Annotated[int, Field(ge=1, le=20), Count]
Candidates = Annotated[int, Field(ge=1, le=8), Count]
Strength = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
CriticName = Literal["clip", "vlm", "vlm+clip"]
Budget = Annotated[int, Field(ge=1, le=10_000), Count]
Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
LLMCalls = Annotated[int, Field(ge=0, le=1_000), Count]
Idea = Annotated[str, Field(min_length=1, max_length=MAX_IDEA_CHARS)]

_R = TypeVar("_R", bound="_Request")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=False)

    @classmethod
    def parse(cls: type[_R], **values: Any) -> _R:
        """Validate keyword values; the first problem becomes one `InputError` line naming the field and value."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise InputError(explain(exc)) from None

    def given(self) -> dict[str, Any]:
        """The options the caller set (not None), without the idea and the explicit prompts."""
        skip = {"idea", "prompt", "negative_prompt"}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in skip}


class OptimizeRequest(_Request):
    """Arguments of the prompt stage alone (the `optimize_prompt` tool's): an idea and an optional style preset."""

    idea: Idea = Field(
        description="What the image should show, as loose as you like and in any language, "
        "e.g. 'a red kitten in a basket' or '一只坐在篮子里的红色小猫'."
    )
    style: StyleName | None = Field(
        default=None, description="Optional style preset applied to the prompt. Leave it out for none."
    )


class _Options(_Request):
    """The per-run options any caller may set; None means the forge's setting (then the model's default)."""

    style: StyleName | None = Field(
        default=None, description="Optional style preset applied to the prompt. Leave it out for the default."
    )
    seed: Seed | None = Field(
        default=None,
        description="Seed of the first image, 0 to 4294967295; the same seed and settings reproduce the same "
        "image. Leave it out for a random seed (it is reported back).",
    )
    size: Size | None = Field(
        default=None,
        description="Image size as WIDTHxHEIGHT in pixels, multiples of 8 from 8 to 4096, e.g. '512x512'. "
        "Leave it out for the model's native size.",
    )
    steps: Steps | None = Field(default=None, description="Denoising steps, 1 to 500; leave it out for the model's.")
    guidance: Guidance | None = Field(
        default=None, description="Classifier-free guidance scale, 0 to 50; leave it out for the model's default."
    )
    scheduler: SchedulerName | None = Field(
        default=None, description="Scheduler (sampler) by name; leave it out for the model's."
    )
    n: Images | None = Field(default=None, description="Images per attempt, 1 to 16 (seeds seed, seed+1, ...).")
    critique: bool | None = Field(
        default=None,
        description="Score each image with the critic and revise the prompt when it falls short (on by "
        "default); false makes a single attempt, faster.",
    )
    critic: CriticName | None = Field(
        default=None,
        description="Who verifies the checklist: clip (CLIP per check, local), vlm (a vision LLM on an "
        "OpenAI-compatible server) or vlm+clip. Leave it out for the configured critic.",
    )
    threshold: Threshold | None = Field(
        default=None,
        description="Score that ends the loop early: the share of checks that must pass, 0 to 1 (default 1: all); "
        "with a scorer that gives one CLIP score per image, that score.",
    )
    max_attempts: Rounds | None = Field(default=None, description="Most rounds of the critic loop, 1 to 20.")
    candidates: Candidates | None = Field(default=None, description="Candidate prompts per round, 1 to 8.")
    keep_seed: bool | None = Field(default=None, description="Reuse the first seed in every round.")
    max_images: Budget | None = Field(default=None, description="Most images the loop may make in all.")
    max_seconds: Seconds | None = Field(
        default=None, description="No new round starts after this many seconds of the run."
    )
    max_llm_calls: LLMCalls | None = Field(
        default=None, description="Most LLM revisions in the run; after that the loop only re-samples seeds."
    )


class GenerateRequest(_Options):
    """One image run as any caller may ask for it: the `generate_image` tool's arguments and a batch row."""

    idea: Idea = Field(
        description="What the image should show, in any language. It is optimized into a Stable Diffusion prompt "
        "and is what the critic scores the image against, even when `prompt` is given."
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEA_CHARS,
        description="Optional English Stable Diffusion positive prompt to use as written instead of optimizing "
        "the idea (a style preset and the 77-token limit still apply).",
    )
    negative_prompt: str | None = Field(
        default=None,
        max_length=MAX_IDEA_CHARS,
        description="Optional negative prompt: comma-separated things the image must not show.",
    )


class RunOptions(_Options):
    """Everything `IdeaForge.run` takes besides the idea: the options above plus those that touch local files."""

    out: Path | None = Field(default=None, description="Folder the PNGs are written to.")
    init_image: Path | None = Field(default=None, description="Start from this image (img2img) instead of noise.")
    strength: Strength | None = Field(
        default=None, description="img2img only: how far to move away from the init image (0 < strength <= 1)."
    )
