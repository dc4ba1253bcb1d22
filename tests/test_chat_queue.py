"""In the browser: a message sent while a run is still going waits for it and is answered as a follow-up.

Uses `ideaforge ui` and Debian's chromium as tests/test_browser.py does (its fixture and helpers).
"""

from __future__ import annotations

from pathlib import Path

from test_browser import CHROMIUM, CHROMIUM_ARGS, IDEA, pytestmark, server  # noqa: F401 - the fixture and marks

from ideaforge.tools.metadata import read_record


def test_a_message_sent_during_a_run_is_queued_then_refines_the_result(server: tuple[str, Path]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, out = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            expect(box).to_be_visible(timeout=20_000)
            sidebar = page.get_by_test_id("stSidebar")
            for label, value in (("Steps", "120"), ("Size", "128x128")):  # a run long enough to type into
                sidebar.get_by_label(label).fill(value)
                sidebar.get_by_label(label).press("Enter")
            box.fill(IDEA)
            box.press("Enter")
            expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=30_000)  # the first run is going
            box.fill("make it night")
            box.press("Enter")
            finals = page.get_by_test_id("stImage").filter(has_text="attempt").locator("img")
            expect(finals).to_have_count(2, timeout=120_000)
            expect(page.get_by_text("Stopped before the run finished.")).to_have_count(0)
        finally:
            browser.close()
    ideas = sorted(read_record(p)["ideaforge"]["idea"] for p in out.glob("*.png"))
    # The first run finished (its image is there) and the message refined its result; how many rounds each took
    # is the critic loop's business.
    assert sorted(set(ideas)) == [IDEA, f"{IDEA}; make it night"]
