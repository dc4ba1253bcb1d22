"""The few exceptions ideaforge raises, named for what the caller should do about them.

- `InputError`: the caller passed a bad value; the message names it and the fix. CLI exit status 2.
- `ModelNotFoundError`: a model is neither cached nor reachable. CLI exit status 2.
- `LLMError`: the language model failed (HTTP error, timeout, unusable reply); retryable, and the prompt chain
  falls back to the rules engine rather than letting it escape.
- `GenerationError`: the diffusion or critic stage failed for one idea. CLI exit status 1.
- `Cancelled`: the user stopped a run between denoising steps.
"""

from __future__ import annotations


class IdeaForgeError(Exception):
    """Base class of every error ideaforge raises on purpose."""

    exit_code = 1


class InputError(IdeaForgeError, ValueError):
    """A usage mistake: a bad idea, size, style, option or file. The message names the value and the fix."""

    exit_code = 2


class ModelNotFoundError(IdeaForgeError):
    """A diffusion or CLIP model could not be found locally or downloaded."""

    exit_code = 2


class LLMError(IdeaForgeError):
    """The language model failed to give a usable reply (retryable)."""


class GenerationError(IdeaForgeError):
    """Image generation or scoring failed."""


class Cancelled(IdeaForgeError):
    """The run was cancelled between steps."""

    exit_code = 130


def explain(exc: BaseException, *, secret_fields: tuple[str, ...] = ("key", "secret", "token", "password")) -> str:
    """One line for a pydantic `ValidationError`: per problem, the field, the bad value and what is allowed.

    Every entry point (Python, CLI, batch rows, LangChain and MCP tools) reports bad input through this one
    formatter; values of fields whose name holds a secret word are shown as `***`. Other exceptions become their
    message on one line.

    Example:
        >>> from pydantic import BaseModel, Field, ValidationError
        >>> class Args(BaseModel):
        ...     steps: int = Field(ge=1)
        >>> try:
        ...     Args(steps=0)
        ... except ValidationError as exc:
        ...     print(explain(exc))
        steps = 0: Input should be greater than or equal to 1
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return " ".join(str(exc).split()) or type(exc).__name__
    try:
        found = errors(include_url=False)
    except TypeError:
        found = []
    if not found:
        return " ".join(str(exc).split()) or type(exc).__name__
    parts = [_one(error, secret_fields) for error in found[:5]]
    if len(found) > 5:
        parts.append(f"and {len(found) - 5} more")
    return "; ".join(parts)


def _one(error: dict, secret_fields: tuple[str, ...]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "input"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error.get("type") == "extra_forbidden":
        return f"unknown argument {where!r}: leave it out or check its spelling"
    if error.get("type") == "missing":
        return f"{where} is required"
    if error.get("type") == "value_error" and not error.get("loc"):
        return " ".join(message.split())  # a whole-model rule: its message already names the values
    value = error.get("input")
    shown = "***" if any(word in where.lower() for word in secret_fields) else _short(value)
    return " ".join(f"{where} = {shown}: {message}".split())


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
