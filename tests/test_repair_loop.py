"""The check-and-repair loop's decisions (repair, reseed, stop, budgets, best) and the offline repair itself."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ideaforge.agent.critics import checks_of, failed_lines, review
from ideaforge.agent.forge import _threshold
from ideaforge.agent.loop import LoopOptions, critic_loop
from ideaforge.agent.models import Attempt, CheckVerdict, ImageRecord, PromptSpec, Review
from ideaforge.agent.repair import repair_rules
from ideaforge.agent.rules import rules_spec
from ideaforge.errors import InputError
from ideaforge.tools.critic.combine import Fallback, Merged, WithQuality
from ideaforge.tools.critic.verdicts import Review as ToolReview
from ideaforge.tools.critic.verdicts import Verdict

IDEA = "a red circle and three blue squares, no triangles"


def spec() -> PromptSpec:
    return rules_spec(IDEA)


class Script:
    """`produce` and `revise` doubles: each round's failed checks (and quality) are scripted."""

    def __init__(self, rounds: list[tuple[list[int], float]], total: int = 4) -> None:
        self.rounds, self.total = rounds, total
        self.revised: list[list[int]] = []
        self.seeds: list[int] = []

    def produce(self, rnd: int, cand: int, s: PromptSpec, seed: int) -> Attempt:
        failed, quality = self.rounds[min(rnd - 1, len(self.rounds) - 1)]
        self.seeds.append(seed)
        verdicts = [CheckVerdict(check=i, passed=i not in failed) for i in range(1, self.total + 1)]
        r = Review(critic="fake", verdicts=verdicts, alignment=1 - len(failed) / self.total,
                   passed=self.total - len(failed), judged=self.total, quality=quality)
        a = Attempt(round=rnd, candidate=cand, spec=s, seed=seed, images=[ImageRecord(seed=seed, review=r)])
        a.score, a.quality, a.failed = r.alignment, quality, list(failed)
        return a

    def revise(self, best: Attempt, attempts: list[Attempt], k: int) -> list[PromptSpec]:
        self.revised.append(list(best.failed))
        return [best.spec.model_copy(update={"positive": best.spec.positive + ", fixed"})] * k

    def run(self, **options: object) -> object:
        opts = {"threshold": 1.0, "seed": 3, **options}
        return critic_loop(spec(), produce=self.produce, revise=self.revise, options=LoopOptions(**opts))


def test_a_failing_check_is_repaired_twice_then_only_reseeded() -> None:
    s = Script([([2, 3], 5.0), ([3], 6.0), ([3], 6.5), ([], 7.0)])  # quality rises: no stale stop
    result = s.run(max_attempts=5)
    # round 1 fails 2 and 3: repaired; round 2 still fails 3: repaired again; round 3 still: seeds only.
    assert s.revised == [[2, 3], [3]]
    assert [a.action for a in result.attempts] == ["first", "repair", "repair", "reseed"]
    assert result.stopped == "all checks passed in round 4" and result.passed
    assert len(set(s.seeds)) == 4  # each round a new seed


def test_two_rounds_without_gain_stop() -> None:
    s = Script([([1], 5.0), ([1], 4.0), ([1, 2], 4.0)])
    result = s.run(max_attempts=6)
    assert result.stopped == "two rounds brought no improvement" and len(result.attempts) == 3
    assert result.best.round == 1 and not result.passed


def test_best_is_most_checks_passed_then_quality() -> None:
    s = Script([([1, 2], 9.0), ([1], 2.0), ([2], 3.0)])
    result = s.run(max_attempts=3)
    assert result.best.round == 3  # rounds 2 and 3 pass as many checks; round 3 has the higher quality


def test_image_budget_stops_before_a_round_would_exceed_it() -> None:
    s = Script([([1], 1.0), ([1], 2.0), ([1], 3.0)])
    result = s.run(max_attempts=10, candidates=2, max_images=5)
    assert len(result.attempts) == 4 and result.stopped == "image budget (5) spent"
    assert result.spent["images"] == 4


def test_time_budget_stops_between_rounds() -> None:
    result = Script([([1], float(i)) for i in range(9)]).run(max_attempts=9, max_seconds=1e-9)
    assert len(result.attempts) == 1 and result.stopped.startswith("time budget")


def test_no_llm_calls_left_means_seed_search() -> None:
    s = Script([([1], 1.0), ([2], 2.0), ([], 3.0)])
    result = s.run(max_attempts=3, max_llm_calls=1, llm_calls=lambda: 1)
    assert s.revised == [] and [a.action for a in result.attempts] == ["first", "reseed", "reseed"]


def test_threshold_is_a_share_for_checklist_critics() -> None:
    critic = SimpleNamespace(review=lambda *a: [], name="clip")
    assert _threshold(None, critic) == 1.0 and _threshold(0.75, critic) == 0.75
    with pytest.raises(InputError, match="threshold 30 is above 1"):
        _threshold(30.0, critic)
    assert _threshold(None, SimpleNamespace(score=lambda *a: [], threshold=30.0)) == 30.0


