"""The Streamlit chat through `streamlit.testing.v1.AppTest`, with the tiny diffusion and CLIP models.

AppTest runs the real script in-process: the sidebar reads the same IDEAFORGE_* settings a user sets, the
models load from folders through the user's code path, and the assertions read what the page shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ideaforge.agent.chain import PromptChain
from ideaforge.agent.settings import load_settings
from ideaforge.tools.metadata import read_record

APP = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
IDEA = "a red kitten in a basket"
TIMEOUT = 60


@pytest.fixture
def app(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    for name, value in {
        "MODEL": str(tiny_sd_dir),
        "CLIP_MODEL": str(tiny_clip_dir),
        "ENGINE": "rules",
        "DEVICE": "cpu",
        "STEPS": "2",
        "SIZE": "64x64",
        "OUT": str(tmp_path / "out"),
        "MAX_ATTEMPTS": "1",  # one round unless a test asks for more: what the page shows is then fixed
    }.items():
        monkeypatch.setenv(f"IDEAFORGE_{name}", value)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    yield at
    st.cache_resource.clear()  # the next test builds its forge from its own settings


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input(key="message").set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assistant_turns(at: AppTest) -> list[Any]:
    return [m for m in at.chat_message if m.name == "assistant"]


def texts(node: Any) -> Iterator[str]:
    """Every protobuf of the page as text: what the browser would receive."""
    proto = getattr(node, "proto", None)
    if proto is not None:
        yield str(proto)
    for child in getattr(node, "children", {}).values():
        yield from texts(child)


def test_an_idea_becomes_an_image_with_its_prompts(app: AppTest, tmp_path: Path) -> None:
    send(app, IDEA)
    (status,) = app.status
    assert status.state == "complete" and status.label.startswith("Done in")
    (image,) = app.image  # the live preview is gone; the final image stays
    (caption,) = image.captions
    assert caption.startswith("score ") and " · seed " in caption and caption.endswith("attempt 1 of 1")
    (expander,) = app.expander
    assert expander.label == "Prompt and scores"
    positive, negative = (c.value for c in expander.code)
    assert positive.startswith(IDEA) and "blurry" in negative
    assert "Elements" in expander.markdown[2].value and "kitten" in expander.markdown[2].value
    assert "rules" in expander.markdown[3].value  # the engine used
    checks = PromptChain(load_settings(engine="rules")).optimize(IDEA).checks
    assert checks, "the rules engine gives this idea a checklist"
    listed = expander.markdown[4].value.splitlines()
    assert listed[0] == "**Checklist**" and len(listed) == 2 + len(checks)
    for check, line in zip(checks, listed[2:], strict=True):
        assert line.startswith(f"{check.id}. `{check.kind}` {check.question}")
        assert line.endswith(f"*(after {', '.join(map(str, check.depends_on))})*") == bool(check.depends_on)
    assert app.get("download_button")[0].label == "Download PNG"
    assert not app.get("progress")  # the progress bar is cleared once the run ends

    (png,) = (tmp_path / "out").glob("*.png")
    record = read_record(png)
    seed = int(caption.split(" · seed ")[1].split(" ")[0])
    assert record["ideaforge"]["positive"] == positive and record["ideaforge"]["seed"] == seed
    assert f"Seed: {seed}" in record["parameters"]


def test_a_follow_up_refines_the_previous_result(app: AppTest, tmp_path: Path) -> None:
    send(app, IDEA)
    send(app, "make it night")
    first, second = assistant_turns(app)
    before, after = first.expander[0].code[0].value, second.expander[0].code[0].value
    assert "night" not in before
    # The request joins the idea (how it is worded is the refine engine's: tests/test_refine_rules.py).
    assert after.startswith(IDEA) and "night lighting" in after
    assert app.status[0].state == "complete"
    assert len(app.image) == 2  # the first answer is still on the page
    ideas = sorted(read_record(p)["ideaforge"]["idea"] for p in (tmp_path / "out").glob("*.png"))
    assert ideas == [IDEA, f"{IDEA}; make it night"]


def test_new_conversation_forgets_the_previous_result(app: AppTest) -> None:
    send(app, IDEA)
    app.button(key="new").click().run()
    assert not app.chat_message
    send(app, "cozy cabin at night")
    (turn,) = assistant_turns(app)
    positive = turn.expander[0].code[0].value
    assert positive.startswith("cozy cabin at night") and "kitten" not in positive  # a new idea, not a refinement


def test_a_missing_model_is_one_error_and_the_chat_stays_usable(
    app: AppTest, tmp_path: Path, tiny_sd_dir: Path
) -> None:
    missing = tmp_path / "no-such-model"
    app.text_input(key="model").set_value(str(missing)).run()
    send(app, IDEA)
    (error,) = app.error
    assert str(missing) in error.value and "does not exist" in error.value and "pass --model" in error.value
    assert app.status[0].state == "error"
    assert not app.image

    app.text_input(key="model").set_value(str(tiny_sd_dir)).run()
    send(app, "cozy cabin at night")
    assert len(app.error) == 1  # the earlier error stays in the history, nothing new
    assert app.status[0].state == "complete" and len(app.image) == 1


def test_a_bad_setting_fails_before_any_model_loads(app: AppTest, tmp_path: Path) -> None:
    app.text_input(key="model").set_value(str(tmp_path / "no-such-model")).run()
    app.text_input(key="size").set_value("65x64").run()
    send(app, IDEA)
    (error,) = app.error
    assert "size 65x64 is invalid" in error.value and "multiples of 8" in error.value  # not the missing model


def test_secrets_are_used_but_never_shown(app: AppTest) -> None:
    secret = "sk-test-0123456789-never-shown"
    app.secrets["OPENAI_API_KEY"] = secret
    app.run()
    assert any(c.value == "API key: set (environment or secrets)" for c in app.sidebar.caption)
    send(app, IDEA)
    assert app.status[0].state == "complete"
    assert not any(secret in text for text in texts(app._tree))


def test_the_critic_loop_shows_every_round(app: AppTest) -> None:
    app.number_input(key="threshold").set_value(1.0)  # every check: the tiny random critic never passes them all
    app.number_input(key="max_attempts").set_value(2)
    app.number_input(key="seed").set_value(7).run()
    send(app, IDEA)
    assert app.status[0].state == "complete" and "max attempts (2)" in app.status[0].label
    (table,) = app.expander[0].table
    rounds = table.value
    assert list(rounds["round"]) == [1, 2] and rounds["seed"][0] == 7
    best = int(rounds["score"].astype(float).idxmax())
    assert app.image[0].captions[0].endswith(f"attempt {best + 1} of 2")
