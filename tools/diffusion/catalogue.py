"""The bundled catalogue, `tools/data/profiles.json`: model profiles, LoRA profiles, families and schedulers.

`match_profile` finds the profile a model name (Hub id, or a local copy's folder or file name) and its LoRAs get.

Example:
    >>> profile, lora_profile = match_profile("stabilityai/sd-turbo")
    >>> (profile["name"], profile["steps"], profile["guidance"], lora_profile)
    ('sd-turbo', 1, 0.0, None)
    >>> match_profile("my/own-finetune")
    (None, None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    """profiles.json, read once."""
    text = resources.files("ideaforge.tools").joinpath("data").joinpath("profiles.json").read_text(encoding="utf-8")
    return json.loads(text)


def match_profile(
    model: str, loras: Sequence[str] = ()
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The profiles.json entries for a model name (Hub id or file/folder name) and for its LoRAs, if any match."""
    data = _data()
    match = next((p for p in data["profiles"] if re.search(p["match"], model, re.IGNORECASE)), None)
    lora_match = next(
        (p for p in data["lora_profiles"] for lora in loras if re.search(p["match"], lora, re.IGNORECASE)),
        None,
    )
    return match, lora_match
