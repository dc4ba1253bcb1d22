"""Random-weight models for the benchmarks, built offline from configs (never a Hub id), saved like real ones.

- `tiny-sd`, `tiny-clip`: the tiny models the tests use (`tests/tiny_models.py`, `tests/tiny_clip.py`).
- `sd15-shaped`: a Stable Diffusion 1.5-shaped pipeline. The UNet has SD 1.5's exact configuration (859.5 M
  parameters: block_out_channels (320, 640, 1280, 1280), layers_per_block 2, cross_attention_dim 768,
  attention_head_dim 8, CrossAttnDown x3 + Down, Up + CrossAttnUp x3), the VAE is SD 1.5's (83.7 M: 128/256/512/512,
  two layers per block), the text encoder is SD 1.5's CLIP ViT-L/14 text tower (123.1 M: width 768, 12 layers,
  12 heads), the tokenizer is the real CLIP tokenizer and the scheduler is SD 1.5's shipped PNDM. About 4 GiB of
  float32 safetensors. The folder name matches ideaforge's `sd-1.5` profile, as a user's SD 1.5 folder would.
- `clip-b32-shaped`: a CLIPModel with `openai/clip-vit-base-patch32`'s shape (the default critic: ViT-B/32 vision
  tower at 224x224, 12-layer width-512 text tower, projection 512) and its processor settings.

Weights are random but seeded, so outputs are reproducible; images are noise, which is all a timing needs.

Run `python bench/models.py DIR` to build all four into DIR (reused when already complete).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common

NAMES = ("tiny-sd", "tiny-clip", "sd15-shaped", "clip-b32-shaped")
_DONE = ".ideaforge-bench-complete"


# The SD 1.5 VAE's shape (83M parameters); bench_vae_tiling.py decodes with the same one.
SD15_VAE: dict[str, object] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}


def build_sd15_shaped(directory: str | Path) -> Path:
    """Write an SD 1.5-shaped diffusers folder with random weights (see the module docstring)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tiny_models import _tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        norm_num_groups=32,
        norm_eps=1e-5,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    torch.manual_seed(1)
    vae = AutoencoderKL(**SD15_VAE)
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    scheduler = PNDMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    target = Path(directory)
    pipe.save_pretrained(str(target))
    return target


def build_clip_b32_shaped(directory: str | Path) -> Path:
    """Write a random CLIPModel + CLIPProcessor with openai/clip-vit-base-patch32's shape and settings."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    try:  # transformers 5: the PIL backend, which needs no torchvision
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessor as ImageProcessor

    from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

    config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=512,
    )
    torch.manual_seed(3)
    model = CLIPModel(config).eval()
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    processor = ImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    CLIPProcessor(image_processor=processor, tokenizer=load_clip_tokenizer()).save_pretrained(str(target))
    return target


def ensure(root: str | Path, names: tuple[str, ...] = NAMES) -> dict[str, str]:
    """Build each named model under `root` unless a complete build is already there; returns name -> folder."""
    from tiny_clip import build_tiny_clip
    from tiny_models import build_tiny_sd

    builders = {
        "tiny-sd": build_tiny_sd,
        "tiny-clip": build_tiny_clip,
        "sd15-shaped": build_sd15_shaped,
        "clip-b32-shaped": build_clip_b32_shaped,
    }
    out = {}
    for name in names:
        folder = Path(root) / name
        if not (folder / _DONE).is_file():
            started = time.perf_counter()
            builders[name](folder)
            (folder / _DONE).write_text(f"built in {time.perf_counter() - started:.1f} s\n", encoding="utf-8")
        out[name] = str(folder)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="where to write (or find) the models")
    parser.add_argument("--only", nargs="*", choices=NAMES, help="build only these (default: all)")
    args = parser.parse_args()
    _common.quiet_progress()
    for name, folder in ensure(args.directory, tuple(args.only or NAMES)).items():
        print(f"{name:16} {folder}")


if __name__ == "__main__":
    main()
