"""Frame preprocessing, reproducing the reference `load_images` and `pad_image` exactly.

1. Resize to `WorkingGeometry.resized_wh` (long side `size`); PIL LANCZOS when shrinking, BICUBIC otherwise
   (also when the size is unchanged).
2. Crop `WorkingGeometry.crop_box` (centred, multiples of 16; a square becomes 4:3; size 224: the reference's
   centred square). The sizes and the box come from `human3r.geometry.WorkingGeometry`, the one crop rule.
3. `(x / 255 - 0.5) / 0.5` in float32 -> `img` (1, 3, H, W).
4. Human branch: bilinear (align_corners=False, floor sizes) resize of that normalised image to fit R x R, then a
   centred pad with -1 (top/left get pad // 2) -> `img_mhmr` (1, 3, R, R). ImageNet normalisation happens inside
   the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from human3r.errors import InputShapeError
from human3r.geometry import WorkingGeometry


@dataclass
class Frame:
    """One preprocessed frame (batch 1), or B frames of as many videos stacked (`run_streams`)."""

    img: torch.Tensor  # (B, 3, H, W) float32 in [-1, 1], H and W multiples of 16
    img_mhmr: torch.Tensor  # (B, 3, R, R) float32 in [-1, 1], padded with -1

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Frame:
        return Frame(self.img.to(device, non_blocking=non_blocking),
                     self.img_mhmr.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Frame:
        """Page-locked copy (CUDA only), so that `to(cuda, non_blocking=True)` overlaps the copy with compute."""
        return Frame(self.img.pin_memory(), self.img_mhmr.pin_memory())

    @property
    def true_shape(self) -> tuple[int, int]:
        return int(self.img.shape[-2]), int(self.img.shape[-1])


def _pil():
    try:
        import PIL.Image
    except ImportError as err:  # pragma: no cover
        raise ImportError("human3r.preprocess needs Pillow: pip install pillow") from err
    return PIL.Image


def resize_and_crop(rgb: np.ndarray, size: int = 512):
    """(H0, W0, 3) uint8 RGB -> PIL image resized and centre-cropped as `WorkingGeometry.for_source` says."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        desc = f"{type(rgb).__name__} {getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', None)}"
        raise InputShapeError(f"expected an (H, W, 3) uint8 RGB array, got {desc}")
    image = _pil()
    geometry = WorkingGeometry.for_source(rgb.shape[1], rgb.shape[0], size)
    resample = image.LANCZOS if geometry.shrinks else image.BICUBIC
    return image.fromarray(rgb).resize(geometry.resized_wh, resample).crop(geometry.crop_box)


def normalize(img) -> torch.Tensor:
    """PIL RGB image -> (1, 3, H, W) float32 `(x/255 - 0.5) / 0.5`."""
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    return ((x - 0.5) / 0.5)[None]


def pad_image(img: torch.Tensor, target: int, pad_value: float = -1.0) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, target, target): bilinear fit (floor sizes, align_corners=False), centred pad."""
    _, _, h, w = img.shape
    scale = min(target / h, target / w)
    nh, nw = int(h * scale), int(w * scale)
    x = F.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = (target - nh) // 2, (target - nw) // 2
    return F.pad(x, (left, target - nw - left, top, target - nh - top), mode="constant", value=pad_value)


def prepare_frame(rgb: np.ndarray, size: int = 512, mhmr_res: int = 896) -> Frame:
    """(H0, W0, 3) uint8 RGB frame -> model input."""
    img = normalize(resize_and_crop(rgb, size))
    return Frame(img=img, img_mhmr=pad_image(img, mhmr_res))
