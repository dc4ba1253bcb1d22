"""Every module of `ideaforge.tools` shows how it is used, and its examples run (offline; `+SKIP` marks the few
that need a real model download)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import ideaforge.tools

# diffusers' schedulers trip numpy 2's __array__/__array_wrap__ deprecations on torch tensors; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _modules() -> list[str]:
    found = pkgutil.walk_packages(ideaforge.tools.__path__, "ideaforge.tools.")
    return ["ideaforge.tools", *sorted(info.name for info in found)]


def _run(name: str) -> doctest.TestResults:
    module: ModuleType = importlib.import_module(name)
    return doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_pass(name: str) -> None:
    result = _run(name)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see stdout)"
    assert result.attempted > 0, f"{name} has no runnable docstring example"


def test_the_package_has_examples_and_walks_its_sub_packages() -> None:
    names = _modules()
    assert {"ideaforge.tools.diffusion.params", "ideaforge.tools.critic.scorer", "ideaforge.tools.metadata"} <= set(names)
    assert sum(_run(name).attempted for name in names) > 0
