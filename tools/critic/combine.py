"""Critics made of critics: a fallback when the first fails, `vlm+clip`, and a quality score beside the verdicts.

- `Fallback(primary, backup)`: the primary's reviews, or, when it raises (a dead VLM server, garbage after the
  repair round), the backup's, with the reason in every review's warnings. Once the primary failed, the next
  `cooldown` seconds go straight to the backup instead of waiting for a dead server again.
- `Merged(vlm, clip)`: the `vlm+clip` critic. The VLM decides every check it judged; CLIP judges what the VLM
  left unverified; where both give P(yes), the recorded probability is their mean.
- `WithQuality(critic, score)`: adds a quality score per image (a preference model such as PickScore, or CLIP's
  idea score) to each review; `score(images, idea) -> list[float]`.

Example:
    >>> from types import SimpleNamespace as C
    >>> checks = [C(id=1, kind="entity", subject="cat", value=None, object=None, question="Is there a cat?",
    ...             depends_on=[])]
    >>> class Dead:
    ...     name = "vlm"
    ...     def review(self, images, checks, idea):
    ...         raise ConnectionError("connection refused")
    >>> class Yes:
    ...     name = "clip"
    ...     def review(self, images, checks, idea):
    ...         return [Review([Verdict(c.id, True, 0.8, "", "clip") for c in checks], 1.0, critic="clip")
    ...                 for _ in images]
    >>> [r] = Fallback(Dead(), Yes()).review(["img"], checks, "a cat")
    >>> r.critic, r.alignment, r.warnings
    ('vlm (fallback clip)', 1.0, ['the vlm critic failed (connection refused); judged by clip instead'])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ideaforge.tools.critic.verdicts import CheckLike, Critic, Review, Verdict, alignment


def _why(exc: BaseException) -> str:
    from ideaforge.tools.sanitize import redact

    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text[:200])


class Fallback:
    """The primary critic, or the backup when the primary raises; the switch is recorded in the warnings."""

    def __init__(self, primary: Critic, backup: Critic, *, cooldown: float = 120.0) -> None:
        self.primary, self.backup, self.cooldown = primary, backup, cooldown
        self.name = primary.name
        self._failed_at: float | None = None
        self._why = ""
        self._lock = threading.Lock()

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        with self._lock:
            recent = self._failed_at is not None and time.monotonic() - self._failed_at < self.cooldown
            why = self._why
        if not recent:
            try:
                return self.primary.review(images, checks, idea)
            except Exception as exc:  # noqa: BLE001 - any failure of the primary is answered by the backup
                why = _why(exc)
                with self._lock:
                    self._failed_at, self._why = time.monotonic(), why
        note = f"the {self.primary.name} critic failed ({why}); judged by {self.backup.name} instead"
        out = []
        for r in self.backup.review(images, checks, idea):
            out.append(replace(r, critic=f"{self.primary.name} (fallback {self.backup.name})", warnings=[note, *r.warnings]))
        return out


class Merged:
    """`vlm+clip`: the VLM's verdicts, CLIP's where the VLM gave none, probabilities averaged where both gave one."""

    def __init__(self, vlm: Critic, clip: Critic) -> None:
        self.vlm, self.clip = vlm, clip
        self.name = f"{vlm.name}+{clip.name}"

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        clip_reviews = self.clip.review(images, checks, idea)
        try:
            vlm_reviews = self.vlm.review(images, checks, idea)
        except Exception as exc:  # noqa: BLE001 - CLIP's verdicts stand alone, with the reason recorded
            note = f"the {self.vlm.name} critic failed ({_why(exc)}); judged by {self.clip.name} alone"
            return [replace(r, critic=f"{self.name} (fallback {self.clip.name})", warnings=[note, *r.warnings])
                    for r in clip_reviews]
        out = []
        for v_review, c_review in zip(vlm_reviews, clip_reviews, strict=True):
            by_check = {v.check: v for v in c_review.verdicts}
            verdicts = []
            for v in v_review.verdicts:
                c = by_check.get(v.check)
                if v.passed is None and c is not None and c.passed is not None:
                    verdicts.append(c)
                    continue
                probs = [p for p in (v.probability, c.probability if c else None) if p is not None]
                verdicts.append(replace(v, probability=sum(probs) / len(probs) if probs else None, critic=self.name))
            out.append(Review(
                verdicts=verdicts, alignment=alignment(verdicts, checks), quality=v_review.quality, critic=self.name,
                calls=v_review.calls + c_review.calls, seconds=v_review.seconds + c_review.seconds,
                warnings=[*v_review.warnings, *c_review.warnings],
            ))
        return out


class WithQuality:
    """Adds `score(images, idea)` (one float per image) to each review as its quality, timed into its cost."""

    def __init__(self, critic: Critic, score: Callable[[Sequence[Any], str], list[float]], *, label: str) -> None:
        self.critic, self.quality_of, self.label = critic, score, label
        self.name = critic.name

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        reviews = self.critic.review(images, checks, idea)
        if not images:
            return reviews
        t0 = time.perf_counter()
        try:
            qualities = self.quality_of(images, idea)
        except Exception as exc:  # noqa: BLE001 - verdicts without a quality score are still verdicts
            note = f"the {self.label} score failed ({_why(exc)}); ranked by checks alone"
            return [replace(r, warnings=[*r.warnings, note]) for r in reviews]
        each = (time.perf_counter() - t0) / len(images)
        return [replace(r, quality=float(q), seconds=r.seconds + each, calls=r.calls + (i == 0))
                for i, (r, q) in enumerate(zip(reviews, qualities, strict=True))]


__all__ = ["Fallback", "Merged", "Review", "Verdict", "WithQuality"]
