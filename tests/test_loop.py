"""The critic loop's logic in the shapes world (deterministic doubles; no diffusion model)."""

from __future__ import annotations

import json

import pytest
from doubles import ABSENT, PRESENT, ShapesGenerator, ShapesScorer

from ideaforge import IdeaForge, RunResult
from ideaforge.agent.chain import PromptChain
from ideaforge.agent.models import PromptSpec
from ideaforge.agent.settings import load_settings
from ideaforge.tools.metadata import read_record

IDEA = "a red circle next to a blue square"


class ForgetfulChain(PromptChain):
    """The first prompt leaves out the blue square, as a weak prompt engine might."""

    def optimize(self, idea: str, *, style: str | None = None) -> PromptSpec:
        spec = super().optimize(idea, style=style)
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
        assert att["spec"]["positive"] and att["seed"] is not None and att["images"][0]["path"]
        assert set(att["seconds"]) == {"prompt", "generate", "critic"}
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
