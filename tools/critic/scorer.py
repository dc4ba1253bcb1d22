"""The CLIP critic: how well does an image show the idea, and which of its elements are missing?

Scores are on the torchmetrics CLIPScore scale, `max(100 * cosine(image, text), 0)`: one score for the whole idea
and one per element of the spec (decomposed scoring, as in OPT2I). The critique names the elements that score well
below the others, in words the reviser can act on.

Example (needs the CLIP weights, so not run here; `critique` and `default_threshold` below are):
    >>> from ideaforge.tools.critic import CLIPCritic
    >>> critic = CLIPCritic("openai/clip-vit-base-patch32").load()  # doctest: +SKIP
    >>> [s] = critic.score([image], "a red kitten in a basket", ["red kitten", "basket"])  # doctest: +SKIP
    >>> passed, missing = s.idea >= critic.threshold, s.critique.weak  # doctest: +SKIP

torch and transformers are imported inside the functions that need them, so importing this module is instant.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError, ModelNotFoundError

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

# An element is weak when it scores below FLOOR, or MARGIN or more below the best-shown element.
# FLOOR = 20.0: the 0.20 cosine below which the LAION-HD re-scoring above calls a pair a poor match.
# MARGIN = 5.0: half the ~10-point gap between noise (24.4-24.8) and a matching Stable Diffusion image (34.9-36.2)
#   under ViT-B/16 (sources above), i.e. a shortfall that is clearly more than noise between phrasings.
FLOOR = 20.0
MARGIN = 5.0

_IMAGE_BATCH = 16  # images per forward pass: bounds memory with many candidates at large CLIP resolutions

_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class Critique:
    """What the image is missing. `weak`: elements most in need of emphasis first; `text`: for the reviser."""

    weak: list[str]
    text: str


@dataclass
class ImageScore:
    """Scores of one image on the CLIPScore scale (0-100). `truncated` lists texts cut to CLIP's token limit."""

    idea: float
    elements: dict[str, float]
    truncated: list[str] = field(default_factory=list)
    critique: Critique = field(default_factory=lambda: Critique([], ""))


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


def critique(
    idea_score: float,
    element_scores: Mapping[str, float],
    *,
    floor: float = FLOOR,
    margin: float = MARGIN,
    truncated: Sequence[str] = (),
) -> Critique:
    """Which elements the image shows weakly, and a sentence per element that a reviser can act on.

    An element is weak when its score is below `floor`, or at least `margin` below the best-shown element.
    Weak elements come lowest score first. Pure: depends only on its arguments.

    Example:
        >>> c = critique(24.0, {"red kitten": 27.9, "basket": 14.2})
        >>> c.weak
        ['basket']
    """
    if not element_scores:
        text = f"Overall match with the idea: {idea_score:.1f}. No separate elements were scored."
        return Critique([], _with_truncation(text, truncated))
    best_name, best = max(element_scores.items(), key=lambda kv: kv[1])
    weak = [
        name
        for name, score in sorted(element_scores.items(), key=lambda kv: kv[1])
        if score < floor or best - score >= margin
    ]
    parts = [f"Overall match with the idea: {idea_score:.1f}."]
    if not weak:
        low = min(element_scores.values())
        parts.append(
            f"Every element is visible to a similar degree ({low:.1f} to {best:.1f}); none is missing."
        )
    for name in weak:
        score = element_scores[name]
        if name == best_name or best < floor:
            parts.append(f"The image barely shows {name!r} ({score:.1f}, below {floor:.1f}).")
        else:
            parts.append(f"The image barely shows {name!r} ({score:.1f}, vs {best:.1f} for {best_name!r}).")
    if weak:
        listed = ", ".join(repr(n) for n in weak)
        parts.append(
            f"Make {listed} more prominent: name each early in the prompt and describe it concretely."
        )
    return Critique(weak, _with_truncation(" ".join(parts), truncated))


def _with_truncation(text: str, truncated: Sequence[str]) -> str:
    if not truncated:
        return text
    cut = ", ".join(repr(t[:40] + ("…" if len(t) > 40 else "")) for t in truncated)
    return f"{text} Only the first 77 CLIP tokens of {cut} were scored; shorter wording is judged in full."


