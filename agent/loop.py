"""The check-and-repair loop, written as a loop.

Each round generates one attempt per candidate prompt and the critic reviews them; the best attempt so far is kept
(most checks passed, then the highest quality). After a round the failed checks decide the next step:

- **repair**: some failed check has had fewer than `REPAIRS_PER_CHECK` revisions, so the prompt is revised for
  the failed checks (each revision stresses a check more);
- **reseed**: every failed check was already repaired that often, so the prompt already says everything and the
  image missed it: the same prompt is sampled again with new seeds (seed search);
- **stop**: every check passed (or the score met the threshold), a budget is spent (rounds, images, seconds, LLM
  calls), or two rounds in a row brought no gain.

Without a critic it is a single round. A critic that only gives one score per image (a scorer with `.score()`)
has no failed checks; every round after the first is then a plain revision.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ideaforge.agent.models import Attempt, PromptSpec, RunResult

# produce(round, candidate, spec, seed) -> Attempt: generate, review and save one candidate.
Produce = Callable[[int, int, PromptSpec, int], Attempt]
# revise(best_attempt, all_attempts, how_many) -> new candidate specs, for the best attempt's failed checks.
Revise = Callable[[Attempt, list[Attempt], int], list[PromptSpec]]


# Revisions a failing check gets (each one stresses it more) before the loop only searches seeds for it.
REPAIRS_PER_CHECK = 2


@dataclass
class LoopOptions:
    max_attempts: int = 3  # rounds
    candidates: int = 1
    threshold: float | None = None  # None: no critic, one round
    seed: int | None = None
    keep_seed: bool = False
    images_per_attempt: int = 1
    max_images: int | None = None  # budgets; None: only the rounds bound the run
    max_seconds: float | None = None
    max_llm_calls: int | None = None
    llm_calls: Callable[[], int] = lambda: 0  # LLM calls made so far in this run
    concurrent: bool = False  # candidates of a round at once (a remote critic: its waits overlap generation)


def critic_loop(first: PromptSpec, *, produce: Produce, revise: Revise, options: LoopOptions) -> RunResult:
    """Run rounds of `produce` (one attempt per candidate) and `revise` until a stop condition; keep the best.

    Example:
        >>> spec = PromptSpec(idea="a red circle", idea_en="a red circle", positive="a red circle", negative="",
        ...                   elements=["red circle"], language="en", engine="rules")
        >>> scores = iter([12.0, 31.0])
        >>> produce = lambda rnd, cand, s, seed: Attempt(round=rnd, candidate=cand, spec=s, seed=seed, score=next(scores))
        >>> result = critic_loop(spec, produce=produce, revise=lambda best, attempts, k: [best.spec] * k,
        ...                      options=LoopOptions(threshold=30, seed=7))
        >>> [a.score for a in result.attempts], result.best.round, result.passed, result.stopped
        ([12.0, 31.0], 2, True, 'threshold 30 met in round 2')
    """
    started = time.monotonic()
    result = RunResult(idea=first.idea, threshold=options.threshold)
    rng = random.Random(options.seed)
    seed = options.seed if options.seed is not None else rng.randrange(2**32)
    specs, action = [first] * options.candidates, "first"
    best: Attempt | None = None
    repaired: dict[int, int] = {}  # check id -> revisions that worked on it
    stale = 0
    for round_no in range(1, options.max_attempts + 1):
        if round_no > 1 and not options.keep_seed:
            seed = rng.randrange(2**32)
        # Candidates of one round get distinct seeds, so even identical prompts explore different images.
        jobs = [(round_no, i + 1, spec, (seed + i * options.images_per_attempt) % 2**32) for i, spec in enumerate(specs)]
        if options.concurrent and len(jobs) > 1:
            # A remote critic's requests for one candidate overlap the next candidate's generation (the pipeline
            # itself runs one call at a time); results keep the candidates' order.
            with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="ideaforge-candidate") as pool:
                attempts = list(pool.map(lambda job: produce(*job), jobs))
        else:
            attempts = [produce(*job) for job in jobs]
        for a in attempts:
            a.action = action
        result.attempts.extend(attempts)
        round_best = max((a for a in attempts if a.score is not None), key=_rank, default=None)
        if round_best is not None and (best is None or _rank(round_best) > _rank(best)):
            best, stale = round_best, 0
        else:
            stale += 1

        images = sum(len(a.images) for a in result.attempts)
        if options.threshold is None:
            result.stopped = "no critic: one round"
            break
        if best is not None and (best.score or 0) >= options.threshold:
            result.stopped = (
                f"all checks passed in round {best.round}" if best.score == 1.0 and _checklist(best)
                else f"threshold {options.threshold:g} met in round {best.round}"
            )
            break
        if stale >= 2:
            result.stopped = "two rounds brought no improvement"
            break
        if round_no == options.max_attempts:
            result.stopped = f"max attempts ({options.max_attempts}) reached"
            break
        if options.max_images is not None and images + len(specs) * options.images_per_attempt > options.max_images:
            result.stopped = f"image budget ({options.max_images}) spent"
            break
        if options.max_seconds is not None and time.monotonic() - started >= options.max_seconds:
            result.stopped = f"time budget ({options.max_seconds:g} s) spent"
            break

        basis = best or attempts[0]
        fresh = [c for c in basis.failed if repaired.get(c, 0) < REPAIRS_PER_CHECK]
        if basis.failed and not fresh:
            specs, action = [basis.spec] * options.candidates, "reseed"  # seed search: the prompt says it all
        elif options.max_llm_calls is not None and options.llm_calls() >= options.max_llm_calls:
            specs, action = [basis.spec] * options.candidates, "reseed"  # no LLM calls left: search seeds instead
        else:
            specs, action = revise(basis, result.attempts, options.candidates), "repair" if basis.failed else "revise"
            for c in basis.failed:
                repaired[c] = repaired.get(c, 0) + 1

    if best is None:  # no critic, or nothing could be scored: the first attempt with a usable image
        best = next((a for a in result.attempts if a.best_image() is not None), None)
    result.best = best
    result.passed = bool(best and best.score is not None and options.threshold is not None and best.score >= options.threshold)
    result.spent = {
        "rounds": float(max((a.round for a in result.attempts), default=0)),
        "images": float(sum(len(a.images) for a in result.attempts)),
        "seconds": round(time.monotonic() - started, 3),
        "llm_calls": float(options.llm_calls()),
        "critic_seconds": round(sum(a.seconds.get("critic", 0.0) for a in result.attempts), 3),
        "critic_calls": float(sum(i.review.calls for a in result.attempts for i in a.images if i.review)),
    }
    return result


def _checklist(attempt: Attempt) -> bool:
    image = attempt.best_image()
    return image is not None and image.review is not None


def _rank(attempt: Attempt) -> tuple[float, float]:
    """Most checks passed, then the highest quality; a legacy scorer's idea score otherwise."""
    if _checklist(attempt):
        return attempt.rank()
    return (attempt.score if attempt.score is not None else float("-inf"), 0.0)
