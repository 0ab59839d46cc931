"""Image transforms of a sample: normalisation, and the sequence-consistent colour jitter of the real run.

`normalize` is the reference's ``ImgNorm`` (``ToTensor`` then ``Normalize(0.5, 0.5)``): a PIL RGB image ->
(3, H, W) float32 in [-1, 1]. `SeqColorJitter` is its ``SeqColorJitter``: brightness, contrast and saturation
factors in [0.5, 1.5] and a hue shift in [-0.1, 0.1], applied in a random order, drawn **once per sample** and
applied to every view of it (a video's frames keep one colour cast). The operations are torchvision's PIL ones
(``ImageEnhance`` Brightness / Contrast / Color, hue by shifting the HSV hue byte), written with Pillow directly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


def normalize(image) -> torch.Tensor:
    """PIL RGB image (W x H) -> (3, H, W) float32 ``(pixel / 255 - 0.5) / 0.5``."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous().float().div(255).sub(0.5).div(0.5)


def shift_hue(image, factor: float):
    """Rotate the hue of a PIL RGB image by `factor` of a turn (|factor| <= 0.5), as torchvision's PIL path does:
    the HSV hue byte plus ``uint8(factor * 255)`` with wrap-around (the float is truncated towards zero)."""
    from PIL import Image

    hue, saturation, value = image.convert("HSV").split()
    shifted = (np.asarray(hue, dtype=np.int64) + int(factor * 255)) % 256
    return Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), saturation, value)).convert("RGB")


@dataclasses.dataclass(frozen=True)
class SeqColorJitter:
    """One sample's colour jitter: the order of the four operations and their factors."""

    order: tuple[int, ...]  # permutation of 0 brightness, 1 contrast, 2 saturation, 3 hue
    brightness: float  # in [0.5, 1.5]
    contrast: float  # in [0.5, 1.5]
    saturation: float  # in [0.5, 1.5]
    hue: float  # in [-0.1, 0.1] turns

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float = 0.5, hue: float = 0.1) -> SeqColorJitter:
        """Draw the order and the factors (``1 ± strength`` for the first three, ``± hue`` for the hue)."""
        order = tuple(int(i) for i in rng.permutation(4))
        low, high = max(1 - strength, 0.0), 1 + strength
        return cls(order, float(rng.uniform(low, high)), float(rng.uniform(low, high)), float(rng.uniform(low, high)),
                   float(rng.uniform(-hue, hue)))

    def __call__(self, image):
        """Jitter a PIL RGB image (the same factors every call)."""
        from PIL import ImageEnhance

        for op in self.order:
            if op == 0:
                image = ImageEnhance.Brightness(image).enhance(self.brightness)
            elif op == 1:
                image = ImageEnhance.Contrast(image).enhance(self.contrast)
            elif op == 2:
                image = ImageEnhance.Color(image).enhance(self.saturation)
            else:
                image = shift_hue(image, self.hue)
        return image
