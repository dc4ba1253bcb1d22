"""The images around a pipeline call: the img2img init image going in, the all-black check coming out.

Example:
    >>> from PIL import Image
    >>> _all_black(Image.new("RGB", (8, 8))), _all_black(Image.new("RGB", (8, 8), "white"))
    (True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ideaforge.errors import InputError
from ideaforge.tools.diffusion.source import _one_line


def _all_black(image: Any) -> bool:
    """True when every pixel is (almost) black: what NaN latents or a blacked-out image decode to."""
    extrema = image.convert("RGB").getextrema()
    return all(high <= 2 for _, high in extrema)


def _open_init_image(path: Path, width: int, height: int) -> tuple[Any, list[str]]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except Image.DecompressionBombError:
        raise InputError(
            f"init image {str(path)!r} declares more pixels than is safe to decode; pass a normal-sized image"
        ) from None
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(
            f"init image {str(path)!r} is not a readable image ({_one_line(exc)}); pass a PNG or JPEG"
        ) from None
    warnings = []
    if image.size != (width, height):
        warnings.append(f"init image {image.width}x{image.height} was resized to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image, warnings
