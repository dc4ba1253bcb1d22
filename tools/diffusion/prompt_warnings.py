"""Warnings about prompts the pipeline will silently treat differently from what they ask.

A negative prompt is ignored at guidance 1 or below (and FLUX takes none), weighting syntax means nothing to families
without compel support, and each text encoder reads only its own token budget, counted with its own tokenizer.

Example:
    >>> from types import SimpleNamespace
    >>> pipe = SimpleNamespace(tokenizer=None)  # no tokenizer: only the guidance check runs
    >>> _prompt_warnings(pipe, [(0, ImageRequest(positive="a fox", negative="blurry"), 7)], guidance=1.0)
    {0: ['negative prompt has no effect at guidance 1: diffusers only uses it with ...']}
"""

from __future__ import annotations

from typing import Any

from ideaforge.tools.clip_tokenizer import count_tokens
from ideaforge.tools.diffusion.families import Encoder, Family, family_named
from ideaforge.tools.diffusion.params import ImageRequest
from ideaforge.tools.diffusion.weighting import _WEIGHTED, plain_prompt


def _prompt_warnings(
    pipe: Any, jobs: list[tuple[int, ImageRequest, int]], guidance: float, family: Family | None = None
) -> dict[int, list[str]]:
    """Per request: what the pipeline will silently do differently from what the prompt asks."""
    family = family or family_named("sd")
    encoders = [(i, e, getattr(pipe, e.tokenizer, None)) for i, e in enumerate(family.encoders)]
    notes: dict[int, list[str]] = {}
    for request_index, request, _ in jobs:
        if request_index in notes:
            continue
        found = notes[request_index] = []
        negatives = [request.negative_for(i) for i in range(3)]
        if any(n.strip() for n in negatives) and not family.negative_prompt:
            found.append(
                f"negative prompt was not used: the {family.name} family takes none (it is guidance-distilled); "
                f"say what to avoid in the prompt itself, positively"
            )
        elif request.negative.strip() and guidance <= 1:
            found.append(
                f"negative prompt has no effect at guidance {guidance:g}: diffusers only uses it with "
                f"classifier-free guidance, i.e. guidance > 1"
            )
        texts = [request.prompt_for(i) for i in range(3)] + (negatives if family.negative_prompt else [])
        if not family.weighting and any(_WEIGHTED.search(text) for text in texts):
            found.append(
                f"prompt weighting such as '(term)1.3' does not apply to the {family.name} family: the emphasis "
                f"syntax was removed and the words kept"
            )
        for i, encoder, tokenizer in encoders:
            if tokenizer is None:
                continue
            pairs = [("prompt", request.prompt_for(i))]
            if family.negative_prompt:
                pairs.append(("negative prompt", request.negative_for(i)))
            for label, text in pairs:
                note = _overflow(family, encoder, tokenizer, label, text)
                if note and note not in found:
                    found.append(note)
    return notes


def _overflow(family: Family, encoder: Encoder, tokenizer: Any, label: str, text: str) -> str | None:
    limit = encoder.max_tokens
    count = count_tokens(plain_prompt(text), tokenizer)  # remembered per tokenizer and text
    if count <= limit:
        return None
    if encoder.name.startswith("clip"):
        if any(not e.name.startswith("clip") for e in family.encoders):
            return None  # a T5 family's prose runs past 77 CLIP tokens by design: T5 reads the rest
        return f"{label} is {count} CLIP tokens; the text encoder reads only the first {limit}, so the rest was cut"
    return (
        f"{label} is {count} {encoder.name.upper()} tokens; the {encoder.name} encoder reads only the first "
        f"{limit}, so the rest was cut"
    )

