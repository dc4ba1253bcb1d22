"""Prompts are data: templates (*.md), few-shot examples (*.jsonl), style and negative presets (*.json).

This module only loads them. Templates become LangChain `ChatPromptTemplate`s in `ideaforge.agent.chain`.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources
from typing import Any


def read_text(name: str) -> str:
    """The text of a bundled prompt file, e.g. `read_text("system.md")`."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8").strip()


@cache
def read_json(name: str) -> Any:
    return json.loads(read_text(name))


def read_jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_text(name).splitlines() if line.strip()]


@lru_cache(maxsize=1)
def styles() -> dict[str, dict[str, str]]:
    """Style presets by name: {"prompt": "... {prompt} ...", "negative": "...", "description": "..."}.

    Example:
        >>> styles()["watercolor"]["prompt"].format(prompt="a red kitten")
        'watercolor painting of a red kitten...'
    """
    return {s["name"]: s for s in read_json("styles.json")}


def style_names() -> list[str]:
    return sorted(styles())


def negatives() -> dict[str, list[str]]:
    """Negative-prompt presets by subject category."""
    return read_json("negatives.json")


def vocabulary() -> dict[str, Any]:
    """The rules engine's vocabularies: categories, stopwords, medium words, lighting overrides."""
    return read_json("vocabulary.json")


def examples() -> list[dict[str, Any]]:
    """Few-shot examples for the LLM engines: {"idea": ..., "spec": {...}}."""
    return read_jsonl("examples.jsonl")
