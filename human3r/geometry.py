"""Geometry in one place: the working-image crop rule, intrinsics, and rotations / camera poses (pure functions).

Pixel convention (everywhere in this module): OpenCV's. The centre of pixel column ``i`` is at ``u = i`` and
the image spans ``u ∈ [-0.5, W - 0.5]``. This is the convention of the reference's focal estimate, whose pixel
grid is ``0..W-1`` with the principal point at ``(W // 2, H // 2)``.

The working image is made from the source frame in two steps (dust3r ``load_images``):

1. resize so the long side becomes ``size``: ``new = round(x * size / max(W, H))`` per axis, so the x and y
   scales differ slightly (``sx = W_resized / W``, ``sy = H_resized / H``);
2. centre-crop to multiples of 16: ``cx = W // 2``, ``halfw = ((2 * cx) // 16) * 8`` (same for y); a square
   image becomes 4:3 (``halfh = 3 * halfw / 4``).

For ``size == 224`` (CUT3R's square linear-head models) the reference resizes the *short* side to 224 instead and
crops the centred square ``2 * min(cx, cy)``; :class:`WorkingGeometry` reproduces that too.

A resize maps pixel *edges*, so in the OpenCV convention ``u_work = (u_src + 0.5) * sx - 0.5 - crop_left``.
The fork's ``inference.py`` rescales K by ``orig_w / W`` and ignores the crop; the first version of our
brief dropped the half-pixel terms. Both are off by pixels (1.4 px at 1080p, more with a crop).

Rotations use roma. Quaternions here are real-first ``(w, x, y, z)`` (the network's camera pose); roma's are
``(x, y, z, w)``, so they are converted on the way in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import roma
import torch

from human3r.errors import InputShapeError

__all__ = [
    "WorkingGeometry",
    "camera_pose_to_c2w",
    "estimate_focal_weiszfeld",
    "intrinsics_matrix",
    "reference_principal_point",
    "rot6d_to_rotmat",
    "rotmat_to_axis_angle",
    "source_to_working_intrinsics",
    "source_to_working_pixels",
    "working_intrinsics_from_pointmap",
    "working_to_source_intrinsics",
    "working_to_source_pixels",
]

SQUARE_CROP_SIZE = 224  # the reference's special size: short side resized to it, centred square crop


# ------------------------------------------------------------------------------------------------------------------
# Working-resolution geometry
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkingGeometry:
    """How a source frame of ``source_wh`` pixels becomes the network's working image.

    All sizes are ``(width, height)`` in pixels; ``crop_box`` is ``(left, top, right, bottom)`` in the *resized*
    image (PIL ``crop`` semantics: right/bottom exclusive), so ``working_wh == (right - left, bottom - top)``.
    This is the only implementation of the crop rule: ``human3r.preprocess`` does the pixel work with it.
    """

    source_wh: tuple[int, int]  # original frame size (W, H)
    resized_wh: tuple[int, int]  # after the resize (W, H)
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in resized pixels

    def __post_init__(self) -> None:
        (sw, sh), (rw, rh), (left, top, right, bottom) = self.source_wh, self.resized_wh, self.crop_box
        if min(sw, sh, rw, rh) <= 0:
            raise InputShapeError(
                f"image sizes must be positive, got source {self.source_wh}, resized {self.resized_wh}"
            )
        if not (0 <= left < right <= rw and 0 <= top < bottom <= rh):
            raise InputShapeError(f"crop box {self.crop_box} does not fit in the resized image {self.resized_wh}")

    @classmethod
    def for_source(cls, width: int, height: int, size: int = 512, square_ok: bool = False) -> WorkingGeometry:
        """The reference's geometry (dust3r ``load_images(size=size)``) for a ``width`` x ``height`` frame.

        Examples: 1920x1080 -> 512x288, 640x480 -> 512x384, 1080x1920 -> 288x512, 240x170 (size 128) -> 128x80;
        size 224: 1920x1080 -> 224x224 (resized to 398x224 first).

        1. long edge ``size`` (size 224: ``round(224 * long / short)``, so the short side becomes 224);
        2. resize each axis to ``round(x * long_edge / max(W, H))``;
        3. crop centred on ``(W // 2, H // 2)``: half sizes ``((2 * c) // 16) * 8`` (a square becomes 4:3 unless
           ``square_ok``); size 224: the square of half size ``min(cx, cy)``.

        The result is a multiple of 16 pixels on both sides (size 224: the short side resizes to 224 exactly, so
        the square is always 224 x 224). Raises ``InputShapeError`` when the frame crops to nothing.
        """
        if width <= 0 or height <= 0:
            raise InputShapeError(f"source frame size must be positive, got {width}x{height}")
        square = size == SQUARE_CROP_SIZE
        # 1.-2. resize (the reference's float expression, so the rounding matches bit for bit)
        long_edge = round(size * max(width / height, height / width)) if square else size
        long_side = max(width, height)
        rw, rh = (int(round(x * long_edge / long_side)) for x in (width, height))
        # 3. centred crop
        cx, cy = rw // 2, rh // 2
        if square:
            halfw = halfh = min(cx, cy)
        else:
            halfw, halfh = ((2 * cx) // 16) * 8, ((2 * cy) // 16) * 8
            if not square_ok and rw == rh:
                halfh = 3 * halfw // 4  # the reference computes 3*halfw/4 as a float; it is always integral here
        if halfw <= 0 or halfh <= 0:
            raise InputShapeError(f"a {width}x{height} frame is too thin: it crops to nothing at size {size}")
        return cls((width, height), (rw, rh), (cx - halfw, cy - halfh, cx + halfw, cy + halfh))

    @property
    def working_wh(self) -> tuple[int, int]:
        """(W, H) of the working image the network sees."""
        left, top, right, bottom = self.crop_box
        return right - left, bottom - top

    @property
    def scale_xy(self) -> tuple[float, float]:
        """(sx, sy): resized pixels per source pixel along x and y (they differ by the size rounding)."""
        return self.resized_wh[0] / self.source_wh[0], self.resized_wh[1] / self.source_wh[1]

    @property
    def shrinks(self) -> bool:
        """The resize makes the long side smaller (the reference then resamples with LANCZOS, else BICUBIC)."""
        return max(self.source_wh) > max(self.resized_wh)


# ------------------------------------------------------------------------------------------------------------------
# Pixels and intrinsics between source and working images
# ------------------------------------------------------------------------------------------------------------------


def working_to_source_pixels(uv: torch.Tensor, geometry: WorkingGeometry) -> torch.Tensor:
    """Map working-image pixel coordinates to source-frame pixel coordinates (OpenCV convention).

    uv: (..., 2) as (u, v). Returns (..., 2), same dtype.
    """
    sx, sy = geometry.scale_xy
    left, top = geometry.crop_box[:2]
    u = (uv[..., 0] + left + 0.5) / sx - 0.5
    v = (uv[..., 1] + top + 0.5) / sy - 0.5
    return torch.stack([u, v], dim=-1)


def source_to_working_pixels(uv: torch.Tensor, geometry: WorkingGeometry) -> torch.Tensor:
    """Inverse of :func:`working_to_source_pixels`. uv: (..., 2) source pixels -> (..., 2) working pixels."""
    sx, sy = geometry.scale_xy
    left, top = geometry.crop_box[:2]
    u = (uv[..., 0] + 0.5) * sx - 0.5 - left
    v = (uv[..., 1] + 0.5) * sy - 0.5 - top
    return torch.stack([u, v], dim=-1)


def _check_K(K: torch.Tensor) -> None:
    if K.shape[-2:] != (3, 3):
        raise InputShapeError(f"intrinsics must have shape (..., 3, 3), got {tuple(K.shape)}")


def working_to_source_intrinsics(K_work: torch.Tensor, geometry: WorkingGeometry) -> torch.Tensor:
    """Express working-resolution intrinsics in the source video's pixels.

    K_work: (..., 3, 3) pinhole ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``. Returns (..., 3, 3):
    ``fx_src = fx / sx``, ``cx_src = (cx + crop_left + 0.5) / sx - 0.5`` (same for y; skew / sx).
    """
    _check_K(K_work)
    sx, sy = geometry.scale_xy
    left, top = geometry.crop_box[:2]
    K = K_work.clone()
    K[..., 0, :] = K_work[..., 0, :] / sx
    K[..., 1, :] = K_work[..., 1, :] / sy
    K[..., 0, 2] = (K_work[..., 0, 2] + left + 0.5) / sx - 0.5
    K[..., 1, 2] = (K_work[..., 1, 2] + top + 0.5) / sy - 0.5
    return K


def source_to_working_intrinsics(K_src: torch.Tensor, geometry: WorkingGeometry) -> torch.Tensor:
    """Inverse of :func:`working_to_source_intrinsics`. K_src: (..., 3, 3) -> (..., 3, 3)."""
    _check_K(K_src)
    sx, sy = geometry.scale_xy
    left, top = geometry.crop_box[:2]
    K = K_src.clone()
    K[..., 0, :] = K_src[..., 0, :] * sx
    K[..., 1, :] = K_src[..., 1, :] * sy
    K[..., 0, 2] = (K_src[..., 0, 2] + 0.5) * sx - 0.5 - left
    K[..., 1, 2] = (K_src[..., 1, 2] + 0.5) * sy - 0.5 - top
    return K


# ------------------------------------------------------------------------------------------------------------------
# Focal length from the self-view pointmap
# ------------------------------------------------------------------------------------------------------------------


def reference_principal_point(height: int, width: int) -> tuple[float, float]:
    """The reference's principal point for a working image: ``(W // 2, H // 2)`` (not the exact centre)."""
    return float(width // 2), float(height // 2)


def estimate_focal_weiszfeld(
    pts3d: torch.Tensor,
    pp: torch.Tensor | None = None,
    iterations: int = 10,
    min_focal: float = 0.0,
    max_focal: float = math.inf,
) -> torch.Tensor:
    """Focal length (pixels) of a camera-frame pointmap, by an L1 (Weiszfeld) fit of ``f`` in ``p - pp = f·xy/z``.

    Same estimator as dust3r ``estimate_focal_knowing_depth(focal_mode='weiszfeld')``, which the reference
    ``demo.py`` runs on ``pts3d_in_self_view``:

    1. rays ``r = xy / z`` per pixel (``±inf`` from ``z = 0`` become 0), pixel offsets ``d = (i, j) - pp``;
    2. least-squares start ``f = mean(<r, d>) / mean(|r|²)``;
    3. ``iterations`` reweighted steps with weights ``1 / max(|d - f r|, 1e-8)``;
    4. clip to ``[min_focal, max_focal] · max(H, W) / (2 tan 30°)`` (the defaults only clip negatives to 0).

    pts3d: (B, H, W, 3) points in the camera frame. pp: (B, 2) or (2,) principal point (u, v) in pixels;
    default ``(W // 2, H // 2)``. Returns (B,) focal lengths, dtype of ``pts3d``.

    With random weights the pointmap is not a camera's, and the estimate is degenerate (≈ 0, often clipped).
    """
    if pts3d.ndim != 4 or pts3d.shape[-1] != 3:
        raise InputShapeError(f"pts3d must have shape (B, H, W, 3), got {tuple(pts3d.shape)}")
    B, H, W, _ = pts3d.shape
    if pp is None:
        pp = torch.tensor(reference_principal_point(H, W), dtype=pts3d.dtype, device=pts3d.device)
    pp = pp.to(pts3d).reshape(-1, 1, 2).expand(B, 1, 2)

    # 1. rays and pixel offsets (pixel (i, j) sits at u = i, v = j)
    jj, ii = torch.meshgrid(
        torch.arange(H, device=pts3d.device, dtype=pts3d.dtype),
        torch.arange(W, device=pts3d.device, dtype=pts3d.dtype),
        indexing="ij",
    )
    offsets = torch.stack([ii, jj], dim=-1).reshape(1, H * W, 2) - pp  # (B, HW, 2)
    pts = pts3d.reshape(B, H * W, 3)
    rays = (pts[..., :2] / pts[..., 2:3]).nan_to_num(posinf=0.0, neginf=0.0)  # (B, HW, 2)
    ray_dot_offset = (rays * offsets).sum(dim=-1)  # (B, HW)
    ray_sq = rays.square().sum(dim=-1)  # (B, HW)

    # 2. least-squares start
    focal = ray_dot_offset.mean(dim=1) / ray_sq.mean(dim=1)  # (B,)

    # 3. Weiszfeld reweighting (iteratively reweighted least squares for the L1 residual)
    for _ in range(iterations):
        residual = (offsets - focal.view(B, 1, 1) * rays).norm(dim=-1)  # (B, HW)
        weight = residual.clip(min=1e-8).reciprocal()
        focal = (weight * ray_dot_offset).mean(dim=1) / (weight * ray_sq).mean(dim=1)

    # 4. clip relative to the 60°-FOV focal of the long side
    focal_base = max(H, W) / (2 * math.tan(math.radians(60) / 2))
    return focal.clip(min=min_focal * focal_base, max=max_focal * focal_base)


def intrinsics_matrix(focal: torch.Tensor, pp: torch.Tensor) -> torch.Tensor:
    """Pinhole K with square pixels. focal: (B,), pp: (B, 2) or (2,). Returns (B, 3, 3)."""
    focal = focal.reshape(-1)
    pp = pp.to(focal).reshape(-1, 2).expand(focal.shape[0], 2)
    K = torch.zeros(focal.shape[0], 3, 3, dtype=focal.dtype, device=focal.device)
    K[:, 0, 0] = focal
    K[:, 1, 1] = focal
    K[:, 0, 2] = pp[:, 0]
    K[:, 1, 2] = pp[:, 1]
    K[:, 2, 2] = 1
    return K


def working_intrinsics_from_pointmap(pts3d_self: torch.Tensor) -> torch.Tensor:
    """The per-frame intrinsics at working resolution, as the reference ``demo.py`` estimates them.

    The one place the pipeline computes K: Weiszfeld focal (:func:`estimate_focal_weiszfeld`), square pixels,
    principal point ``(W // 2, H // 2)``. pts3d_self: (B, H, W, 3) self-view pointmaps. Returns (B, 3, 3), dtype of
    ``pts3d_self``. Map it to the video's pixels with :func:`working_to_source_intrinsics`.
    """
    B, H, W, _ = pts3d_self.shape
    pp = torch.tensor(reference_principal_point(H, W), dtype=pts3d_self.dtype, device=pts3d_self.device)
    return intrinsics_matrix(estimate_focal_weiszfeld(pts3d_self, pp), pp)


# ------------------------------------------------------------------------------------------------------------------
# Rotations and camera poses (roma)
# ------------------------------------------------------------------------------------------------------------------


def camera_pose_to_c2w(pose: torch.Tensor) -> torch.Tensor:
    """(..., 7) ``[t (3), unit q (w, x, y, z)]`` -> (..., 4, 4) camera-to-world ``[[R(q), t], [0, 0, 0, 1]]``.

    ``q`` must be unit-norm (``heads.camera_pose_from_raw`` normalises it); roma does not renormalise.
    """
    return roma.RigidUnitQuat(roma.quat_wxyz_to_xyzw(pose[..., 3:7]), pose[..., :3]).to_homogeneous()


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): the 6 numbers as a row-major 3x2 matrix, Gram-Schmidt on its columns (epsilon 1e-6).

    The third column is their cross product (Zhou et al. 6D representation, as Multi-HMR).
    """
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 3, 2), epsilon=1e-6)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle in radians, angle in [0, pi] (zero-size batches too)."""
    if rotmat.numel() == 0:
        return rotmat.new_zeros(rotmat.shape[:-2] + (3,))
    return roma.rotmat_to_rotvec(rotmat)
