"""Start-up: wall time of `ideaforge --help` and `python -c "import ideaforge"`, and which heavy modules they import.

Three commands run as fresh subprocesses, interleaved, `--repeats` times each: the installed `ideaforge` console
script with `--help`, `python -c "import ideaforge"`, and `python -c "pass"` (the interpreter's own start-up, the
floor under both). Then each of the first two runs once more under `python -X importtime`, and the modules it
imported are checked for torch, diffusers, transformers, langchain and streamlit. Goal: under 0.5 s each, and no
torch.

Run:
    python bench/bench_startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _common

HEAVY = (
    "torch",
    "diffusers",
    "transformers",
    "langchain_core",
    "langchain_openai",
    "streamlit",
    "numpy",
    "PIL",
)
GOAL_S = 0.5


def console_script() -> list[str]:
    """The `ideaforge` entry point installed next to this interpreter (else the one on PATH)."""
    beside = Path(sys.executable).with_name("ideaforge")
    found = str(beside) if beside.is_file() else shutil.which("ideaforge")
    if not found:
        raise SystemExit("the ideaforge command is not installed; run `make install` first")
    return [found]


def imported_modules(cmd: list[str], env: dict[str, str]) -> set[str]:
    """Top-level names of every module the command imported, read from `-X importtime`'s report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd],
        env=env,
        cwd=_common.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


def run(repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEAFORGE_", "OPENAI_"))}
    script = console_script()
    commands = {
        "ideaforge --help": [*script, "--help"],
        "python -c 'import ideaforge'": [sys.executable, "-c", "import ideaforge"],
        "python -c 'pass'": [sys.executable, "-c", "pass"],
    }

    def call(cmd: list[str]) -> None:
        done = subprocess.run(cmd, env=env, cwd=_common.ROOT, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-2000:]}")

    load_before = _common.loadavg()
    for cmd in commands.values():  # one untimed call each: the first pays for cold .pyc and file caches
        call(cmd)
    times = _common.interleaved(
        {name: (lambda cmd=cmd: call(cmd)) for name, cmd in commands.items()}, repeats
    )
    # The console script is a Python file: run it under -X importtime with the same interpreter.
    heavy = {
        "ideaforge --help": sorted(imported_modules([script[0], "--help"], env) & set(HEAVY)),
        "python -c 'import ideaforge'": sorted(imported_modules(["-c", "import ideaforge"], env) & set(HEAVY)),
    }
    floor = _common.median(times["python -c 'pass'"])
    rows = {}
    for name, values in times.items():
        rows[name] = {
            "median_s": _common.median(values),
            "min_s": min(values),
            "p95_s": _common.p95(values),
            "over_floor_s": _common.median(values) - floor,
            "ratio_to_floor": _common.median(values) / floor,
            "heavy_imports": heavy.get(name),
            "meets_goal": _common.median(values) < GOAL_S if name in heavy else None,
            "times": values,
        }
    return {
        "repeats": repeats,
        "python": sys.executable,
        "commands": rows,
        "torch_free": all("torch" not in h for h in heavy.values()),
        "loadavg_before": load_before,
        "loadavg_after": _common.loadavg(),
    }


def report(r: dict) -> str:
    lines = [
        (
            f"{r['repeats']} interleaved runs of each command (fresh processes); load average "
            f"{r['loadavg_before']} -> {r['loadavg_after']}"
        )
    ]
    for name, row in r["commands"].items():
        heavy = row["heavy_imports"]
        extra = "" if heavy is None else f"  heavy imports: {', '.join(heavy) or 'none'}"
        goal = (
            ""
            if row["meets_goal"] is None
            else f"  goal <{GOAL_S} s: {'met' if row['meets_goal'] else 'MISSED'}"
        )
        lines.append(
            f"{name:26} median {row['median_s']:.3f} s (min {row['min_s']:.3f}, p95 {row['p95_s']:.3f}), "
            f"{row['ratio_to_floor']:.1f}x the bare interpreter{goal}{extra}"
        )
    lines.append(f"neither imports torch: {r['torch_free']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    result = run(args.repeats)
    print(report(result))
    _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
