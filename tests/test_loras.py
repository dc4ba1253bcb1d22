"""LoRAs are checked like models before anything loads: pickle files refused unless allowed, and every mistake in
`--lora ID_OR_PATH[:SCALE]` reported in one line that names the value. No network."""

from __future__ import annotations

from pathlib import Path

import pytest

from ideaforge.errors import InputError
from ideaforge.tools.diffusion import DiffusionTool, LoraSpec, parse_lora
from ideaforge.tools.diffusion import loading as loading_module

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to load a pipeline fails the test: these errors must come first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pipeline was loaded before the LoRA was checked")

    monkeypatch.setattr(loading_module, "_load_pipeline", refuse)


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin", ".pth", ".pkl"])
def test_pickle_lora_file_is_refused_without_allow_pickle(
    tiny_sd_dir: Path, tmp_path: Path, suffix: str, no_loading: None
) -> None:
    lora = tmp_path / f"ink{suffix}"
    lora.write_bytes(b"not looked at")
    with pytest.raises(InputError) as exc:
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[f"{lora}:0.8"])
    message = _one_line(exc)
    assert str(lora) in message and "pickle" in message
    assert "--allow-pickle" in message and ".safetensors" in message


def test_pickle_only_lora_folder_and_hub_weights_are_refused(
    tiny_sd_dir: Path, tmp_path: Path, no_loading: None
) -> None:
    folder = tmp_path / "ink"
    folder.mkdir()
    (folder / "pytorch_lora_weights.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"LoRA folder .*ink' has only pickle weights \(pytorch_lora_weights.bin\)"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[str(folder)])
    with pytest.raises(InputError, match=r"LoRA weights 'lora.ckpt' is a pickle file .*--allow-pickle"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=["owner/repo/lora.ckpt"])
    with pytest.raises(InputError, match="is a pickle file"):  # a LoraSpec built by hand is checked too
        spec = LoraSpec(str(folder), weight_name="pytorch_lora_weights.bin")
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[spec])


def test_pickle_lora_loads_with_allow_pickle(tiny_sd_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from tiny_models import build_tiny_lora

    safe = build_tiny_lora(tmp_path / "lora", tiny_sd_dir)
    pickled = tmp_path / "ink.pt"
    torch.save(load_file(str(safe)), pickled)
    tool = DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[f"{pickled}:0.5"], allow_pickle=True)
    assert tool.pipeline.get_active_adapters() == ["lora_0"]


def test_missing_lora_file_is_named_not_its_folder(tiny_sd_dir: Path, tmp_path: Path, no_loading: None) -> None:
    missing = tmp_path / "nope.safetensors"
    for text in (str(missing), f"{missing}:0.8"):
        with pytest.raises(InputError) as exc:
            DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[text])
        assert _one_line(exc).startswith(f"LoRA file {str(missing)!r} does not exist")
    with pytest.raises(InputError, match=r"^LoRA file 'loras/ink.safetensors' does not exist"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=["loras/ink.safetensors"])
    with pytest.raises(InputError, match=r"^LoRA file .*nope.safetensors' does not exist"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[LoraSpec(str(tmp_path), weight_name="nope.safetensors")])


def test_non_numeric_scale_is_named(tiny_sd_dir: Path, tmp_path: Path, no_loading: None) -> None:
    with pytest.raises(InputError) as exc:
        parse_lora("x.safetensors:abc")
    assert _one_line(exc) == "lora scale 'abc' in 'x.safetensors:abc' is not a number; use e.g. x.safetensors:0.8"
    with pytest.raises(InputError, match="lora scale '' in 'owner/repo:' is not a number"):
        parse_lora("owner/repo:")
    with pytest.raises(InputError, match="lora scale 'abc'"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[f"{tmp_path / 'x.safetensors'}:abc"])
    for bad in ("inf", "11", "-1e9"):
        with pytest.raises(InputError, match=f"lora scale '{bad}' .* between -10 and 10"):
            parse_lora(f"owner/repo:{bad}")


def test_what_parse_lora_accepts(tmp_path: Path) -> None:
    assert parse_lora("owner/repo") == LoraSpec("owner/repo")
    assert parse_lora(" owner/repo:-0.5 ") == LoraSpec("owner/repo", -0.5)
    assert parse_lora("owner/repo/sub/w.safetensors:2") == LoraSpec("owner/repo", 2.0, "sub/w.safetensors")
    assert parse_lora(r"C:\loras\ink.safetensors:0.8") == LoraSpec(r"C:\loras\ink.safetensors", 0.8)
    assert parse_lora(r"C:\loras\ink.safetensors") == LoraSpec(r"C:\loras\ink.safetensors")
    # An absolute or relative path is never split into a Hub id and a weights name.
    deep = tmp_path / "a" / "b.safetensors"
    assert parse_lora(str(deep)) == LoraSpec(str(deep))
    assert parse_lora("./a/b/c.safetensors:0.3") == LoraSpec("./a/b/c.safetensors", 0.3)
    odd = tmp_path / "ink:v2.safetensors"  # a ':' inside an existing file's name is part of it
    odd.write_bytes(b"")
    assert parse_lora(str(odd)) == LoraSpec(str(odd))


def test_bad_lora_forms_are_named(tiny_sd_dir: Path, tmp_path: Path, no_loading: None) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"LoRA file '.*notes.txt' is not a .safetensors file"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[str(tmp_path / "notes.txt")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"LoRA folder '.*empty' has no .safetensors weights"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[str(empty)])
    with pytest.raises(InputError, match=r"lora 'not a hub id' is not a file, a folder or a Hub id"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", loras=["not a hub id"])
