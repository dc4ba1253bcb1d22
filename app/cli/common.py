"""What every command shares: one line on stderr and the documented exit status for ideaforge's errors, JSON out.

Exit statuses: 0 success, 1 a run failed (generation error, some batch ideas failed), 2 bad input or a missing
model, 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    """One line on stderr, secrets redacted and control characters removed, then exit with `code`."""
    from ideaforge.tools.sanitize import safe

    first = " ".join(safe(str(message)).split())
    print(f"ideaforge: error: {first}", file=sys.stderr)
    raise typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn ideaforge's exceptions into one line on stderr and the documented exit status; no tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ideaforge.errors import IdeaForgeError

        try:
            return fn(*args, **kwargs)
        except IdeaForgeError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; nothing partial was written", 130)

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    """One JSON object on stdout, secrets redacted and control characters removed from every string."""
    from ideaforge.tools.sanitize import safe_data

    data = safe_data(json.loads(json.dumps(obj, default=str)))
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def warn_fallback(spec: Any) -> None:
    """One line on stderr when the LLM failed and the rules engine wrote the prompt instead."""
    if getattr(spec, "fallback", None):
        from ideaforge.tools.sanitize import safe

        reason = " ".join(safe(spec.fallback).split())
        print(f"ideaforge: warning: the LLM failed ({reason}); the rules engine wrote this prompt", file=sys.stderr)


MAX_SPEC_BYTES = 1_000_000  # a spec is a few kilobytes; anything near this is not one


def read_spec(source: str) -> Any:
    """The `PromptSpec` in a file (or on stdin for "-") that `ideaforge prompt --json` printed.

    Raises:
        InputError: one line naming the file and the fix when it is missing, not JSON, or not a prompt spec.
    """
    from pydantic import ValidationError

    from ideaforge.agent.models import PromptSpec
    from ideaforge.errors import InputError, explain

    name = "stdin" if source == "-" else repr(source)
    fix = "pass the JSON that `ideaforge prompt IDEA --json` printed"
    try:
        if source == "-":
            text = sys.stdin.read(MAX_SPEC_BYTES + 1)
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"--refine {name} does not exist; {fix}") from None
    except IsADirectoryError:
        raise InputError(f"--refine {name} is a folder, not a file; {fix}") from None
    except UnicodeDecodeError:
        raise InputError(f"--refine {name} is not a text file; {fix}") from None
    except OSError as exc:
        raise InputError(f"--refine {name} cannot be read ({exc.strerror or exc}); {fix}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise InputError(f"--refine {name} is over {MAX_SPEC_BYTES} characters, too large for a prompt spec; {fix}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--refine {name} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {fix}") from None
    if not isinstance(data, dict):
        what = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(data), "null")
        raise InputError(f"--refine {name} holds {what}, not a prompt spec; {fix}")
    try:
        return PromptSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"--refine {name} is not a prompt spec: {explain(exc)}; {fix}") from None
