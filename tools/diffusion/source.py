"""Where a model comes from: a Hub id, a diffusers folder or a single-file checkpoint, and whether it can be had.

`_classify` tells them apart without loading anything (and refuses pickle checkpoints unless allowed);
`_hub_model_index` fails fast, with the fix in the message, on a Hub model that is neither cached nor reachable.

Example:
    >>> _classify("stabilityai/sd-turbo", allow_pickle=False)
    _Source(kind='hub', ref='stabilityai/sd-turbo', display='stabilityai/sd-turbo')
    >>> _classify("./nowhere", allow_pickle=False)
    Traceback (most recent call last):
    ...
    ideaforge.errors.ModelNotFoundError: model './nowhere' does not exist; pass --model with a Hub id ...
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools._lazy import heavy_import

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class _Source:
    kind: str  # "hub" | "folder" | "file"
    ref: str  # Hub id or absolute path
    display: str  # the name profiles are matched against


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _display_name(path: Path) -> str:
    # Inside the HF cache a snapshot folder is named by commit; the repo name is further up.
    for part in path.parts:
        if part.startswith("models--"):
            return part[len("models--") :].replace("--", "/")
    return path.stem if path.is_file() else path.name


def _classify(model: str, allow_pickle: bool) -> _Source:
    if not model or not model.strip():
        raise InputError(
            "model '' is empty; pass --model with a Hub id, a diffusers folder or a .safetensors file"
        )
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"model folder {model!r} has no model_index.json; pass a diffusers folder (saved with "
                f"save_pretrained) or a .safetensors checkpoint"
            )
        return _Source("folder", str(path.resolve()), _display_name(path.resolve()))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise InputError(
                f"model {model!r} is a pickle checkpoint ({suffix}), which can run arbitrary code when loaded; "
                f"convert it to .safetensors, or pass --allow-pickle if you trust where it came from"
            )
        if suffix not in PICKLE_SUFFIXES | SAFETENSORS_SUFFIXES:
            raise InputError(f"model {model!r} is not a .safetensors checkpoint or a diffusers folder")
        return _Source("file", str(path.resolve()), _display_name(path))
    looks_like_path = (
        model.startswith((".", "/", "~"))
        or "\\" in model
        or path.suffix.lower() in (PICKLE_SUFFIXES | SAFETENSORS_SUFFIXES)
    )
    if looks_like_path or not _HUB_ID.match(model):
        raise ModelNotFoundError(
            f"model {model!r} does not exist; pass --model with a Hub id (e.g. stabilityai/sd-turbo), "
            f"a diffusers folder or a .safetensors file"
        )
    return _Source("hub", model, model)


def _not_cached(repo_id: str, why: str) -> ModelNotFoundError:
    if _offline():
        fix = f"unset HF_HUB_OFFLINE and download it once (`hf download {repo_id}`)"
    else:
        fix = (
            f"download it once where the Hub is reachable (`hf download {repo_id}`; "
            f"HF_HUB_OFFLINE=1 then uses the cache)"
        )
    return ModelNotFoundError(
        f"model {repo_id!r} is not in the local Hugging Face cache and {why}: {fix}, "
        f"or pass --model PATH to a local diffusers folder or .safetensors file"
    )


def _hub_model_index(repo_id: str) -> Path | None:
    """The cached model_index.json of a Hub model; fails fast when the model is neither cached nor reachable."""
    hub = heavy_import("huggingface_hub")
    errors = heavy_import("huggingface_hub.errors")

    cached = hub.try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise _not_cached(repo_id, "HF_HUB_OFFLINE is set")
    try:
        hub.HfApi().model_info(repo_id, timeout=8)
    except errors.GatedRepoError:
        raise ModelNotFoundError(
            f"model {repo_id!r} is gated on the Hugging Face Hub: accept its license on huggingface.co and log in "
            f"with `hf auth login`, or pass --model PATH"
        ) from None
    except errors.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"model {repo_id!r} does not exist on the Hugging Face Hub (or is private: log in with "
            f"`hf auth login`); check the id or pass --model PATH"
        ) from None
    except Exception as exc:  # connection refused, DNS failure, timeout, proxy error: all mean 'unreachable'
        raise _not_cached(repo_id, f"the Hugging Face Hub is unreachable ({type(exc).__name__})") from exc
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__
