"""`PreferenceScorer`: a human-preference score per image (PickScore by default), reported beside alignment.

PickScore_v1 (Kirstain et al. 2023, arXiv:2305.01569) is a `transformers` CLIPModel fine-tuned from CLIP-H/14 on
Pick-a-Pic users' choices; its repository holds the model only, and its authors load the processor of
"laion/CLIP-ViT-H-14-laion2B-s32B-b79K". The score is PickScore's own formula,
`logit_scale.exp() * cosine(image embedding, prompt embedding)` (logit scale 100, so it reads as 100 x cosine),
and P(image A preferred to B) = softmax(score_A, score_B) (`preference_probability`). Typical values and where
they come from are in thresholds.py (PICKSCORE_*): about 20-23 for Stable Diffusion images, higher is better, and
comparisons mean most between images of one prompt.

Only CLIP-architecture models saved for transformers load here. HPSv2 is an open_clip checkpoint (a `.pt` file),
HPSv3 a Qwen2-VL model and ImageReward a BLIP model; they are refused with a one-line error.

Example (scoring needs the weights, so it is not run here; the rest is):
    >>> scorer = PreferenceScorer()  # PickScore_v1; nothing is loaded yet
    >>> scorer.processor
    'laion/CLIP-ViT-H-14-laion2B-s32B-b79K'
    >>> scores = scorer.score([image_a, image_b], "a red kitten in a basket")  # doctest: +SKIP
    >>> round(preference_probability(22.0, 21.0), 2)  # a 1-point lead: preferred about 73% of the time
    0.73
    >>> PreferenceScorer("xswu/HPSv2")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: preference model 'xswu/HPSv2' is HPSv2, an open_clip checkpoint that transformers cannot load; use a transformers CLIPModel such as 'yuvalkirstain/PickScore_v1' (--preference)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools._lazy import heavy_import
from ideaforge.tools.critic.scorer import (
    _MODELS,
    _check_device,
    _default_device,
    _first_line,
    _image_features,
    _looks_like_path,
    _offline,
    _resolve_dtype,
    _text_features,
)

PICKSCORE = "yuvalkirstain/PickScore_v1"
CLIP_H_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# Models people reach for that are not transformers CLIPModels, by a word of their Hub id.
_NOT_CLIP = {
    "hpsv2": "HPSv2, an open_clip checkpoint",
    "hps_v2": "HPSv2, an open_clip checkpoint",
    "hpsv3": "HPSv3, a Qwen2-VL model",
    "imagereward": "ImageReward, a BLIP model",
}


def preference_probability(score: float, other: float) -> float:
    """P(the image scored `score` is preferred to the one scored `other`): PickScore's softmax over the two.

    Example:
        >>> preference_probability(21.0, 21.0)
        0.5
    """
    return 1.0 / (1.0 + math.exp(min(max(other - score, -60.0), 60.0)))


def _not_clip(model: str) -> str | None:
    name = model.lower().replace("-", "")
    return next((what for key, what in _NOT_CLIP.items() if key.replace("-", "") in name), None)


def _processor_for(model: str, processor: str | None) -> str:
    """The processor to load: the one asked for, the model folder's own, or CLIP-H's for PickScore."""
    if processor is not None:
        if not isinstance(processor, str) or not processor.strip():
            raise InputError(f"processor {processor!r} is empty; pass a Hub id or a folder with a CLIPProcessor")
        return processor.strip()
    folder = Path(model).expanduser()
    if folder.is_dir():
        if any((folder / f).is_file() for f in _PROCESSOR_FILES):
            return str(folder)
        vision = _config(folder).get("vision_config") or {}
        if vision.get("hidden_size") == 1280 and vision.get("patch_size") == 14:  # CLIP-H/14, as PickScore is
            return CLIP_H_PROCESSOR
        return str(folder)  # `_load` names what is missing
    if model.rstrip("/").lower().endswith("pickscore_v1"):
        return CLIP_H_PROCESSOR
    return model


def _config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_folder(folder: Path, processor: str) -> None:
    """A one-line ModelNotFoundError unless `folder` holds a transformers CLIPModel (and its processor, if used)."""
    where = str(folder)
    if not (folder / "config.json").is_file():
        if any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            raise ModelNotFoundError(
                f"preference model folder {where!r} holds a .pt checkpoint and no config.json: open_clip models "
                f"such as HPSv2 cannot be loaded through transformers; pass a saved CLIPModel folder or {PICKSCORE!r}"
            )
        raise ModelNotFoundError(
            f"preference model folder {where!r} is incomplete (missing config.json); save a CLIPModel there with "
            f"save_pretrained, or pass another --preference"
        )
    config = _config(folder)
    kind = config.get("model_type")
    if kind != "clip" and "CLIPModel" not in (config.get("architectures") or []):
        raise ModelNotFoundError(
            f"preference model folder {where!r} is a {kind!r} model, not a transformers CLIPModel; only "
            f"CLIP-architecture preference models such as {PICKSCORE!r} load here"
        )
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelNotFoundError(
            f"preference model folder {where!r} is incomplete (missing model weights (*.safetensors)); "
            f"re-save it or pass another --preference"
        )
    if processor == where and not any((folder / f).is_file() for f in _PROCESSOR_FILES):
        raise ModelNotFoundError(
            f"preference model folder {where!r} has no processor (processor_config.json); save the CLIPProcessor "
            f"there or pass processor= (PickScore uses {CLIP_H_PROCESSOR!r})"
        )


def _load(model: str, processor: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """CLIPModel (eval, on device, in dtype) and CLIPProcessor, or a one-line ModelNotFoundError."""
    transformers = heavy_import("transformers")
    folder = Path(model).expanduser()
    if folder.is_dir():
        _check_folder(folder, processor)
        source = str(folder)
    elif _looks_like_path(model):
        raise ModelNotFoundError(
            f"preference model folder {model!r} does not exist; pass --preference with a folder holding a saved "
            f"CLIPModel, or a Hub id such as {PICKSCORE!r}"
        )
    else:
        source = model
    if _looks_like_path(processor) and not Path(processor).expanduser().is_dir():
        raise ModelNotFoundError(f"processor folder {processor!r} does not exist; pass processor= a CLIPProcessor folder or Hub id")
    loaded = []
    for what, name, cls in (("preference model", source, transformers.CLIPModel),
                            ("processor", processor, transformers.CLIPProcessor)):
        try:
            loaded.append(cls.from_pretrained(name))
        except OSError as exc:
            if Path(name).expanduser().is_dir():
                raise ModelNotFoundError(f"{what} folder {name!r} could not be read ({_first_line(exc)})") from exc
            if _offline():
                raise ModelNotFoundError(
                    f"{what} {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                    f"downloading it; run once online to cache it, or pass a local folder"
                ) from exc
            raise ModelNotFoundError(
                f"{what} {name!r} could not be downloaded ({_first_line(exc)}); check the id and the network, "
                f"or pass a local folder"
            ) from exc
        except Exception as exc:  # a config of another architecture, corrupt or mis-shaped weights
            raise ModelNotFoundError(
                f"{what} {name!r} is not a usable CLIP checkpoint ({_first_line(exc)}); only transformers CLIPModels "
                f"such as {PICKSCORE!r} load here"
            ) from exc
    clip, proc = loaded
    return clip.to(device=device, dtype=dtype).eval(), proc


class PreferenceScorer:
    """Scores images for a prompt with a CLIP-architecture human-preference model (PickScore_v1 by default).

    Args:
        model: Hub id or folder of a saved transformers CLIPModel.
        processor: Hub id or folder of its CLIPProcessor; default the model folder's own, or for PickScore (and
            any CLIP-H/14 folder without one) "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", as its authors load it.
        device: "cuda", "mps" or "cpu"; default the best available.
        dtype: torch dtype or its name; default float16 on CUDA, float32 elsewhere.

    Loaded models are cached with the CLIP critics' (`clear_cache()` frees them too), one per
    (model, processor, device, dtype). `score` fits `WithQuality(critic, scorer.score, label=scorer.label)`.

    Example:
        >>> PreferenceScorer("path/to/pickscore", processor="path/to/clip-h").label
        'pickscore'
        >>> PreferenceScorer().score([image], "a red kitten")  # doctest: +SKIP
        [21.7]
    """

    def __init__(
        self, model: str = PICKSCORE, *, processor: str | None = None, device: str | None = None, dtype: Any = None
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise InputError(f"preference model {model!r} is empty; pass a Hub id or a folder (--preference)")
        self.model = model.strip()
        what = _not_clip(self.model)
        if what and not Path(self.model).expanduser().is_dir():
            raise InputError(
                f"preference model {self.model!r} is {what} that transformers cannot load; use a transformers "
                f"CLIPModel such as {PICKSCORE!r} (--preference)"
            )
        self.processor = _processor_for(self.model, processor)
        self._device = device
        self._dtype = dtype
        self._clip: Any = None
        self._processor: Any = None

    def __repr__(self) -> str:
        return f"PreferenceScorer(model={self.model!r}, processor={self.processor!r}, device={self._device!r})"

    @property
    def label(self) -> str:
        """A short name for records: 'pickscore' for PickScore, else the model's last path part."""
        name = Path(self.model.rstrip("/")).name or self.model
        return "pickscore" if "pickscore" in self.model.lower() else name

    @property
    def clip(self) -> Any:
        """The loaded `transformers.CLIPModel`, or None before load()."""
        return self._clip

    def load(self) -> PreferenceScorer:
        """Load (or reuse) the model and processor; returns self. Raises ModelNotFoundError with the fix."""
        if self._clip is not None:
            return self
        device = self._device or _default_device()
        _check_device(device)
        dtype = _resolve_dtype(self._dtype, device)
        key = (f"preference:{self.model}|{self.processor}", device, str(dtype))
        clip, processor = _MODELS.get(key, lambda: _load(self.model, self.processor, device, dtype))
        self._device, self._dtype, self._processor = device, dtype, processor
        self._clip = clip  # last: another thread reads a set `_clip` as "loaded"
        return self

    def score(self, images: Sequence[Any], prompt: str) -> list[float]:
        """PickScore of each image for `prompt`: `logit_scale.exp() * cosine(image, prompt)`; higher is better.

        The prompt is cut to CLIP's 77 tokens, as PickScore's own code does; images go in batches of 16.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"prompt {prompt!r} is empty; the preference score needs the text the image is for")
        if not images:
            return []
        self.load()
        text_emb, _ = _text_features(self._clip, self._processor.tokenizer, self._device, [prompt.strip()])
        image_emb = _image_features(self._clip, self._processor, self._device, self._dtype, list(images))
        scale = float(self._clip.logit_scale.detach().exp())
        return [float(s) for s in (scale * image_emb @ text_emb[0]).tolist()]
