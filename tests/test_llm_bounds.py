"""Every wait on the LLM is bounded: a trickling server, a huge reply, a dead server, Ctrl-C during a request.

The real langchain-openai client talks to the loopback server in tests/llm_server.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import GOOD, FakeOpenAI, Reply

from ideaforge.agent.chain import PromptChain
from ideaforge.agent.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def chain(url: str, **kw: object) -> PromptChain:
    settings = {"engine": "openai", "llm_base_url": url, "llm_max_retries": 0, **kw}
    return PromptChain(load_settings(**settings))


def test_a_trickling_reply_is_cut_off_at_the_timeout() -> None:
    with FakeOpenAI() as server:
        server.push(Reply.trickling(every=0.5))  # about 300 bytes: 150 s at this pace
        spec = chain(server.url, llm_timeout=2).optimize("a red kitten in a basket")
    assert spec.engine == "rules"
    assert "no complete reply within 2 s" in spec.warnings[0]
    assert len(server.requests) == 1


def test_a_huge_reply_is_not_read_to_the_end_nor_asked_again() -> None:
    with FakeOpenAI() as server:
        server.push(Reply.huge(megabytes=20), Reply.huge(megabytes=20), Reply.huge(megabytes=20))
        spec = chain(server.url, llm_max_retries=2).optimize("a red kitten in a basket")
    assert spec.engine == "rules"
    assert "over 1,000,000 bytes" in spec.warnings[0] and "empty" not in spec.warnings[0]
    assert len(server.requests) == 1  # the client's retries would only fetch another 20 MB


def test_after_a_server_failure_the_next_calls_go_straight_to_the_fallback() -> None:
    with FakeOpenAI(default=lambda request: Reply.error(500, "model crashed")) as server:
        prompts = chain(server.url)
        first = prompts.optimize("a red kitten in a basket")
        second = prompts.optimize("a lighthouse in a storm")
        asked = len(server.requests)
    assert first.engine == second.engine == "rules"
    assert asked == 1
    assert "500 - model crashed" in first.warnings[0]
    assert "not asked again" in second.warnings[0] and "500 - model crashed" in second.warnings[0]


def test_the_breaker_closes_again_after_its_cooldown() -> None:
    with FakeOpenAI() as server:
        server.push(Reply.error(503, "warming up"))
        prompts = chain(server.url, llm_cooldown=0)
        first = prompts.optimize("a red kitten in a basket")
        second = prompts.optimize("a red kitten in a basket")
    assert first.engine == "rules" and second.engine == "openai"
    assert second.positive.startswith(GOOD["positive"].split(",")[0])


def test_a_dead_server_is_asked_once_per_run_not_once_per_round(tmp_path: Path) -> None:
    from doubles import ShapesGenerator, ShapesScorer

    from ideaforge import IdeaForge

    with FakeOpenAI(default=lambda request: Reply.error(502, "bad gateway")) as server:
        forge = IdeaForge(engine="openai", llm_base_url=server.url, llm_max_retries=0, out=str(tmp_path),
                          generator=ShapesGenerator(), scorer=ShapesScorer())
        result = forge.run("a red circle and a blue square", seed=1, threshold=101, max_attempts=3)
        asked = len(server.requests)
    assert len({a.round for a in result.attempts}) == 3
    assert asked == 1  # the idea; both revisions went to the rules engine without waiting
    revised = [a.spec for a in result.attempts if a.round > 1]
    assert all("not asked again" in " ".join(s.warnings) for s in revised)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_pending_request_exits_at_once() -> None:
    with FakeOpenAI(default=lambda request: Reply.slow(120)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEAFORGE_", "OPENAI_"))}
        env.update(IDEAFORGE_CACHE=os.environ["IDEAFORGE_CACHE"], HF_HUB_OFFLINE="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ideaforge.app.cli", "prompt", "a cat", "--engine", "openai",
             "--llm-base-url", server.url],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            for _ in range(600):  # until the request is in flight (bounded: 60 s)
                if server.requests or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert server.requests, "the CLI never sent its request"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)  # one Ctrl-C is enough; the request takes 120 s
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["ideaforge: error: interrupted; nothing partial was written"]
    assert out == ""
