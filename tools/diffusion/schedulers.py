"""Schedulers by friendly name: `euler_a`, `dpm++_2m_karras`, ... and the diffusers class and config each means.

A1111's sampler names ('DPM++ 2M Karras') and dashed or `dpmpp` spellings are accepted and canonicalised.

Example:
    >>> canonical_scheduler("DPM++ 2M Karras"), canonical_scheduler("dpmpp-2m-karras")
    ('dpm++_2m_karras', 'dpm++_2m_karras')
    >>> a1111_sampler("euler_a")
    'Euler a'
    >>> canonical_scheduler("warp-drive")
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: scheduler 'warp-drive' is unknown; use one of: euler, ...
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ideaforge.errors import InputError
from ideaforge.tools._lazy import heavy_import
from ideaforge.tools.diffusion.catalogue import _data


def scheduler_names() -> list[str]:
    """The friendly scheduler names `GenerationParams.scheduler` accepts, e.g. `euler_a`, `dpm++_2m_karras`."""
    return list(_data()["schedulers"])


def _scheduler_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower()).replace("dpmpp", "dpm++")


@lru_cache(maxsize=1)
def _scheduler_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name, spec in _data()["schedulers"].items():
        aliases[_scheduler_key(spec["a1111"])] = name
        aliases[name] = name
    for shipped in _shipped_only():  # a FLUX or SD 3 record names its own scheduler; it reproduces as shipped
        aliases[_scheduler_key(shipped)] = shipped
    return aliases


def _shipped_only() -> list[str]:
    """Scheduler classes the families run only as their models ship them (flow matching), by class name."""
    from ideaforge.tools.diffusion.families import _table

    return sorted({name for spec in _table().values() for name in spec["samplers"]})


def canonical_scheduler(name: str) -> str:
    """'DPM++ 2M Karras', 'dpm++-2m-karras' or 'dpm++_2m_karras' -> 'dpm++_2m_karras'; InputError if unknown."""
    found = _scheduler_aliases().get(_scheduler_key(name))
    if found is None:
        raise InputError(f"scheduler {name!r} is unknown; use one of: {', '.join(scheduler_names())}")
    return found


def a1111_sampler(scheduler: str) -> str:
    """The sampler name A1111 writes for a friendly scheduler name ('euler_a' -> 'Euler a')."""
    spec = _data()["schedulers"].get(scheduler)
    return spec["a1111"] if spec else scheduler


def _friendly_scheduler(scheduler: Any) -> str:
    name, config = type(scheduler).__name__, scheduler.config
    for friendly, spec in _data()["schedulers"].items():
        if spec["class"] == name and all(config.get(k) == v for k, v in spec["config"].items()):
            return friendly
    return name


def _make_scheduler(name: str, base_config: Any) -> Any:
    diffusers = heavy_import("diffusers")
    spec = _data()["schedulers"][name]
    return getattr(diffusers, spec["class"]).from_config(base_config, **spec["config"])
