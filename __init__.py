"""ideaforge's public Python API.

    >>> import ideaforge
    >>> spec = ideaforge.IdeaForge(engine="rules").optimize("cozy cabin at night")
    >>> spec.positive.startswith("cozy cabin at night")
    True

`IdeaForge(...).run(idea)` goes on to generate, score and revise, and returns a `RunResult`. Importing this
package is cheap: torch, diffusers and transformers load only when a model is first needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "IdeaForge": "ideaforge.agent.forge",
    "run": "ideaforge.agent.forge",
    "Event": "ideaforge.agent.forge",
    "PromptChain": "ideaforge.agent.chain",
    "PromptSpec": "ideaforge.agent.models",
    "RunResult": "ideaforge.agent.models",
    "Attempt": "ideaforge.agent.models",
    "ImageRecord": "ideaforge.agent.models",
    "Scores": "ideaforge.agent.models",
    "PngRecord": "ideaforge.agent.record",
    "GenerateRequest": "ideaforge.agent.request",
    "OptimizeRequest": "ideaforge.agent.request",
    "RunOptions": "ideaforge.agent.request",
    "make_tools": "ideaforge.app.integrations.langchain_tools",
    "as_runnable": "ideaforge.app.integrations.runnable",
    "Settings": "ideaforge.agent.settings",
    "load_settings": "ideaforge.agent.settings",
    "IdeaForgeError": "ideaforge.errors",
    "InputError": "ideaforge.errors",
    "ModelNotFoundError": "ideaforge.errors",
    "LLMError": "ideaforge.errors",
    "GenerationError": "ideaforge.errors",
    "Cancelled": "ideaforge.errors",
}

__all__ = [
    "Attempt",
    "Cancelled",
    "Event",
    "GenerateRequest",
    "GenerationError",
    "IdeaForge",
    "IdeaForgeError",
    "ImageRecord",
    "InputError",
    "LLMError",
    "ModelNotFoundError",
    "OptimizeRequest",
    "PngRecord",
    "PromptChain",
    "PromptSpec",
    "RunOptions",
    "RunResult",
    "Scores",
    "Settings",
    "__version__",
    "as_runnable",
    "load_settings",
    "make_tools",
    "run",
]

if TYPE_CHECKING:  # pragma: no cover
    from ideaforge.agent.chain import PromptChain
    from ideaforge.agent.forge import Event, IdeaForge, run
    from ideaforge.agent.models import Attempt, ImageRecord, PromptSpec, RunResult, Scores
    from ideaforge.agent.record import PngRecord
    from ideaforge.agent.request import GenerateRequest, OptimizeRequest, RunOptions
    from ideaforge.agent.settings import Settings, load_settings
    from ideaforge.app.integrations.langchain_tools import make_tools
    from ideaforge.app.integrations.runnable import as_runnable
    from ideaforge.errors import (
        Cancelled,
        GenerationError,
        IdeaForgeError,
        InputError,
        LLMError,
        ModelNotFoundError,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ideaforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
