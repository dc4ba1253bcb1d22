"""Deterministic test doubles for the loop's logic: a "shapes world".

`ShapesGenerator` draws every "<colour> <shape>" the prompt names; `ShapesScorer` detects them by colour, scores
each element high when it is there and low when not, and critiques with the real `ideaforge.tools.critic.critique`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "yellow": (230, 210, 20)}
SHAPES = ("circle", "square", "triangle")
PRESENT, ABSENT = 34.0, 12.0


@dataclass
class FakeImage:
    image: Any
    seed: int
    positive: str
    negative: str
    flagged: bool = False
    steps: int = 2
    guidance: float = 1.0
    width: int = 64
    height: int = 64
    scheduler: str = "euler"
    sampler: str = "Euler"
    model: str = "shapes-world"
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class StepEvent:
    index: int | None
    step: int
    total: int
    preview: Any = None


def named_shapes(prompt: str) -> list[tuple[str, str]]:
    return [(c, s) for c, s in re.findall(r"\b(red|blue|green|yellow) (circle|square|triangle)\b", prompt.lower())]


class ShapesGenerator:
    tokenizer = None

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def generate(self, requests, params, *, on_step=None, cancel=None):
        self.calls.append(list(requests))
        out = []
        for i, req in enumerate(requests):
            img = Image.new("RGB", (64, 64), "white")
            draw = ImageDraw.Draw(img)
            for k, (colour, shape) in enumerate(dict.fromkeys(named_shapes(req.positive))):
                x = 4 + (k % 3) * 20
                box = (x, 20, x + 16, 36)
                if shape == "circle":
                    draw.ellipse(box, fill=COLOURS[colour])
                elif shape == "square":
                    draw.rectangle(box, fill=COLOURS[colour])
                else:
                    draw.polygon([(x, 36), (x + 8, 20), (x + 16, 36)], fill=COLOURS[colour])
            if on_step:
                on_step(StepEvent(i, 1, 1))
            out.append(FakeImage(img, req.seed, req.positive, req.negative))
        return out


class ShapesScorer:
    """Per element: PRESENT if its colour is in the image, else ABSENT; the idea score is their mean."""

    threshold = 30.0

    def __init__(self, scripted: list[float] | None = None) -> None:
        self.scripted = list(scripted or [])  # override idea scores, call by call
        self.calls = 0

    def score(self, images, idea, elements):
        from ideaforge.tools.critic import ImageScore, critique

        out = []
        for img in images:
            colours = {c for _, c in img.getcolors(maxcolors=64 * 64)}
            per = {e: (PRESENT if any(COLOURS[c] in colours for c, _ in named_shapes(e)) else ABSENT) for e in elements}
            idea_score = sum(per.values()) / len(per)
            if self.scripted:
                idea_score = self.scripted.pop(0)
            out.append(ImageScore(idea=idea_score, elements=per, truncated=[], critique=critique(idea_score, per)))
        self.calls += 1
        return out