# -- the offline repair ------------------------------------------------------------------------------------
def by_kind(s: PromptSpec) -> dict[str, int]:
    return {c.kind: c.id for c in reversed(s.checks)}


def test_repair_spells_out_counts_and_moves_the_absent_object_to_the_negative() -> None:
    s = spec()
    ids = by_kind(s)
    fixed = repair_rules(s, [ids["count"], ids["absent"]])
    assert fixed.positive.startswith("(exactly three blue squares)1.15, ")
    assert fixed.negative.startswith("(triangles)1.3")
    assert "triangle" not in fixed.positive
    assert fixed.checks == s.checks  # the checklist is the idea's, not the prompt's
    again = repair_rules(fixed, [ids["count"], ids["absent"]])
    assert again.positive.startswith("(exactly three blue squares)1.32")  # more emphasis each round
    assert again.negative.startswith("(triangles)1.4")
    assert again.positive_tokens <= 77 and again.negative_tokens <= 77


def test_repair_of_an_attribute_names_the_thing_with_it_and_a_relation_whole() -> None:
    s = rules_spec("a green cat under a wooden table")
    attr = next(c for c in s.checks if c.kind == "attribute" and c.subject == "cat")
    rel = next(c for c in s.checks if c.kind == "relation")
    fixed = repair_rules(s, [attr.id, rel.id])
    assert fixed.positive.startswith("(green cat)1.15, (cat under table)1.15")


# -- reviews ------------------------------------------------------------------------------------------------
class Fixed:
    def __init__(self, name: str, verdicts: list[tuple[int, bool | None, float | None]]) -> None:
        self.name, self.verdicts = name, verdicts

    def review(self, images, checks, idea):
        return [ToolReview([Verdict(c, p, q, f"{self.name} says", self.name) for c, p, q in self.verdicts], None,
                           critic=self.name, calls=1) for _ in images]


def test_review_applies_dsg_dependencies_and_words_the_failures() -> None:
    s = rules_spec("a red kitten")
    entity = next(c.id for c in s.checks if c.kind == "entity")
    attr = next(c.id for c in s.checks if c.kind == "attribute")
    [r] = review(Fixed("vlm", [(entity, False, 0.1), (attr, True, 0.9)]), ["image"], s)
    assert [v.passed for v in r.verdicts] == [False, False]  # red, but there is no kitten
    assert r.passed == 0 and r.judged == 2 and r.failed() == [entity, attr]
    assert failed_lines(s, r)[0].startswith(f"[{entity}] ") and "-> no (vlm says)" in failed_lines(s, r)[0]


def test_merged_critic_lets_clip_fill_what_the_vlm_left_unverified() -> None:
    checks = checks_of(rules_spec("a red kitten"))
    vlm = Fixed("vlm", [(1, True, 0.8), (2, None, None)])
    clip = Fixed("clip", [(1, True, 0.6), (2, False, 0.2)])
    [r] = Merged(vlm, clip).review(["image"], checks, "a red kitten")
    assert [(v.passed, v.critic) for v in r.verdicts] == [(True, "vlm+clip"), (False, "clip")]
    assert r.verdicts[0].probability == pytest.approx(0.7) and r.calls == 2


class Dead:
    name = "vlm"

    def __init__(self) -> None:
        self.calls = 0

    def review(self, images, checks, idea):
        self.calls += 1
        raise ConnectionError("connection refused; key sk-test-secret-123456")


def test_fallback_warns_once_per_review_and_skips_a_dead_server_for_a_while() -> None:
    from ideaforge.tools.sanitize import register_secret

    register_secret("sk-test-secret-123456")
    checks = checks_of(rules_spec("a red kitten"))
    dead = Dead()
    critic = Fallback(dead, Fixed("clip", [(1, True, 0.6), (2, True, 0.7)]), cooldown=60)
    first = critic.review(["a", "b"], checks, "a red kitten")
    second = critic.review(["c"], checks, "a red kitten")
    assert dead.calls == 1  # the second review did not wait for the dead server again
    assert [r.critic for r in first + second] == ["vlm (fallback clip)"] * 3
    assert "connection refused" in first[0].warnings[0] and "sk-test-secret" not in first[0].warnings[0]


def test_quality_is_added_and_a_failing_quality_model_only_warns() -> None:
    checks = checks_of(rules_spec("a red kitten"))
    base = Fixed("clip", [(1, True, 0.6), (2, True, 0.7)])
    [a, b] = WithQuality(base, lambda images, idea: [21.5, 19.0], label="preference").review(["x", "y"], checks, "k")
    assert (a.quality, b.quality, a.calls, b.calls) == (21.5, 19.0, 2, 1)

    def broken(images, idea):
        raise RuntimeError("out of memory")

    [c] = WithQuality(base, broken, label="preference").review(["x"], checks, "k")
    assert c.quality is None and "preference score failed (out of memory)" in c.warnings[0]
