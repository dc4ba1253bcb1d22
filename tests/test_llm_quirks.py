"""The openai engine on small local models behind llama.cpp's server, and the quirks it showed when tried for real.

The loopback server in tests/llm_server.py plays llama-server (`llama_cpp=True`); the client is the real
langchain-openai one. Each test pins one behaviour seen on `llama-server` with 135M-0.5B instruct models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from llm_server import GOOD, OLDER, FakeOpenAI, Reply

from ideaforge.agent.chain import PromptChain
from ideaforge.agent.settings import load_settings
from ideaforge.errors import LLMError

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def chain(url: str, **kw: Any) -> PromptChain:
    return PromptChain(load_settings(engine="openai", llm_base_url=url, llm_max_retries=0, **kw))


def user_text(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_"))}
    full.update(IDEAFORGE_CACHE=os.environ["IDEAFORGE_CACHE"], **env)
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full, timeout=120)


def test_function_calling_reply_in_content_is_used() -> None:
    with FakeOpenAI(llama_cpp=True) as server:
        spec = chain(server.url, llm_method="function_calling").optimize("a red kitten in a basket")
    assert spec.engine == "openai" and spec.llm_method == "function_calling"
    assert "tool_calls" not in json.dumps(server.requests[-1].get("messages", []))
    assert len(server.requests) == 1  # no repair round: the JSON in content was read


def test_no_method_given_works_on_a_server_that_ignores_tool_choice() -> None:
    with FakeOpenAI(llama_cpp=True) as server:
        out = cli("prompt", "a red kitten in a basket", "--llm-base-url", server.url, "--engine", "openai", "--json")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)
    assert spec["engine"] == "openai" and spec["llm_method"] == "json_schema" and spec["fallback"] is None
    assert "warning" not in out.stderr


def test_every_request_caps_the_reply_and_a_runaway_reply_gets_a_shorter_repair() -> None:
    runaway = dict(GOOD, positive="serene, " * 800)
    with FakeOpenAI(llama_cpp=True) as server:
        server.push(Reply.spec(**runaway), Reply.spec(**GOOD))
        spec = chain(server.url, llm_method="json_schema").optimize("a calm lake")
    assert [r["max_completion_tokens"] for r in server.requests] == [600, 600]
    assert "cut off at the length limit" in user_text(server.requests[1])
    assert spec.engine == "openai" and "serene, serene" not in spec.positive


def test_the_schema_bounds_strings_and_lists() -> None:
    from ideaforge.agent.models import LLMSpec

    schema = LLMSpec.model_json_schema()
    props = schema["properties"]
    assert props["positive"]["maxLength"] and props["negative"]["maxLength"] and props["idea_en"]["maxLength"]
    assert props["checks"]["maxItems"] == 16
    check = schema["$defs"]["LLMCheck"]["properties"]
    assert check["subject"]["maxLength"] and check["value"]["anyOf"][0]["maxLength"]
    assert props["language"]["maxLength"]
    assert "elements" not in props  # no longer asked for, though still accepted (bounded) from older models
    with pytest.raises(ValueError, match="elements"):
        LLMSpec.model_validate(dict(GOOD, elements=[f"thing {i}" for i in range(9)]))


def test_a_repetition_penalty_reaches_servers_that_take_one() -> None:
    with FakeOpenAI(llama_cpp=True) as server:
        chain(server.url, llm_method="json_mode", llm_repeat_penalty=1.1).optimize("a calm lake")
    assert server.requests[0]["repeat_penalty"] == 1.1


def test_a_small_context_window_gets_the_compact_prompt_up_front() -> None:
    with FakeOpenAI(llama_cpp=True, n_ctx=600) as server:
        spec = chain(server.url).optimize("a red kitten in a basket")
    assert spec.engine == "openai"
    assert len(server.requests) == 1 and len(server.requests[0]["messages"]) == 2  # no few-shot examples


def test_a_context_size_error_switches_to_the_compact_prompt() -> None:
    with FakeOpenAI(llama_cpp=True, n_ctx=600, report_n_ctx=False) as server:
        spec = chain(server.url).optimize("a red kitten in a basket")
    assert spec.engine == "openai"
    assert [len(r["messages"]) for r in server.requests] == [8, 2]


@pytest.mark.parametrize(("idea", "claimed", "expected"), [
    ("a red kitten in a basket", "zh", "en"),
    ("красный котёнок в корзине", "en", "ru"),
    ("un gato rojo en una cesta", "es", "es"),
])
def test_the_language_follows_the_idea_not_the_llm(idea: str, claimed: str, expected: str) -> None:
    with FakeOpenAI(default=lambda request: Reply.spec(**dict(GOOD, language=claimed))) as server:
        spec = chain(server.url).optimize(idea)
    assert spec.engine == "openai" and spec.language == expected


def test_repeated_and_empty_elements_are_dropped_and_an_empty_negative_filled() -> None:
    from ideaforge.agent.models import LLMSpec

    odd = dict(OLDER, elements=["head", "Head", " ", "head", "red kitten"], negative="")
    assert LLMSpec.model_validate(odd).elements == ["head", "red kitten"]
    with FakeOpenAI(default=lambda request: Reply.spec(**odd)) as server:
        spec = chain(server.url).optimize("a red kitten in a basket")
    assert spec.negative and "blurry" in spec.negative
    assert any("no negative prompt" in w for w in spec.warnings)


def test_an_unchanged_revision_is_asked_again_then_reported() -> None:
    with FakeOpenAI() as server:
        prompts = chain(server.url)
        spec = prompts.optimize("a red kitten in a basket")
        same = dict(GOOD, positive=spec.positive.upper())  # case and spacing aside, the same prompt
        server.push(Reply.spec(**same), Reply.spec(**dict(GOOD, positive="a red kitten, wicker basket, close-up")))
        revised = prompts.revise(spec, "- round 1: score 20", "the basket is missing")
        assert revised.positive.startswith("a red kitten, wicker basket")
        assert "unchanged" in user_text(server.requests[-1])
        server.push(Reply.spec(**same), Reply.spec(**same))
        with pytest.raises(LLMError, match="unchanged"):
            prompts.revise(spec, "- round 1: score 20", "the basket is missing")


def test_the_fallback_is_said_on_stderr_and_require_llm_makes_it_an_error() -> None:
    with FakeOpenAI(default=lambda request: Reply.error(500, "model not loaded")) as server:
        fallback = cli("prompt", "a cat", "--engine", "openai", "--llm-base-url", server.url, "--llm-max-retries", "0")
        required = cli("prompt", "a cat", "--engine", "openai", "--llm-base-url", server.url, "--llm-max-retries", "0",
                       "--require-llm")
    assert fallback.returncode == 0
    [warning] = [line for line in fallback.stderr.splitlines() if "warning" in line]
    assert "model not loaded" in warning and "rules engine" in warning
    assert required.returncode == 1 and required.stdout == ""
    assert required.stderr.strip().splitlines() == [required.stderr.strip()]
    assert "model not loaded" in required.stderr and "require_llm" in required.stderr


def test_the_method_that_worked_is_remembered_for_the_server() -> None:
    def no_schema(request: dict[str, Any]) -> Reply:
        if (request.get("response_format") or {}).get("type") == "json_schema":
            return Reply.error(400, "response_format json_schema is not supported")
        return Reply.spec(**GOOD)

    with FakeOpenAI(default=no_schema) as server:
        first = chain(server.url).optimize("a cat")
        second = chain(server.url).optimize("a dog")  # a new chain: the process remembers the server
    assert first.llm_method == second.llm_method == "json_mode"
    kinds = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
