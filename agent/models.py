"""Typed data that flows through ideaforge: the prompt spec, attempts and the run result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ideaforge.agent.text import MAX_IDEA_CHARS
from ideaforge.tools.sanitize import safe


def _clean_terms(value: str) -> str:
    terms = [t.strip() for t in value.replace("\n", ",").split(",")]
    return ", ".join(t for t in terms if t)


def _safe(value: Any) -> Any:
    """LLM text reaches prompts, PNGs and terminals: no secrets, no control characters."""
    if isinstance(value, str):
        return safe(value.replace("\n", ", "))
    if isinstance(value, list):
        return [_safe(v) for v in value]
    return value


CheckKind = Literal["entity", "attribute", "count", "relation", "text", "absent", "style"]
CHECK_KINDS: tuple[str, ...] = ("entity", "attribute", "count", "relation", "text", "absent", "style")


class LLMCheck(BaseModel):
    """One atomic thing the image must show, as a language model writes it (ids and dependencies come later)."""

    model_config = ConfigDict(extra="ignore")

    kind: CheckKind = Field(
        description="entity (a thing is there), attribute (a thing has a property), count (how many), relation "
        "(two things related: position or action), text (written text), absent (a thing must NOT be there), "
        "style (medium or art style)."
    )
    subject: str = Field(max_length=80, description="The thing the check is about, a short English noun phrase.")
    value: str | None = Field(
        default=None,
        max_length=200,
        description="attribute: the property ('red'); count: the number ('3'); relation: the relation ('on', "
        "'chasing'); text: the exact text to be written; style: the style. Otherwise null.",
    )
    object: str | None = Field(default=None, max_length=80, description="relation: the other thing. Otherwise null.")

    @field_validator("subject", "value", "object", mode="before")
    @classmethod
    def _no_secrets_or_controls(cls, v: Any) -> Any:
        return _safe(v).strip() if isinstance(v, str) else v


class Check(LLMCheck):
    """One atomic yes/no check of the image (Davidsonian Scene Graph style), with its id and parents.

    An attribute, count or relation check depends on the existence (`entity`) checks of the things it is about: a
    critic that finds no kitten need not ask whether the kitten is red.
    """

    id: int = Field(ge=1, description="1-based id within the spec.")
    question: str = Field(
        max_length=400, description="The check as a yes/no question in English; 'yes' means the image passes."
    )
    depends_on: list[int] = Field(default_factory=list, description="Ids of the checks this one presupposes.")

    @field_validator("question", mode="before")
    @classmethod
    def _clean_question(cls, v: Any) -> Any:
        return _safe(v).strip() if isinstance(v, str) else v


class LLMSpec(BaseModel):
    """What a language model returns for an idea. Field descriptions are the JSON schema the model sees."""

    model_config = ConfigDict(extra="ignore")

    idea_en: str = Field(
        max_length=600,
        description="The idea itself, faithfully translated to English if it is in another language "
        "(unchanged if it is already English). No additions."
    )
    positive: str = Field(
        max_length=600,
        description="The Stable Diffusion positive prompt, in English: comma-separated terms, the main subject "
        "with the idea's own details first, then medium or style, lighting, composition and quality terms. "
        "At most about 60 words (it must fit in 77 CLIP tokens)."
    )
    negative: str = Field(
        max_length=400,
        description="The negative prompt, in English: comma-separated things to avoid (artifacts, defects, "
        "unwanted content), first what the idea says must not be there. Never mention anything the idea asks for."
    )
    # Not asked for any more (`checks` say it, one fact each), but accepted from models that still send it.
    elements: SkipJsonSchema[list[Annotated[str, Field(max_length=80)]]] = Field(
        default_factory=list,
        description="The idea's key visual elements in English, most important first: short noun phrases "
        "with their attributes, e.g. ['red kitten', 'wicker basket'].",
        max_length=8,
    )
    checks: list[LLMCheck] = Field(
        default_factory=list,
        max_length=16,
        description="What the image must show, as atomic checks, most important first.",
    )
    language: str = Field(json_schema_extra={"maxLength": 16}, description="ISO 639-1 code of the language the idea was written in, e.g. 'en', 'zh'.")

    @field_validator("checks", mode="before")
    @classmethod
    def _usable_checks(cls, v: Any) -> Any:
        """Small models get a check wrong now and then: a bad one is left out rather than failing the reply."""
        if not isinstance(v, list) or cls is not LLMSpec:  # a PromptSpec's checks are ours, already whole
            return v
        kept = []
        for item in v:
            try:
                kept.append(LLMCheck.model_validate(item))
            except ValueError:
                continue
        return kept[:16]

    @field_validator("idea_en", "positive", "negative", "elements", "language", mode="before")
    @classmethod
    def _no_secrets_or_controls(cls, v: Any) -> Any:
        return _safe(v)

    @field_validator("positive", "negative")
    @classmethod
    def _terms(cls, v: str) -> str:
        return _clean_terms(v)

    @field_validator("positive", "idea_en")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("elements")
    @classmethod
    def _elements(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for element in (e.strip() for e in v if e and e.strip()):
            if element.lower() not in {o.lower() for o in out}:  # small models repeat themselves
                out.append(element)
        return out

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str) -> str:
        return (v or "en").strip().lower()[:8] or "en"


class PromptSpec(LLMSpec):
    """An optimized Stable Diffusion prompt for one idea, whichever engine made it.

    `checks` is the checklist the critics verify; `elements` (kept for compatibility) are its entities with their
    attributes, most important first.
    """

    checks: list[Check] = Field(  # type: ignore[assignment]
        default_factory=list, description="What the image must show, as atomic yes/no checks, most important first."
    )
    idea_en: str = Field(
        max_length=MAX_IDEA_CHARS, description="The idea in English (as long as an idea may be; the rules engine "
        "passes long ideas through)."
    )
    elements: list[str] = Field(
        default_factory=list,
        description="The entities of `checks` with their attributes, most important first (kept for compatibility).",
    )

    positive: str = Field(
        max_length=8000,
        description="The positive prompt: what the first (CLIP) text encoder reads, within its 77 tokens. Tags for "
        "`sd`, tags with short phrases for `sdxl`, sentences for `sd3`, `flux` and `generic`.",
    )
    family: str = Field(
        default="sd",
        description="The model family the prompt is written for: sd, sdxl, sd3, flux or generic (or a variant: "
        "sd3-turbo, flux-schnell).",
    )
    positive_2: str | None = Field(
        default=None,
        max_length=8000,
        description="diffusers' `prompt_2`: the second text encoder's prompt (SDXL and SD 3: CLIP-G, within 77 "
        "tokens; FLUX: T5, the full prose up to its budget). None: the encoder reads `positive`.",
    )
    positive_3: str | None = Field(
        default=None,
        max_length=8000,
        description="diffusers' `prompt_3`: SD 3's T5 prompt, the full prose up to its budget. None: it reads `positive`.",
    )
    negative_note: str | None = Field(
        default=None,
        description="For a family that takes no negative prompt (FLUX): what became of the negative's content.",
    )
    tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Tokens (EOS included) of the prompt each text encoder reads, by encoder: clip_l, clip_g, t5.",
    )
    estimated_tokens: list[str] = Field(
        default_factory=list,
        description="Encoders whose count in `tokens` is an estimate (no tokenizer of theirs was at hand: T5 "
        "without a loaded model).",
    )

    idea: str = Field(description="The idea as the user typed it.")
    style: str | None = Field(default=None, description="The style preset applied, if any.")
    engine: str = Field(description="The engine that produced this spec: 'openai' or 'rules'.")
    warnings: list[str] = Field(default_factory=list, description="What the engine could not do, and why.")
    positive_tokens: int = Field(default=0, description="CLIP tokens in the positive prompt, BOS/EOS included.")
    negative_tokens: int = Field(default=0, description="CLIP tokens in the negative prompt, BOS/EOS included.")
    llm_method: str | None = Field(default=None, description="The structured-output method the LLM answered by.")
    fallback: str | None = Field(
        default=None, description="Why the LLM did not answer, when the rules engine stood in for it."
    )

    @field_validator("positive_2", "positive_3", mode="before")
    @classmethod
    def _safe_extra(cls, v: Any) -> Any:
        return _clean_terms(_safe(v)).strip() or None if isinstance(v, str) else v

    @model_validator(mode="after")
    def _some_element(self) -> PromptSpec:
        if not self.elements:
            self.elements = [e.subject for e in self.checks if e.kind == "entity"][:8] or [self.idea_en]
        return self


class Scores(BaseModel):
    """CLIP scores of one image on the torchmetrics CLIPScore scale (100 x cosine, clamped at 0)."""

    idea: float = Field(description="Score against the whole idea (its English form).")
    elements: dict[str, float] = Field(default_factory=dict, description="Score per element of the spec.")
    weak: list[str] = Field(default_factory=list, description="Elements the critic found weakly depicted.")
    critique: str = Field(default="", description="The critique in words.")
    truncated: list[str] = Field(default_factory=list, description="Texts cut to CLIP's 77 tokens.")


class CheckVerdict(BaseModel):
    """A critic's verdict on one check of one image."""

    check: int = Field(description="The check's id in the spec's checklist.")
    passed: bool | None = Field(description="True, False, or None when this critic cannot judge the check.")
    probability: float | None = Field(default=None, description="P(yes) where the critic gives one.")
    reason: str = Field(default="", max_length=400, description="A short reason.")
    critic: str = Field(default="", description="The critic that judged it: clip or vlm.")


