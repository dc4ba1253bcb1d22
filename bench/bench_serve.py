"""`ideaforge serve` with the tiny model: concurrency, crash recovery, and the server's own overhead.

Not a test: run `python bench/bench_serve.py [--requests N] [--clients C] [--jobs J] [--steps S]` from the
repository root. The server runs as a user runs it (`ideaforge serve` in a subprocess, `--no-critique`, rules
engine, loopback). It prints:

1. N sync `POST /v1/images/generations` requests (different ideas and seeds, the same settings) from one client in
   sequence, then from C concurrent clients: requests per second of each, their ratio, and p50/p95 latency.
2. Server overhead per request: client latency minus the pipeline call's own time (`generate_seconds` in the
   reply), median over the sequential requests: HTTP, validation, the prompt stage (rules), PNG encoding and
   saving, base64.
3. J jobs (`--crash-steps` steps each, long enough to be caught mid-way) posted to `/v1/runs`, the server killed with SIGKILL while they are queued or running, restarted on the
   same folder: finished (succeeded), lost (missing or not finished in time), run twice (a job folder holding more
   images than its one result), and how many were interrupted while running and re-run from the start.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401 - puts the repository root on sys.path, quiets the Hub
import httpx


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(model: Path, out: Path, port: int, steps: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("IDEAFORGE_SERVER_KEY", None)
    cmd = [sys.executable, "-m", "ideaforge.app.cli", "serve", "--model", str(model), "--out", str(out),
           "--port", str(port), "--no-critique", "--engine", "rules", "--steps", str(steps), "--batch-size", "8",
           "--max-queue", "256"]
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=_common.ROOT)


def ready(base: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {base} was not ready in {timeout} s")


def one(client: httpx.Client, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = client.post("/v1/images/generations", json={"prompt": f"a red kite number {i} over a hill", "seed": i,
                                                    "size": "64x64", "response_format": "b64_json"})
    latency = time.perf_counter() - t0
    r.raise_for_status()
    return latency, float(r.json()["ideaforge"]["generate_seconds"])


def concurrency(base: str, n: int, clients: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=120) as c:
        for i in range(3):  # warm-up
            one(c, 10_000 + i)
        t0 = time.perf_counter()
        seq = [one(c, i) for i in range(n)]
        seq_wall = time.perf_counter() - t0
    results: list[tuple[float, float]] = []
    lock = threading.Lock()
    todo = list(range(n))

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                res = one(c, i)
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    par_wall = time.perf_counter() - t0
    lat_seq = [r[0] for r in seq]
    lat_par = [r[0] for r in results]
    return {
        "sequential_rps": n / seq_wall, "concurrent_rps": n / par_wall, "ratio": seq_wall / par_wall,
        "sequential_p50_ms": 1000 * statistics.median(lat_seq), "sequential_p95_ms": 1000 * _common.p95(lat_seq),
        "concurrent_p50_ms": 1000 * statistics.median(lat_par), "concurrent_p95_ms": 1000 * _common.p95(lat_par),
        "overhead_median_ms": 1000 * statistics.median([lat - gen for lat, gen in seq]),
        "pipeline_median_ms": 1000 * statistics.median([gen for _, gen in seq]),
    }


def crash(model: Path, root: Path, jobs: int, steps: int) -> dict[str, Any]:
    out, log = root / "crash-out", root / "crash.log"
    port = _port()
    base = f"http://127.0.0.1:{port}"
    proc = start(model, out, port, steps, log)
    try:
        ready(base)
        ids = [httpx.post(base + "/v1/runs", json={"idea": f"a paper boat number {i}", "seed": i, "steps": steps},
                          timeout=10).json()["id"] for i in range(jobs)]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:  # kill while some run (best: once some are done, others queued)
            states = [httpx.get(f"{base}/v1/runs/{i}", timeout=10).json()["status"] for i in ids]
            if "running" in states and ("succeeded" in states or time.monotonic() - t0 > 3):
                break
            time.sleep(0.05)
        before = {s: states.count(s) for s in set(states)}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    proc = start(model, out, port, steps, log)
    try:
        ready(base)
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(final) < len(ids):
            for i in ids:
                if i not in final:
                    r = httpx.get(f"{base}/v1/runs/{i}", timeout=10)
                    if r.status_code == 200 and r.json()["status"] in ("succeeded", "failed", "cancelled"):
                        final[i] = r.json()
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
    twice = 0
    for job in final.values():
        expected = {Path(f).name for f in (job["best"] or {}).get("files", [])}
        on_disk = {p.name for p in (out / "runs" / job["id"]).glob("*.png")}
        twice += on_disk != expected
    return {
        "at_kill": before, "finished": sum(j["status"] == "succeeded" for j in final.values()),
        "lost": len(ids) - len(final), "run_twice": twice,
        "rerun_from_start": sum(j["tries"] > 1 for j in final.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--crash-steps", type=int, default=150, help="Steps of the crash jobs (long enough to kill mid-way).")
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    sys.path.insert(0, str(_common.ROOT / "tests"))
    from tiny_models import build_tiny_sd

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        model = build_tiny_sd(root / "tiny-sd")
        port = _port()
        base = f"http://127.0.0.1:{port}"
        proc = start(model, root / "out", port, args.steps, root / "server.log")
        try:
            ready(base)
            conc = concurrency(base, args.requests, args.clients)
        finally:
            proc.terminate()
            proc.wait(30)
        rec = crash(model, root, args.jobs, args.crash_steps)
    print(f"machine: {_common.machine()}")
    print(f"1. {args.requests} requests, tiny model 64x64, {args.steps} steps: one client {conc['sequential_rps']:.1f} req/s "
          f"(p50 {conc['sequential_p50_ms']:.0f} ms, p95 {conc['sequential_p95_ms']:.0f} ms); {args.clients} clients "
          f"{conc['concurrent_rps']:.1f} req/s (p50 {conc['concurrent_p50_ms']:.0f} ms, p95 {conc['concurrent_p95_ms']:.0f} ms); "
          f"ratio {conc['ratio']:.2f}x")
    print(f"2. server overhead beyond the pipeline call: median {conc['overhead_median_ms']:.1f} ms per request "
          f"(pipeline call median {conc['pipeline_median_ms']:.1f} ms)")
    print(f"3. kill -9 with {args.jobs} jobs (at the kill: {rec['at_kill']}), restart: {rec['finished']} finished, "
          f"{rec['lost']} lost, {rec['run_twice']} run twice; {rec['rerun_from_start']} interrupted while running and "
          "re-run from the start")
    _common.write_json(args.json, {"concurrency": conc, "crash": rec, "machine": _common.machine()})


if __name__ == "__main__":
    main()
