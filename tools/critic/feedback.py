"""The critique: which elements of the idea an image shows weakly, in words the reviser can act on.

Pure functions of the scores: an element is weak when it scores below `FLOOR`, or `MARGIN` or more below the
best-shown element.

Example:
    >>> c = critique(24.0, {"red kitten": 27.9, "basket": 14.2})
    >>> c.weak
    ['basket']
    >>> print(c.text)
    Overall match with the idea: 24.0. The image barely shows 'basket' (14.2, vs 27.9 for 'red kitten'). Make ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# An element is weak when it scores below FLOOR, or MARGIN or more below the best-shown element.
# FLOOR = 20.0: the 0.20 cosine below which the LAION-HD re-scoring above calls a pair a poor match.
# MARGIN = 5.0: half the ~10-point gap between noise (24.4-24.8) and a matching Stable Diffusion image (34.9-36.2)
#   under ViT-B/16 (sources above), i.e. a shortfall that is clearly more than noise between phrasings.
FLOOR = 20.0
MARGIN = 5.0


@dataclass
class Critique:
    """What the image is missing. `weak`: elements most in need of emphasis first; `text`: for the reviser."""

    weak: list[str]
    text: str


@dataclass
class ImageScore:
    """Scores of one image on the CLIPScore scale (0-100). `truncated` lists texts cut to CLIP's token limit."""

    idea: float
    elements: dict[str, float]
    truncated: list[str] = field(default_factory=list)
    critique: Critique = field(default_factory=lambda: Critique([], ""))


def critique(
    idea_score: float,
    element_scores: Mapping[str, float],
    *,
    floor: float = FLOOR,
    margin: float = MARGIN,
    truncated: Sequence[str] = (),
) -> Critique:
    """Which elements the image shows weakly, and a sentence per element that a reviser can act on.

    An element is weak when its score is below `floor`, or at least `margin` below the best-shown element.
    Weak elements come lowest score first. Pure: depends only on its arguments.

    Example:
        >>> c = critique(24.0, {"red kitten": 27.9, "basket": 14.2})
        >>> c.weak
        ['basket']
    """
    if not element_scores:
        text = f"Overall match with the idea: {idea_score:.1f}. No separate elements were scored."
        return Critique([], _with_truncation(text, truncated))
    best_name, best = max(element_scores.items(), key=lambda kv: kv[1])
    weak = [
        name
        for name, score in sorted(element_scores.items(), key=lambda kv: kv[1])
        if score < floor or best - score >= margin
    ]
    parts = [f"Overall match with the idea: {idea_score:.1f}."]
    if not weak:
        low = min(element_scores.values())
        parts.append(
            f"Every element is visible to a similar degree ({low:.1f} to {best:.1f}); none is missing."
        )
    for name in weak:
        score = element_scores[name]
        if name == best_name or best < floor:
            parts.append(f"The image barely shows {name!r} ({score:.1f}, below {floor:.1f}).")
        else:
            parts.append(f"The image barely shows {name!r} ({score:.1f}, vs {best:.1f} for {best_name!r}).")
    if weak:
        listed = ", ".join(repr(n) for n in weak)
        parts.append(
            f"Make {listed} more prominent: name each early in the prompt and describe it concretely."
        )
    return Critique(weak, _with_truncation(" ".join(parts), truncated))


def _with_truncation(text: str, truncated: Sequence[str]) -> str:
    if not truncated:
        return text
    cut = ", ".join(repr(t[:40] + ("…" if len(t) > 40 else "")) for t in truncated)
    return f"{text} Only the first 77 CLIP tokens of {cut} were scored; shorter wording is judged in full."
