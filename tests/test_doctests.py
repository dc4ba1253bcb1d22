"""Every docstring example of ideaforge runs and shows what it says (tools/ has its own file:
tests/test_doctests_tools.py)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ideaforge

# streamlit_app runs its page when imported; tools are covered by test_doctests_tools.py.
SKIP = ("ideaforge.tools", "ideaforge.app.streamlit_app")


def public_modules() -> list[str]:
    names = ["ideaforge"]
    for info in pkgutil.walk_packages(ideaforge.__path__, prefix="ideaforge."):
        if info.name.startswith(SKIP) or "._" in info.name.removeprefix("ideaforge"):
            continue
        names.append(info.name)
    return sorted(names)


MODULES = public_modules()


def test_the_walk_finds_the_layers() -> None:
    for name in ("ideaforge.errors", "ideaforge.agent.request", "ideaforge.agent.loop", "ideaforge.app.mcp_server"):
        assert name in MODULES
    assert not any(name.startswith(SKIP) for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output)"
