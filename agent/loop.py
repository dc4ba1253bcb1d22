"""The critique-and-revise loop, written as a loop.

Each round generates one attempt per candidate prompt, the critic scores them, and the best attempt so far is
kept. The loop stops when the best score meets the threshold, when two rounds in a row bring no improvement, or
after `max_attempts` rounds. Without a critic it is a single round.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ideaforge.agent.models import Attempt, PromptSpec, RunResult

# produce(round, candidate, spec, seed) -> Attempt: generate, score and save one candidate.
Produce = Callable[[int, int, PromptSpec, int], Attempt]
# revise(best_attempt, all_attempts, how_many) -> new candidate specs.
Revise = Callable[[Attempt, list[Attempt], int], list[PromptSpec]]


@dataclass
class LoopOptions:
    max_attempts: int = 3
    candidates: int = 1
    threshold: float | None = None  # None: no critic, one round
    seed: int | None = None
    keep_seed: bool = False
    images_per_attempt: int = 1




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
    result = RunResult(idea=first.idea, threshold=options.threshold)
    rng = random.Random(options.seed)
    seed = options.seed if options.seed is not None else rng.randrange(2**32)
    specs = [first] * options.candidates
    best: Attempt | None = None
    stale = 0
    for round_no in range(1, options.max_attempts + 1):
        if round_no > 1 and not options.keep_seed:
            seed = rng.randrange(2**32)
        # Candidates of one round get distinct seeds, so even identical prompts explore different images.
        attempts = [
            produce(round_no, i + 1, spec, (seed + i * options.images_per_attempt) % 2**32)
            for i, spec in enumerate(specs)
        ]
        result.attempts.extend(attempts)
        scored = [a for a in attempts if a.score is not None]
        round_best = max(scored, key=lambda a: a.score or 0.0, default=None)
        if round_best is not None and (best is None or (round_best.score or 0) > (best.score or 0)):
            best, stale = round_best, 0
        else:
            stale += 1
        if options.threshold is None:
            result.stopped = "no critic: one round"
            break
        if best is not None and (best.score or 0) >= options.threshold:
            result.stopped = f"threshold {options.threshold:g} met in round {best.round}"
            break
        if stale >= 2:
            result.stopped = "two rounds brought no improvement"
            break
        if round_no == options.max_attempts:
            result.stopped = f"max attempts ({options.max_attempts}) reached"
            break
        basis = best or attempts[0]
        specs = revise(basis, result.attempts, options.candidates)
    if best is None:  # no critic, or nothing could be scored: the first attempt with a usable image
        best = next((a for a in result.attempts if a.best_image() is not None), None)
    result.best = best
    result.passed = bool(best and best.score is not None and options.threshold is not None and best.score >= options.threshold)
    return result
