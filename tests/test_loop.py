"""The critic loop's logic in the shapes world (deterministic doubles; no diffusion model)."""

from __future__ import annotations

import json

import pytest
from doubles import ABSENT, PRESENT, ShapesGenerator, ShapesScorer

from ideaforge import IdeaForge, RunResult
from ideaforge.agent.chain import PromptChain
from ideaforge.agent.loop import LoopOptions, critic_loop
from ideaforge.agent.models import Attempt, ImageRecord, PromptSpec
from ideaforge.agent.settings import load_settings
from ideaforge.tools.metadata import read_record

IDEA = "a red circle next to a blue square"


class ForgetfulChain(PromptChain):
    """The first prompt leaves out the blue square, as a weak prompt engine might."""

    def optimize(self, idea: str, *, style: str | None = None, family: object = None) -> PromptSpec:
        spec = super().optimize(idea, style=style, family=family)
        return spec.model_copy(update={"positive": "a red circle, best quality", "elements": ["red circle", "blue square"]})


def forge(tmp_path, scorer=None, **kw) -> tuple[IdeaForge, ShapesGenerator, ShapesScorer]:
    gen, sc = ShapesGenerator(), scorer or ShapesScorer()
    f = IdeaForge(chain=ForgetfulChain(load_settings(engine="rules")), generator=gen, scorer=sc, out=str(tmp_path), **kw)
    return f, gen, sc


def test_critique_names_the_missing_element_and_revision_adds_it(tmp_path) -> None:
    f, gen, _ = forge(tmp_path)
    result = f.run(IDEA, seed=11)
    first, second = result.attempts
    assert first.score == pytest.approx((PRESENT + ABSENT) / 2)
    assert first.weak == ["blue square"] and "blue square" in first.critique
    assert second.spec.positive.startswith("(blue square)1.15, a red circle")  # moved to the front, emphasized
    assert second.score == pytest.approx(PRESENT) and second.score > first.score
    assert result.best is second and result.passed
    assert result.stopped.startswith("threshold 30 met in round 2")
    assert len(gen.calls) == 2  # stopped as soon as the threshold was met
    assert first.seed == 11 and second.seed != 11  # a new seed each round


def test_keep_seed_reuses_the_first_seed(tmp_path) -> None:
    f, _, _ = forge(tmp_path)
    result = f.run(IDEA, seed=5, keep_seed=True)
    assert [a.seed for a in result.attempts] == [5, 5]


def test_max_attempts_bounds_the_loop(tmp_path) -> None:
    f, gen, _ = forge(tmp_path, scorer=ShapesScorer(scripted=[10, 11, 12, 13, 14, 15]))
    result = f.run(IDEA, seed=1, threshold=101, max_attempts=4)
    assert [a.round for a in result.attempts] == [1, 2, 3, 4]
    assert len(gen.calls) == 4 and not result.passed
    assert "max attempts (4)" in result.stopped


def test_best_round_wins_even_when_a_later_round_is_worse(tmp_path) -> None:
    f, _, _ = forge(tmp_path, scorer=ShapesScorer(scripted=[20, 28, 22]))
    result = f.run(IDEA, seed=1, threshold=101, max_attempts=3)
    assert [a.score for a in result.attempts] == [20, 28, 22]
    assert result.best.round == 2 and result.best.score == 28


def test_two_rounds_without_improvement_stop_early(tmp_path) -> None:
    f, _, _ = forge(tmp_path, scorer=ShapesScorer(scripted=[25, 24, 23, 40]))
    result = f.run(IDEA, seed=1, threshold=101, max_attempts=5)
    assert len(result.attempts) == 3 and result.stopped == "two rounds brought no improvement"
    assert result.best.round == 1


def test_candidates_per_round_have_distinct_seeds(tmp_path) -> None:
    f, gen, _ = forge(tmp_path)
    result = f.run(IDEA, seed=100, candidates=3, n=2)
    round1 = [a for a in result.attempts if a.round == 1]
    assert [a.candidate for a in round1] == [1, 2, 3]
    seeds = [img.seed for a in round1 for img in a.images]
    assert seeds == [100, 101, 102, 103, 104, 105]
    assert len(gen.calls[0]) == 2  # one batched call per attempt, n images in it


def test_no_critique_is_one_round_without_a_scorer(tmp_path) -> None:
    class Exploding:
        threshold = 1.0

        def score(self, *a, **k):
            raise AssertionError("the critic must not run")

    f = IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=Exploding(), out=str(tmp_path))
    result = f.run(IDEA, critique=False, seed=3)
    assert len(result.attempts) == 1 and result.best.score is None
    assert result.best_image_path and result.stopped == "no critic: one round"


