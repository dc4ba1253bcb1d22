"""The distribution installs one import name, `ideaforge`, holding every source module and data file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = ("agent", "tools", "prompts", "app")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, timeout=300, capture_output=True,
    )
    [path] = out.glob("ideaforge-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def wheel_names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def test_one_top_level_name(wheel_names: set[str]) -> None:
    top = {name.split("/")[0] for name in wheel_names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"ideaforge"}


def test_every_source_module_and_data_file_is_packaged(wheel_names: set[str]) -> None:
    tracked = subprocess.run(["git", "ls-files", *PACKAGED, "__init__.py", "errors.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    expected = {f"ideaforge/{path}" for path in tracked if not path.endswith("README.md") or "/data/" in path}
    missing = sorted(expected - wheel_names)
    assert not missing, f"not in the wheel (add the package to pyproject `packages` or package-data): {missing}"
    assert not any(n.startswith(("ideaforge/tests/", "ideaforge/bench/")) for n in wheel_names)


def test_entry_point_names_the_packaged_cli(wheel: zipfile.ZipFile) -> None:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    lines = wheel.read(name).decode().split()
    assert "ideaforge" in lines and "ideaforge.app.cli:main" in lines
