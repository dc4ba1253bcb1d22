"""Test set-up: nothing here touches the network; models are tiny, random and built from configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach a model hub from the tests, and keep caches inside the test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("IDEAFORGE_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "ideaforge"))

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no LLM configured and no IDEAFORGE_* settings from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("IDEAFORGE_") and key != "IDEAFORGE_CACHE":
            monkeypatch.delenv(key, raising=False)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def clip_tokenizer():
    from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

    return load_clip_tokenizer()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CLIP tokenizer folder (vocab.json, merges.txt, configs), built offline."""
    from ideaforge.tools.clip_tokenizer import write_clip_tokenizer

    return write_clip_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel + CLIPProcessor saved to a folder, loadable as `--clip-model DIR`."""
    from tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


# --- tiny diffusion models (tests/tiny_models.py) ------------------------------------------------------------------


def _single_thread_torch() -> None:
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spin-waiting
    # makes each 30 ms generation take seconds.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 1.x-shaped diffusers folder (64x64 default size), to load as `--model DIR`."""
    from tiny_models import build_tiny_sd

    _single_thread_torch()
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SDXL-shaped diffusers folder (two text encoders), to load as `--model DIR`."""
    from tiny_models import build_tiny_sdxl

    _single_thread_torch()
    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-xl")


@pytest.fixture(scope="session")
def tiny_sd3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 3-shaped diffusers folder (MMDiT, two CLIPs and a T5 with an offline tokenizer)."""
    from tiny_models import build_tiny_sd3

    _single_thread_torch()
    return build_tiny_sd3(tmp_path_factory.mktemp("models") / "tiny-sd3")


@pytest.fixture(scope="session")
def tiny_flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random FLUX.1-dev-shaped diffusers folder (CLIP and T5, packed latents, guidance embedding)."""
    from tiny_models import build_tiny_flux

    _single_thread_torch()
    return build_tiny_flux(tmp_path_factory.mktemp("models") / "tiny-flux")