def test_everything_is_recorded_and_serializes(tmp_path) -> None:
    events = []
    f, _, _ = forge(tmp_path, on_event=events.append)
    result = f.run(IDEA, seed=11)
    data = json.loads(result.model_dump_json())
    assert RunResult.model_validate(data).best.round == 2
    for att in data["attempts"]:
        assert att["spec"]["positive"] and att["seed"] == att["images"][0]["seed"] and att["images"][0]["path"]
        assert set(att["seconds"]) == {"prompt", "generate", "critic", "save"}
        assert att["images"][0]["scores"]["elements"].keys() == {"red circle", "blue square"}
    stages = [e.stage for e in events]
    assert stages[0] == "prompt" and "critic" in stages and "revise" in stages and stages[-1] == "done"
    record = read_record(result.best_image_path)["ideaforge"]
    assert record["round"] == 2 and record["scores"]["idea"] == pytest.approx(PRESENT)
    assert result.best_image().size == (64, 64)


def test_bad_run_options_fail_before_generating(tmp_path) -> None:
    from ideaforge.errors import InputError

    f, gen, _ = forge(tmp_path)
    for bad in ({"size": "100x64"}, {"steps": 0}, {"seed": -1}, {"model": "x"}, {"colour": "red"}):
        with pytest.raises(InputError):
            f.run(IDEA, **bad)
    assert gen.calls == []


# -- critic_loop alone, with plain fake `produce` and `revise` ---------------------------------------------
def loop_spec(positive: str = "a red circle") -> PromptSpec:
    return PromptSpec(
        idea="a red circle", idea_en="a red circle", positive=positive, negative="", elements=["red circle"],
        language="en", engine="rules",
    )


class Scripted:
    """`produce` scores attempts from a script, call by call (None: could not be scored); `revise` records what
    it was given and returns prompts named after the attempt it revised."""

    def __init__(self, scores: list[float | None], *, unusable: tuple[int, ...] = ()) -> None:
        self.scores = list(scores)
        self.unusable = unusable  # call numbers (0-based) whose only image is flagged
        self.produced: list[tuple[int, int, str, int]] = []
        self.revised: list[tuple[Attempt, int, int]] = []

    def produce(self, round_no: int, candidate: int, spec: PromptSpec, seed: int) -> Attempt:
        call = len(self.produced)
        self.produced.append((round_no, candidate, spec.positive, seed))
        image = ImageRecord(seed=seed, path=f"r{round_no}c{candidate}.png", flagged=call in self.unusable)
        return Attempt(round=round_no, candidate=candidate, spec=spec, seed=seed, score=self.scores[call], images=[image])

    def revise(self, best: Attempt, attempts: list[Attempt], how_many: int) -> list[PromptSpec]:
        self.revised.append((best, len(attempts), how_many))
        return [loop_spec(f"revision of r{best.round}c{best.candidate} #{k}") for k in range(how_many)]

    def run(self, **options) -> RunResult:
        return critic_loop(loop_spec(), produce=self.produce, revise=self.revise, options=LoopOptions(**options))


def test_loop_stops_when_the_threshold_is_met_and_says_so() -> None:
    fake = Scripted([10, 31, 99])
    result = fake.run(max_attempts=5, threshold=30, seed=1)
    assert [a.score for a in result.attempts] == [10, 31]  # no third round
    assert result.stopped == "threshold 30 met in round 2"
    assert result.best is result.attempts[1] and result.passed


def test_loop_meeting_the_threshold_exactly_passes() -> None:
    result = Scripted([30.0]).run(threshold=30.0, seed=1)
    assert result.passed and result.stopped == "threshold 30 met in round 1" and len(result.attempts) == 1


def test_loop_stops_after_two_rounds_without_improvement() -> None:
    fake = Scripted([25, 24, 25, 40])  # an equal score is no improvement either
    result = fake.run(max_attempts=5, threshold=101, seed=1)
    assert len(result.attempts) == 3 and result.stopped == "two rounds brought no improvement"
    assert result.best is result.attempts[0] and not result.passed


def test_loop_an_improvement_resets_the_stale_count() -> None:
    fake = Scripted([20, 19, 25, 24, 23, 50])
    result = fake.run(max_attempts=10, threshold=101, seed=1)
    assert [a.score for a in result.attempts] == [20, 19, 25, 24, 23]
    assert result.best.round == 3 and result.stopped == "two rounds brought no improvement"


