"""ideaforge as other agents see it: the LangChain tools inside a real tool-calling agent, their schemas, errors
as tool messages, and the pipeline as a Runnable. Tiny random models, a scripted chat model, no network."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from ideaforge import IdeaForge, InputError, PromptSpec, RunResult, as_runnable, make_tools
from ideaforge.agent.forge import Event
from ideaforge.tools.metadata import read_record

IDEA = "a red kitten in a basket"


class ScriptedChatModel(BaseChatModel):
    """A tool-calling chat model that replies from a script: each entry is an AIMessage, or a function of the
    conversation so far that returns one. `bind_tools` records the tool schemas it was given."""

    script: list[Any]
    bound: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        self.bound = [convert_to_openai_tool(t) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        step = self.script.pop(0)
        message = step(messages) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])


def call(name: str, args: dict[str, Any], id: str = "call-1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id, "type": "tool_call"}])


def tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_call", "id": "t1", "name": name, "args": args}


@pytest.fixture
def forge(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path) -> IdeaForge:
    return IdeaForge(
        model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), engine="rules", steps=2, size="64x64",
        out=str(tmp_path / "out"), device="cpu",
    )


def tools_by_name(forge: IdeaForge) -> dict[str, Any]:
    return {t.name: t for t in make_tools(forge)}


# --- a real agent --------------------------------------------------------------------------------------------


def test_agent_calls_generate_image_and_gets_the_image_path_and_scores(forge: IdeaForge) -> None:
    from langchain.agents import create_agent

    def answer(messages: list[BaseMessage]) -> AIMessage:
        path = re.search(r"Best image: (\S+\.png)", messages[-1].content).group(1)
        return AIMessage(f"Here is your kitten: {path}")

    model = ScriptedChatModel(script=[call("generate_image", {"idea": IDEA, "seed": 7}), answer])
    agent = create_agent(model, tools=make_tools(forge))
    state = agent.invoke({"messages": [("user", "draw me a red kitten in a basket, seed 7")]})

    assert [t["function"]["name"] for t in model.bound] == ["optimize_prompt", "generate_image", "score_image"]
    [reply] = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert reply.status == "success" and reply.name == "generate_image"
    artifact = reply.artifact
    path = Path(artifact["best_image_path"])
    assert path.is_file() and path.suffix == ".png"
    best_image = artifact["best"]["images"][0]
    assert artifact["attempts"][0]["seed"] == 7 and best_image["path"] == str(path)
    review = best_image["review"]  # the checklist verdicts come with the artifact
    assert artifact["best"]["score"] == review["alignment"]
    assert [v["check"] for v in review["verdicts"]] == [c["id"] for c in artifact["best"]["spec"]["checks"]]
    result = RunResult.model_validate(artifact)  # the artifact is the RunResult, JSON-ready
    assert result.best_image_path == str(path) and artifact["image_paths"] == result.image_paths
    assert f"seed {best_image['seed']}" in reply.content and str(path.resolve()) in reply.content
    assert f"{review['passed']} of {review['judged']} checks passed (clip)" in reply.content
    assert state["messages"][-1].content == f"Here is your kitten: {path.resolve()}"
    # The image on disk carries the same record.
    assert read_record(path)["ideaforge"]["review"] == review


def test_agent_reads_a_tool_error_and_corrects_itself(forge: IdeaForge) -> None:
    from langchain.agents import create_agent

    def retry(messages: list[BaseMessage]) -> AIMessage:
        error = messages[-1]
        assert isinstance(error, ToolMessage) and error.status == "error"
        assert "size 500x500 is invalid" in error.content and "multiples of 8" in error.content
        return call("generate_image", {"idea": IDEA, "size": "64x64", "seed": 1, "critique": False}, id="call-2")

    model = ScriptedChatModel(
        script=[call("generate_image", {"idea": IDEA, "size": "500x500"}), retry, AIMessage("done")]
    )
    state = create_agent(model, tools=make_tools(forge)).invoke({"messages": [("user", "a kitten, 500 px")]})
    first, second = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert first.status == "error" and first.artifact is None
    assert second.status == "success" and Path(second.artifact["best_image_path"]).is_file()
    assert state["messages"][-1].content == "done"


# --- schemas ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "required", "optional"),
    [
        ("optimize_prompt", ["idea"], {"style"}),
        ("generate_image", ["idea"], {"prompt", "negative_prompt", "seed", "style", "size", "steps", "guidance",
                                      "scheduler", "n", "critique", "critic", "threshold", "max_attempts",
                                      "candidates", "keep_seed", "max_images", "max_seconds", "max_llm_calls"}),
        ("score_image", ["image_path", "text"], {"elements"}),
    ],
)
def test_openai_tool_schema(name: str, required: list[str], optional: set[str]) -> None:
    tool = tools_by_name(IdeaForge(engine="rules"))[name]
    schema = convert_to_openai_tool(tool)
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == name and len(fn["description"]) > 80
    params = fn["parameters"]
    assert params["type"] == "object" and params["required"] == required
    assert set(params["properties"]) == set(required) | optional
    for field, spec in params["properties"].items():
        assert len(spec.get("description", "")) > 20, f"{name}.{field} has no useful description"
    assert tool.response_format == "content_and_artifact"


def test_tool_schema_carries_the_ranges_and_choices() -> None:
    from ideaforge import prompts
    from ideaforge.tools.diffusion import scheduler_names

    schema = convert_to_openai_tool(tools_by_name(IdeaForge(engine="rules"))["generate_image"])
    params = schema["function"]["parameters"]
    props = {k: v["anyOf"][0] if "anyOf" in v else v for k, v in params["properties"].items()}
    assert tools_by_name(IdeaForge(engine="rules"))["generate_image"].args_schema.model_json_schema()["additionalProperties"] is False
    assert props["style"]["enum"] == prompts.style_names()
    assert props["scheduler"]["enum"] == scheduler_names()
    assert (props["seed"]["minimum"], props["seed"]["maximum"]) == (0, 2**32 - 1)
    assert (props["steps"]["minimum"], props["steps"]["maximum"]) == (1, 500)
    assert (props["n"]["minimum"], props["n"]["maximum"]) == (1, 16)
    assert props["size"]["pattern"] and props["guidance"]["maximum"] == 50


# --- errors reach the model as tool messages --------------------------------------------------------------------


def test_unknown_style_is_a_tool_error_naming_the_choices(forge: IdeaForge) -> None:
    reply = tools_by_name(forge)["generate_image"].invoke(tool_call("generate_image", {"idea": IDEA, "style": "vaporwave"}))
    assert isinstance(reply, ToolMessage) and reply.status == "error"
    assert "'vaporwave'" in reply.content and "unknown style" in reply.content and "watercolor" in reply.content
    assert "\n" not in reply.content


def test_missing_model_is_a_tool_error(tmp_path: Path) -> None:
    forge = IdeaForge(model=str(tmp_path / "no-such-model"), engine="rules", out=str(tmp_path))
    reply = tools_by_name(forge)["generate_image"].invoke(tool_call("generate_image", {"idea": IDEA}))
    assert reply.status == "error" and "no-such-model" in reply.content and "does not exist" in reply.content


def test_bad_argument_types_are_a_tool_error_naming_the_field(forge: IdeaForge) -> None:
    reply = tools_by_name(forge)["generate_image"].invoke(
        tool_call("generate_image", {"idea": IDEA, "seed": "seven", "colour": "red"})
    )
    assert reply.status == "error"
    assert "seed" in reply.content and "'seven'" in reply.content and "colour" in reply.content
    assert "\n" not in reply.content and "http" not in reply.content


def test_score_image_of_a_missing_file_is_a_tool_error(forge: IdeaForge, tmp_path: Path) -> None:
    reply = tools_by_name(forge)["score_image"].invoke(
        tool_call("score_image", {"image_path": str(tmp_path / "nope.png"), "text": IDEA})
    )
    assert reply.status == "error" and "does not exist" in reply.content


# --- each tool's output -------------------------------------------------------------------------------------------


def test_optimize_prompt_returns_the_spec(forge: IdeaForge) -> None:
    reply = tools_by_name(forge)["optimize_prompt"].invoke(tool_call("optimize_prompt", {"idea": IDEA, "style": "anime"}))
    spec = PromptSpec.model_validate(reply.artifact)
    assert spec == forge.optimize(IDEA, style="anime")
    assert spec.positive in reply.content and spec.negative in reply.content and "of 77" in reply.content
    # The calling model reads the checklist too: every check's question is in the reply it sees.
    assert spec.checks and all(c.question in reply.content for c in spec.checks)


def test_generate_image_with_an_explicit_prompt_uses_it(forge: IdeaForge) -> None:
    prompt = "red kitten, wicker basket, studio photo"
    reply = tools_by_name(forge)["generate_image"].invoke(
        tool_call("generate_image", {"idea": IDEA, "prompt": prompt, "negative_prompt": "dogs", "seed": 3,
                                     "critique": False})
    )
    spec = reply.artifact["best"]["spec"]
    assert spec["positive"] == prompt and spec["negative"] == "dogs"
    assert spec["elements"] == forge.optimize(IDEA).elements  # the critic still knows what to look for
    assert read_record(reply.artifact["best_image_path"])["ideaforge"]["positive"] == prompt
    assert reply.artifact["best"]["score"] is None and "not scored" in reply.content


def test_score_image_matches_the_critic(forge: IdeaForge) -> None:
    made = tools_by_name(forge)["generate_image"].invoke(
        tool_call("generate_image", {"idea": IDEA, "seed": 5, "critique": False})
    )
    path = made.artifact["best_image_path"]
    reply = tools_by_name(forge)["score_image"].invoke(
        tool_call("score_image", {"image_path": path, "text": IDEA, "elements": ["red kitten", "basket"]})
    )
    [direct] = forge.idea_scorer.score([path], IDEA, ["red kitten", "basket"])
    assert reply.artifact["score"] == pytest.approx(direct.idea, abs=1e-3)
    assert reply.artifact["elements"] == pytest.approx(direct.elements, abs=1e-3)
    assert reply.artifact["critique"] == direct.critique.text
    assert f"CLIP score {direct.idea:.1f}" in reply.content


# --- the Runnable --------------------------------------------------------------------------------------------------


def test_runnable_invoke_and_batch(forge: IdeaForge) -> None:
    runnable = as_runnable(forge)
    one = runnable.invoke(IDEA)
    assert isinstance(one, RunResult) and Path(one.best_image_path).is_file()
    good, bad = runnable.batch(
        [{"idea": "a blue square", "seed": 2, "critique": False}, {"idea": IDEA, "size": "9x9"}],
        return_exceptions=True,
    )
    assert good.best.seed == 2 and good.idea == "a blue square" and len(good.attempts) == 1
    assert isinstance(bad, InputError) and "9x9" in str(bad)


def test_runnable_ainvoke_and_custom_progress_events(forge: IdeaForge) -> None:
    runnable = as_runnable(forge)

    async def main() -> tuple[RunResult, list[dict[str, Any]]]:
        result = await runnable.ainvoke({"idea": IDEA, "seed": 4, "max_attempts": 1})
        events = [e async for e in runnable.astream_events({"idea": IDEA, "seed": 4, "critique": False})]
        return result, events

    result, events = asyncio.run(main())
    assert result.best.seed == 4 and len(result.attempts) == 1  # extra IdeaForge.run options pass through
    custom = [e["data"] for e in events if e["event"] == "on_custom_event" and e["name"] == "ideaforge"]
    stages = [d["stage"] for d in custom]
    assert stages[0] == "prompt" and stages[-1] == "done" and "generate" in stages
    assert [d["step"] for d in custom if d["stage"] == "generate" and d["total"]] == [1, 2]
    [end] = [e for e in events if e["event"] == "on_chain_end"]
    assert isinstance(end["data"]["output"], RunResult) and end["data"]["output"].best.seed == 4


def test_runnable_stream_yields_progress_then_the_result(forge: IdeaForge) -> None:
    items = list(as_runnable(forge).stream({"idea": IDEA, "seed": 9}))
    *events, result = items
    assert all(isinstance(e, Event) for e in events) and isinstance(result, RunResult)
    stages = [e.stage for e in events]
    assert stages[0] == "prompt" and stages[-1] == "done"
    assert {"generate", "critic"} <= set(stages)
    steps = [(e.step, e.total) for e in events if e.stage == "generate" and e.total and e.round == 1]
    assert steps == [(1, 2), (2, 2)]
    assert any(e.preview is not None for e in events if e.stage == "generate")  # live previews for UIs


def test_closing_the_stream_cancels_the_run(forge: IdeaForge, tmp_path: Path) -> None:
    seen: list[Event] = []
    cancel: dict[str, Any] = {}
    run = forge.run

    def run_and_keep_cancel(idea: str, **kwargs: Any) -> RunResult:
        cancel["event"] = kwargs["cancel"]
        return run(idea, **kwargs)

    def hold(event: Event) -> None:  # in the worker, after step 1: wait until closing the stream has cancelled
        seen.append(event)
        if event.stage == "generate" and event.step == 1:
            cancel["event"].wait(10)

    forge.run, forge.on_event = run_and_keep_cancel, hold  # type: ignore[method-assign]
    stream = as_runnable(forge).stream({"idea": IDEA, "seed": 1, "steps": 4})
    for event in stream:
        if event.stage == "generate" and event.step == 1:
            break
    stream.close()  # returns once the run has stopped
    assert max(e.step for e in seen if e.stage == "generate") == 1  # steps 2-4 never ran
    assert "done" not in [e.stage for e in seen] and not list((tmp_path / "out").glob("*.png"))


def test_runnable_composes_with_pipes_and_as_tool(forge: IdeaForge) -> None:
    chain = (
        RunnableLambda(lambda text: {"idea": text, "seed": 3, "critique": False})
        | as_runnable(forge)
        | RunnableLambda(lambda result: result.best_image_path)
    )
    path = chain.invoke(IDEA)
    assert Path(path).is_file() and read_record(path)["ideaforge"]["seed"] == 3
    [streamed] = list(chain.stream(IDEA))  # progress events stay inside; the result reaches the last step
    assert streamed != path and read_record(streamed)["ideaforge"]["seed"] == 3

    tool = as_runnable(forge).as_tool(name="draw", description="Draw an idea.")
    params = convert_to_openai_tool(tool)["function"]["parameters"]
    assert params["required"] == ["idea"] and "seed" in params["properties"]
    result = tool.invoke({"idea": IDEA, "seed": 8, "critique": False})
    assert isinstance(result, RunResult) and result.best.seed == 8


def test_runnable_accepts_a_prompt_spec(forge: IdeaForge) -> None:
    spec = forge.optimize(IDEA).model_copy(update={"positive": "a red kitten, basket"})
    result = as_runnable(forge).invoke(spec, config={"run_name": "from-spec"})
    assert result.attempts[0].spec.positive == "a red kitten, basket"
    with pytest.raises(InputError, match="cannot run 'int'"):
        as_runnable(forge).invoke(42)
