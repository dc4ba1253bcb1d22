"""compel prompt weighting: `(red kitten)1.3` and `(basket)++` emphasis, as the prompt engine writes it.

Prompts without emphasis are encoded by the pipeline itself; `_weighted_embeddings` encodes the others with compel.

Example:
    >>> plain_prompt("(red kitten)1.3, (basket)++, warm light")
    'red kitten, basket, warm light'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ideaforge.tools._lazy import heavy_import

if TYPE_CHECKING:
    from ideaforge.tools.diffusion.loading import _Loaded

# compel's emphasis syntax as the prompt engine writes it: "(red kitten)1.3", "(basket)++".
_WEIGHTED = re.compile(r"\(([^()]+)\)(?:[+-]+|\d+(?:\.\d+)?)")


def plain_prompt(text: str) -> str:
    """The prompt without compel's weight syntax: '(red kitten)1.3, basket' -> 'red kitten, basket'."""
    return _WEIGHTED.sub(r"\1", text)


def _weighted_embeddings(
    entry: _Loaded, pipe: Any, positives: list[str], negatives: list[str] | None
) -> dict[str, Any]:
    """Prompt embeddings with compel's `(term)1.3` emphasis applied; unweighted text encodes exactly as diffusers'."""
    torch = heavy_import("torch")
    compel = heavy_import("compel")
    Compel, ReturnedEmbeddingsType = compel.Compel, compel.ReturnedEmbeddingsType

    if entry.compel is None:
        device = pipe._execution_device
        common = {
            "truncate_long_prompts": True,
            "device": str(device),
            "dtype_for_device_getter": lambda _: pipe.text_encoder.dtype,
        }
        if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL: both encoders, pooled from the second
            penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            entry.compel = (
                Compel(
                    tokenizer=pipe.tokenizer,
                    text_encoder=pipe.text_encoder,
                    returned_embeddings_type=penultimate,
                    **common,
                ),
                Compel(
                    tokenizer=pipe.tokenizer_2,
                    text_encoder=pipe.text_encoder_2,
                    returned_embeddings_type=penultimate,
                    requires_pooled=True,
                    **common,
                ),
            )
        else:
            entry.compel = (Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, **common),)

    encoders = entry.compel

    def encode(texts: list[str]) -> tuple[Any, Any]:
        if len(encoders) == 1:
            return encoders[0](texts), None
        left = encoders[0](texts)
        right, pooled = encoders[1](texts)
        return torch.cat([left, right], dim=-1), pooled

    with torch.no_grad():
        embeds, pooled = encode(positives)
        found: dict[str, Any] = {"prompt_embeds": embeds}
        if pooled is not None:
            found["pooled_prompt_embeds"] = pooled
        if negatives is not None:
            embeds, pooled = encode(negatives)
            found["negative_prompt_embeds"] = embeds
            if pooled is not None:
                found["negative_pooled_prompt_embeds"] = pooled
    return found
