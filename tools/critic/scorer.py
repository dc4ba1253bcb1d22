"""`CLIPCritic`: scores images against an idea and its elements with a `transformers` CLIPModel.

Scores are on the torchmetrics CLIPScore scale, `max(100 * cosine(image, text), 0)`: one for the whole idea and one
per element of the spec (decomposed scoring, as in OPT2I). Loaded models are shared between critics with the same
(model, device, dtype). torch and transformers are imported inside the functions that need them.

Example:
    >>> critic = CLIPCritic("openai/clip-vit-base-patch32")  # nothing is loaded yet
    >>> critic.threshold
    30.0
    >>> CLIPCritic(" ")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: clip model ' ' is empty; pass a Hub id or a folder (--clip-model)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools._lazy import LoadOnce, heavy_import
from ideaforge.tools.critic.feedback import ImageScore, critique
from ideaforge.tools.critic.thresholds import DEFAULT_MODEL, default_threshold

_IMAGE_BATCH = 16  # images per forward pass: bounds memory with many candidates at large CLIP resolutions

_MODELS: LoadOnce[tuple[str, str, str], tuple[Any, Any]] = LoadOnce()


def _default_device() -> str:
    torch = heavy_import("torch")

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _check_device(device: str) -> None:
    torch = heavy_import("torch")

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
    torch = heavy_import("torch")

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
    transformers = heavy_import("transformers")
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
        clip = transformers.CLIPModel.from_pretrained(source)
        processor = transformers.CLIPProcessor.from_pretrained(source)
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
    _MODELS.clear()


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
        # One load per key even when several threads ask at once; `_load` is looked up here so it can be wrapped.
        clip, processor = _MODELS.get(key, lambda: _load(self.model, device, dtype))
        self._device, self._dtype, self._processor = device, dtype, processor
        self._clip = clip  # last: another thread reads a set `_clip` as "loaded, device and dtype resolved"
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
        return _text_features(self._clip, self._processor.tokenizer, self._device, texts)

    def _embed_images(self, images: list[Any]) -> Any:
        return _image_features(self._clip, self._processor, self._device, self._dtype, images)


def _text_features(clip: Any, tokenizer: Any, device: str | None, texts: list[str]) -> tuple[Any, list[str]]:
    """Unit text embeddings of `texts` in one forward pass, and the texts cut to CLIP's token limit."""
    torch = heavy_import("torch")

    limit = int(clip.config.text_config.max_position_embeddings)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]
    truncated = [t for t, n in zip(texts, lengths) if n > limit]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    with torch.inference_mode():
        out = clip.get_text_features(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        )
    return _normalised(out), truncated


def _image_features(clip: Any, processor: Any, device: str | None, dtype: Any, images: list[Any]) -> Any:
    """Unit image embeddings, `_IMAGE_BATCH` images per forward pass."""
    torch = heavy_import("torch")

    pictures = [_as_rgb(im) for im in images]
    chunks = []
    for start in range(0, len(pictures), _IMAGE_BATCH):
        pixels = processor.image_processor(pictures[start : start + _IMAGE_BATCH], return_tensors="pt")
        with torch.inference_mode():
            out = clip.get_image_features(pixel_values=pixels["pixel_values"].to(device=device, dtype=dtype))
        chunks.append(_normalised(out))
    return torch.cat(chunks)


def _normalised(out: Any) -> Any:
    """Projected embeddings as float32 unit vectors (transformers 5 returns an output object, 4 a tensor)."""
    torch = heavy_import("torch")

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
