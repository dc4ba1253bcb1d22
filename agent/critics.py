"""The critic a run uses, built from the settings, and its reviews in the agent's models.

`build_critic(settings)` gives the `--critic` choice (`clip`, `vlm`, `vlm+clip`), with a quality score beside the
verdicts: the `--preference` model where one is set, else (with CLIP in the critic) CLIP's idea score on the
CLIPScore scale. `vlm` falls back to CLIP, per image and with a warning, when the server fails. Nothing is loaded
until the first review.

`review(critic, images, spec)` turns the tools layer's reviews into `Review` records; `failed_lines` words the
failed checks for the reviser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ideaforge.agent.models import Check, CheckVerdict, PromptSpec, Review
from ideaforge.errors import InputError


def is_checklist_critic(critic: Any) -> bool:
    """A critic that verifies checks (`review`), rather than a scorer with one score per image (`score`)."""
    return critic is not None and callable(getattr(critic, "review", None))


def checks_of(spec: PromptSpec) -> list[Check]:
    """The spec's checklist; a spec without one (an older record) gets one existence check per element."""
    if spec.checks:
        return list(spec.checks)
    return [Check(id=i, kind="entity", subject=e, question=f"Does the image show {e}?")
            for i, e in enumerate(spec.elements or [spec.idea_en], start=1)]


def build_critic(settings: Any) -> Any:
    """The configured checklist critic, with its quality score. Raises `InputError` for a VLM without a server."""
    from ideaforge.tools.critic import CLIPCheckCritic, CLIPCritic, Fallback, Merged, WithQuality

    clip = CLIPCheckCritic(settings.clip_model, device=settings.device)
    if settings.critic == "clip":
        critic: Any = clip
    else:
        vlm = vlm_critic(settings)
        critic = Fallback(vlm, clip) if settings.critic == "vlm" else Merged(vlm, clip)
    if settings.preference:
        from ideaforge.tools.critic import PreferenceScorer

        preference = PreferenceScorer(settings.preference, device=settings.device)
        return WithQuality(critic, lambda images, idea: preference.score(list(images), idea), label=preference.label)
    if settings.critic == "vlm":
        return critic  # CLIP is loaded only if the VLM fails; no quality score without --preference
    idea_scorer = CLIPCritic(settings.clip_model, device=settings.device)

    def idea_score(images: Sequence[Any], idea: str) -> list[float]:
        return [s.idea for s in idea_scorer.load().score(list(images), idea, [])]

    return WithQuality(critic, idea_score, label="CLIP idea")


def vlm_critic(settings: Any) -> Any:
    from ideaforge.tools.critic import VLMCritic

    key = settings.vlm_api_key
    if not settings.vlm_base_url and not (key and key.get_secret_value()):
        raise InputError(
            f"critic {settings.critic!r} needs a vision LLM server: pass --vlm-base-url (e.g. "
            "http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama) or set OPENAI_API_KEY"
        )
    return VLMCritic(
        base_url=settings.vlm_base_url,
        model=settings.vlm_model,
        api_key=key,
        timeout=settings.vlm_timeout,
        max_retries=settings.vlm_max_retries,
        method=settings.vlm_method,
        max_side=settings.vlm_max_side,
        concurrency=settings.vlm_concurrency,
    )


def review(critic: Any, images: Sequence[Any], spec: PromptSpec) -> list[Review]:
    """One `Review` per image (in order) from a checklist critic."""
    checks = checks_of(spec)
    out = []
    for r in critic.review(list(images), checks, spec.idea_en):
        verdicts = [CheckVerdict(check=v.check, passed=v.passed, probability=_prob(v.probability),
                                 reason=" ".join(str(v.reason).split())[:400], critic=v.critic or r.critic)
                    for v in r.verdicts]
        verdicts = _dependent(verdicts, checks)  # DSG: a check whose parent failed fails too
        judged = [v for v in verdicts if v.passed is not None]
        out.append(Review(
            critic=r.critic or getattr(critic, "name", ""),
            verdicts=verdicts,
            alignment=None if r.alignment is None else round(float(r.alignment), 4),
            passed=sum(1 for v in judged if v.passed),
            judged=len(judged),
            quality=None if r.quality is None else round(float(r.quality), 4),
            calls=int(r.calls),
            seconds=round(float(r.seconds), 4),
            warnings=list(r.warnings),
        ))
    return out


def failed_lines(spec: PromptSpec, review: Review | None) -> list[str]:
    """The failed checks as the reviser reads them: '[3] Is the kitten red? -> no (it is orange)'."""
    if review is None:
        return []
    by_id = {c.id: c for c in checks_of(spec)}
    lines = []
    for v in review.verdicts:
        if v.passed is False and v.check in by_id:
            why = f" ({v.reason})" if v.reason else ""
            lines.append(f"[{v.check}] {by_id[v.check].question} -> no{why}")
    return lines


def _prob(p: float | None) -> float | None:
    return None if p is None else round(min(max(float(p), 0.0), 1.0), 4)


def _dependent(verdicts: list[CheckVerdict], checks: list[Check]) -> list[CheckVerdict]:
    from ideaforge.tools.critic.verdicts import Verdict, dependent

    done = dependent([Verdict(v.check, v.passed, reason=v.reason) for v in verdicts], checks)
    return [v.model_copy(update={"passed": d.passed, "reason": d.reason[:400]}) for v, d in zip(verdicts, done, strict=True)]
