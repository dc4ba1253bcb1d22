"""A shapes world for the critic loop: a generator that misbehaves like Stable Diffusion, and eyes that see it.

`ShapesWorldGenerator` draws the coloured shapes a prompt names on a 128x128 white canvas; `detect` reads them
back from the pixels; `answer` judges a check (its question, or its fields) against what `detect` saw. The loopback
VLM server (`vlm_server.py`) is `detect` + `answer` behind an OpenAI-compatible endpoint.

The world's physics (tests and bench/ rely on them; every draw comes from `random.Random(seed)`, so a seed and
a prompt pair always give the same image):

1. **Objects.** The positive prompt names objects as `<count?> <colour?> <shape>`: counts as digits or words
   (`a`/`an`/`one`..`five`), colours from `COLOURS`, shapes from `SHAPES` (singular or plural). A plural without
   a count means two; a shape without a colour is drawn in a colour the seed picks. A repeated object counts once,
   at its first position, with its highest emphasis.
2. **Emphasis.** A1111 `(red circle:1.3)`, `(red circle)` (x1.1 per pair of brackets), `[red circle]` (/1.1),
   compel `(red circle)1.3` and `red circle++` (x1.1 per `+`, x0.9 per `-`, on the word before them). An object's
   weight is the highest weight of any of its words.
3. **Dropping.** Object i (0-based, in prompt order) is left out with probability
   `clamp(0.1 + 0.25 * i - 1.5 * (weight - 1), 0, 0.95)`: later objects are dropped more, emphasis saves them.
4. **Counts.** A count n > 1 is drawn as n - 1 or n + 1 (even odds; never 0) with probability 0.4, unless the
   object is emphasized (weight > 1) or the count is spelled out: `exactly 3` or `3 (three)`.
5. **Negation is not understood.** A shape word in the positive prompt is drawn even when negated: `no triangles`
   draws triangles (two, it is plural). Only leaving the word out of the positive prompt keeps it out.
6. **Distractors.** With probability 0.3 one grey shape from `DISTRACTORS` is added, unless that shape's word
   (singular or plural) is in the negative prompt. The negative prompt does nothing else.
7. **Layout.** Each shape gets its own cell of a 5x5 grid (side 15-19 px, jittered inside the cell), so shapes
   never touch; at most 25 shapes are drawn, the rest are lost.

Example:
    >>> from types import SimpleNamespace as R
    >>> request = R(positive="(a red circle:1.5)", negative="triangles, stars", seed=1)  # no grey distractor
    >>> [img] = ShapesWorldGenerator().generate([request], None)
    >>> [(d.colour, d.shape, d.count) for d in detect(img.image)]
    [('red', 'circle', 1)]
    >>> answer("Is there a red circle?", detect(img.image))[0]
    'yes'
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from doubles import FakeImage, StepEvent
from PIL import Image, ImageDraw

SIZE = 128
GRID = 5
CELL = SIZE // GRID  # 25 px
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "green": (30, 170, 60),
    "yellow": (235, 205, 20),
    "purple": (140, 50, 180),
    "orange": (245, 140, 20),
}
GREY = (128, 128, 128)
PALETTE: dict[str, tuple[int, int, int]] = {**COLOURS, "grey": GREY}
SHAPES = ("circle", "square", "triangle", "star")
DISTRACTORS = ("triangle", "star")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
P_DISTRACTOR = 0.3
P_WRONG_COUNT = 0.4
_NUM = r"\d+|one|two|three|four|five|an|a"
_OBJECT = re.compile(
    rf"(?:\b(?P<exactly>exactly)\s+)?(?:\b(?P<count>{_NUM})\s+(?:(?P<spelled>one|two|three|four|five)\s+)?)?"
    rf"(?:\b(?P<colour>{'|'.join(PALETTE)})\s+)?\b(?P<shape>{'|'.join(SHAPES)})(?P<plural>s)?\b",
    re.IGNORECASE,
)


@dataclass
class Named:
    """An object the prompt names: where, how many, how strongly."""

    colour: str | None
    shape: str
    count: int
    weight: float = 1.0
    spelled: bool = False  # "exactly 3", "3 (three)"
    position: int = 0


@dataclass
class Drawn:
    """What the generator really drew (the ground truth tests and the bench compare against)."""

    colour: str
    shape: str
    count: int
    distractor: bool = False


@dataclass
class WorldImage(FakeImage):
    """A `FakeImage` with the fields of `GeneratedImage` the loop reads, and the ground truth."""

    width: int = SIZE
    height: int = SIZE
    error: str | None = None
    request_index: int = 0
    drawn: list[Drawn] = field(default_factory=list)
    named: list[Named] = field(default_factory=list)


# -- the prompt, as Stable Diffusion reads it -----------------------------------------------------------------------
def weighted(prompt: str) -> tuple[str, list[float]]:
    """The prompt without emphasis syntax, and each remaining character's weight.

    >>> text, w = weighted("(red circle:1.3), blue square++")
    >>> text, round(max(w[:10]), 2), round(max(w[12:]), 2)
    ('red circle, blue square', 1.3, 1.21)
    """
    chars: list[list[Any]] = []
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(prompt):
        ch = prompt[i]
        if ch in "([":
            stack.append((len(chars), ch))
        elif ch in ")]" and stack:
            start, kind = stack.pop()
            factor = 1.1 if kind == "(" else 1 / 1.1
            group = "".join(c for c, _ in chars[start:])
            inner = re.search(r":\s*(\d+(?:\.\d+)?)\s*$", group) if kind == "(" else None
            after = re.match(r"(\d+(?:\.\d+)?)", prompt[i + 1 :]) if kind == "(" else None
            if inner:
                factor = float(inner.group(1))
                del chars[len(chars) - len(inner.group(0)) :]
            elif after:
                factor = float(after.group(1))
                i += len(after.group(1))
            for c in chars[start:]:
                c[1] *= factor
        elif ch in "+-" and chars and chars[-1][0].isalnum() and (run := re.match(r"[+-]+(?![\w])", prompt[i:])):
            factor = math.prod(1.1 if c == "+" else 0.9 for c in run.group(0))
            k = len(chars)
            while k > 0 and chars[k - 1][0].isalnum():
                k -= 1
            for c in chars[k:]:
                c[1] *= factor
            i += len(run.group(0))
            continue
        else:
            chars.append([ch, 1.0])
        i += 1
    return "".join(c for c, _ in chars), [w for _, w in chars]


def parse(prompt: str) -> list[Named]:
    """The objects a positive prompt names, in prompt order (see the physics, rules 1, 2 and 5).

    >>> [(o.colour, o.shape, o.count, o.spelled) for o in parse("exactly 3 blue squares, no triangles")]
    [('blue', 'square', 3, True), (None, 'triangle', 2, False)]
    """
    text, weights = weighted(prompt)
    out: dict[tuple[str | None, str], Named] = {}
    for m in _OBJECT.finditer(text):
        colour = m.group("colour").lower() if m.group("colour") else None
        shape = m.group("shape").lower()
        raw = (m.group("count") or "").lower()
        count = int(raw) if raw.isdigit() else NUMBERS.get(raw, 2 if m.group("plural") else 1)
        spelled = bool(m.group("exactly")) or (raw.isdigit() and WORDS.get(count) == (m.group("spelled") or "").lower())
        weight = max(weights[m.start() : m.end()] or [1.0])
        key = (colour, shape)
        if key in out:
            out[key].weight = max(out[key].weight, weight)
            continue
        out[key] = Named(colour, shape, max(count, 0), weight, spelled, len(out))
    return list(out.values())


def _words(prompt: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", weighted(prompt)[0].lower())}


# -- the generator ----------------------------------------------------------------------------------------------------
def render(positive: str, negative: str, seed: int) -> tuple[Image.Image, list[Drawn], list[Named]]:
    """One image of the world for a prompt pair and a seed: the picture, what was drawn, what was named."""
    rng = random.Random(seed)
    named = parse(positive)
    plan: list[Drawn] = []
    for obj in named:
        p_drop = min(max(0.1 + 0.25 * obj.position - 1.5 * (obj.weight - 1), 0.0), 0.95)
        dropped = rng.random() < p_drop
        wrong = rng.random() < P_WRONG_COUNT and obj.count > 1 and obj.weight <= 1.0 and not obj.spelled
        step = 1 if rng.random() < 0.5 else -1
        pick = rng.choice(list(COLOURS))
        colour = obj.colour or pick
        count = max(obj.count + step, 1) if wrong else obj.count
        if not dropped and count > 0:
            plan.append(Drawn(colour, obj.shape, count))
    distract, which = rng.random() < P_DISTRACTOR, rng.choice(DISTRACTORS)
    if distract and which not in _words(negative):
        plan.append(Drawn("grey", which, 1, distractor=True))

    img = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(img)
    cells = rng.sample(range(GRID * GRID), GRID * GRID)
    drawn: list[Drawn] = []
    for item in plan:
        n = min(item.count, len(cells))
        for _ in range(n):
            cell = cells.pop()
            side = rng.randint(15, 19)
            x0 = (cell % GRID) * CELL + 2 + rng.randint(0, CELL - side - 4)
            y0 = (cell // GRID) * CELL + 2 + rng.randint(0, CELL - side - 4)
            _draw(draw, item.shape, (x0, y0, x0 + side - 1, y0 + side - 1), PALETTE[item.colour])
        if n:
            drawn.append(Drawn(item.colour, item.shape, n, item.distractor))
    return img, drawn, named


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=fill)
    else:  # a five-pointed star, point up
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2 + 0.8, (x1 - x0) / 2 + 0.5
        points = []
        for k in range(10):
            angle = -math.pi / 2 + k * math.pi / 5
            radius = r if k % 2 == 0 else r * 0.5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)


class ShapesWorldGenerator:
    """`generate(requests, params)` like `DiffusionTool.generate`: `params.n` images per request, seed + k each.

    A request without a seed gets one from `random.Random(seed)` (the constructor's), so test runs repeat.
    """

    tokenizer = None

    def __init__(self, seed: int = 0) -> None:
        self._seeds = random.Random(seed)
        self._lock = threading.Lock()
        self.calls: list[list[Any]] = []

    def generate(self, requests: Sequence[Any], params: Any, *, on_step: Any = None, cancel: Any = None,
                 **_: Any) -> list[WorldImage]:
        from ideaforge.errors import Cancelled

        with self._lock:
            self.calls.append(list(requests))
        n = int(getattr(params, "n", None) or 1)
        out = []
        for i, req in enumerate(requests):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before request {i + 1} of {len(requests)}")
            with self._lock:
                base = req.seed if req.seed is not None else self._seeds.randrange(2**32)
            for k in range(n):
                seed = (base + k) % 2**32
                img, drawn, named = render(req.positive, req.negative, seed)
                out.append(WorldImage(
                    img, seed, req.positive, req.negative,
                    steps=getattr(params, "steps", None) or 2, guidance=getattr(params, "guidance", None) or 1.0,
                    request_index=i, drawn=drawn, named=named,
                ))
            if on_step:
                on_step(StepEvent(i, 1, 1))
        return out


# -- the eyes ---------------------------------------------------------------------------------------------------------
class Detection(NamedTuple):
    """Shapes of one colour and kind seen in an image; `centres` are their (x, y) centroids, as fractions."""

    colour: str
    shape: str
    count: int
    centres: tuple[tuple[float, float], ...] = ()


def _label(img: Image.Image) -> list[list[str | None]]:
    """Each pixel's palette colour (nearest, within a tolerance; white and resampled edges are None)."""
    import numpy as np

    names = list(PALETTE)
    arr = np.asarray(img, dtype=np.int32)[:, :, :3]
    palette = np.array([PALETTE[n] for n in names], dtype=np.int32)
    dist = ((arr[:, :, None, :] - palette[None, None, :, :]) ** 2).sum(axis=-1)
    nearest = dist.argmin(axis=-1)
    ok = dist.min(axis=-1) < 45**2
    return [[names[k] if good else None for k, good in zip(row_k, row_ok)]
            for row_k, row_ok in zip(nearest.tolist(), ok.tolist())]


def _shape(pixels: list[tuple[int, int]]) -> str:
    xs, ys = [p[0] for p in pixels], [p[1] for p in pixels]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    fill = len(pixels) / (w * h)
    if fill > 0.9:
        return "square"
    if fill > 0.68:
        return "circle"
    bottom = sum(1 for _, y in pixels if y == y1)
    return "triangle" if bottom >= 0.6 * w else "star"


def detect(image: Any) -> list[Detection]:
    """The shapes in an image, grouped by colour and shape, in a stable order (colour, then shape)."""
    img = getattr(image, "image", image).convert("RGB")
    w, h = img.size
    labels = _label(img)
    min_area = max(4, int(40 * (w * h) / (SIZE * SIZE)))
    seen = [[False] * w for _ in range(h)]
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for y in range(h):
        for x in range(w):
            colour = labels[y][x]
            if colour is None or seen[y][x]:
                continue
            stack, pixels = [(x, y)], []
            seen[y][x] = True
            while stack:
                px, py = stack.pop()
                pixels.append((px, py))
                for nx, ny in ((px + 1, py), (px - 1, py), (px, py + 1), (px, py - 1)):
                    if 0 <= nx < w and 0 <= ny < h and not seen[ny][nx] and labels[ny][nx] == colour:
                        seen[ny][nx] = True
                        stack.append((nx, ny))
            if len(pixels) < min_area:
                continue
            centre = (sum(p[0] for p in pixels) / len(pixels) / w, sum(p[1] for p in pixels) / len(pixels) / h)
            found.setdefault((colour, _shape(pixels)), []).append(centre)
    return [Detection(c, s, len(v), tuple(v)) for (c, s), v in sorted(found.items())]


# -- the judge --------------------------------------------------------------------------------------------------------
_RELATIONS = {
    "to the left of": lambda a, b: a[0] < b[0], "left of": lambda a, b: a[0] < b[0],
    "to the right of": lambda a, b: a[0] > b[0], "right of": lambda a, b: a[0] > b[0],
    "above": lambda a, b: a[1] < b[1], "over": lambda a, b: a[1] < b[1],
    "below": lambda a, b: a[1] > b[1], "under": lambda a, b: a[1] > b[1], "beneath": lambda a, b: a[1] > b[1],
    "next to": lambda a, b: True, "beside": lambda a, b: True, "near": lambda a, b: True,
}
_THING = re.compile(rf"(?:(?P<colour>{'|'.join(PALETTE)})\s+)?(?P<shape>{'|'.join(SHAPES)})s?\b")


def _thing(text: str | None) -> tuple[str | None, str] | None:
    m = _THING.search((text or "").lower())
    return (m.group("colour"), m.group("shape")) if m else None


def _fields(question: str) -> tuple[str, str, str | None, str | None]:
    """(kind, subject, value, object) read from a question in the forms the checklist writes."""
    q = " ".join(question.lower().strip().rstrip("?").split())
    if m := re.match(r"does .* show the text", q):
        return "text", "text", None, None
    if m := re.match(r"is the image free of (?:any )?(.+)", q):
        return "absent", m.group(1), None, None
    if m := re.match(rf"(?:is|are) there (?:exactly )?({_NUM}|\d+) (.+)", q):
        raw = m.group(1)
        n = int(raw) if raw.isdigit() else NUMBERS[raw]
        if raw in ("a", "an") and "exactly" not in q:
            return "entity", m.group(2), None, None
        return "count", m.group(2), str(n), None
    if m := re.match(r"(?:is|are) there (?:any )?(.+?)(?: in the image| anywhere.*)?$", q):
        return "entity", m.group(1), None, None
    if m := re.match(r"(?:is|are) the (.+?) (" + "|".join(sorted(_RELATIONS, key=len, reverse=True)) + r") (?:the |an? )?(.+)", q):
        return "relation", m.group(1), m.group(2), m.group(3)
    if m := re.match(r"(?:is|are) the (.+?) (\w+)$", q):
        return "attribute", m.group(1), m.group(2), None
    return "other", q, None, None


def _matching(thing: tuple[str | None, str], detections: Sequence[Detection]) -> list[tuple[float, float]]:
    colour, shape = thing
    return [c for d in detections if d.shape == shape and (colour is None or d.colour == colour) for c in d.centres]


def _seen(detections: Sequence[Detection]) -> str:
    parts = [f"{d.count} {d.colour} {d.shape}{'s' if d.count > 1 else ''}" for d in detections]
    return ", ".join(parts) if parts else "nothing but white"


def answer(check: Any, detections: Sequence[Detection]) -> tuple[str, str]:
    """("yes" | "no", a short reason): a check (a question string, or anything with kind/subject/value/object
    fields, or a dict of them) judged against `detect`'s output. Text and style checks, and things that are not
    shapes of this world, are "no"."""
    if isinstance(check, str):
        kind, subject, value, obj = _fields(check)
    else:
        get = check.get if isinstance(check, dict) else lambda k: getattr(check, k, None)
        kind, subject, value, obj = get("kind"), get("subject") or "", get("value"), get("object")
    seen = _seen(detections)
    thing = _thing(subject)
    if kind in ("text", "style", "other") or thing is None:
        return "no", f"I see only shapes: {seen}"
    where = _matching(thing, detections)
    name = " ".join(p for p in thing if p)
    if kind == "entity":
        return ("yes", f"there is a {name}") if where else ("no", f"no {name}; I see {seen}")
    if kind == "absent":
        return ("no", f"there is a {name}") if where else ("yes", f"no {name}; I see {seen}")
    if kind == "count":
        raw = (value or "").lower()
        n = int(raw) if raw.isdigit() else NUMBERS.get(raw, -1)
        return ("yes" if len(where) == n else "no"), f"I count {len(where)} {name}"
    if kind == "attribute":
        colour = (value or "").lower()
        if colour not in PALETTE:
            return "no", f"I cannot see '{value}'"
        hits = _matching((colour, thing[1]), detections)
        return ("yes", f"the {thing[1]} is {colour}") if hits else ("no", f"no {colour} {thing[1]}; I see {seen}")
    if kind == "relation":
        other = _thing(obj)
        test = _RELATIONS.get((value or "").lower())
        if other is None or test is None:
            return "no", f"cannot judge '{value}'"
        there = _matching(other, detections)
        ok = any(test(a, b) for a in where for b in there if a != b)
        return ("yes" if ok else "no"), f"the {name} is {'' if ok else 'not '}{value} the {' '.join(p for p in other if p)}"
    return "no", f"I see only shapes: {seen}"
