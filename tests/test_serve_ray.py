"""The same app as a Ray Serve deployment, on a local Ray (2 logical CPUs): the OpenAI SDK gets its image."""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the `ray` extra)")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_server(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ray

    from ideaforge.app.serve.config import ServeConfig
    from ideaforge.app.serve.ray_app import deployment

    port = _port()
    out = tmp_path_factory.mktemp("serve-ray")
    settings = {"model": str(tiny_sd_dir), "out": str(out), "critique": False, "engine": "rules", "steps": 2}
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(deployment(ServeConfig(), settings, [], cpus_per_replica=1), name="ideaforge", route_prefix="/")
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start Ray's processes or bind its ports
        with contextlib.suppress(Exception):
            ray.shutdown()
        pytest.skip(f"Ray Serve could not start here: {type(exc).__name__}: {str(exc)[:200]}")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the Ray Serve replica did not become ready within 120 s")
        yield base
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()


def test_ray_serve_answers_the_openai_sdk(ray_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=ray_server + "/v1", api_key="unused", timeout=60, max_retries=0)
    reply: Any = client.images.generate(model="ideaforge", prompt="a red kitten in a basket", size="64x64",
                                        response_format="b64_json")
    data = base64.b64decode(reply.data[0].b64_json)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    job = httpx.post(ray_server + "/v1/runs", json={"idea": "a blue dog", "seed": 2}, timeout=10).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = httpx.get(f"{ray_server}/v1/runs/{job['id']}", timeout=10).json()
        if state["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert state["status"] == "succeeded", state
