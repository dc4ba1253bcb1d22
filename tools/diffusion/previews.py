"""Live previews: cheap RGB images of the latents between denoising steps.

With a preview VAE (TAESD) loaded it decodes them; otherwise it applies the family's linear latent-to-RGB map from
profiles.json, which costs next to nothing.

Example:
    >>> import torch
    >>> from types import SimpleNamespace
    >>> entry = SimpleNamespace(taesd=None, profile=SimpleNamespace(family="sd"))
    >>> [preview] = _previews(torch.zeros(1, 4, 8, 8), entry)
    >>> preview.size
    (8, 8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ideaforge.tools._lazy import heavy_import
from ideaforge.tools.diffusion.catalogue import _data

if TYPE_CHECKING:
    from ideaforge.tools.diffusion.loading import _Loaded


def _previews(latents: Any, entry: _Loaded) -> list[Any]:
    """Cheap RGB previews of the current latents: TAESD when loaded, else the linear latent-to-RGB map."""
    from PIL import Image

    torch = heavy_import("torch")

    with torch.no_grad():
        if entry.taesd is not None:
            decoded = entry.taesd.decode(latents.to(entry.taesd.dtype)).sample.float()
            rgb = (decoded.clamp(-1, 1) + 1) / 2
        else:
            spec = _data()["families"][entry.profile.family]["latent_rgb"]
            factors = torch.tensor(spec["factors"], dtype=torch.float32, device=latents.device)
            if latents.shape[1] != factors.shape[0]:
                return []
            bias = torch.tensor(spec["bias"], dtype=torch.float32, device=latents.device)
            mixed = torch.einsum("bchw,cr->brhw", latents.float(), factors) + bias[None, :, None, None]
            rgb = ((mixed + 1) / 2).clamp(0, 1)
        pixels = (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]
