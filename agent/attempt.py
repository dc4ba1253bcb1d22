"""One attempt of the critic loop: generate a candidate's images, score them, save each usable one with its record.

`Event` is the progress the forge reports to UIs while it works; `Plan` is one run's validated values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent import critics
from ideaforge.agent.critics import is_checklist_critic
from ideaforge.agent.models import Attempt, ImageRecord, PromptSpec, Review, Scores
from ideaforge.agent.record import PngRecord
from ideaforge.agent.settings import Settings


@dataclass
class Event:
    """Progress for UIs: `stage` is one of prompt, generate, critic, saved, revise, done.

    A `critic` event with `data["review"]` carries the best image's verdicts (a `Review` as a dict)."""

    stage: str
    round: int = 0
    candidate: int = 0
    step: int = 0
    total: int = 0
    preview: Any = None  # a small PIL image during denoising, now and then
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


OnEvent = Callable[[Event], None]


@dataclass
class Plan:
    """One run's validated values: the settings, the first seed and the generation parameters."""

    settings: Settings
    seed: int
    gen: Any
    loras: list[str] = field(default_factory=list)  # as SOURCE:SCALE, for the record
    tags: dict[str, Any] = field(default_factory=dict)  # extra keys for every image's PNG record


def make_attempt(
    round_no: int,
    candidate: int,
    spec: PromptSpec,
    seed: int,
    plan: Plan,
    generator: Any,
    scorer: Any,
    emit: OnEvent,
    cancel: threading.Event | None,
    times: dict[str, float],
) -> Attempt:
    """Generate one candidate's images, score them, and save each usable one as a PNG with its record."""
    from ideaforge.tools.diffusion import ImageRequest
    from ideaforge.tools.metadata import a1111_parameters, save_png

    n = plan.settings.n
    requests = [
        ImageRequest(positive=spec.positive, negative=spec.negative, seed=(seed + i) % 2**32,
                     prompt_2=spec.positive_2, prompt_3=spec.positive_3)
        for i in range(n)
    ]

    def on_step(ev: Any) -> None:
        emit(Event("generate", round=round_no, candidate=candidate, step=ev.step, total=ev.total, preview=ev.preview))

    emit(Event("generate", round=round_no, candidate=candidate, message="generating"))
    t0 = time.perf_counter()
    # The n requests already carry the n seeds; the tool would otherwise render n images for each of them.
    one_each = plan.gen.model_copy(update={"n": 1})
    images = generator.generate(requests, one_each, on_step=on_step, cancel=cancel)
    t_gen = time.perf_counter() - t0
    scores: list[Any] = []
    reviews: list[Review | None] = []
    t_critic = 0.0
    if scorer is not None:
        emit(Event("critic", round=round_no, candidate=candidate, message="checking"))
        t1 = time.perf_counter()
        good = [g.image for g in images if usable(g)]
        if is_checklist_critic(scorer):
            done = iter(critics.review(scorer, good, spec)) if good else iter(())
            reviews = [next(done) if usable(g) else None for g in images]
        else:
            scored = iter(scorer.score(good, spec.idea_en, spec.elements)) if good else iter(())
            scores = [next(scored) if usable(g) else None for g in images]
        t_critic = time.perf_counter() - t1
    attempt = Attempt(
        round=round_no,
        candidate=candidate,
        spec=spec,
        seed=seed,
        seconds={"prompt": round(times.get("prompt", 0.0), 4), "generate": round(t_gen, 4), "critic": round(t_critic, 4)},
    )
    times["prompt"] = 0.0
    for i, g in enumerate(images):
        s = scores[i] if scores else None
        rec = ImageRecord(seed=g.seed, flagged=g.flagged, error=getattr(g, "error", None), warnings=list(g.warnings))
        rec.review = reviews[i] if reviews else None
        if s is not None:
            rec.scores = Scores(
                idea=round(s.idea, 4),
                elements={k: round(v, 4) for k, v in s.elements.items()},
                weak=list(s.critique.weak),
                critique=s.critique.text,
                truncated=list(s.truncated),
            )
        attempt.settings = {
            "model": g.model, "scheduler": g.scheduler, "steps": g.steps, "guidance": g.guidance,
            "size": f"{g.width}x{g.height}", "loras": list(plan.loras),
        }
        if usable(g):
            record = png_record(spec, g, rec, attempt, plan).model_dump(mode="json")
            params = a1111_parameters(
                spec.positive, spec.negative, steps=g.steps,
                sampler=g.sampler, cfg_scale=g.guidance, seed=g.seed, width=g.width, height=g.height,
                model=g.model, extra=_a1111_extra(g, round_no),
            )
            out_dir = Path(plan.settings.out)
            t_save = time.perf_counter()
            rec.path = str(save_png(g.image, out_dir, idea=spec.idea, seed=g.seed, parameters=params, record=record))
            attempt.seconds["save"] = round(attempt.seconds.get("save", 0.0) + time.perf_counter() - t_save, 4)
            emit(Event("saved", round=round_no, candidate=candidate, message=rec.path, data={"path": rec.path}))
        attempt.images.append(rec)
    best = attempt.best_image()
    if best is not None and best.review is not None:
        if best.review.alignment is not None:
            attempt.score = best.review.alignment
        attempt.quality = best.review.quality
        attempt.failed = best.review.failed()
        attempt.critique = "\n".join(critics.failed_lines(spec, best.review)) or "every check passed"
        by_id = {c.id: c for c in critics.checks_of(spec)}
        attempt.weak = list(dict.fromkeys(by_id[c].subject for c in attempt.failed if c in by_id))
        if best.review.warnings:
            emit(Event("critic", round=round_no, candidate=candidate, message="; ".join(best.review.warnings)))
    elif best is not None and best.scores is not None:
        attempt.score = best.scores.idea
        attempt.critique = best.scores.critique
        attempt.weak = best.scores.weak
    if best is not None and best.review is not None:
        emit(Event("critic", round=round_no, candidate=candidate, message=f"{best.review.passed}/{best.review.judged} "
                   "checks passed", data={"review": best.review.model_dump()}))
    return attempt