class Review(BaseModel):
    """A checklist critic's review of one image: verdicts, scores and what it cost."""

    critic: str = Field(description="clip, vlm or vlm+clip (with '(fallback clip)' when the VLM failed).")
    verdicts: list[CheckVerdict] = Field(default_factory=list)
    alignment: float | None = Field(
        default=None, description="Share of judged checks passed; a check whose parent failed counts as failed."
    )
    passed: int = Field(default=0, description="Checks passed.")
    judged: int = Field(default=0, description="Checks the critic could judge.")
    quality: float | None = Field(default=None, description="Preference score (or CLIP's idea score) where known.")
    calls: int = Field(default=0, description="Requests or forward passes the critic made for this image.")
    seconds: float = Field(default=0.0, description="Critic time for this image.")
    warnings: list[str] = Field(default_factory=list)

    def failed(self) -> list[int]:
        return [v.check for v in self.verdicts if v.passed is False]


class ImageRecord(BaseModel):
    """One generated image."""

    path: str | None = Field(default=None, description="Where the PNG was written.")
    seed: int
    flagged: bool = Field(default=False, description="The model's safety checker flagged it; not a success.")
    error: str | None = Field(default=None, description="Why the image is unusable (e.g. all black), if it is.")
    scores: Scores | None = None
    review: Review | None = Field(default=None, description="The checklist critic's verdicts, when one ran.")
    warnings: list[str] = Field(default_factory=list)

    def rank(self) -> tuple[float, float]:
        """How good the image is: checks passed (share), then quality; legacy CLIP scores by idea score."""
        if self.review is not None:
            return (self.review.alignment if self.review.alignment is not None else -1.0,
                    self.review.quality if self.review.quality is not None else float("-inf"))
        if self.scores is not None:
            return (self.scores.idea, 0.0)
        return (float("-inf"), float("-inf"))


