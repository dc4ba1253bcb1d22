"""`ideaforge serve`: the OpenAI SDK against the images API, the jobs API and its event stream, cancel, limits,
auth, path safety, and crash recovery of a real server process killed with SIGKILL."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-server-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            r = httpx.get(base + "/health", timeout=5)
            if r.status_code == 200:
                return
            assert r.json()["status"] != "error", r.text
        time.sleep(0.2)
    raise AssertionError(f"the server at {base} was not ready within {timeout} s")


class InProcess:
    """A uvicorn server in a thread, on a free loopback port."""

    def __init__(self, config: Any, settings: dict[str, Any]) -> None:
        import uvicorn

        from ideaforge.app.serve.api import create_app

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config, settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcess:
        self.thread.start()
        wait_ready(self.base)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def engine(self) -> Any:
        return self.app.state.service.engine


def settings_for(model: Path, out: Path, **extra: Any) -> dict[str, Any]:
    return {"model": str(model), "out": str(out), "critique": False, "engine": "rules", "steps": 2, **extra}


@pytest.fixture(scope="module")
def server(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    from ideaforge.app.serve.config import ServeConfig

    out = tmp_path_factory.mktemp("serve-out")
    with InProcess(ServeConfig(max_n=2, max_body=4096), settings_for(tiny_sd_dir, out)) as s:
        yield s


@pytest.fixture(scope="module")
def guarded(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """A server with a key and room for one run at a time."""
    from ideaforge.app.serve.config import ServeConfig

    out = tmp_path_factory.mktemp("serve-guarded")
    with InProcess(ServeConfig(key=KEY, max_queue=1), settings_for(tiny_sd_dir, out)) as s:
        yield s


def client(s: InProcess, key: str = "unused") -> Any:
    from openai import OpenAI

    return OpenAI(base_url=s.base + "/v1", api_key=key, timeout=60, max_retries=0)


def wait_status(base: str, job_id: str, wanted: tuple[str, ...], timeout: float = 60.0,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/v1/runs/{job_id}", timeout=10, headers=headers).json()
        if job["status"] in wanted:
            return job
        time.sleep(0.1)
    raise AssertionError(f"run {job_id} did not reach {wanted}: {job}")


# --- the OpenAI images API -------------------------------------------------------------------------------------


def test_openai_sdk_b64_json_png_carries_its_record(server: InProcess, tmp_path: Path) -> None:
    from ideaforge.tools.metadata import read_record

    reply = client(server).images.generate(
        model="ideaforge", prompt="a red kitten in a basket", size="64x64", response_format="b64_json",
        extra_body={"seed": 7},
    )
    assert len(reply.data) == 1
    image = reply.data[0]
    assert image.revised_prompt and image.revised_prompt.startswith("a red kitten")
    png = tmp_path / "out.png"
    png.write_bytes(base64.b64decode(image.b64_json or ""))
    record = read_record(png)["ideaforge"]
    assert record["idea"] == "a red kitten in a basket"
    assert record["seed"] == 7 and record["positive"] == image.revised_prompt


def test_openai_sdk_url_n_and_extras(server: InProcess) -> None:
    reply = client(server).images.generate(
        model="ideaforge", prompt="a lighthouse at dusk", n=2, size="64x64", response_format="url",
        extra_body={"seed": 3, "steps": 1, "negative": "fog", "style": "watercolor"},
    )
    assert len(reply.data) == 2
    for item in reply.data:
        assert item.url and item.url.startswith(server.base + "/v1/images/files/")
        r = httpx.get(item.url, timeout=10)
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "watercolor" in (reply.data[0].revised_prompt or "")


def test_models_list(server: InProcess) -> None:
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["ideaforge"]


def test_bad_requests_get_openai_errors(server: InProcess) -> None:
    import openai

    with pytest.raises(openai.BadRequestError, match="steps = 0"):
        client(server).images.generate(prompt="a cat", extra_body={"steps": 0})
    with pytest.raises(openai.BadRequestError, match="stepz"):
        client(server).images.generate(prompt="a cat", extra_body={"stepz": 2})
    with pytest.raises(openai.BadRequestError, match="limit of 2"):
        client(server).images.generate(prompt="a cat", n=3)
    with pytest.raises(openai.NotFoundError, match="dall-e-3"):
        client(server).images.generate(prompt="a cat", model="dall-e-3")
    r = httpx.post(server.base + "/v1/images/generations", content=b"{" + b" " * 5000 + b"}", timeout=10,
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = httpx.post(server.base + "/v1/runs", content=b"not json", timeout=10)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]


@pytest.mark.parametrize("name", [
    "../ideaforge-serve.sqlite3", "%2e%2e/%2e%2e/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd",
    "ideaforge-serve.sqlite3", "runs/..%5C..%5Cx.png", "nothing.png",
])
def test_files_endpoint_serves_only_pngs_below_the_output_folder(server: InProcess, name: str) -> None:
    r = httpx.get(server.base + "/v1/images/files/" + name, timeout=10)
    assert r.status_code == 404
    assert "sqlite" not in r.headers.get("content-type", "")


def test_disconnected_sync_client_cancels_its_run(server: InProcess) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base + "/v1/images/generations", timeout=1.0,
                   json={"prompt": "a very long render", "steps": 500, "size": "64x64"})
    deadline = time.monotonic() + 20
    while server.engine.tasks and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.engine.tasks, "the abandoned run is still going"


# --- jobs ------------------------------------------------------------------------------------------------------


def test_job_runs_and_reports_attempts_and_best(server: InProcess) -> None:
    r = httpx.post(server.base + "/v1/runs", json={"idea": "a blue dog on a beach", "seed": 11}, timeout=10)
    assert r.status_code == 202
    assert r.json()["status"] == "queued" and set(r.json()) >= {"id", "status"}
    job = wait_status(server.base, r.json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["tries"] == 1 and len(job["attempts"]) == 1
    assert job["best"]["seed"] == 11 and job["best"]["positive"].startswith("a blue dog")
    assert httpx.get(job["best"]["url"], timeout=10).status_code == 200
    assert httpx.get(server.base + "/v1/runs/nope", timeout=10).status_code == 404


def test_event_stream_has_stages_steps_previews_and_end(server: InProcess) -> None:
    job_id = httpx.post(server.base + "/v1/runs", json={"idea": "a green frog", "steps": 4}, timeout=10).json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{server.base}/v1/runs/{job_id}/events", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name == "end":
                    break
    stages = [n for n, _ in events]
    assert stages[-1] == "end" and events[-1][1]["status"] == "succeeded"
    assert {"prompt", "generate", "saved", "done"} <= set(stages)
    steps = [d for n, d in events if n == "generate" and d.get("total")]
    assert [d["step"] for d in steps] == [1, 2, 3, 4]
    assert any(d.get("preview", "").startswith("data:image/jpeg;base64,") for d in steps)
    # A late reader of a finished job gets its end at once.
    with httpx.stream("GET", f"{server.base}/v1/runs/{job_id}/events", timeout=30) as stream:
        body = "".join(stream.iter_text())
    assert "event: end" in body


def test_cancel_a_running_job(server: InProcess) -> None:
    job_id = httpx.post(server.base + "/v1/runs", json={"idea": "a slow castle", "steps": 500}, timeout=10).json()["id"]
    wait_status(server.base, job_id, ("running",))
    t0 = time.monotonic()
    r = httpx.delete(f"{server.base}/v1/runs/{job_id}", timeout=10)
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    job = wait_status(server.base, job_id, ("cancelled", "succeeded", "failed"))
    assert job["status"] == "cancelled" and time.monotonic() - t0 < 10
    assert httpx.delete(f"{server.base}/v1/runs/nope", timeout=10).status_code == 404


# --- auth and the queue bound ----------------------------------------------------------------------------------


def test_key_is_required_and_never_echoed(guarded: InProcess) -> None:
    import openai

    with pytest.raises(openai.AuthenticationError) as err:
        client(guarded, key="wrong-key-but-long").models.list()
    assert KEY not in str(err.value)
    assert httpx.get(guarded.base + "/v1/models", timeout=10).status_code == 401
    assert httpx.get(guarded.base + "/health", timeout=10).status_code == 200  # health is public, says nothing
    assert [m.id for m in client(guarded, key=KEY).models.list().data] == ["ideaforge"]


def test_full_queue_answers_429_with_retry_after(guarded: InProcess) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    first = httpx.post(guarded.base + "/v1/runs", json={"idea": "a slow tower", "steps": 500}, headers=auth,
                       timeout=10).json()["id"]
    r = httpx.post(guarded.base + "/v1/runs", json={"idea": "one too many"}, headers=auth, timeout=10)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "queue_full"
    r = httpx.post(guarded.base + "/v1/images/generations", json={"prompt": "also too many"}, headers=auth, timeout=10)
    assert r.status_code == 429
    httpx.delete(f"{guarded.base}/v1/runs/{first}", headers=auth, timeout=10)
    wait_status(guarded.base, first, ("cancelled",), headers=auth)


def test_public_bind_without_key_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "IDEAFORGE_SERVER_KEY"}
    proc = subprocess.run([sys.executable, "-m", "ideaforge.app.cli", "serve", "--host", "0.0.0.0", "--port", "9",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "IDEAFORGE_SERVER_KEY" in proc.stderr
    short = dict(env, IDEAFORGE_SERVER_KEY="abc")
    proc = subprocess.run([sys.executable, "-m", "ideaforge.app.cli", "serve", "--host", "0.0.0.0", "--port", "9",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60, env=short)
    assert proc.returncode == 2 and "abc" not in proc.stderr


# --- nothing lost: kill -9 and restart -------------------------------------------------------------------------


def _start(model: Path, out: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "ideaforge.app.cli", "serve", "--model", str(model), "--out", str(out),
           "--port", str(port), "--no-critique", "--engine", "rules", "--steps", "2", "--batch-size", "2"]
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def test_kill_9_then_restart_finishes_every_job_exactly_once(tiny_sd_dir: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tiny_sd_dir, out, port, log)
    try:
        wait_ready(base)
        ids = [httpx.post(base + "/v1/runs", json={"idea": f"a kite number {i}", "seed": i, "steps": 40},
                          timeout=10).json()["id"] for i in range(6)]
        wait_status(base, ids[0], ("running",))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    proc = _start(tiny_sd_dir, out, port, log)
    try:
        wait_ready(base)
        jobs = [wait_status(base, i, ("succeeded", "failed", "cancelled"), timeout=120) for i in ids]
    finally:
        proc.terminate()
        proc.wait(30)
    assert [j["status"] for j in jobs] == ["succeeded"] * 6, log.read_text()[-2000:]
    assert jobs[0]["tries"] == 2  # interrupted while running, run again from the start
    for job in jobs:  # one finished run each: its folder holds exactly that run's images
        pngs = sorted(p.name for p in (out / "runs" / job["id"]).glob("*.png"))
        assert pngs == [Path(job["best"]["file"]).name]
