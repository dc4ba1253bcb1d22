"""The public Python API: pinned names, runnable docstring examples, the module-level shortcut, async."""

from __future__ import annotations

import asyncio
import doctest

from doubles import ShapesGenerator, ShapesScorer

import ideaforge
import ideaforge.agent.chain
import ideaforge.agent.rules


def test_public_names_are_pinned() -> None:
    assert ideaforge.__all__ == [
        "Attempt", "Cancelled", "Event", "GenerateRequest", "GenerationError", "IdeaForge", "IdeaForgeError",
        "ImageRecord", "InputError", "LLMError", "ModelNotFoundError", "OptimizeRequest", "PngRecord",
        "PromptChain", "PromptSpec", "RunOptions", "RunResult", "Scores", "Settings", "__version__",
        "as_runnable", "load_settings", "make_tools", "run",
    ]
    for name in ideaforge.__all__:
        assert getattr(ideaforge, name) is not None


def test_docstring_examples_run() -> None:
    for module in (ideaforge, ideaforge.agent.chain, ideaforge.agent.rules):
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failures == 0, module.__name__


def test_module_level_run_shortcut(tmp_path) -> None:
    result = ideaforge.run("a green triangle", generator=ShapesGenerator(), scorer=ShapesScorer(), engine="rules",
                       out=str(tmp_path), seed=9)
    assert isinstance(result, ideaforge.RunResult)
    assert result.attempts[0].seed == 9 and result.best_image_path.startswith(str(tmp_path))


def test_arun_is_awaitable_and_matches_run(tmp_path) -> None:
    forge = ideaforge.IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path))
    result = asyncio.run(forge.arun("a red circle next to a blue square", seed=3))
    again = forge.run("a red circle next to a blue square", seed=3)
    assert [a.score for a in result.attempts] == [a.score for a in again.attempts]


def test_refine_builds_on_the_previous_spec(tmp_path) -> None:
    forge = ideaforge.IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path))
    first = forge.run("a red circle", seed=1)
    second = forge.refine(first, "add a blue square")
    assert "blue square" in second.best.spec.positive and "red circle" in second.best.spec.positive
    assert second.best.spec.idea == "a red circle; add a blue square"
