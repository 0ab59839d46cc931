"""Frame preprocessing, reproducing the reference `load_images` and `pad_image` exactly, and the network's inputs
(`Frame`, and `TeacherPrompts` for training).

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
    """One preprocessed frame (batch 1), or B frames of as many videos stacked (`run_streams`).

    Training views may carry ground-truth ray maps (the reference's ray-map input): with `ray_mask` set, the frames
    where it is True add the ray-map encoder's tokens to their image tokens and the others add the learned
    `masked_ray_map_token` (the reference does this to every view of a batch as soon as one view has a ray map).
    """

    img: torch.Tensor  # (B, 3, H, W) float32 in [-1, 1], H and W multiples of 16
    img_mhmr: torch.Tensor  # (B, 3, R, R) float32 in [-1, 1], padded with -1
    ray_map: torch.Tensor | None = None  # (B, H, W, 6) float32 ray origins and unit directions (view 0's camera)
    ray_mask: torch.Tensor | None = None  # (B,) bool: which frames use their ray map; None = no ray-map input

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Frame:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Frame(move(self.img), move(self.img_mhmr), move(self.ray_map), move(self.ray_mask))

    def pin_memory(self) -> Frame:
        """Page-locked copy (CUDA only), so that `to(cuda, non_blocking=True)` overlaps the copy with compute."""
        def pin(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory()

        return Frame(pin(self.img), pin(self.img_mhmr), pin(self.ray_map), pin(self.ray_mask))

    @property
    def true_shape(self) -> tuple[int, int]:
        return int(self.img.shape[-2]), int(self.img.shape[-1])


@dataclass
class TeacherPrompts:
    """Ground-truth head positions that choose the human prompts instead of the detector (teacher forcing).

    Every stream gets N slots. A slot with a person takes the DINOv2 token of its grid cell and the CUT3R token of
    the patch hosting its predicted head keypoint; an empty slot takes the learned padding tokens at position
    (0, 0). All N slots go through the prompt fusion and the decoder (`human3r.training.teacher` makes these).
    """

    mask: torch.Tensor  # (B, N) bool: the slot holds a person
    uv: torch.Tensor  # (B, N, 2) int (row, col) of the person's head cell on the G x G human-branch grid

    def __post_init__(self) -> None:
        if self.mask.dim() != 2 or self.uv.shape != (*self.mask.shape, 2):
            raise InputShapeError(f"teacher prompts need mask (B, N) and uv (B, N, 2), got {tuple(self.mask.shape)} "
                                  f"and {tuple(self.uv.shape)}")


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
