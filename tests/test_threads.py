"""Lazy loading is safe under concurrency: the first imports of transformers/diffusers and the first loads of a
pipeline, a CLIP critic and the CLIP tokenizer, from many threads at once, each succeed and load once.

Each case runs in a fresh interpreter, since the race is in the *first* import of the heavy libraries and pytest's
own process has long imported them. Tiny random models only; no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Wrap the loaders before anything is imported, to count the real loads.
_COUNT_LOADS = """
import json, sys, threading
from collections import Counter
import ideaforge.tools.critic.scorer as scorer
import ideaforge.tools.diffusion.loading as loading

loads = Counter()
_lock = threading.Lock()

def counted(name, load):
    def wrapper(*args, **kwargs):
        with _lock:
            loads[name] += 1
        return load(*args, **kwargs)
    return wrapper

loading._load_pipeline = counted("pipeline", loading._load_pipeline)
scorer._load = counted("clip", scorer._load)
"""


def _run_fresh(body: str, tmp_path: Path, **paths: Path) -> dict[str, Any]:
    """Run `body` (after the load counters) in a fresh interpreter; it prints one JSON line, returned here."""
    script = _COUNT_LOADS + "".join(f"{name} = {str(path)!r}\n" for name, path in paths.items())
    script += textwrap.dedent(body)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "IDEAFORGE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_first_loads_from_many_threads_at_once(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = _run_fresh(
        """
        from ideaforge.tools.clip_tokenizer import load_clip_tokenizer
        from ideaforge.tools.critic import CLIPCritic
        from ideaforge.tools.diffusion import DiffusionTool

        assert "transformers" not in sys.modules and "diffusers" not in sys.modules
        n = 9
        start = threading.Barrier(n)  # every thread makes its first call at the same moment
        got, errors = {}, []

        def work(i):
            start.wait()
            try:
                if i % 3 == 0:
                    got[i] = ("tokenizer", id(load_clip_tokenizer()))
                elif i % 3 == 1:
                    got[i] = ("clip", id(CLIPCritic(clip, device="cpu").load().clip))
                else:
                    got[i] = ("pipeline", id(DiffusionTool(sd, device="cpu").pipeline))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shared = {kind: len({ident for k, ident in got.values() if k == kind}) for kind in ("tokenizer", "clip", "pipeline")}
        print(json.dumps({"errors": errors, "shared": shared, "loads": loads}))
        """,
        tmp_path,
        sd=tiny_sd_dir,
        clip=tiny_clip_dir,
    )
    assert out["errors"] == []
    assert out["shared"] == {"tokenizer": 1, "clip": 1, "pipeline": 1}  # every thread got the one copy
    assert out["loads"] == {"pipeline": 1, "clip": 1}


def test_runnable_batch_and_threads_on_a_fresh_forge(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = _run_fresh(
        """
        from ideaforge import IdeaForge, as_runnable

        def fresh(folder):
            return IdeaForge(model=sd, clip_model=clip, engine="rules", steps=2, size="64x64", out=folder, device="cpu")

        paths = (as_runnable(fresh(out + "/batch")) | (lambda r: r.best_image_path)).batch(["a fox", "an owl", "a cat"])

        forge, ran, errors = fresh(out + "/threads"), {}, []

        def run(i, idea):
            try:
                ran[i] = forge.run(idea, seed=i).best_image_path
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=run, args=(i, idea)) for i, idea in enumerate(["a fox", "an owl", "a cat", "a hen"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"batch": [str(p) for p in paths], "threads": [str(p) for p in ran.values()], "errors": errors, "loads": loads}))
        """,
        tmp_path,
        sd=tiny_sd_dir,
        clip=tiny_clip_dir,
        out=tmp_path / "out",
    )
    assert out["errors"] == []
    assert len(out["batch"]) == 3 and len(out["threads"]) == 4
    assert all(path.endswith(".png") and Path(path).is_file() for path in out["batch"] + out["threads"])
    assert out["loads"] == {"pipeline": 1, "clip": 1}  # both forges, seven runs: one pipeline, one CLIP model


@pytest.mark.parametrize("module", ["ideaforge.tools.diffusion", "ideaforge.tools.critic", "ideaforge.tools.clip_tokenizer"])
def test_importing_the_tools_imports_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print([m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
