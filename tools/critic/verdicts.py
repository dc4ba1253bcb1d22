"""What every critic returns: a verdict per check, an alignment score, an optional quality score and the cost.

A critic verifies a spec's checklist (atomic yes/no checks, Davidsonian Scene Graph style) on images. The tools
layer does not know the agent's `Check` model, so critics take anything shaped like one (`CheckLike`).

- `Verdict`: one check on one image. `passed` is True, False, or None when the critic cannot judge that kind of
  check (CLIP and written text): unverified, not guessed.
- `Review`: one image. `alignment` is the share of judged checks passed, where a check whose parent failed counts
  as failed (DSG); `quality` is a preference score where one was asked for; `calls` and `seconds` are the cost.
- `Critic`: the protocol, `review(images, checks, idea) -> one Review per image`.

Example:
    >>> from types import SimpleNamespace as C
    >>> checks = [C(id=1, kind="entity", subject="kitten", value=None, object=None, question="Is there a kitten?",
    ...             depends_on=[]),
    ...           C(id=2, kind="attribute", subject="kitten", value="red", object=None, question="Is the kitten red?",
    ...             depends_on=[1]),
    ...           C(id=3, kind="text", subject="sign", value="OPEN", object=None, question="...", depends_on=[])]
    >>> verdicts = [Verdict(1, False, 0.2, "no cat"), Verdict(2, True, 0.9, "red"), Verdict(3, None, None, "")]
    >>> alignment(verdicts, checks)  # the kitten is missing, so "red" fails too; text is not judged
    0.0
    >>> [v.passed for v in dependent(verdicts, checks)]
    [False, False, None]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable


class CheckLike(Protocol):
    """The fields of `ideaforge.agent.models.Check` a critic reads."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def value(self) -> str | None: ...
    @property
    def object(self) -> str | None: ...
    @property
    def question(self) -> str: ...
    @property
    def depends_on(self) -> list[int]: ...


@dataclass
class Verdict:
    """One check on one image: passed (None: this critic cannot judge it), P(yes) where known, a short reason."""

    check: int
    passed: bool | None
    probability: float | None = None
    reason: str = ""
    critic: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Review:
    """One image's verdicts and scores, and what they cost (`calls` requests or forward passes, `seconds`)."""

    verdicts: list[Verdict]
    alignment: float | None  # None: no check could be judged
    quality: float | None = None
    critic: str = ""
    calls: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for v in self.verdicts if v.passed)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.passed is False]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Critic(Protocol):
    """Verifies checklists on images. `name` is what records and the CLI show (`clip`, `vlm`, `vlm+clip`)."""

    name: str

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        """One `Review` per image, in order, with one `Verdict` per check, in the checks' order."""
        ...


def dependent(verdicts: Sequence[Verdict], checks: Sequence[CheckLike]) -> list[Verdict]:
    """The verdicts with DSG's rule applied: a check whose parent (transitively) failed fails too."""
    by_id = {v.check: v for v in verdicts}
    parents = {c.id: list(c.depends_on) for c in checks}
    memo: dict[int, bool] = {}

    def parent_failed(cid: int, seen: frozenset[int] = frozenset()) -> bool:
        if cid in memo:
            return memo[cid]
        out = False
        for p in parents.get(cid, []):
            if p in seen:
                continue
            pv = by_id.get(p)
            if (pv is not None and pv.passed is False) or parent_failed(p, seen | {cid}):
                out = True
                break
        memo[cid] = out
        return out

    out = []
    for v in verdicts:
        if v.passed and parent_failed(v.check):
            out.append(replace(v, passed=False, reason=(v.reason + "; " if v.reason else "") + "its subject is missing"))
        else:
            out.append(v)
    return out


def alignment(verdicts: Sequence[Verdict], checks: Sequence[CheckLike]) -> float | None:
    """Share of judged checks passed, after `dependent`; None when no check was judged."""
    judged = [v for v in dependent(verdicts, checks) if v.passed is not None]
    if not judged:
        return None
    return sum(1 for v in judged if v.passed) / len(judged)
