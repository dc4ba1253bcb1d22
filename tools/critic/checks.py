"""`CLIPCheckCritic`: each check of the checklist scored by CLIP against a contrast text, `absent` inverted.

CLIPScore for a whole idea is blind to counts, negation and relations (the VQAScore and DSG papers), so each check
becomes a pair of texts that differ only in what the check asks, and CLIP says which of the two fits the image:

- entity "a photo of a kitten" vs "a photo". The contrast is the bare template, not the idea without the subject:
  the idea's other things may be in the image too, so the idea minus "kitten" would score high for reasons that
  have nothing to do with the kitten (and "a red in a basket" is not English). The bare template only asks
  whether naming a kitten makes the caption fit better than naming nothing.
- attribute "a photo of a red kitten" vs "a photo of a kitten": the property alone.
- count "a photo of three apples" vs the neighbouring counts ("two apples", "four apples"); it must beat each.
- style "a watercolor painting of X" vs "a photo of X" (vs "a painting of X" for a photographic style), where X is
  the idea with the style words taken out.
- absent: the entity pair of the thing that must not be there, inverted. It passes exactly when the entity check
  of the same thing would fail, so "people" and "no people" never both pass.
- relation and text: `passed=None`, unverified: CLIP cannot tell "a cat on a dog" from "a dog on a cat", nor read.

P(yes) = softmax(s * cos(image, text), s * cos(image, contrast))[0] with the model's own logit scale s (100 for
OpenAI CLIP), against the strongest contrast where there are several; a check passes when P(yes) > 0.5 + margin
(`CHECK_MARGIN`, see thresholds.py). Every unique text of a review is embedded once, in one forward pass; images go
in batches of 16. Verdicts are the raw per-check answers: `alignment` (and the agent) apply DSG's dependencies.

Example (the texts are a pure function; scoring needs CLIP weights, so it is not run here):
    >>> from types import SimpleNamespace as C
    >>> def check(kind, subject, value=None):
    ...     return C(id=1, kind=kind, subject=subject, value=value, object=None, question="", depends_on=[])
    >>> check_texts(check("attribute", "kitten", "orange"), "an orange kitten")
    CheckTexts(text='a photo of an orange kitten', contrasts=('a photo of a kitten',), inverted=False)
    >>> check_texts(check("count", "apples", "3"), "three apples").contrasts
    ('a photo of two apples', 'a photo of four apples')
    >>> check_texts(check("relation", "cat", "on"), "a cat on a mat") is None
    True
    >>> critic = CLIPCheckCritic("path/to/clip")  # doctest: +SKIP
    >>> [review] = critic.review([image], checks, "a red kitten in a basket, no people")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ideaforge.tools.critic.scorer as scorer
from ideaforge.errors import InputError
from ideaforge.tools._lazy import heavy_import
from ideaforge.tools.critic.scorer import CLIPCritic
from ideaforge.tools.critic.thresholds import CHECK_MARGIN, DEFAULT_MODEL
from ideaforge.tools.critic.verdicts import CheckLike, Review, Verdict, alignment

UNJUDGED = {
    "relation": "CLIP cannot judge relations/written text",
    "text": "CLIP cannot judge relations/written text",
}
TEMPLATE = "a photo"

_NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty").split()
_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
              "goose": "geese", "foot": "feet", "tooth": "teeth", "ox": "oxen", "die": "dice", "leaf": "leaves",
              "wolf": "wolves", "knife": "knives", "shelf": "shelves", "loaf": "loaves", "calf": "calves"}
_SINGULAR = {v: k for k, v in _IRREGULAR.items()}
_SAME = {"sheep", "fish", "deer", "moose", "bison", "aircraft", "salmon", "trout", "series", "species"}
_MASS = {"water", "grass", "sand", "snow", "rain", "fog", "mist", "smoke", "fire", "hair", "food", "bread", "milk",
         "coffee", "tea", "wine", "beer", "juice", "money", "furniture", "light", "sunlight", "moonlight", "lava",
         "ice", "foliage", "jewelry", "clothing", "text", "writing", "blood", "mud", "dust", "rice", "soup"}
# Words that start a modifier written after the noun: "a kitten made of wool", "a girl wearing a hat".
_AFTER = {"made", "with", "in", "of", "wearing", "holding", "covered", "full", "on", "from", "without", "dressed",
          "filled", "carrying", "under", "behind", "near", "at", "inside", "like"}
_PAINT = {"watercolor", "watercolour", "oil", "acrylic", "gouache", "tempera", "fresco", "impasto"}
_DRAW = {"pencil", "charcoal", "ink", "pastel", "crayon", "chalk", "graphite", "biro", "marker"}
_MEDIUM = {"painting", "drawing", "sketch", "illustration", "render", "rendering", "photo", "photograph", "artwork",
           "print", "engraving", "etching", "woodcut", "mosaic", "sculpture", "cartoon", "comic", "poster",
           "lithograph", "collage", "portrait", "photography", "screenshot", "still", "image", "picture"}
_PHOTO = ("photo", "photograph", "photography", "photorealistic", "realistic", "35mm", "dslr", "polaroid", "film")


@dataclass(frozen=True)
class CheckTexts:
    """The CLIP texts of one check: it passes when `text` beats every one of `contrasts` (inverted: does not)."""

    text: str
    contrasts: tuple[str, ...]
    inverted: bool = False


def check_texts(check: CheckLike, idea: str = "") -> CheckTexts | None:
    """The text and contrast texts for `check`, or None for what CLIP cannot judge (relations, written text).

    Example:
        >>> from types import SimpleNamespace as C
        >>> absent = C(id=4, kind="absent", subject="people", value=None, object=None, question="", depends_on=[])
        >>> check_texts(absent)
        CheckTexts(text='a photo of people', contrasts=('a photo',), inverted=True)
        >>> style = C(id=5, kind="style", subject="image", value="watercolor", object=None, question="",
        ...           depends_on=[])
        >>> check_texts(style, "a red kitten, watercolor")
        CheckTexts(text='a watercolor painting of a red kitten', contrasts=('a photo of a red kitten',), inverted=False)
    """
    kind = check.kind
    subject = _bare(check.subject or "")
    value = " ".join((check.value or "").split())
    if kind in ("entity", "absent"):
        if not subject:
            return None
        return CheckTexts(f"{TEMPLATE} of {_a(subject)}", (TEMPLATE,), inverted=kind == "absent")
    if kind == "attribute":
        if not subject or not value:
            return None
        first = value.split()[0].lower()
        after = first in _AFTER or (first.endswith("ing") and " " in value)
        phrase = f"{subject} {value}" if after else f"{value} {subject}"
        return CheckTexts(f"{TEMPLATE} of {_a(phrase)}", (f"{TEMPLATE} of {_a(subject)}",))
    if kind == "count":
        return _count_texts(subject, value) if subject and value else None
    if kind == "style":
        style = value or subject
        if not style or style.lower() in ("image", "picture"):
            return None
        scene = _without(idea, style) or "a scene"
        photographic = any(w in _PHOTO for w in style.lower().split())
        contrast = f"a painting of {scene}" if photographic else f"a photo of {scene}"
        return CheckTexts(_styled(style, scene), (contrast,))
    return None


def _count_texts(subject: str, value: str) -> CheckTexts | None:
    n = _number(value)
    one, many = _singular(subject), _plural(subject)
    if n is None:  # "several", "a few", "many": more than one, so it must beat "one apple"
        return CheckTexts(f"{TEMPLATE} of {value} {many}", (f"{TEMPLATE} of one {one}",))
    if n < 1:
        return None
    neighbours = [m for m in (n - 1, n + 1) if m >= 1]
    return CheckTexts(_counted(n, one, many), tuple(_counted(m, one, many) for m in neighbours))


def _counted(n: int, one: str, many: str) -> str:
    word = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    return f"{TEMPLATE} of {word} {one if n == 1 else many}"


def _number(value: str) -> int | None:
    v = value.strip().lower()
    if v.isascii() and v.isdigit() and len(v) < 7:
        return int(v)
    return _NUMBERS.index(v) if v in _NUMBERS else None


def _styled(style: str, scene: str) -> str:
    words = style.lower().split()
    if words[-1] in _MEDIUM:
        return f"{_a(style)} of {scene}"
    if words[-1] in _PAINT:
        return f"{_a(style)} painting of {scene}"
    if words[-1] in _DRAW:
        return f"{_a(style)} drawing of {scene}"
    if words[-1] in ("art", "style"):
        return f"{_a(style)} image of {scene}"  # "a pixel art image of X"
    return f"{_a(style)} style image of {scene}"  # "a cyberpunk style image of X"


def _without(idea: str, style: str) -> str:
    """The idea with the style's words (and the commas they leave) taken out."""
    text = " ".join((idea or "").split())
    text = re.sub(rf"\b{re.escape(style)}\b(\s+(style|painting|drawing|art))?", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    return re.sub(r"\s+", " ", text).strip(" ,;.")


def _bare(subject: str) -> str:
    words = subject.split()
    if len(words) > 1 and words[0].lower() in ("a", "an", "the", "some"):
        words = words[1:]
    return " ".join(words)


def _is_plural(phrase: str) -> bool:
    last = phrase.split()[-1].lower() if phrase.split() else ""
    if last in _SINGULAR:
        return True
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ys")) and last not in _SAME


def _a(phrase: str) -> str:
    """'kitten' -> 'a kitten', 'orange cat' -> 'an orange cat'; plurals and mass nouns keep no article."""
    last = phrase.split()[-1].lower()
    if _is_plural(phrase) or last in _MASS:
        return phrase
    first = phrase.lower()
    vowel = first[:1] in "aeiou" and not first.startswith(("uni", "use", "usu", "eu", "one"))
    return ("an " if vowel or first.startswith(("hour", "honest", "heir")) else "a ") + phrase


def _plural(phrase: str) -> str:
    *head, last = phrase.split()
    low = last.lower()
    if _is_plural(phrase) or low in _SAME:
        word = last
    elif low in _IRREGULAR:
        word = _IRREGULAR[low]
    elif low.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return " ".join([*head, word])


def _singular(phrase: str) -> str:
    *head, last = phrase.split()
    low = last.lower()
    if not _is_plural(phrase):
        word = last
    elif low in _SINGULAR:
        word = _SINGULAR[low]
    elif low.endswith("ies") and len(low) > 4:
        word = last[:-3] + "y"
    elif low.endswith(("ches", "shes", "sses", "xes", "zes")):
        word = last[:-2]
    else:
        word = last[:-1]
    return " ".join([*head, word])


class CLIPCheckCritic:
    """Verifies a checklist with CLIP, one text-vs-contrast pair per check (see the module docstring).

    Args:
        model: Hub id or a folder holding a saved CLIPModel + CLIPProcessor (shared with `CLIPCritic`'s cache).
        device: "cuda", "mps" or "cpu"; default the best available.
        dtype: torch dtype or its name; default float16 on CUDA, float32 elsewhere.
        margin: a check passes when P(yes) > 0.5 + margin; default `CHECK_MARGIN` (0.1).

    Example:
        >>> critic = CLIPCheckCritic("path/to/clip", device="cpu")  # doctest: +SKIP
        >>> [review] = critic.review([image], checks, "a red kitten, no people")  # doctest: +SKIP
        >>> [(v.check, v.passed, round(v.probability, 2)) for v in review.verdicts]  # doctest: +SKIP
        [(1, True, 0.83), (2, False, 0.41), (3, True, 0.77)]
    """

    name = "clip"

    def __init__(
        self, model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None, margin: float = CHECK_MARGIN
    ) -> None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin < 0.5:
            raise InputError(f"margin {margin!r} is out of range; a P(yes) margin is in [0, 0.5), e.g. {CHECK_MARGIN}")
        self._scorer = CLIPCritic(model, device=device, dtype=dtype)
        self.margin = float(margin)

    def __repr__(self) -> str:
        return f"CLIPCheckCritic(model={self.model!r}, margin={self.margin!r})"

    @property
    def model(self) -> str:
        return self._scorer.model

    @property
    def clip(self) -> Any:
        """The loaded `transformers.CLIPModel` (the one `CLIPCritic` shares), or None before load()."""
        return self._scorer.clip

    def load(self) -> CLIPCheckCritic:
        """Load (or reuse) the model; returns self. Raises ModelNotFoundError with the fix."""
        self._scorer.load()
        return self

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        """One `Review` per image with one `Verdict` per check, in order; `calls` counts forward passes.

        The text pass is counted on the first review, each image batch on the review of its first image, so the
        reviews' calls add up to the passes made; the seconds are shared out evenly.
        """
        if not images:
            return []
        t0 = time.perf_counter()
        plans = [check_texts(c, idea) for c in checks]
        texts = list(dict.fromkeys(t for p in plans if p for t in (p.text, *p.contrasts)))
        n = len(images)
        calls = [0] * n
        logits: list[list[float]] = [[] for _ in range(n)]
        warnings: list[str] = []
        if texts:
            torch = heavy_import("torch")

            self._scorer.load()
            text_emb, truncated = self._scorer._embed_texts(texts)
            image_emb = self._scorer._embed_images(list(images))
            scale = float(self._scorer.clip.logit_scale.detach().exp())
            logits = (scale * image_emb @ text_emb.T).to(torch.float32).tolist()
            calls[0] += 1
            for start in range(0, n, scorer._IMAGE_BATCH):
                calls[start] += 1
            warnings = [f"CLIP text cut to 77 tokens: {t[:80]!r}" for t in truncated]
        column = {t: i for i, t in enumerate(texts)}
        each = (time.perf_counter() - t0) / n
        reviews = []
        for i in range(n):
            verdicts = [self._verdict(c, p, logits[i], column) for c, p in zip(checks, plans)]
            reviews.append(Review(verdicts, alignment(verdicts, checks), critic=self.name, calls=calls[i],
                                  seconds=each, warnings=list(warnings)))
        return reviews

    def _verdict(self, check: CheckLike, plan: CheckTexts | None, row: list[float], column: dict[str, int]) -> Verdict:
        if plan is None:
            why = UNJUDGED.get(check.kind, f"CLIP cannot judge this {check.kind} check")
            return Verdict(check.id, None, None, why, self.name)
        score = row[column[plan.text]]
        rival = max(plan.contrasts, key=lambda t: row[column[t]])
        present = 1.0 / (1.0 + math.exp(min(max(row[column[rival]] - score, -60.0), 60.0)))  # 2-way softmax
        seen = present > 0.5 + self.margin
        # absent: the same "is it there?" test as an entity, answered the other way round
        passed, probability = (not seen, 1.0 - present) if plan.inverted else (seen, present)
        reason = f"{plan.text!r} {'beats' if seen else 'does not beat'} {rival!r}"
        return Verdict(check.id, passed, probability, f"{reason} (P(yes)={probability:.2f})", self.name)
