"""The CLIP critic: how well does an image show the idea, and which of its elements are missing?

Scores are on the torchmetrics CLIPScore scale, `max(100 * cosine(image, text), 0)`: one score for the whole idea
and one per element of the spec (decomposed scoring, as in OPT2I). The critique names the elements that score well
below the others, in words the reviser can act on. Three modules, one idea each: `thresholds` (the pass mark per
CLIP checkpoint), `feedback` (the critique, pure) and `scorer` (`CLIPCritic`, loading and the model cache).

Example (scoring needs the CLIP weights, so it is not run here; the rest is):
    >>> critic = CLIPCritic("openai/clip-vit-base-patch32").load()  # doctest: +SKIP
    >>> [s] = critic.score([image], "a red kitten in a basket", ["red kitten", "basket"])  # doctest: +SKIP
    >>> passed, missing = s.idea >= critic.threshold, s.critique.weak  # doctest: +SKIP
    >>> CLIPCritic("openai/clip-vit-base-patch32").threshold
    30.0
    >>> critique(24.0, {"red kitten": 27.9, "basket": 14.2}).weak
    ['basket']

torch and transformers are imported inside the functions that need them, so importing this package is instant.
"""

from ideaforge.tools.critic.checks import CLIPCheckCritic
from ideaforge.tools.critic.combine import Fallback, Merged, WithQuality
from ideaforge.tools.critic.feedback import FLOOR, MARGIN, Critique, ImageScore, critique
from ideaforge.tools.critic.preference import PreferenceScorer
from ideaforge.tools.critic.scorer import CLIPCritic, clear_cache
from ideaforge.tools.critic.scorer import _load as _load  # bench/bench_cold_warm.py reaches for it
from ideaforge.tools.critic.thresholds import DEFAULT_MODEL, FALLBACK_THRESHOLD, KNOWN_THRESHOLDS, default_threshold
from ideaforge.tools.critic.verdicts import Critic, Review, Verdict, alignment
from ideaforge.tools.critic.vlm import VLMCritic

__all__ = [
    "DEFAULT_MODEL",
    "FALLBACK_THRESHOLD",
    "FLOOR",
    "KNOWN_THRESHOLDS",
    "MARGIN",
    "CLIPCheckCritic",
    "CLIPCritic",
    "Critic",
    "Critique",
    "Fallback",
    "ImageScore",
    "Merged",
    "PreferenceScorer",
    "Review",
    "VLMCritic",
    "Verdict",
    "WithQuality",
    "alignment",
    "clear_cache",
    "critique",
    "default_threshold",
]
