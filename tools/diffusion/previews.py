"""Live previews: cheap RGB images of the latents between denoising steps.

With a preview VAE (TAESD, or TAESD3/TAEF1 for the 16-channel families) loaded it decodes them; otherwise it applies
the family's linear latent-to-RGB map from families.json, which costs next to nothing. FLUX's latents are 2x2-packed
tokens, unpacked first (that needs the image size). A family without a map (generic) gets no previews.

Example:
    >>> import torch
    >>> from types import SimpleNamespace
    >>> from ideaforge.tools.diffusion.families import family_named
    >>> entry = SimpleNamespace(taesd=None, family=family_named("sd"), pipe=None)
    >>> [preview] = _previews(torch.zeros(1, 4, 8, 8), entry)
    >>> preview.size
    (8, 8)
    >>> flux = SimpleNamespace(taesd=None, family=family_named("flux"), pipe=SimpleNamespace(vae_scale_factor=8))
    >>> [preview] = _previews(torch.zeros(1, 16, 64), flux, size=(64, 64))  # 4x4 tokens of 16 x 2 x 2 channels
    >>> preview.size
    (8, 8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ideaforge.tools._lazy import heavy_import

if TYPE_CHECKING:
    from ideaforge.tools.diffusion.loading import _Loaded


def _unpack(latents: Any, size: tuple[int, int], scale: int) -> Any:
    """FLUX's packed latents (batch, tokens, channels x 2 x 2) -> (batch, channels, height / 8, width / 8)."""
    width, height = size
    batch, _, channels = latents.shape
    h, w = 2 * (height // (scale * 2)), 2 * (width // (scale * 2))
    latents = latents.view(batch, h // 2, w // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(batch, channels // 4, h, w)


def _previews(latents: Any, entry: _Loaded | Any, size: tuple[int, int] | None = None) -> list[Any]:
    """Cheap RGB previews of the current latents: TAESD when loaded, else the linear latent-to-RGB map.

    `size` is the image's (width, height), needed to unpack packed latents; without it they get no preview.
    """
    from PIL import Image

    torch = heavy_import("torch")

    family = entry.family
    if family is None:
        return []
    if latents.ndim == 3:  # packed tokens
        if family.latents != "packed" or size is None:
            return []
        latents = _unpack(latents, size, int(getattr(entry.pipe, "vae_scale_factor", 8) or 8))
    with torch.no_grad():
        if entry.taesd is not None:
            decoded = entry.taesd.decode(latents.to(entry.taesd.dtype)).sample.float()
            rgb = (decoded.clamp(-1, 1) + 1) / 2
        else:
            spec = family.latent_rgb
            if spec is None:
                return []
            factors = torch.tensor(spec["factors"], dtype=torch.float32, device=latents.device)
            if latents.shape[1] != factors.shape[0]:
                return []
            bias = torch.tensor(spec["bias"], dtype=torch.float32, device=latents.device)
            mixed = torch.einsum("bchw,cr->brhw", latents.float(), factors) + bias[None, :, None, None]
            rgb = ((mixed + 1) / 2).clamp(0, 1)
        pixels = (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]