def _default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _check_device(device: str) -> None:
    import torch

    kind = device.split(":")[0]
    mps = getattr(torch.backends, "mps", None)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": mps is not None and mps.is_available(),
    }
    if not available.get(kind, False):
        usable = ", ".join(k for k, ok in available.items() if ok)
        raise InputError(f"device {device!r} is not available for the CLIP critic; use one of: {usable}")


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None:
        return torch.float16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    named = {
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
    }
    if str(dtype).lower() not in named:
        raise InputError(
            f"dtype {dtype!r} is not supported for the CLIP critic; use float16, bfloat16 or float32"
        )
    return named[str(dtype).lower()]


def _offline() -> bool:
    flags = (os.environ.get(k, "").strip().upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in {"1", "ON", "YES", "TRUE"} for f in flags)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1 or "\\" in model


def _load(model: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """CLIPModel (eval, on device, in dtype) and CLIPProcessor, or a one-line ModelNotFoundError."""
    from transformers import CLIPModel, CLIPProcessor

    folder = Path(model).expanduser()
    if folder.is_dir():
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any((folder / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
            missing.append("processor_config.json")
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            missing.append("model weights (*.safetensors)")
        if missing:
            raise ModelNotFoundError(
                f"CLIP model folder {str(folder)!r} is incomplete (missing {', '.join(missing)}); "
                f"save both CLIPModel and CLIPProcessor there with save_pretrained, or pass another --clip-model"
            )
        source = str(folder)
    elif _looks_like_path(model):
        raise ModelNotFoundError(
            f"CLIP model folder {model!r} does not exist; pass --clip-model with a folder holding a saved "
            f"CLIPModel and CLIPProcessor, or a Hub id such as {DEFAULT_MODEL!r}"
        )
    else:
        source = model
    try:
        clip = CLIPModel.from_pretrained(source)
        processor = CLIPProcessor.from_pretrained(source)
    except OSError as exc:
        if folder.is_dir():
            raise ModelNotFoundError(
                f"CLIP model folder {source!r} could not be read ({_first_line(exc)})"
            ) from exc
        if _offline():
            raise ModelNotFoundError(
                f"CLIP model {model!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                f"downloading it; run once online to cache it, or pass --clip-model PATH to a local CLIP folder"
            ) from exc
        raise ModelNotFoundError(
            f"CLIP model {model!r} could not be downloaded ({_first_line(exc)}); check the id and the network, "
            f"download it once while online and then set HF_HUB_OFFLINE=1, or pass --clip-model PATH"
        ) from exc
    except Exception as exc:  # unreadable config, corrupt weights, weights of the wrong shape
        raise ModelNotFoundError(
            f"CLIP model {model!r} is not a usable CLIP checkpoint ({_first_line(exc)}); "
            f"re-download it or pass another --clip-model"
        ) from exc
    clip = clip.to(device=device, dtype=dtype).eval()
    return clip, processor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def clear_cache() -> None:
    """Forget every loaded CLIP model (frees memory; the next `load()` reads from disk again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class CLIPCritic:
    """Scores images against an idea and its elements with a `transformers` CLIPModel.

    Args:
        model: Hub id (e.g. "openai/clip-vit-base-patch32") or a folder holding a saved CLIPModel + CLIPProcessor.
        device: "cuda", "mps" or "cpu"; default the best available, in that order.
        dtype: torch dtype or its name; default float16 on CUDA, float32 elsewhere.

    Loaded models are shared between critics with the same (model, device, dtype).

    Example:
        >>> critic = CLIPCritic("path/to/clip").load()  # doctest: +SKIP
        >>> scores = critic.score(images, "a red kitten in a basket", ["red kitten", "basket"])  # doctest: +SKIP
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None) -> None:
        if not isinstance(model, str) or not model.strip():
            raise InputError(f"clip model {model!r} is empty; pass a Hub id or a folder (--clip-model)")
        self.model = model.strip()
        self._device = device
        self._dtype = dtype
        self._clip: Any = None
        self._processor: Any = None

    def __repr__(self) -> str:
        return f"CLIPCritic(model={self.model!r}, device={self._device!r}, dtype={self._dtype!r})"

    @property
    def clip(self) -> Any:
        """The loaded `transformers.CLIPModel` (shared with other critics of the same key), or None before load()."""
        return self._clip

    @property
    def device(self) -> str | None:
        """The device scoring runs on ("cuda", "mps", "cpu"); the requested one until load() resolves it."""
        return self._device

    @property
    def dtype(self) -> Any:
        """The torch dtype of the loaded model; the requested one until load() resolves it."""
        return self._dtype

    @property
    def threshold(self) -> float:
        """Default pass threshold for this model's idea score (see `default_threshold`)."""
        return default_threshold(self.model)

    def load(self) -> CLIPCritic:
        """Load (or reuse) the model and processor; returns self. Raises ModelNotFoundError with the fix."""
        if self._clip is not None:
            return self
        device = self._device or _default_device()
        _check_device(device)
        dtype = _resolve_dtype(self._dtype, device)
        key = (self.model, device, str(dtype))
        with _CACHE_LOCK:  # one load per key even when several threads ask at once
            if key not in _CACHE:
                _CACHE[key] = _load(self.model, device, dtype)
            self._clip, self._processor = _CACHE[key]
        self._device, self._dtype = device, dtype
        return self

    def score(self, images: Sequence[Any], idea: str, elements: Sequence[str]) -> list[ImageScore]:
        """Score each image against `idea` and each of `elements`, with a critique per image.

        Args:
            images: PIL images (or paths to them), scored in batches.
            idea: the idea in English; scored as a whole.
            elements: the spec's elements (subjects, attributes, setting), each scored on its own.

        Texts over CLIP's 77 tokens are cut to 77 and listed in `ImageScore.truncated`.
        """
        if not isinstance(idea, str) or not idea.strip():
            raise InputError(f"idea {idea!r} is empty; the critic needs the idea's text to score against")
        names = list(dict.fromkeys(e.strip() for e in elements if isinstance(e, str) and e.strip()))
        if not images:
            return []
        self.load()
        texts = [idea.strip(), *names]
        text_emb, truncated = self._embed_texts(texts)
        image_emb = self._embed_images(list(images))
        # CLIPScore: 100 x cosine of L2-normalised embeddings, clamped at 0 (torchmetrics' definition).
        scores = (100.0 * image_emb @ text_emb.T).clamp(min=0).tolist()
        results = []
        for row in scores:
            per_element = {name: float(s) for name, s in zip(names, row[1:])}
            results.append(
                ImageScore(
                    idea=float(row[0]),
                    elements=per_element,
                    truncated=list(truncated),
                    critique=critique(float(row[0]), per_element, truncated=truncated),
                )
            )
        return results

    def _embed_texts(self, texts: list[str]) -> tuple[Any, list[str]]:
        import torch

        tokenizer = self._processor.tokenizer
        limit = int(self._clip.config.text_config.max_position_embeddings)
        lengths = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]
        truncated = [t for t, n in zip(texts, lengths) if n > limit]
        batch = tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        with torch.inference_mode():
            out = self._clip.get_text_features(
                input_ids=batch["input_ids"].to(self._device),
                attention_mask=batch["attention_mask"].to(self._device),
            )
        return _normalised(out), truncated

    def _embed_images(self, images: list[Any]) -> Any:
        import torch

        pictures = [_as_rgb(im) for im in images]
        chunks = []
        for start in range(0, len(pictures), _IMAGE_BATCH):
            pixels = self._processor.image_processor(
                pictures[start : start + _IMAGE_BATCH], return_tensors="pt"
            )
            with torch.inference_mode():
                out = self._clip.get_image_features(
                    pixel_values=pixels["pixel_values"].to(device=self._device, dtype=self._dtype)
                )
            chunks.append(_normalised(out))
        return torch.cat(chunks)


def _normalised(out: Any) -> Any:
    """Projected embeddings as float32 unit vectors (transformers 5 returns an output object, 4 a tensor)."""
    import torch

    emb = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(emb.float(), dim=-1)


def _as_rgb(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image {str(path)!r} does not exist")
        with Image.open(path) as opened:
            return opened.convert("RGB")
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return image  # numpy arrays and tensors go to the processor as they are


__all__ = [
    "FALLBACK_THRESHOLD",
    "KNOWN_THRESHOLDS",
    "CLIPCritic",
    "Critique",
    "ImageScore",
    "clear_cache",
    "critique",
    "default_threshold",
]
