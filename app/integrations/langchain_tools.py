"""LangChain tools for other agents: `optimize_prompt`, `generate_image` and `score_image`.

`make_tools(forge)` builds the three around one configured forge (an `ideaforge.IdeaForge`, taken duck-typed so this
module never imports the agent's loop), so they share its loaded diffusion pipeline and CLIP critic. Every tool
returns `(content, artifact)`: a few lines the calling model reads, and the full record as JSON-ready data on
`ToolMessage.artifact`. ideaforge's own errors (a bad size, an unknown style, a missing model) come back as
`ToolMessage(status="error")` with a one-line message the model can act on, never as an exception in the host.

Example:
    >>> from ideaforge import IdeaForge, make_tools
    >>> optimize, generate, score = make_tools(IdeaForge(model="path/to/sd", steps=2))  # doctest: +SKIP
    >>> generate.invoke({"type": "tool_call", "id": "1", "name": "generate_image",
    ...                  "args": {"idea": "a red kitten in a basket", "seed": 7}}).artifact["best_image_path"]  # doctest: +SKIP
    'outputs/a-red-kitten-in-a-basket-7.png'
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from ideaforge.agent.request import GenerateRequest, OptimizeRequest
from ideaforge.app.integrations.runnable import ForgeRunnable
from ideaforge.errors import IdeaForgeError, explain

# The tools' argument schemas are the request models every entry point shares (ranges and enums included).
OptimizePromptArgs = OptimizeRequest
GenerateImageArgs = GenerateRequest


class ScoreImageArgs(BaseModel):
    """Arguments of `score_image`."""

    model_config = ConfigDict(extra="forbid")

    image_path: str = Field(min_length=1, description="Path of the image file to score (PNG, JPEG or WebP).")
    text: str = Field(
        min_length=1,
        description="The English text to score the image against, e.g. the idea 'a red kitten in a basket'.",
    )
    elements: list[str] | None = Field(
        default=None,
        description="Optional key visual elements to score one by one, e.g. ['red kitten', 'wicker basket']; "
        "the critique names those the image shows weakly.",
    )


def _explain(exc: Exception) -> str:
    """Bad tool arguments as one line, for the calling model to correct."""
    return f"invalid arguments: {explain(exc)}"


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """ideaforge's errors become `ToolException`s, which `handle_tool_error` turns into error `ToolMessage`s."""
    try:
        yield
    except IdeaForgeError as exc:
        raise ToolException(" ".join(str(exc).split()) or type(exc).__name__) from exc


class _ForgeTool(BaseTool):
    """Shared set-up: a forge object, content-and-artifact replies, errors as tool messages."""

    forge: Any = Field(exclude=True)
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    handle_validation_error: Any = _explain


class OptimizePromptTool(_ForgeTool):
    name: str = "optimize_prompt"
    description: str = (
        "Turn a loose idea (any language) into an optimized Stable Diffusion prompt without making an image: "
        "returns the English positive and negative prompts, each within CLIP's 77 tokens, and the idea's key "
        "visual elements. Use it to show or edit a prompt before calling generate_image with `prompt`."
    )
    args_schema: type[BaseModel] = OptimizePromptArgs

    def _run(self, idea: str, style: str | None = None, run_manager: CallbackManagerForToolRun | None = None
             ) -> tuple[str, dict[str, Any]]:
        with _as_tool_errors():
            spec = self.forge.optimize(idea, style=style)
        data = spec.model_dump(mode="json")
        shown = {k: data[k] for k in ("positive", "negative", "elements", "style", "engine")}
        shown["tokens"] = f"{spec.positive_tokens} / {spec.negative_tokens} of 77"
        shown["checklist"] = [f"{c.id}. {c.kind}: {c.question}" for c in spec.checks]  # what the image must show
        if spec.warnings:
            shown["warnings"] = spec.warnings
        return json.dumps(shown, ensure_ascii=False), data


