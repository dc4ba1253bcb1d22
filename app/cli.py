"""`ideaforge` command line: a thin shell that parses options, calls `agent`, and prints the result.

Exit statuses: 0 success, 1 a run failed (generation error, some batch ideas failed), 2 bad input or a missing
model, 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, Optional, TypeVar

import typer

app = typer.Typer(
    name="ideaforge",
    help="Turn a loose idea into a good Stable Diffusion image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    first = " ".join(str(message).split())
    print(f"ideaforge: error: {first}", file=sys.stderr)
    raise typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn ideaforge's exceptions into one line on stderr and the documented exit status; no tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from agent.errors import IdeaForgeError

        try:
            return fn(*args, **kwargs)
        except IdeaForgeError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; nothing partial was written", 130)

    return wrapper  # type: ignore[return-value]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


EngineOpt = typer.Option(None, "--engine", help="Prompt engine: auto, openai or rules.")
StyleOpt = typer.Option(None, "--style", help="Style preset (see `ideaforge styles`).")
LlmUrlOpt = typer.Option(None, "--llm-base-url", help="OpenAI-compatible server URL (Ollama, vLLM, LM Studio...).")
LlmModelOpt = typer.Option(None, "--llm-model", help="LLM model name.")
LlmMethodOpt = typer.Option(None, "--llm-method", help="Structured output: json_schema, function_calling, json_mode.")


@app.command()
@friendly
def prompt(
    idea: str = typer.Argument(..., help="The idea, in any language."),
    engine: Optional[str] = EngineOpt,
    style: Optional[str] = StyleOpt,
    llm_base_url: Optional[str] = LlmUrlOpt,
    llm_model: Optional[str] = LlmModelOpt,
    llm_method: Optional[str] = LlmMethodOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Turn an idea into an optimized positive and negative prompt (no image)."""
    from agent.chain import PromptChain
    from agent.settings import load_settings

    settings = load_settings(
        engine=engine, style=style, llm_base_url=llm_base_url, llm_model=llm_model, llm_method=llm_method
    )
    spec = PromptChain(settings).optimize(idea)
    if as_json:
        _emit_json(spec.model_dump())
        return
    _print_spec(spec)


def _print_spec(spec: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_row("[bold]positive[/]", spec.positive)
    table.add_row("[bold]negative[/]", spec.negative)
    table.add_row("[bold]elements[/]", ", ".join(spec.elements))
    table.add_row("[bold]engine[/]", f"{spec.engine}  (language {spec.language}, style {spec.style or 'none'})")
    table.add_row("[bold]tokens[/]", f"{spec.positive_tokens} / {spec.negative_tokens} of 77")
    for w in spec.warnings:
        table.add_row("[yellow]warning[/]", w)
    Console(soft_wrap=True).print(table)


@app.command()
def styles() -> None:
    """List the style presets."""
    import prompts

    for name, s in sorted(prompts.styles().items()):
        print(f"{name:15s} {s['description']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
