"""A tiny random CLIP model, built offline from configs and saved like a real checkpoint.

Same classes and file layout as `openai/clip-vit-base-patch32` (CLIPModel + CLIPProcessor with the real 49,408-token
CLIP tokenizer), but 2 layers of width 32 and 32x32 images, so it loads and scores in milliseconds. The weights are
random but fixed by a seed, so scores are reproducible across runs.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_clip(directory: str | Path, *, seed: int = 2) -> Path:
    """Save a tiny random CLIPModel and its CLIPProcessor to `directory` and return it.

    The folder loads back through the user's path: `CLIPCritic(model=str(directory))` or `--clip-model DIR`.
    The default seed gives image-text scores spread over about 0-50 (a few clamped to 0), so tests see variation;
    with some seeds every cosine is negative and every score reads 0.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    try:  # transformers 5: the PIL backend, which needs no torchvision
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessor as ImageProcessor

    from ideaforge.tools.clip_tokenizer import CLIP_MAX_TOKENS, VOCAB_SIZE, load_clip_tokenizer

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    config = CLIPConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": CLIP_MAX_TOKENS,
            "bos_token_id": VOCAB_SIZE - 2,  # <|startoftext|>
            "eos_token_id": VOCAB_SIZE - 1,  # <|endoftext|>, also the pad token
            "pad_token_id": VOCAB_SIZE - 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = CLIPModel(config).eval()
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's random stream untouched
    model.save_pretrained(str(target))

    tokenizer = load_clip_tokenizer()  # the real CLIP vocabulary, built offline from the bundled BPE file
    image_processor = ImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(target))
    return target
