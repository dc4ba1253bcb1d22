"""LoRAs: `parse_lora` reads 'ID_OR_PATH[:SCALE]', and `_load_loras` loads them into a pipeline as named adapters.

Example:
    >>> parse_lora("loras/ink.safetensors:0.8")
    LoraSpec(source='loras/ink.safetensors', scale=0.8, weight_name=None)
    >>> parse_lora("owner/repo/pytorch_lora_weights.safetensors")
    LoraSpec(source='owner/repo', scale=1.0, weight_name='pytorch_lora_weights.safetensors')
    >>> str(parse_lora("owner/repo:0.5"))
    'owner/repo:0.5'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools.diffusion.source import SAFETENSORS_SUFFIXES, _offline, _one_line


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to load: a Hub id, a folder or a `.safetensors` file, with its strength."""

    source: str
    scale: float = 1.0
    weight_name: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.scale:g}"


def parse_lora(text: str) -> LoraSpec:
    """'ID_OR_PATH[:SCALE]' -> LoraSpec. A trailing ':number' is the scale (default 1.0).

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
    if sep and head:
        try:
            scale = float(tail)
            source = head
        except ValueError:
            pass  # a ':' that is part of the path or id, e.g. C:\loras\ink.safetensors
    if not math.isfinite(scale) or abs(scale) > 10:
        raise InputError(
            f"lora scale {tail!r} in {text!r} is invalid: use a number between -10 and 10, e.g. :0.8"
        )
    weight_name = None
    path = Path(source).expanduser()
    if not path.exists():
        parts = source.split("/")
        if len(parts) >= 3 and Path(source).suffix in SAFETENSORS_SUFFIXES:  # owner/repo/file.safetensors
            source, weight_name = "/".join(parts[:2]), "/".join(parts[2:])
    return LoraSpec(source=source, scale=scale, weight_name=weight_name)


def _load_loras(pipe: Any, loras: Sequence[LoraSpec]) -> None:
    names = []
    for i, spec in enumerate(loras):
        path = Path(spec.source).expanduser()
        name = f"lora_{i}"
        try:
            if path.is_file():
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            else:
                pipe.load_lora_weights(
                    str(path) if path.is_dir() else spec.source,
                    weight_name=spec.weight_name,
                    adapter_name=name,
                    local_files_only=_offline() or path.is_dir(),
                )
        except Exception as exc:
            raise ModelNotFoundError(
                f"could not load LoRA {spec.source!r}: {_one_line(exc)}; pass --lora with a .safetensors file, "
                f"a LoRA folder, or a cached Hub id (owner/repo/weights.safetensors)"
            ) from exc
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[spec.scale for spec in loras])
