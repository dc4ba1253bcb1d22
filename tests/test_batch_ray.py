"""`ideaforge batch --executor ray` on a local two-CPU Ray cluster: the same folder as the local executor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_batch import check_folder, make_forge, public_ideas

from ideaforge.app.batch.run import idea_seed, run_batch

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # No GPUs are declared, so the generation actors ask for none (else they would wait forever).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_ray_executor_writes_the_manifest_the_local_executor_writes(cluster: None, tiny_sd_dir: Path,
                                                                    tmp_path: Path) -> None:
    ideas = public_ideas(4, start=600) + public_ideas(2, start=1230)
    path = tmp_path / "ideas.jsonl"
    rows = [{"idea": idea} for idea in ideas]
    rows[1]["seed"] = 42  # a row's own seed must reach the pipeline inside the actor
    rows[2]["n"] = 2
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    folders = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        summary = run_batch(make_forge(tiny_sd_dir, out), path, batch_size=2, executor=executor)
        assert summary.ok and summary.done == 6 and summary.images == 7
        folders[executor] = (sorted(check_folder(out, ideas), key=lambda line: line["file_name"]), out)
    (local, a), (remote, b) = folders["local"], folders["ray"]
    assert remote == local  # every line, file name included
    seeds = {line["text"]: line["seed"] for line in remote if line["best"]}
    assert seeds[ideas[1]] == 42 and seeds[ideas[0]] == idea_seed(ideas[0])
    for line in remote:
        diff = np.abs(pixels(a / line["file_name"]) - pixels(b / line["file_name"]))
        # Batches may be made up differently: at most one level of 8-bit rounding on a few pixels.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01

    again = run_batch(make_forge(tiny_sd_dir, b), path, executor="ray")
    assert (again.done_before, again.done) == (6, 0)  # resume works the same through Ray
