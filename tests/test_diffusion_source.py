"""Where a model comes from and what loading checks before it loads: missing, malformed, uncached or pickle models,
bad devices and dtypes, and a cheap import. Tiny models from disk; no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools.diffusion import DiffusionTool, GenerationParams, ImageRequest

# diffusers' schedulers trip numpy 2's __array__/__array_wrap__ deprecations on torch tensors; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

FAST = GenerationParams(steps=2, guidance=7.5, width=64, height=64)
KITTEN = ImageRequest(positive="a red kitten in a basket", negative="blurry", seed=7)


def test_uncached_hub_model_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotFoundError) as caught:
        DiffusionTool("stabilityai/sd-turbo").load()
    message = str(caught.value)
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.safetensors"))
    assert "\n" not in message
    assert "'stabilityai/sd-turbo' is not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message and "hf download stabilityai/sd-turbo" in message
    assert "--model PATH" in message


def test_uncached_hub_model_with_the_hub_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub
    import huggingface_hub.constants

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(ModelNotFoundError, match="the Hugging Face Hub is unreachable.*--model PATH"):
        DiffusionTool("someone/some-model").load()


def test_missing_and_malformed_model_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model './nowhere' does not exist"):
        DiffusionTool("./nowhere")
    with pytest.raises(ModelNotFoundError, match="has no model_index.json"):
        DiffusionTool(str(tmp_path))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(InputError, match="is not a .safetensors checkpoint"):
        DiffusionTool(str(tmp_path / "notes.txt"))


def test_pickle_checkpoints_are_refused_without_allow_pickle(tmp_path: Path, tiny_sd_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not loaded")
    with pytest.raises(InputError, match=r"pickle checkpoint \(.ckpt\).*--allow-pickle"):
        DiffusionTool(str(ckpt))
    assert DiffusionTool(str(ckpt), allow_pickle=True).model == str(ckpt)  # accepted, not loaded yet

    pickled = tmp_path / "pickled"
    StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir)).save_pretrained(
        str(pickled), safe_serialization=False
    )
    with pytest.raises(InputError, match=r"only pickle weights \(.bin\) for .*unet.*--allow-pickle"):
        DiffusionTool(str(pickled), device="cpu").load()
    trusted = DiffusionTool(str(pickled), device="cpu", allow_pickle=True)
    assert trusted.generate([KITTEN], FAST)[0].image.size == (64, 64)


def test_bad_device_and_dtype_names(tiny_sd_dir: Path) -> None:
    with pytest.raises(InputError, match="device 'gpu' is unknown"):
        DiffusionTool(str(tiny_sd_dir), device="gpu")
    with pytest.raises(InputError, match="dtype 'int8' is unknown"):
        DiffusionTool(str(tiny_sd_dir), dtype="int8")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device 'cuda' is not available"):
            DiffusionTool(str(tiny_sd_dir), device="cuda").load()


def test_import_is_cheap() -> None:
    code = (
        "import sys, ideaforge.tools.diffusion, ideaforge.tools.metadata; "
        "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

