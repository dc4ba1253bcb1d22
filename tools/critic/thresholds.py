"""Pass thresholds for the CLIP critic's idea score, per OpenAI CLIP checkpoint, with where each number comes from.

A threshold only means something for the weights it was measured with, so a model is recognised by its Hub id, its
cache path or, for a saved copy in a folder of any name, its vision tower's architecture.

Example:
    >>> default_threshold("openai/clip-vit-base-patch32"), default_threshold("openai/clip-vit-large-patch14-336")
    (30.0, 26.0)
    >>> default_threshold("some/unknown-clip") == FALLBACK_THRESHOLD
    True
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"

# Default pass thresholds for the idea score, on the CLIPScore scale (100 x cosine), per OpenAI CLIP checkpoint.
# Thresholds only mean something for the weights they were measured with, so only OpenAI's checkpoints are listed.
#
# ViT-B/32 = 30.0: LAION-400M (Schuhmann et al. 2021, arXiv:2111.02114) kept web pairs whose OpenAI ViT-B/32 cosine
#   was at least 0.3, "after trying different values and using human evaluations of how well the texts fit the
#   images"; they call 0.3 conservative (0.28-0.29 "also seemed okay in many cases"). Passing means the image fits
#   the idea at least as well as a pair a human judged a fit.
# ViT-B/16 = 30.0: halfway between the ViT-B/16 score of uniform noise against "a photo of a cat" (24.43 in the
#   torchmetrics `clip_score` docstring, 24.80 for the `CLIPScore` module) and Stable Diffusion's own images of six
#   PartiPrompts-style prompts (34.91 for v1-4, 36.21 for v1-5; diffusers docs, "Evaluating Diffusion Models").
# ViT-L/14 and ViT-L/14-336 = 26.0: no human-checked L/14 cut was found. A LAION-HD subset re-scored with ViT-L/14
#   (huggingface.co/datasets/drhead/laion_hd_21M_deduped) drops pairs below 0.20 as poor matches; DataComp
#   (Gadre et al. 2023) filters by L/14 rank (top 30%) rather than a fixed cut. 26.0 sits between that poor-match
#   cut and the ViT-B/32 pass mark; treat it as an estimate and override it with --threshold where it matters.
# Unknown models = 28.0: the ViT-B/32 cut LAION used to build LAION-2B-en (LAION-5B, Schuhmann et al. 2022; also
#   the "laion2b" baseline in the DataComp README), the data most open CLIP checkpoints were trained on; a
#   documented middle ground, not a measurement.
KNOWN_THRESHOLDS: dict[str, float] = {
    "clip-vit-base-patch32": 30.0,
    "clip-vit-base-patch16": 30.0,
    "clip-vit-large-patch14": 26.0,
    "clip-vit-large-patch14-336": 26.0,
}
FALLBACK_THRESHOLD = 28.0
# OpenAI architectures by vision tower, to recognise a saved copy in a folder of any name:
# (hidden_size, patch_size, image_size) -> checkpoint name.
_ARCHITECTURES = {
    (768, 32, 224): "clip-vit-base-patch32",
    (768, 16, 224): "clip-vit-base-patch16",
    (1024, 14, 224): "clip-vit-large-patch14",
    (1024, 14, 336): "clip-vit-large-patch14-336",
}


def _checkpoint_name(model: str) -> str | None:
    """The OpenAI checkpoint `model` is (by Hub id, cache path or a folder's config), or None."""
    name = str(model).lower().replace("_", "-").rstrip("/")
    for known in sorted(KNOWN_THRESHOLDS, key=len, reverse=True):  # "-336" before its prefix
        if name.endswith(known) or f"{known}/" in name or f"--{known}" in name:
            return known
    config = Path(model) / "config.json"
    if config.is_file():
        try:
            vision = json.loads(config.read_text(encoding="utf-8")).get("vision_config") or {}
            key = (
                vision.get("hidden_size", 768),
                vision.get("patch_size", 32),
                vision.get("image_size", 224),
            )
        except (OSError, ValueError, AttributeError):
            return None
        return _ARCHITECTURES.get(key)
    return None


def default_threshold(model: str) -> float:
    """Default pass threshold for the idea score of `model` (see KNOWN_THRESHOLDS for each number's source).

    Example:
        >>> default_threshold("openai/clip-vit-base-patch32")
        30.0
        >>> default_threshold("some/unknown-clip")
        28.0
    """
    name = _checkpoint_name(model)
    return KNOWN_THRESHOLDS[name] if name else FALLBACK_THRESHOLD


# --- the per-check CLIP critic (`checks.CLIPCheckCritic`) ---------------------------------------------------------
# A check passes when P(yes) = softmax(scale * cos(image, text), scale * cos(image, contrast))[0] > 0.5 + CHECK_MARGIN.
# 0.1 is a chosen default, not a measurement: it asks the check's text to beat its contrast clearly rather than tie.
# With OpenAI CLIP's logit scale of 100, P(yes) > 0.6 means the text's cosine beats the contrast's by at least
# ln(0.6 / 0.4) / 100 = 0.0041 (0.41 on the CLIPScore scale), so a coin-flip near-tie fails. Raise it where false
# passes cost more than false failures (a larger margin sends more checks to repair).
CHECK_MARGIN = 0.1

# --- the preference score (`preference.PreferenceScorer`) ---------------------------------------------------------
# PickScore (Kirstain et al. 2023, "Pick-a-Pic", arXiv:2305.01569) = logit_scale.exp() * cosine(image, prompt) of
# PickScore_v1, a CLIP-H/14 fine-tuned on Pick-a-Pic; its logit scale is 100, so scores read as 100 x cosine. The
# paper reports 70.2% agreement with real users' choices on the Pick-a-Pic test set (humans 68.0%, zero-shot CLIP-H
# 60.8%); HPSv3's comparison (quoted in issue 14) gives PickScore 62-80% across test sets, HPSv2 64-83%.
# The score is made to rank images of one prompt: the paper's P(A preferred to B) is softmax(score_A, score_B), so
# a lead of 1 point means about 73%, of 2 points about 88%. Absolute values shift with the prompt, so the numbers
# below are orientation, not a pass mark:
# - PICKSCORE_MEAN / PICKSCORE_STD = 21.38 / 1.18: the normalisation public reward-model training code uses for
#   PickScore_v1 on generated images (seen in several repositories' PickScore wrappers; its original dataset is
#   not stated there).
# - PICKSCORE_TYPICAL = 20-23: where Stable Diffusion images usually land, SD 1.5 at the low end (about 20.5-21.5)
#   and SDXL around 22; an estimate from published DPO-style comparison tables, not a measurement of ours.
# - PICKSCORE_GOOD = 22.5: about the mean plus one standard deviation; a chosen default for "better than most".
PICKSCORE_MEAN = 21.38
PICKSCORE_STD = 1.18
PICKSCORE_TYPICAL = (20.0, 23.0)
PICKSCORE_GOOD = 22.5