def test_loop_stops_at_max_attempts() -> None:
    fake = Scripted([10, 11, 12, 13, 14])
    result = fake.run(max_attempts=3, threshold=101, seed=1)
    assert [a.round for a in result.attempts] == [1, 2, 3]
    assert result.stopped == "max attempts (3) reached" and not result.passed
    assert result.best.score == 12
    assert len(fake.revised) == 2  # revised between rounds, not after the last


def test_loop_candidates_get_distinct_seeds_spaced_by_images_per_attempt() -> None:
    fake = Scripted([1, 2, 3])
    fake.run(max_attempts=1, candidates=3, images_per_attempt=4, threshold=101, seed=100)
    assert [seed for *_, seed in fake.produced] == [100, 104, 108]
    assert [candidate for _, candidate, *_ in fake.produced] == [1, 2, 3]


def test_loop_candidate_seeds_wrap_at_2_to_the_32() -> None:
    fake = Scripted([1, 2, 3])
    fake.run(max_attempts=1, candidates=3, images_per_attempt=2, threshold=101, seed=2**32 - 2)
    assert [seed for *_, seed in fake.produced] == [2**32 - 2, 0, 2]


def test_loop_new_seed_each_round_reproducible_from_the_first() -> None:
    seeds = []
    for _ in range(2):
        fake = Scripted([10, 11, 12])
        fake.run(max_attempts=3, threshold=101, seed=5)
        seeds.append([seed for *_, seed in fake.produced])
    assert seeds[0] == seeds[1]  # the same first seed gives the same rounds
    assert seeds[0][0] == 5 and len(set(seeds[0])) == 3
    assert all(0 <= s < 2**32 for s in seeds[0])


def test_loop_keep_seed_reuses_the_first_seed_every_round() -> None:
    fake = Scripted([10, 11, 12, 13, 14, 15])
    fake.run(max_attempts=3, candidates=2, threshold=101, seed=5, keep_seed=True)
    assert [seed for *_, seed in fake.produced] == [5, 6, 5, 6, 5, 6]


def test_loop_without_a_seed_draws_one_for_the_first_round() -> None:
    fake = Scripted([None])
    result = fake.run()
    assert 0 <= result.attempts[0].seed < 2**32


def test_loop_keeps_the_best_across_rounds_and_revises_from_it() -> None:
    fake = Scripted([20, 5, 28, 1, 22, 3])
    result = fake.run(max_attempts=3, candidates=2, threshold=101, seed=1)
    assert result.best.score == 28 and (result.best.round, result.best.candidate) == (2, 1)
    # Round 2 revises round 1's best; round 3 revises the overall best, and sees every attempt so far.
    assert [(b.round, b.candidate, seen, k) for b, seen, k in fake.revised] == [(1, 1, 2, 2), (2, 1, 4, 2)]
    assert [p for r, _, p, _ in fake.produced if r == 3] == ["revision of r2c1 #0", "revision of r2c1 #1"]


def test_loop_first_round_runs_the_first_spec_for_every_candidate() -> None:
    fake = Scripted([1, 2])
    fake.run(max_attempts=1, candidates=2, threshold=101, seed=1)
    assert [p for _, _, p, _ in fake.produced] == ["a red circle", "a red circle"]


def test_loop_without_a_critic_is_one_round() -> None:
    fake = Scripted([None, None])
    result = fake.run(max_attempts=5, candidates=2, threshold=None, seed=1)
    assert len(result.attempts) == 2 and fake.revised == []
    assert result.stopped == "no critic: one round"
    assert result.best is result.attempts[0] and not result.passed  # nothing to pass without a critic


def test_loop_without_a_critic_never_passes_even_with_scores() -> None:
    result = Scripted([90]).run(threshold=None, seed=1)
    assert result.best.score == 90 and not result.passed


def test_loop_nothing_scored_picks_the_first_attempt_with_a_usable_image() -> None:
    fake = Scripted([None] * 6, unusable=(0,))
    result = fake.run(max_attempts=5, candidates=2, threshold=30, seed=1)
    assert result.stopped == "two rounds brought no improvement" and len(result.attempts) == 4
    assert (result.best.round, result.best.candidate) == (1, 2)  # candidate 1's only image was flagged
    assert not result.passed
    assert fake.revised[0][0] is result.attempts[0]  # with no best yet, the first attempt is revised


def test_loop_no_usable_image_at_all_leaves_best_empty() -> None:
    result = Scripted([None], unusable=(0,)).run(threshold=None, seed=1)
    assert result.best is None and not result.passed and result.best_image_path is None


def test_loop_result_carries_the_idea_and_threshold() -> None:
    result = Scripted([10]).run(max_attempts=1, threshold=25.5, seed=1)
    assert (result.idea, result.threshold) == ("a red circle", 25.5)
    assert result.stopped == "max attempts (1) reached"
