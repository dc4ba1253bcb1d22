"""LoRAs: `parse_lora` reads 'ID_OR_PATH[:SCALE]', `_check_lora` checks one before anything loads, and
`_load_loras` loads them into a pipeline as named adapters.

A LoRA is a `.safetensors` file, a folder holding one, or a Hub id (`owner/repo`, or `owner/repo/weights.safetensors`
to pick a file), with an optional `:SCALE`. Pickle files (.ckpt/.pt/.pth/.bin/.pkl) can run code when loaded, so,
as for models, they are refused unless `allow_pickle`.

Example:
    >>> parse_lora("loras/ink.safetensors:0.8")
    LoraSpec(source='loras/ink.safetensors', scale=0.8, weight_name=None)
    >>> parse_lora("owner/repo/pytorch_lora_weights.safetensors")
    LoraSpec(source='owner/repo', scale=1.0, weight_name='pytorch_lora_weights.safetensors')
    >>> str(parse_lora("owner/repo:0.5"))
    'owner/repo:0.5'
    >>> parse_lora("ink.safetensors:abc")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: lora scale 'abc' in 'ink.safetensors:abc' is not a number; use e.g. ink.safetensors:0.8
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools.diffusion.source import _HUB_ID, PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, _offline, _one_line

_WEIGHT_SUFFIXES = PICKLE_SUFFIXES | SAFETENSORS_SUFFIXES
_FORMS = "use --lora with a .safetensors file, a LoRA folder or a Hub id (owner/repo[/weights.safetensors])"
_PICKLE_FIX = "convert it to .safetensors, or pass --allow-pickle if you trust where it came from"


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to load: a Hub id, a folder or a `.safetensors` file, with its strength."""

    source: str
    scale: float = 1.0
    weight_name: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.scale:g}"

    @property
    def name(self) -> str:
        """What the user named: the file, folder or Hub id, with the weights file when one was picked."""
        return f"{self.source}/{self.weight_name}" if self.weight_name else self.source


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", ".", "~")) or "\\" in text or bool(re.match(r"^[A-Za-z]:", text))


def parse_lora(text: str) -> LoraSpec:
    """'ID_OR_PATH[:SCALE]' -> LoraSpec. A trailing ':number' is the scale (default 1.0).

    Only the syntax is checked here; `DiffusionTool` checks that the file, folder or Hub id can be loaded.

    Example:
        >>> parse_lora("loras/ink.safetensors:0.8")
        LoraSpec(source='loras/ink.safetensors', scale=0.8, weight_name=None)
    """
    raw = text.strip()
    if not raw:
        raise InputError(
            "lora '' is empty; use --lora ID_OR_PATH[:SCALE], e.g. --lora loras/ink.safetensors:0.8"
        )
    source, scale = raw, 1.0
    head, sep, tail = raw.rpartition(":")
    # The ':' is part of the path when what follows it is a path (C:\loras\ink.safetensors) or the whole text
    # names an existing file or folder; otherwise what follows it is the scale, and must be a number.
    is_scale = bool(sep and head) and not (
        "/" in tail
        or "\\" in tail
        or Path(tail).suffix.lower() in _WEIGHT_SUFFIXES
        or Path(raw).expanduser().exists()
    )
    if is_scale:
        try:
            scale = float(tail)
        except ValueError:
            raise InputError(
                f"lora scale {tail!r} in {text!r} is not a number; use e.g. {head.strip()}:0.8"
            ) from None
        source = head.strip()
        if not math.isfinite(scale) or abs(scale) > 10:
            raise InputError(
                f"lora scale {tail!r} in {text!r} is invalid: use a number between -10 and 10, e.g. :0.8"
            )
    weight_name = None
    parts = source.split("/")
    if (
        not Path(source).expanduser().exists()
        and not _looks_like_path(source)
        and len(parts) >= 3
        and Path(source).suffix.lower() in _WEIGHT_SUFFIXES
    ):  # owner/repo/weights.safetensors
        source, weight_name = "/".join(parts[:2]), "/".join(parts[2:])
    return LoraSpec(source=source, scale=scale, weight_name=weight_name)


def _check_weights_file(what: str, name: str, allow_pickle: bool) -> None:
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise InputError(
            f"{what} {name!r} is a pickle file ({suffix}), which can run arbitrary code when loaded; {_PICKLE_FIX}"
        )
    if suffix not in _WEIGHT_SUFFIXES:
        raise InputError(f"{what} {name!r} is not a .safetensors file; {_FORMS}")


def _check_lora(spec: LoraSpec, allow_pickle: bool) -> None:
    """Refuse, in one line naming the value, a LoRA that cannot be loaded: before any model loads."""
    if not math.isfinite(spec.scale) or abs(spec.scale) > 10:
        raise InputError(f"lora scale {spec.scale!r} of {spec.name!r} is invalid: use a number between -10 and 10")
    path = Path(spec.source).expanduser()
    if path.is_file():
        _check_weights_file("LoRA file", spec.source, allow_pickle)
    elif path.is_dir():
        if spec.weight_name is not None:
            if not (path / spec.weight_name).is_file():
                raise InputError(f"LoRA file {str(path / spec.weight_name)!r} does not exist; {_FORMS}")
            _check_weights_file("LoRA file", str(path / spec.weight_name), allow_pickle)
        elif not any(part.suffix.lower() in SAFETENSORS_SUFFIXES for part in path.iterdir()):
            pickled = sorted(part.name for part in path.iterdir() if part.suffix.lower() in PICKLE_SUFFIXES)
            if not pickled:
                raise InputError(f"LoRA folder {spec.source!r} has no .safetensors weights; {_FORMS}")
            if not allow_pickle:
                raise InputError(
                    f"LoRA folder {spec.source!r} has only pickle weights ({', '.join(pickled)}), which can run "
                    f"arbitrary code when loaded; convert them to .safetensors, or pass --allow-pickle if you trust "
                    f"where they came from"
                )
    elif _looks_like_path(spec.source) or Path(spec.source).suffix.lower() in _WEIGHT_SUFFIXES:
        raise InputError(f"LoRA file {spec.name!r} does not exist; {_FORMS}")
    elif not _HUB_ID.match(spec.source):
        raise InputError(f"lora {spec.name!r} is not a file, a folder or a Hub id; {_FORMS}")
    elif spec.weight_name is not None:
        _check_weights_file("LoRA weights", spec.weight_name, allow_pickle)


def _load_loras(pipe: Any, loras: Sequence[LoraSpec], allow_pickle: bool) -> None:
    names = []
    for i, spec in enumerate(loras):
        _check_lora(spec, allow_pickle)  # already checked by DiffusionTool; a LoRA may have been deleted since
        path = Path(spec.source).expanduser()
        name = f"lora_{i}"
        # use_safetensors=True keeps diffusers from falling back to pickle weights in a folder or Hub repo.
        safe: dict[str, Any] = {} if allow_pickle else {"use_safetensors": True}
        try:
            if path.is_file():
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name, **safe)
            else:
                pipe.load_lora_weights(
                    str(path) if path.is_dir() else spec.source,
                    weight_name=spec.weight_name,
                    adapter_name=name,
                    local_files_only=_offline() or path.is_dir(),
                    **safe,
                )
        except Exception as exc:
            raise ModelNotFoundError(
                f"could not load LoRA {spec.name!r}: {_one_line(exc)}; {_FORMS} that is cached or on disk"
            ) from exc
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[spec.scale for spec in loras])
