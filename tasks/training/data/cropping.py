"""Crop and resize a view to a working resolution, with the exact intrinsics updates of the reference loader.

`crop_resize(image, depth, mask, K, resolution, grow)` is the reference's ``_crop_resize_if_necessary_mask`` (and,
with ``mask=None``, ``_crop_resize_if_necessary``):

1. crop a window centred on the rounded principal point (half-sizes ``min(cx, W - cx)``, ``min(cy, H - cy)``);
2. rescale so the image covers ``resolution + grow`` (``grow``: the crop augmentation, 0 when off): RGB with PIL
   LANCZOS when shrinking, bicubic when enlarging; depth with OpenCV's nearest rule (`resize_nearest_cv2`, numpy);
   mask with PIL NEAREST; intrinsics scaled in the pixel-corner convention;
3. centre-crop to ``resolution`` at an integer corner.

Intrinsics are (3, 3) pixel matrices with pixel centres at integer coordinates (OpenCV). Pure functions of arrays
and PIL images.
"""

from __future__ import annotations

import numpy as np

from tasks.training.data.errors import DataLayoutError


def resize_nearest_cv2(array: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(array, size_wh, interpolation=cv2.INTER_NEAREST)`` in numpy: (H, W, ...) -> (h, w, ...).

    OpenCV's rule (``resizeNN``): destination column x reads source column ``floor(x * (1 / (w / W)))`` (double
    precision, clamped to W - 1), rows likewise. PIL's NEAREST samples pixel centres instead and differs."""
    height, width = array.shape[:2]
    out_w, out_h = int(size_wh[0]), int(size_wh[1])
    inv_x, inv_y = 1.0 / (out_w / width), 1.0 / (out_h / height)
    cols = np.minimum(np.floor(np.arange(out_w) * inv_x).astype(np.int64), width - 1)
    rows = np.minimum(np.floor(np.arange(out_h) * inv_y).astype(np.int64), height - 1)
    return array[rows[:, None], cols[None, :]]


def scale_intrinsics(K: np.ndarray, size_in, size_out, scale: float = 1.0) -> np.ndarray:
    """K of an image scaled by `scale` and centre-cropped from ``size_in * scale`` to `size_out` (W, H): in the
    pixel-corner convention (principal point + 0.5) the first two rows are multiplied by `scale` and half the margin
    is subtracted from the principal point (the reference's ``camera_matrix_of_crop``)."""
    margins = np.asarray(size_in) * scale - size_out
    if np.any(margins < 0):
        raise ValueError(f"cannot crop {tuple(size_out)} out of {tuple(np.asarray(size_in) * scale)}")
    out = K.copy()
    out[0, 2] += 0.5
    out[1, 2] += 0.5
    out[:2, :] *= scale
    out[:2, 2] -= 0.5 * margins
    out[0, 2] -= 0.5
    out[1, 2] -= 0.5
    return out


def _crop(image, depth, mask, K, box):
    left, top, right, bottom = box
    K = K.copy()
    K[0, 2] -= left
    K[1, 2] -= top
    return (image.crop(box), depth[top:bottom, left:right], None if mask is None else mask.crop(box), K)


def crop_resize(image, depth: np.ndarray, mask, K: np.ndarray, resolution: tuple[int, int], grow: int = 0,
                where: str = "a view"):
    """(PIL RGB image, (H, W) depth in metres, PIL 'L' mask or None, (3, 3) K) -> the same at `resolution` (W, H).

    grow: pixels added to both sides of the resize target before the centre crop (the crop augmentation).
    where: names the frame in the error about a principal point too close to the border."""
    import PIL.Image

    width, height = image.size
    cx, cy = K[:2, 2].round().astype(int)
    half_w, half_h = min(cx, width - cx), min(cy, height - cy)
    if not (half_w > width / 5 and half_h > height / 5):
        raise DataLayoutError(f"{where}: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is too close to the border "
                              f"of the {width}x{height} image (the centred crop needs it in the middle 60%)")
    image, depth, mask, K = _crop(image, depth, mask, K, (cx - half_w, cy - half_h, cx + half_w, cy + half_h))

    target = np.array(resolution) + grow
    size_in = np.array(image.size)
    scale = max(target / image.size) + 1e-8
    size_out = np.floor(size_in * scale).astype(int)
    resample = PIL.Image.Resampling.LANCZOS if scale < 1 else PIL.Image.Resampling.BICUBIC
    image = image.resize(tuple(int(v) for v in size_out), resample=resample)
    depth = resize_nearest_cv2(depth, size_out)
    if mask is not None:
        mask = mask.resize(tuple(int(v) for v in size_out), resample=PIL.Image.Resampling.NEAREST)
    K = scale_intrinsics(K, size_in, size_out, scale)

    K_crop = scale_intrinsics(K, image.size, resolution)
    left, top = np.int32(np.round(K[:2, 2] - K_crop[:2, 2]))
    box = (int(left), int(top), int(left) + resolution[0], int(top) + resolution[1])
    return _crop(image, depth, mask, K, box)
