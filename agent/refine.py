"""Offline refinement: a follow-up request ("make it night, add a ship") applied to a spec as edits."""

from __future__ import annotations

from typing import Any

from ideaforge.agent.models import PromptSpec
from ideaforge.agent.rules import rules_spec


def refine_rules(spec: PromptSpec, request: str, tokenizer: Any) -> PromptSpec:
    """Offline refinement: the request's words join the idea, the whole is re-optimized."""
    idea = f"{spec.idea_en}, {request}"
    out = rules_spec(idea, style=spec.style, tokenizer=tokenizer)
    return out.model_copy(update={"idea": f"{spec.idea}; {request}"})
