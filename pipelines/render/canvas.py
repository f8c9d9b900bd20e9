"""The renderer's fixed resources: its fonts, its blank canvas and its one PNG encoder.

One job: keep every byte of output independent of the machine's state. Text is drawn with the
DejaVu fonts that ship inside matplotlib (never a system font found by name), and every image
leaves through :func:`encode_png`: RGB, zlib level 9, no text, time or gamma chunks, so the same
pixels always give the same bytes.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipelines.render.model import COLORS

__all__ = ["font_path", "font", "new_canvas", "encode_png", "text_width", "line_height"]


def font_path(bold: bool = False) -> Path:
    """Path of the DejaVu Sans file shipped with matplotlib (regular or bold).

    Raises:
        FileNotFoundError: matplotlib's font folder lacks it (a broken install).
    """
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if not path.is_file():
        raise FileNotFoundError(f"the renderer's font {path} is missing (reinstall matplotlib)")
    return path


@functools.lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at ``size`` pixels (cached; FreeType fonts are safe to share for drawing)."""
    return ImageFont.truetype(str(font_path(bold)), size)


def text_width(text: str, size: int, bold: bool = False) -> float:
    """Advance width of ``text`` in pixels at ``size``."""
    return font(size, bold).getlength(text)


def line_height(size: int) -> int:
    """Distance between baselines of two lines of text at ``size`` (ascent + descent + 25%)."""
    ascent, descent = font(size).getmetrics()
    return round((ascent + descent) * 1.25)


def new_canvas(width: int, height: int, background: str = "white") -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A blank RGB image of a named colour and a drawer on it."""
    image = Image.new("RGB", (width, height), COLORS[background])
    return image, ImageDraw.Draw(image)


def encode_png(image: Image.Image) -> bytes:
    """Lossless PNG bytes of ``image`` (converted to RGB), with no metadata chunks.

    Args:
        image: any Pillow image; an alpha channel is dropped (everything is drawn opaque).

    Returns:
        The PNG file bytes: same pixels, same bytes.
    """
    rgb = image.convert("RGB")  # a copy, even of an RGB image: the caller's info is left alone
    rgb.info = {}
    out = io.BytesIO()
    rgb.save(out, format="PNG", optimize=False, compress_level=9)
    return out.getvalue()
