"""Perceptual hashes of frames, without Apache Beam.

The decoding sandbox (``pipelines.ingest.media``) hashes frames as it decodes them; importing Beam there
would cost every sandbox child about 1.4 s and 125 MiB, so the hash lives here and
``pipelines.ingest.dedupe`` re-exports it.
"""
from __future__ import annotations

from typing import Union

import imagehash
import numpy as np
from PIL import Image

__all__ = ["HASH_BITS", "frame_phash", "hamming"]

HASH_BITS = 64


def frame_phash(image: Union[Image.Image, np.ndarray]) -> int:
    """64-bit perceptual hash (``imagehash.phash``, DCT of a 32x32 gray image) of one frame.

    Args:
        image: a PIL image, or an HxW / HxWx3 (RGB) / HxWx4 uint8 array.

    Returns:
        The hash as an int in [0, 2**64), bits in ``imagehash``'s row-major order.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return int(str(imagehash.phash(image)), 16)


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two hashes."""
    return (a ^ b).bit_count()