class Attempt(BaseModel):
    """One candidate prompt in one round of the critic loop, with everything it produced."""

    round: int = Field(description="1-based round of the loop.")
    candidate: int = Field(default=1, description="1-based candidate within the round.")
    spec: PromptSpec
    seed: int = Field(description="Seed of the first image; image i used seed + i.")
    images: list[ImageRecord] = Field(default_factory=list)
    score: float | None = Field(
        default=None,
        description="The best image's score: the share of checks passed with a checklist critic, else CLIP's idea "
        "score.",
    )
    quality: float | None = Field(default=None, description="The best image's preference (quality) score.")
    critique: str | None = None
    weak: list[str] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list, description="Ids of the checks the best image failed.")
    action: str | None = Field(
        default=None, description="How this attempt's prompt came about: first, revise, repair or reseed."
    )
    seconds: dict[str, float] = Field(default_factory=dict, description="Time per stage: prompt, generate, critic, save.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Resolved generation settings.")

    @property
    def positive(self) -> str:
        return self.spec.positive

    @property
    def negative(self) -> str:
        return self.spec.negative

    def best_image(self) -> ImageRecord | None:
        ok = [i for i in self.images if not i.flagged and i.error is None]
        if not ok:
            return None
        return max(ok, key=lambda i: i.rank())

    def rank(self) -> tuple[float, float]:
        best = self.best_image()
        return best.rank() if best is not None else (float("-inf"), float("-inf"))


class RunResult(BaseModel):
    """The outcome of one idea: every attempt, and the best one by idea score.

    Serializes to JSON with `model_dump_json()`; `best_image_path` and `best_image()` are shortcuts.
    """

    idea: str
    attempts: list[Attempt] = Field(default_factory=list)
    best: Attempt | None = Field(
        default=None, description="The best attempt: most checks passed, then highest quality (or idea score)."
    )
    threshold: float | None = None
    passed: bool = Field(default=False, description="The best score met the threshold.")
    stopped: str = Field(default="", description="Why the loop stopped.")
    critic: str | None = Field(default=None, description="The critic that judged the images, if any.")
    spent: dict[str, float] = Field(
        default_factory=dict, description="What the run used: images, seconds, llm_calls, critic_calls, critic_seconds."
    )
    warnings: list[str] = Field(default_factory=list)

    @property
    def spec(self) -> PromptSpec | None:
        return self.best.spec if self.best else None

    @property
    def best_image_path(self) -> str | None:
        img = self.best.best_image() if self.best else None
        return img.path if img else None

    def best_image(self) -> Any:
        """The best image as a PIL image (read from its PNG)."""
        from PIL import Image

        path = self.best_image_path
        if path is None:
            return None
        with Image.open(path) as im:
            im.load()
            return im.copy()

    @property
    def image_paths(self) -> list[str]:
        return [i.path for a in self.attempts for i in a.images if i.path]
