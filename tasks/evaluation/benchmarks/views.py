"""Per-frame ground truth at the network's working size: what the reference's ``load_view_*`` put in each view.

The network sees each frame resized (long side 512) and centre-cropped to multiples of 16
(:class:`human3r.geometry.WorkingGeometry`). The ground-truth intrinsics must follow. The reference
(``eval/global_human/metadata.py``) scales K per axis by ``true_shape / ori_shape``; that is the intrinsics of
the working image only when the resize crops nothing, so ``protocol="corrected"`` uses the resize-and-crop
intrinsics instead (:data:`~tasks.evaluation.benchmarks.protocol.QUIRKS` ``intrinsics_per_axis``).

:func:`frame_targets` stacks, for a whole :class:`~tasks.evaluation.benchmarks.sequence.Sequence`, the arrays
the reference views carry, under the reference's key names and dtypes (float32 parameters, the gender id as the
reference stores it), so they compare one to one with the parity pack's ``formats/parsed.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.evaluation.benchmarks.protocol import ProtocolName
from tasks.evaluation.benchmarks.sequence import Sequence

__all__ = ["FrameTargets", "frame_targets", "reference_scaled_intrinsics", "working_intrinsics", "working_wh"]


def working_wh(source_wh: tuple[int, int], size: int = 512) -> tuple[int, int]:
    """(W, H) of the working image for a ``source_wh`` frame (dust3r ``load_images(size)``, centred crop)."""
    from human3r.geometry import WorkingGeometry

    return WorkingGeometry.for_source(*source_wh, size=size).working_wh


def reference_scaled_intrinsics(K: np.ndarray, source_wh: tuple[int, int], target_wh: tuple[int, int]) -> np.ndarray:
    """The reference's K at the working size: row 0 times W'/W, row 1 times H'/H (float64 maths, float32 out).

    K: (..., 3, 3) original-pixel intrinsics; returns (..., 3, 3) float32.
    """
    out = np.array(K, dtype=np.float64, copy=True)
    fx_scale, fy_scale = target_wh[0] / source_wh[0], target_wh[1] / source_wh[1]
    out[..., 0, 0] *= fx_scale
    out[..., 1, 1] *= fy_scale
    out[..., 0, 2] *= fx_scale
    out[..., 1, 2] *= fy_scale
    return out.astype(np.float32)


def working_intrinsics(K: np.ndarray, source_wh: tuple[int, int], size: int = 512,
                       protocol: ProtocolName = "reference", target_wh: tuple[int, int] | None = None) -> np.ndarray:
    """K: (..., 3, 3) original-pixel intrinsics -> (..., 3, 3) float32 intrinsics of the working image.

    ``reference``: per-axis scaling to ``target_wh`` (default: the working size of ``source_wh``).
    ``corrected``: the intrinsics of the resized and centre-cropped image (pixel-centre convention).
    """
    if protocol == "reference":
        return reference_scaled_intrinsics(K, source_wh, target_wh or working_wh(source_wh, size))
    import torch

    from human3r.geometry import WorkingGeometry, source_to_working_intrinsics

    geometry = WorkingGeometry.for_source(*source_wh, size=size)
    K64 = torch.from_numpy(np.asarray(K, dtype=np.float64))
    return source_to_working_intrinsics(K64, geometry).numpy().astype(np.float32)


@dataclass(frozen=True)
class FrameTargets:
    """The reference views' ground truth of a sequence, stacked over its F frames (P person slots)."""

    camera_pose: np.ndarray  # (F, 4, 4) float32 camera -> world (inv of T_w2c, in the stored dtype)
    T_w2c: np.ndarray  # (F, 4, 4) float32 world -> camera
    intrinsics: np.ndarray  # (F, 3, 3) float32 at the working size
    smpl_mask: np.ndarray  # (F, P) bool
    params: dict[str, np.ndarray]  # reference key -> (F, P, ...) float32, e.g. "smpl_root_pose" (F, P, 1, 3)
    gender_id: np.ndarray  # 3DPW: (F, P) float32 (0 in empty slots); EMDB / RICH: (F,) int64

    @property
    def gender_key(self) -> str:
        return "smplx_gender_id" if any(k.startswith("smplx_") for k in self.params) else "smpl_gender_id"


def _param_keys(seq: Sequence) -> dict[str, str]:
    """Bodies field -> the reference's view key for this benchmark."""
    b = seq.bodies
    if b.model == "smplx":
        return {"global_orient": "smplx_global_orient", "body_pose": "smplx_body_pose", "betas": "smplx_betas",
                "transl": "smplx_transl"}
    suffix = "_w" if b.frame == "world" else ""
    return {"global_orient": f"smpl_root_pose{suffix}", "body_pose": "smpl_body_pose", "betas": "smpl_shape",
            "transl": f"smpl_transl{suffix}"}


def frame_targets(seq: Sequence, size: int = 512, protocol: ProtocolName = "reference",
                  target_wh: tuple[int, int] | None = None) -> FrameTargets:
    """What the reference's view loader gives for ``seq`` at working ``size`` (``target_wh`` overrides the
    working size used for the reference's intrinsics scaling, as a caller with other images would)."""
    cam, bodies = seq.camera, seq.bodies
    if cam is None or bodies is None:
        raise ValueError(f"{seq.name}: frame targets need a camera and bodies (a human benchmark)")
    masked = np.where(bodies.mask[..., None], 1.0, 0.0)
    params = {}
    for field_name, key in _param_keys(seq).items():
        value = getattr(bodies, field_name)
        if field_name == "global_orient":
            value = value[:, :, None, :]  # (F, P, 1, 3) as the reference's (1, 3) slots
        params[key] = (value * masked.reshape(masked.shape + (1,) * (value.ndim - 3))).astype(np.float32)
    gender = np.where(bodies.mask, bodies.gender, 0)
    if seq.benchmark == "3dpw":
        gender_id = gender.astype(np.float32)  # stored into the float32 zeros of smpl_dict
    else:  # one person per frame: np.asarray({'male': 1, 'female': 2}[gender]) -> int64 scalar per view
        gender_id = gender.max(axis=1).astype(np.int64)
    return FrameTargets(
        camera_pose=cam.T_c2w.astype(np.float32),
        T_w2c=cam.T_w2c.astype(np.float32),
        intrinsics=working_intrinsics(cam.K, cam.image_wh, size, protocol, target_wh),
        smpl_mask=bodies.mask.copy(),
        params=params,
        gender_id=gender_id,
    )
