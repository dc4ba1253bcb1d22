"""The whole pipeline as a LangChain `Runnable`: idea in, `RunResult` out.

`as_runnable(forge)` gives a `ForgeRunnable` sharing that forge's loaded models. It takes an idea (str),
a dict or `GenerateRequest` of `generate_image` arguments (plus any other `IdeaForge.run` option, e.g.
`max_attempts`), or a ready `PromptSpec`, and supports everything a Runnable does: `invoke`, `batch`, `ainvoke`,
`abatch`, `|` composition and `as_tool()`. `stream` yields the run's progress `Event`s as they happen and the
`RunResult` last, so a step piped after it receives the result. The same progress reaches LangChain callbacks as
custom events named "ideaforge" (see `astream_events`), with JSON-ready data.

Example:
    >>> from langchain_core.runnables import RunnableLambda
    >>> from ideaforge import IdeaForge
    >>> forge = IdeaForge(model="path/to/sd", steps=2, size="64x64")  # doctest: +SKIP
    >>> pipeline = as_runnable(forge) | RunnableLambda(lambda result: result.best_image_path)  # doctest: +SKIP
    >>> pipeline.invoke({"idea": "a red kitten in a basket", "seed": 7})  # doctest: +SKIP
    'outputs/a-red-kitten-in-a-basket-7.png'
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, ValidationError

from ideaforge.agent.models import LLMSpec, PromptSpec, RunResult
from ideaforge.agent.request import GenerateRequest
from ideaforge.agent.rules import get_style
from ideaforge.errors import InputError

EVENT_NAME = "ideaforge"


def event_data(event: Any) -> dict[str, Any]:
    """An `Event` as JSON-ready data, without its preview image (the custom-event payload)."""
    return {
        "stage": event.stage,
        "round": event.round,
        "candidate": event.candidate,
        "step": event.step,
        "total": event.total,
        "message": event.message,
        "data": dict(event.data),
    }


class ForgeRunnable(RunnableSerializable[Any, RunResult]):
    """`IdeaForge.run` as a Runnable. Build it with `as_runnable(forge)`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    forge: Any = Field(exclude=True)
    name: str | None = "ideaforge"

    @property
    def InputType(self) -> type[GenerateRequest]:
        return GenerateRequest

    @property
    def OutputType(self) -> type[RunResult]:
        return RunResult

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunResult:
        """Run the pipeline once. Keywords: `on_event` (called with each `Event`), `cancel` (a threading.Event)."""
        return self._call_with_config(self._run, input, config, **kwargs)  # type: ignore[arg-type]  # keywords reach _run

    def _run(
        self,
        input: Any,
        config: RunnableConfig,
        *,
        on_event: Any = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        forge = self.forge
        idea, spec, overrides = _request(input)
        forge.check(**overrides)  # bad values fail here, before the prompt stage or any model load
        if isinstance(spec, GenerateRequest):
            spec = explicit_spec(forge, spec, style=overrides.get("style"))

        def emit(event: Any) -> None:
            for listener in (on_event, getattr(forge, "on_event", None)):
                if listener is not None:
                    listener(event)
            dispatch_custom_event(EVENT_NAME, event_data(event), config=config)

        return forge.run(idea, spec=spec, on_event=emit, cancel=cancel, **overrides)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """Yield progress `Event`s (prompt, generate steps with previews, critic, revise, done), then the result.

        Stopping early (closing the iterator) cancels the run between denoising steps.
        """
        events: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        finished = object()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self.invoke(input, config, on_event=events.put, cancel=cancel, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread below
                outcome["error"] = exc
            finally:
                events.put(finished)

        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(work,), name="ideaforge-stream", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not finished:
                yield item
        finally:
            cancel.set()  # a no-op when the run is over; otherwise it stops at the next step
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["result"]

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """`stream` for async callers: the run works in a thread, the event loop stays free."""
        iterator = self.stream(input, config, **kwargs)
        assert isinstance(iterator, Generator)
        finished = object()
        try:
            while (item := await asyncio.to_thread(next, iterator, finished)) is not finished:
                yield item
        finally:
            await asyncio.to_thread(iterator.close)


def as_runnable(forge: Any) -> ForgeRunnable:
    """The forge's whole pipeline as a LangChain Runnable (invoke, batch, ainvoke, stream of progress events)."""
    return ForgeRunnable(forge=forge)


def _request(input: Any) -> tuple[str, Any, dict[str, Any]]:
    """(idea, spec or the arguments that name an explicit prompt or None, run options) from any accepted input.

    A dict is a `GenerateRequest`; keys it does not know (e.g. `out`) go on to `IdeaForge.run`, which checks them.
    """
    if isinstance(input, PromptSpec):
        return input.idea, input, {}
    if isinstance(input, str):
        return input, None, {}
    if isinstance(input, GenerateRequest):
        args, extra = input, {}
    elif isinstance(input, Mapping):
        known = set(GenerateRequest.model_fields)
        extra = {k: v for k, v in input.items() if k not in known}
        args = GenerateRequest.parse(**{k: v for k, v in input.items() if k in known})
    else:
        raise InputError(
            f"cannot run {type(input).__name__!r}; pass an idea (str), a dict of generate_image arguments or a "
            "PromptSpec"
        )
    overrides = args.given()
    overrides.update(extra)
    explicit = args if args.prompt is not None or args.negative_prompt is not None else None
    return args.idea, explicit, overrides


def explicit_spec(forge: Any, args: GenerateRequest, *, style: str | None = None) -> PromptSpec:
    """A spec that uses the caller's prompt and/or negative prompt.

    The idea is still optimized, for its English form and elements (what the critic scores) and for whatever the
    caller left out; the result then goes through the chain's `finalize`, so the style preset, the 77-token budget
    and the "never negate the idea" rule apply to the caller's text as to any engine's.
    """
    base = forge.optimize(args.idea, style="")  # unstyled: `finalize` applies the preset once, below
    warnings = list(base.warnings)
    if args.prompt is not None:
        warnings.append("the positive prompt was given by the caller and used as written")
    try:
        draft = LLMSpec(
            idea_en=base.idea_en,
            positive=args.prompt if args.prompt is not None else base.positive,
            negative=args.negative_prompt if args.negative_prompt is not None else base.negative,
            elements=base.elements,
            checks=base.checks,
            language=base.language,
        )
    except ValidationError:
        raise InputError(f"prompt {args.prompt!r} is empty; pass a prompt with some words, or leave it out") from None
    preset = get_style(style if style is not None else forge.settings.style)
    return forge.chain.finalize(draft, base.idea, preset, base.engine, warnings)
