"""Tiny random diffusion pipelines built offline from configs (diffusers' `get_dummy_components` pattern).

Every builder writes a folder (or file) that ideaforge then loads back through the same code path a user's
`--model PATH` takes. Weights are random but seeded, so two builds are identical. The tokenizer is the real CLIP
tokenizer, written from the BPE file bundled with ideaforge; the text encoders therefore keep CLIP's 49,408-token
vocabulary while everything else is a few thousand parameters wide. A 64x64, 2-step generation takes tens of
milliseconds on a laptop CPU.

Single-file checkpoints: `from_single_file` needs the diffusers component configs (model_index.json,
unet/config.json, ...) next to the weights it converts. Offline, those come from a local folder passed as
`config=`; `build_tiny_single_file` writes one holding configs only, no weights, so the weights really come from
the `.safetensors` file, which is written in the original Stable Diffusion (LDM) key layout that A1111 and
ComfyUI checkpoints use.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SAMPLE_SIZE = 8  # latent side: 8 latents x vae factor 8 = 64 px default images
VOCAB_SIZE = 49408
BOS, EOS = 49406, 49407


def _tokenizer() -> Any:
    from transformers import CLIPTokenizer

    from ideaforge.tools.clip_tokenizer import CLIP_MAX_TOKENS, write_clip_tokenizer

    return CLIPTokenizer.from_pretrained(str(write_clip_tokenizer()), model_max_length=CLIP_MAX_TOKENS)


def _text_config(**overrides: Any) -> Any:
    from transformers import CLIPTextConfig

    fields: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": EOS,
        "projection_dim": 32,
        "hidden_act": "quick_gelu",
    }
    fields.update(overrides)
    return CLIPTextConfig(**fields)


def _vae() -> Any:
    from diffusers import AutoencoderKL

    # Four blocks, as in real SD VAEs, so the image is 8x the latent size.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=SAMPLE_SIZE * 8,
    )


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )


def tiny_sd_components(*, safety_checker: bool = False) -> dict[str, Any]:
    """The components of a tiny SD 1.x-shaped pipeline (UNet, VAE, CLIP text encoder, tokenizer, scheduler)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    torch.manual_seed(1)
    vae = _vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_text_config())
    components: dict[str, Any] = {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": _tokenizer(),
        "scheduler": _scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }
    if safety_checker:
        components.update(_flag_everything_safety_checker())
        components["requires_safety_checker"] = True
    return components


def _flag_everything_safety_checker() -> dict[str, Any]:
    """A tiny StableDiffusionSafetyChecker whose concept thresholds are below any cosine, so it flags every image."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(3)
    config = CLIPConfig(
        text_config=dict(_text_config().to_dict()),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
        projection_dim=32,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0)  # cosine - (-2) > 0 for every image: always flagged
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return {"safety_checker": checker, "feature_extractor": processor}


def build_tiny_sd(directory: str | Path, *, safety_checker: bool = False) -> Path:
    """Write a tiny SD 1.x-shaped diffusers folder; with `safety_checker=True` it ships a checker that flags all."""
    from diffusers import StableDiffusionPipeline

    target = Path(directory)
    pipe = StableDiffusionPipeline(**tiny_sd_components(safety_checker=safety_checker))
    pipe.save_pretrained(str(target))
    return target


def build_tiny_sdxl(directory: str | Path) -> Path:
    """Write a tiny SDXL-shaped diffusers folder (two text encoders, text-time conditioning)."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids x 8 + pooled text (32)
        cross_attention_dim=64,
        norm_num_groups=8,
    )
    torch.manual_seed(1)
    vae = _vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_text_config())
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config())
    tokenizer = _tokenizer()
    pipe = StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=_scheduler(),
        image_encoder=None,
        feature_extractor=None,
    )
    target = Path(directory)
    pipe.save_pretrained(str(target))
    return target


def build_tiny_taesd(directory: str | Path) -> Path:
    """Write a tiny AutoencoderTiny (TAESD-shaped: 4 latent channels, 8x upsampling) for live previews."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(4)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
    target = Path(directory)
    taesd.save_pretrained(str(target))
    return target


def build_tiny_lora(directory: str | Path, model_dir: str | Path) -> Path:
    """Write a random rank-4 LoRA for the UNet attention projections of the tiny SD model; returns the file."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet")
    torch.manual_seed(5)
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
        )
    )
    with torch.no_grad():  # peft's random init is small; make the effect plainly visible in pixels
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.mul_(4.0)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    target = Path(directory)
    StableDiffusionPipeline.save_lora_weights(
        str(target), unet_lora_layers=layers, weight_name="tiny_lora.safetensors"
    )
    return target / "tiny_lora.safetensors"


# --- single-file checkpoints in the original Stable Diffusion (LDM) layout ----------------------------------


