"""ideaforge's public Python API.

    >>> import agent
    >>> spec = agent.IdeaForge(engine="rules").optimize("cozy cabin at night")
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
    "IdeaForge": "agent.forge",
    "run": "agent.forge",
    "Event": "agent.forge",
    "PromptChain": "agent.chain",
    "PromptSpec": "agent.models",
    "RunResult": "agent.models",
    "Attempt": "agent.models",
    "ImageRecord": "agent.models",
    "Scores": "agent.models",
    "Settings": "agent.settings",
    "load_settings": "agent.settings",
    "IdeaForgeError": "agent.errors",
    "InputError": "agent.errors",
    "ModelNotFoundError": "agent.errors",
    "LLMError": "agent.errors",
    "GenerationError": "agent.errors",
    "Cancelled": "agent.errors",
}

__all__ = [
    "Attempt",
    "Cancelled",
    "Event",
    "GenerationError",
    "IdeaForge",
    "IdeaForgeError",
    "ImageRecord",
    "InputError",
    "LLMError",
    "ModelNotFoundError",
    "PromptChain",
    "PromptSpec",
    "RunResult",
    "Scores",
    "Settings",
    "__version__",
    "load_settings",
    "run",
]

if TYPE_CHECKING:  # pragma: no cover
    from agent.chain import PromptChain
    from agent.errors import (
        Cancelled,
        GenerationError,
        IdeaForgeError,
        InputError,
        LLMError,
        ModelNotFoundError,
    )
    from agent.forge import Event, IdeaForge, run
    from agent.models import Attempt, ImageRecord, PromptSpec, RunResult, Scores
    from agent.settings import Settings, load_settings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