def png_record(spec: PromptSpec, g: Any, rec: ImageRecord, attempt: Attempt, plan: Plan) -> PngRecord:
    """The PNG's JSON record, from an allow-list of typed fields: no secret can slip in."""
    from ideaforge.tools.metadata import package_versions

    return PngRecord(
        idea=spec.idea,
        idea_en=spec.idea_en,
        positive=spec.positive,
        negative=spec.negative,
        elements=spec.elements,
        checks=list(spec.checks),
        style=spec.style,
        language=spec.language,
        engine=spec.engine,
        model=g.model,
        scheduler=g.scheduler,
        seed=g.seed,
        steps=g.steps,
        guidance=g.guidance,
        size=f"{g.width}x{g.height}",
        loras=list(plan.loras),
        family=getattr(g, "family", None) or None,
        prompts=dict(getattr(g, "prompts", {}) or {}),
        options=dict(getattr(g, "options", {}) or {}),
        round=attempt.round,
        candidate=attempt.candidate,
        scores=rec.scores,
        review=rec.review,
        warnings=[*spec.warnings, *g.warnings, *(rec.review.warnings if rec.review else [])],
        versions=package_versions(),
        batch=plan.tags.get("batch"),
    )


def _a1111_extra(g: Any, round_no: int) -> dict[str, Any] | None:
    """Keys beyond the sampler line: Forge's "Schedule type" (sd3/flux) and the loop's round after the first."""
    extra: dict[str, Any] = {}
    if getattr(g, "schedule_type", None):
        extra["Schedule type"] = g.schedule_type
    if round_no > 1:
        extra["ideaforge round"] = round_no
    return extra or None


def usable(image: Any) -> bool:
    """Not flagged by the safety checker and not broken (all black); test doubles may lack `error`."""
    return not image.flagged and getattr(image, "error", None) is None