def _unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Diffusers UNet keys -> LDM `model.diffusion_model.*` keys (the inverse of diffusers' single-file converter)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    layers = config["layers_per_block"]
    fixed = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    resnet_names = [
        ("norm1", "in_layers.0"),
        ("conv1", "in_layers.2"),
        ("norm2", "out_layers.0"),
        ("conv2", "out_layers.3"),
        ("time_emb_proj", "emb_layers.1"),
        ("conv_shortcut", "skip_connection"),
    ]
    up_has_attention = {
        b: any(k.startswith(f"up_blocks.{b}.attentions.") for k in state)
        for b in range(len(config["up_block_types"]))
    }

    def resnet(rest: str) -> str:
        for new, old in resnet_names:
            if rest.startswith(new + "."):
                return old + rest[len(new) :]
        raise KeyError(rest)

    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key in fixed:
            ldm = fixed[key]
        elif parts[0] == "down_blocks":
            block, kind = int(parts[1]), parts[2]
            if kind == "downsamplers":
                ldm = f"input_blocks.{1 + block * (layers + 1) + layers}.0.op.{parts[-1]}"
            else:
                index = 1 + block * (layers + 1) + int(parts[3])
                rest = ".".join(parts[4:])
                ldm = (
                    f"input_blocks.{index}.0.{resnet(rest)}"
                    if kind == "resnets"
                    else f"input_blocks.{index}.1.{rest}"
                )
        elif parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            ldm = (
                f"middle_block.{2 * index}.{resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
            )
        elif parts[0] == "up_blocks":
            block, kind = int(parts[1]), parts[2]
            if kind == "upsamplers":
                slot = 2 if up_has_attention[block] else 1
                ldm = f"output_blocks.{block * (layers + 1) + layers}.{slot}.conv.{parts[-1]}"
            else:
                index = block * (layers + 1) + int(parts[3])
                rest = ".".join(parts[4:])
                ldm = (
                    f"output_blocks.{index}.0.{resnet(rest)}"
                    if kind == "resnets"
                    else f"output_blocks.{index}.1.{rest}"
                )
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + ldm] = value
    return out


def _vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Diffusers AutoencoderKL keys -> LDM `first_stage_model.*` keys (attention projections as 1x1 convs)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    blocks = len(config["up_block_types"])
    attention_names = [
        ("group_norm", "norm"),
        ("to_q", "q"),
        ("to_k", "k"),
        ("to_v", "v"),
        ("to_out.0", "proj_out"),
    ]
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]
        if key in fixed:
            ldm = fixed[key]
        elif parts[1] == "down_blocks":
            block = parts[2]
            if parts[3] == "downsamplers":
                ldm = f"{side}.down.{block}.downsample.conv.{parts[-1]}"
            else:
                ldm = f"{side}.down.{block}.block.{'.'.join(parts[4:])}"
        elif parts[1] == "up_blocks":
            block = blocks - 1 - int(parts[2])
            if parts[3] == "upsamplers":
                ldm = f"{side}.up.{block}.upsample.conv.{parts[-1]}"
            else:
                ldm = f"{side}.up.{block}.block.{'.'.join(parts[4:])}"
        elif parts[1] == "mid_block" and parts[2] == "resnets":
            ldm = f"{side}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        elif parts[1] == "mid_block" and parts[2] == "attentions":
            rest = ".".join(parts[4:])
            for new, old in attention_names:
                if rest.startswith(new + "."):
                    rest = old + rest[len(new) :]
                    break
            ldm = f"{side}.mid.attn_1.{rest}"
            if value.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out["first_stage_model." + ldm.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def build_tiny_single_file(
    path: str | Path, *, source: str | Path | None = None, config_dir: str | Path | None = None
) -> Path:
    """Write a tiny SD 1.x checkpoint as one LDM-layout `.safetensors` file, plus a configs-only folder.

    Args:
        path: the `.safetensors` file to write.
        source: a tiny diffusers folder (from `build_tiny_sd`) whose weights to convert; built fresh when omitted.
        config_dir: where to write the configs-only diffusers folder that `from_single_file(config=...)` reads
            offline (default: `<path without suffix>-config`).

    Returns:
        The checkpoint path. Its config folder is `single_file_config_dir(path)` unless `config_dir` was given.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if source is None:
        source = build_tiny_sd(path.parent / (path.stem + "-source"))
    source = Path(source)
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(source))
    checkpoint = {}
    checkpoint.update(_unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config)))
    checkpoint.update(_vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    text = pipe.text_encoder.state_dict()
    for key, value in text.items():
        name = key if key.startswith("text_model.") else "text_model." + key
        checkpoint["cond_stage_model.transformer." + name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))

    configs = Path(config_dir) if config_dir is not None else single_file_config_dir(path)
    for file in source.rglob("*"):
        if file.is_file() and file.suffix in {".json", ".txt"}:
            dest = configs / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
    return path


def single_file_config_dir(path: str | Path) -> Path:
    """The configs-only folder `build_tiny_single_file` writes beside a checkpoint by default."""
    path = Path(path)
    return path.parent / (path.stem + "-config")


def model_index(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "model_index.json").read_text(encoding="utf-8"))
