"""Warnings about prompts the pipeline will silently treat differently from what they ask.

A negative prompt is ignored at guidance 1 or below, and the text encoder reads only the first 77 CLIP tokens.

Example:
    >>> from types import SimpleNamespace
    >>> pipe = SimpleNamespace(tokenizer=None)  # no tokenizer: only the guidance check runs
    >>> _prompt_warnings(pipe, [(0, ImageRequest(positive="a fox", negative="blurry"), 7)], guidance=1.0)
    {0: ['negative prompt has no effect at guidance 1: diffusers only uses it with ...']}
"""

from __future__ import annotations

from typing import Any

from ideaforge.tools.diffusion.params import ImageRequest
from ideaforge.tools.diffusion.weighting import plain_prompt


def _prompt_warnings(
    pipe: Any, jobs: list[tuple[int, ImageRequest, int]], guidance: float
) -> dict[int, list[str]]:
    """Per request: what the pipeline will silently do differently from what the prompt asks."""
    tokenizer = getattr(pipe, "tokenizer", None)
    notes: dict[int, list[str]] = {}
    for request_index, request, _ in jobs:
        if request_index in notes:
            continue
        found = notes[request_index] = []
        if request.negative.strip() and guidance <= 1:
            found.append(
                f"negative prompt has no effect at guidance {guidance:g}: diffusers only uses it with "
                f"classifier-free guidance, i.e. guidance > 1"
            )
        if tokenizer is not None:
            limit = tokenizer.model_max_length
            for label, text in (("prompt", request.positive), ("negative prompt", request.negative)):
                count = len(tokenizer(plain_prompt(text), truncation=False)["input_ids"])
                if count > limit:
                    found.append(
                        f"{label} is {count} CLIP tokens; the text encoder reads only the first {limit}, "
                        f"so the rest was cut"
                    )
    return notes
