"""Shared pieces of the benchmarks: interleaved timing, summaries, the machine's description, JSON output.

Not a benchmark itself. Every `bench/bench_*.py` script imports it as `_common` (the script's own folder is first
on `sys.path` when it runs as `python bench/NAME.py`), and it puts the repository root on `sys.path`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is built from configs; never reach the Hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def idea_file() -> Path:
    """The shared idea set, or the copy in the tests when the shared folder is absent."""
    shared = ROOT.parent / "shared" / "ideas" / "public_ideas.tsv"
    return shared if shared.is_file() else ROOT / "tests" / "data" / "public_ideas.tsv"


def interleaved(arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each arm, `repeats` times, arms alternating and the first arm alternating too.

    Drift in machine load then hits every arm alike; the caller compares medians and paired ratios.
    """
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            started = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p95(values: list[float]) -> float:
    """The 95th percentile by the nearest-rank method (the value at or above 95% of the sample)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def compare(a: list[float], b: list[float]) -> dict[str, float]:
    """Medians of two interleaved samples, the ratio of the medians and the median of the paired ratios."""
    paired = [x / y for x, y in zip(a, b) if y > 0]
    return {
        "a_median": median(a),
        "b_median": median(b),
        "a_min": min(a),
        "b_min": min(b),
        "ratio": median(a) / median(b),
        "paired_ratio": median(paired),
        "repeats": len(a),
    }


def set_threads(threads: int | None) -> int:
    """Fix torch's intra-op threads (None: leave torch's default) and return the number in use."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def versions() -> dict[str, str]:
    import importlib.metadata

    out = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "diffusers",
        "transformers",
        "langchain-core",
        "langchain-openai",
        "pillow",
        "numpy",
    ):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    """What the numbers were measured on (no torch import: the start-up benchmark must stay torch-free)."""
    ram = _ram_gib()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1) if ram else None,
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions(),
    }


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Write a benchmark's results for `run_all.py` (when asked with --json)."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def quiet_progress() -> None:
    """Silence diffusers' and transformers' progress bars and advisories so the report stays readable."""
    import logging
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore")
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def write_section(path: Path, section: str, name: str) -> None:
    """Put `section` (from `<!-- NAME ...` to `<!-- /NAME -->`) into the markdown file, replacing its earlier copy."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    start, end = text.find(f"<!-- {name}"), text.find(f"<!-- /{name} -->")
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(f"<!-- /{name} -->\n"):]
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")
