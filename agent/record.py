"""`PngRecord`: the JSON record every image carries in its `ideaforge` PNG chunk, as one typed model.

The forge writes it, and `IdeaForge.reproduce` (`ideaforge generate --from`), batch resume and the Ray executor
read it back through this model, so a hand-edited or damaged record fails with one line naming the field, never
with a `KeyError` deep inside. Records written by earlier versions (without `candidate`, `loras`, ...) still read:
every field but the idea, the prompt and the seed has a default (a record without `checks` restores a spec without
a checklist).

Example:
    >>> record = PngRecord(idea="a red kitten", positive="red kitten, basket", seed=7, model="sd-turbo")
    >>> record.spec().positive, record.elements
    ('red kitten, basket', ['a red kitten'])
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ideaforge.agent.models import Check, PromptSpec, Review, Scores
from ideaforge.agent.request import Size
from ideaforge.agent.text import MAX_IDEA_CHARS
from ideaforge.errors import InputError, explain
from ideaforge.tools.diffusion import MAX_SEED


class PngRecord(BaseModel):
    """What one image was made from and how it scored; enough to make it again."""

    model_config = ConfigDict(extra="ignore")

    idea: str = Field(min_length=1, max_length=MAX_IDEA_CHARS, description="The idea as the user typed it.")
    idea_en: str = Field(default="", description="The idea in English (what the critic scored against).")
    positive: str = Field(min_length=1, description="The positive prompt, exactly as generated.")
    negative: str = Field(default="", description="The negative prompt, exactly as generated.")
    elements: list[str] = Field(default_factory=list, description="The idea's key visual elements.")
    checks: list[Check] = Field(default_factory=list, description="The checklist the image was made and scored by.")
    style: str | None = Field(default=None, description="The style preset applied, if any.")
    language: str = Field(default="en", description="ISO 639-1 code of the idea's language.")
    engine: str = Field(default="rules", description="The prompt engine that wrote the prompt.")
    model: str = Field(default="", description="The diffusion model: Hub id, folder or file name.")
    scheduler: str | None = None
    seed: int = Field(ge=0, le=MAX_SEED)
    steps: int | None = Field(default=None, ge=1, le=500)
    guidance: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    size: Size | None = None
    loras: list[str] = Field(default_factory=list, description="LoRAs as SOURCE:SCALE.")
    family: str | None = Field(default=None, description="The model family: sd, sdxl, sd3, flux, ...")
    prompts: dict[str, str] = Field(
        default_factory=dict, description="The other encoders' prompts given (prompt_2, prompt_3, negatives)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Memory and speed options the image was made with (offload, vae_tiling, ...)."
    )
    round: int = Field(default=1, ge=1, description="Round of the critic loop that made the image.")
    candidate: int = Field(default=1, ge=1, description="Candidate prompt within the round.")
    scores: Scores | None = None
    review: Review | None = Field(default=None, description="The checklist critic's verdicts on this image.")
    warnings: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict, description="Package versions that made the image.")
    batch: dict[str, Any] | None = Field(
        default=None, description="Set by `ideaforge batch`: the row's resume key, input line and first seed."
    )

    @model_validator(mode="after")
    def _defaults(self) -> PngRecord:
        if not self.idea_en:
            self.idea_en = self.idea
        if not self.elements:
            self.elements = [self.idea]
        return self

    def spec(self) -> PromptSpec:
        """The prompt spec the image was generated from (to generate it again, or to refine it)."""
        return PromptSpec(
            idea=self.idea,
            idea_en=self.idea_en,
            positive=self.positive,
            negative=self.negative,
            positive_2=self.prompts.get("prompt_2"),
            positive_3=self.prompts.get("prompt_3"),
            family=self.family or "sd",
            elements=self.elements,
            checks=self.checks,
            language=self.language,
            style=self.style,
            engine=self.engine,
        )

    def to_json(self) -> str:
        """The text stored in the PNG chunk."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)

    @classmethod
    def from_data(cls, data: object, *, source: str = "record") -> PngRecord:
        """Validate a parsed record; `InputError` with one line naming the field otherwise."""
        if not isinstance(data, dict):
            raise InputError(f"{source} holds no ideaforge record; pass a PNG that ideaforge wrote")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InputError(f"{source} has an invalid ideaforge record: {explain(exc)}") from None

    @classmethod
    def from_png(cls, path: str | os.PathLike[str]) -> PngRecord:
        """The record of a PNG that ideaforge wrote.

        Raises:
            InputError: the file is missing, not an image, or holds no (or a damaged) ideaforge record.
        """
        from ideaforge.tools.metadata import read_record

        return cls.from_data(read_record(path).get("ideaforge"), source=repr(str(path)))
