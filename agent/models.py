"""Typed data that flows through ideaforge: the prompt spec, attempts and the run result."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _clean_terms(value: str) -> str:
    terms = [t.strip() for t in value.replace("\n", ",").split(",")]
    return ", ".join(t for t in terms if t)


class LLMSpec(BaseModel):
    """What a language model returns for an idea. Field descriptions are the JSON schema the model sees."""

    model_config = ConfigDict(extra="ignore")

    idea_en: str = Field(
        description="The idea itself, faithfully translated to English if it is in another language "
        "(unchanged if it is already English). No additions."
    )
    positive: str = Field(
        description="The Stable Diffusion positive prompt, in English: comma-separated terms, the main subject "
        "with the idea's own details first, then medium or style, lighting, composition and quality terms. "
        "At most about 60 words (it must fit in 77 CLIP tokens)."
    )
    negative: str = Field(
        description="The negative prompt, in English: comma-separated things to avoid (artifacts, defects, "
        "unwanted content). Never mention anything the idea asks for."
    )
    elements: list[str] = Field(
        description="The idea's key visual elements in English, most important first: short noun phrases "
        "with their attributes, e.g. ['red kitten', 'wicker basket'].",
        min_length=1,
        max_length=8,
    )
    language: str = Field(description="ISO 639-1 code of the language the idea was written in, e.g. 'en', 'zh'.")

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
        out = [e.strip() for e in v if e and e.strip()]
        if not out:
            raise ValueError("at least one non-empty element is required")
        return out

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str) -> str:
        return (v or "en").strip().lower()[:8] or "en"


class PromptSpec(LLMSpec):
    """An optimized Stable Diffusion prompt for one idea, whichever engine made it."""

    idea: str = Field(description="The idea as the user typed it.")
    style: str | None = Field(default=None, description="The style preset applied, if any.")
    engine: str = Field(description="The engine that produced this spec: 'openai' or 'rules'.")
    warnings: list[str] = Field(default_factory=list, description="What the engine could not do, and why.")
    positive_tokens: int = Field(default=0, description="CLIP tokens in the positive prompt, BOS/EOS included.")
    negative_tokens: int = Field(default=0, description="CLIP tokens in the negative prompt, BOS/EOS included.")

    def summary(self) -> dict[str, Any]:
        return self.model_dump()
