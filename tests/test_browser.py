"""The chat in a real browser: `ideaforge ui` on a loopback port, driven through Debian's chromium by Playwright.

Run with `-s` to see the time from pressing Enter to the image appearing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ideaforge.tools.metadata import read_record

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDEA = "a red kitten in a basket"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"`ideaforge ui` exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"`ideaforge ui` did not answer on {url} within {seconds:.0f} s")


@pytest.fixture
def server(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`ideaforge ui` with the tiny models, as a user would start it; yields its URL and output folder."""
    port, out = free_port(), tmp_path / "out"
    env = {
        **os.environ,
        "IDEAFORGE_MODEL": str(tiny_sd_dir),
        "IDEAFORGE_CLIP_MODEL": str(tiny_clip_dir),
        "IDEAFORGE_ENGINE": "rules",
        "IDEAFORGE_DEVICE": "cpu",
        "IDEAFORGE_STEPS": "4",
        "IDEAFORGE_SIZE": "64x64",
        "IDEAFORGE_OUT": str(out),
        "OMP_NUM_THREADS": "1",  # tiny models: threads only add spin-waiting
    }
    ideaforge = shutil.which("ideaforge", path=str(Path(sys.executable).parent))
    command = [ideaforge] if ideaforge else [sys.executable, "-m", "ideaforge.app.cli"]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [*command, "ui", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")


def test_idea_to_image_in_chromium(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, out = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            expect(box).to_be_visible(timeout=20_000)
            finals = page.get_by_test_id("stImage").filter(has_text="attempt").locator("img")

            seconds = send(page, IDEA, finals, 1)
            print(f"\nEnter to image, first idea (server just started, models may still be loading): {seconds:.2f} s")
            shot = np.asarray(Image.open(BytesIO(finals.first.screenshot())).convert("L"), dtype=np.float32)
            assert shot.std() > 5, f"the image looks blank (pixel std {shot.std():.2f})"
            expect(page.get_by_test_id("stExpander").filter(has_text="Done in")).to_be_visible()

            # The download is the saved PNG, byte for byte, so its prompt and seed travel with it.
            with page.expect_download() as download:
                page.get_by_test_id("stDownloadButton").get_by_role("button").click()
            data = Path(download.value.path()).read_bytes()
            (saved,) = [p for p in out.glob("*.png") if p.read_bytes() == data]
            assert read_record(saved)["ideaforge"]["idea"] == IDEA

            seconds = send(page, "make it night", finals, 2)
            print(f"Enter to image, a follow-up (models loaded): {seconds:.2f} s")
            ideas = {read_record(p)["ideaforge"]["idea"] for p in out.glob("*.png")}
            assert f"{IDEA}; make it night" in ideas

            # Stop: a long run is cancelled between steps; it writes no image.
            pngs = set(out.glob("*.png"))
            sidebar = page.get_by_test_id("stSidebar")
            for label, value in (("Steps", "500"), ("Size", "256x256")):
                sidebar.get_by_label(label).fill(value)
                sidebar.get_by_label(label).press("Enter")
            box.fill("another seed")
            box.press("Enter")
            expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=20_000)
            clicked = time.perf_counter()
            page.get_by_role("button", name="Stop generating").click()
            expect(page.get_by_text("Stopped before the run finished.")).to_be_visible(timeout=20_000)
            print(f"Stop to stopped: {time.perf_counter() - clicked:.2f} s")
            assert set(out.glob("*.png")) == pngs
            expect(finals).to_have_count(2)  # the earlier answers are still there
        finally:
            browser.close()


def send(page: Any, text: str, finals: Any, count: int) -> float:
    """Type a message, press Enter, and return the seconds until the `count`-th final image has loaded."""
    from playwright.sync_api import expect

    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    started = time.perf_counter()
    box.press("Enter")
    expect(finals).to_have_count(count, timeout=60_000)
    image = finals.nth(count - 1)
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return time.perf_counter() - started