class GenerateImageTool(_ForgeTool):
    name: str = "generate_image"
    description: str = (
        "Make an image from an idea with Stable Diffusion. The idea (any language) is optimized into a prompt, "
        "with a checklist of what the image must show, the image is generated, the critic checks each item "
        "and, when critique is on, the prompt is repaired for what failed and the image remade until every "
        "check passes or the budget runs out; the best image is kept. Returns the saved PNG path(s), the seed "
        "and how many checks the best image passed (the verdicts are in the artifact). Optional: an explicit "
        "prompt, seed, style, size, steps, guidance, scheduler, images per attempt, critique on/off, the critic "
        "(clip, vlm, vlm+clip), the share of checks that must pass, rounds and budgets."
    )
    args_schema: type[BaseModel] = GenerateImageArgs
    runnable: Any = Field(default=None, exclude=True)

    def _run(self, run_manager: CallbackManagerForToolRun | None = None, **args: Any) -> tuple[str, dict[str, Any]]:
        runnable = self.runnable if self.runnable is not None else ForgeRunnable(forge=self.forge)
        config = RunnableConfig(callbacks=run_manager.get_child()) if run_manager else None
        with _as_tool_errors():
            result = runnable.invoke(GenerateRequest.parse(**args), config=config)
        best_path = result.best_image_path
        if best_path is None:
            notes = "; ".join(result.warnings) or "every image was flagged by the safety checker or failed"
            raise ToolException(f"no usable image was produced ({notes}); try another idea or seed")
        data = result.model_dump(mode="json")
        data["best_image_path"] = best_path
        data["image_paths"] = result.image_paths
        return _summary(result, best_path), data


class ScoreImageTool(_ForgeTool):
    name: str = "score_image"
    description: str = (
        "Score how well an existing image matches a text with CLIP, on the CLIPScore scale (100 x cosine "
        "similarity, 0-100; about 30 or more is a good match for the default critic). With `elements`, each is "
        "scored too and the critique names those the image shows weakly."
    )
    args_schema: type[BaseModel] = ScoreImageArgs

    def _run(self, image_path: str, text: str, elements: list[str] | None = None,
             run_manager: CallbackManagerForToolRun | None = None) -> tuple[str, dict[str, Any]]:
        image = _open_image(image_path)
        with _as_tool_errors():
            scorer = self.forge.idea_scorer
            [score] = scorer.score([image], text, elements or [])
        threshold = getattr(scorer, "threshold", None)
        data = {
            "image_path": image_path,
            "text": text,
            "score": round(score.idea, 4),
            "elements": {k: round(v, 4) for k, v in score.elements.items()},
            "weak": list(score.critique.weak),
            "critique": score.critique.text,
            "threshold": threshold,
            "passed": None if threshold is None else score.idea >= threshold,
            "truncated": list(score.truncated),
        }
        lines = [f"CLIP score {score.idea:.1f} for {text!r}" + (f" (pass mark {threshold:g})." if threshold else ".")]
        if score.elements:
            lines.append("Elements: " + ", ".join(f"{k} {v:.1f}" for k, v in score.elements.items()) + ".")
        lines.append(score.critique.text)
        return "\n".join(lines), data


def _open_image(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if not file.is_file():
        raise ToolException(f"image {path!r} does not exist; pass the path of an image file")
    try:
        with Image.open(file) as im:
            return im.convert("RGB")
    except Image.DecompressionBombError:
        raise ToolException(f"{path!r} declares more pixels than is safe to decode; pass a normal-sized image") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ToolException(f"{path!r} is not a readable image ({type(exc).__name__}); pass a PNG, JPEG or WebP") from None


def _summary(result: Any, best_path: str) -> str:
    """What the calling model reads: where the images are, the seed, the best score and the prompt used."""
    best = result.best
    image = best.best_image()
    paths = result.image_paths
    rounds = len({a.round for a in result.attempts})
    lines = [
        f"Made {len(paths)} image(s) in {rounds} round(s) for {result.idea!r}; {result.stopped or 'done'}.",
        f"Best image: {Path(best_path).resolve()} (seed {image.seed}"
        + (f", {image.review.passed} of {image.review.judged} checks passed ({image.review.critic})"
           if image.review is not None else f", CLIP score {best.score:.1f}" if best.score is not None else ", not scored")
        + (f", pass mark {result.threshold:g}{' met' if result.passed else ' not met'}" if result.threshold else "")
        + ").",
        f"Prompt: {best.spec.positive}",
    ]
    if best.critique and not result.passed:
        lines.append(f"Critique: {best.critique}")
    others = [str(Path(p).resolve()) for p in paths if p != best_path]
    if others:
        lines.append("Other images: " + ", ".join(others))
    return "\n".join(lines)


def make_tools(forge: Any) -> list[BaseTool]:
    """The three tools around one forge (an `ideaforge.IdeaForge`, or anything with its `optimize`, `run` and
    `scorer`), sharing its loaded models: `[optimize_prompt, generate_image, score_image]`.

    Example:
        >>> from ideaforge import IdeaForge
        >>> [t.name for t in make_tools(IdeaForge(engine="rules"))]
        ['optimize_prompt', 'generate_image', 'score_image']
    """
    return [
        OptimizePromptTool(forge=forge),
        GenerateImageTool(forge=forge, runnable=ForgeRunnable(forge=forge)),
        ScoreImageTool(forge=forge),
    ]
