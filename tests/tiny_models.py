"""Tiny random diffusion pipelines built offline from configs (diffusers' `get_dummy_components` pattern).

Every builder writes a folder (or file) that ideaforge then loads back through the same code path a user's
`--model PATH` takes. Weights are random but seeded, so two builds are identical. The tokenizer is the real CLIP
tokenizer, written from the BPE file bundled with ideaforge; the text encoders therefore keep CLIP's 49,408-token
vocabulary while everything else is a few thousand parameters wide. A 64x64, 2-step generation takes tens of
milliseconds on a laptop CPU.

Every family has a builder: `build_tiny_sd`, `build_tiny_sdxl`, `build_tiny_sd3` (MMDiT, two CLIPs with projection,
T5) and `build_tiny_flux` (double/single stream blocks, CLIP, T5; `schnell=True` for the distilled shape), shaped as
diffusers' own tests build them. T5 needs a sentencepiece-style tokenizer and none ships in any package, so
`t5_tokenizer_dir()` trains a small Unigram one offline with `tokenizers` (about a second, once per process).
`python tests/tiny_models.py FAMILY OUT_DIR` builds a folder of any family (sd, sdxl, sd3, flux, flux-schnell).

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


# --- DiT families: SD 3 and FLUX.1 ----------------------------------------------------------------------------------

T5_VOCAB = 1000  # pieces the tiny Unigram tokenizer learns (fewer if the corpus has fewer)
T5_MAX_TOKENS = 512  # what FLUX.1-dev's T5 reads; SD 3 reads 256 by default (up to 512)
_T5_DIR: Path | None = None


def _t5_corpus() -> list[str]:
    """A few thousand lines of text to learn T5 pieces from: the public ideas, and the prompts' vocabularies."""
    here = Path(__file__).resolve().parent
    lines = [
        row.split("\t", 1)[0] for row in (here / "data" / "public_ideas.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    for path in sorted((here.parent / "prompts").rglob("*")):
        if path.suffix in {".md", ".json", ".jsonl", ".txt"}:
            lines.extend(path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line.strip()]


def t5_tokenizer_dir() -> Path:
    """A T5 fast tokenizer (Unigram, like T5's sentencepiece model) trained offline in about a second.

    No sentencepiece model ships in any installed package, so one is learnt with the `tokenizers` library and
    wrapped as transformers' `T5Tokenizer` (the fast, tokenizers-backed one): `<pad>`=0, `</s>`=1, `<unk>`=2, no
    sentinel ids. Built once per process, in a temporary folder.
    """
    global _T5_DIR
    if _T5_DIR is not None and (_T5_DIR / "tokenizer.json").is_file():
        return _T5_DIR
    import tempfile

    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer
    from transformers import T5TokenizerFast

    learner = Tokenizer(Unigram())
    learner.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = UnigramTrainer(
        vocab_size=T5_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    learner.train_from_iterator(_t5_corpus(), trainer=trainer)
    vocab = [(piece, score) for piece, score in json.loads(learner.to_str())["model"]["vocab"]]
    tokenizer = T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_TOKENS)
    target = Path(tempfile.mkdtemp(prefix="ideaforge-t5-")) / "tokenizer"
    tokenizer.save_pretrained(str(target))
    _T5_DIR = target
    return target


def _t5_tokenizer(max_tokens: int = T5_MAX_TOKENS) -> Any:
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(str(t5_tokenizer_dir()), model_max_length=max_tokens)


def _t5_encoder(d_model: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=T5_VOCAB,
            d_model=d_model,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def _dit_vae() -> Any:
    from diffusers import AutoencoderKL

    # 16 latent channels and an 8x factor, as SD 3's and FLUX.1's VAEs; no quant convs, with a shift factor.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=4,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=SAMPLE_SIZE * 8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def build_tiny_sd3(directory: str | Path) -> Path:
    """Write a tiny SD 3-shaped diffusers folder: MMDiT, two CLIP encoders with projection, T5, flow matching."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=SAMPLE_SIZE,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,  # T5's width; the two CLIPs' 32 + 32 are padded up to it
        caption_projection_dim=32,
        pooled_projection_dim=64,  # the two CLIP projections, concatenated
        pos_embed_max_size=64,  # up to 64 x 2 x 8 = 1024 px
    )
    torch.manual_seed(1)
    vae = _dit_vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModelWithProjection(_text_config(hidden_act="gelu"))
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(hidden_act="gelu"))
    torch.manual_seed(4)
    text_encoder_3 = _t5_encoder(64)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        text_encoder_3=text_encoder_3,
        tokenizer=_tokenizer(),
        tokenizer_2=_tokenizer(),
        tokenizer_3=_t5_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        image_encoder=None,
        feature_extractor=None,
    )
    target = Path(directory)
    pipe.save_pretrained(str(target))
    return target


def build_tiny_flux(directory: str | Path, *, schnell: bool = False) -> Path:
    """Write a tiny FLUX.1-shaped diffusers folder: double and single stream blocks, CLIP (pooled) and T5.

    `schnell=True` builds the timestep-distilled shape (no guidance embedding), as FLUX.1-schnell.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5's width
        pooled_projection_dim=32,  # CLIP's pooled output
        guidance_embeds=not schnell,
        axes_dims_rope=(4, 4, 8),
    )
    torch.manual_seed(1)
    vae = _dit_vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_text_config(hidden_act="gelu"))
    torch.manual_seed(3)
    text_encoder_2 = _t5_encoder(32)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0 if schnell else 3.0,
        use_dynamic_shifting=not schnell,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=_tokenizer(),
        tokenizer_2=_t5_tokenizer(256 if schnell else T5_MAX_TOKENS),
        scheduler=scheduler,
        image_encoder=None,
        feature_extractor=None,
    )
    target = Path(directory)
    pipe.save_pretrained(str(target))
    return target


BUILDERS = {
    "sd": build_tiny_sd,
    "sdxl": build_tiny_sdxl,
    "sd3": build_tiny_sd3,
    "flux": build_tiny_flux,
    "flux-schnell": lambda directory: build_tiny_flux(directory, schnell=True),
}


def build_tiny(family: str, directory: str | Path) -> Path:
    """Write a tiny diffusers folder of `family` (sd, sdxl, sd3, flux or flux-schnell)."""
    if family not in BUILDERS:
        raise SystemExit(f"family {family!r} is unknown; use one of: {', '.join(BUILDERS)}")
    return BUILDERS[family](directory)


def main(argv: list[str] | None = None) -> int:
    """`python tests/tiny_models.py FAMILY OUT_DIR`: build a tiny model folder of any supported family."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("family", choices=sorted(BUILDERS), help="model family")
    parser.add_argument("out_dir", type=Path, help="the diffusers folder to write")
    args = parser.parse_args(argv)
    path = build_tiny(args.family, args.out_dir)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
