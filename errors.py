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
