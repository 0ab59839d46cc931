"""BVH motion files: one per track, the rig and motion of `tasks.scenes.rig` (export frame: y up, metres).

The hierarchy is SMPL-X's 55-joint skeleton (OFFSETs: the track's rest bone offsets); the root has 6 channels
(``Xposition Yposition Zposition Zrotation Yrotation Xrotation``), every other joint 3 (``Zrotation Yrotation
Xrotation``): intrinsic Z-Y-X Euler angles in degrees, R = Rz Ry Rx, as Blender's and MotionBuilder's readers take
them. Frames are the run's processed frames from the track's first to its last (a BVH has one frame time: the
median step between processed frames); frames where the track was not seen repeat its previous pose.
"""

from __future__ import annotations

import numpy as np

from tasks.scenes.rig import Motion, Rig


def euler_zyx_deg(rotmat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) intrinsic Z, Y, X angles in degrees with R = Rz(z) @ Ry(y) @ Rx(x)."""
    import roma
    import torch

    r = torch.as_tensor(np.asarray(rotmat, np.float64))
    return roma.rotmat_to_euler("ZYX", r, degrees=True).numpy()  # upper case: intrinsic


def hierarchy(rig: Rig) -> list[str]:
    """The HIERARCHY section."""
    children: dict[int, list[int]] = {j: [] for j in range(len(rig.names))}
    for j, p in enumerate(rig.parents):
        if p >= 0:
            children[int(p)].append(j)
    offsets = rig.offsets
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        if rig.parents[j] < 0:
            lines.append(f"{pad}ROOT {rig.names[j]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}JOINT {rig.names[j]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET {' '.join(f'{v:.6f}' for v in offsets[j])}")
            lines.append(f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.000000 0.000000 0.000000",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    roots = [j for j, p in enumerate(rig.parents) if p < 0]
    for r in roots:
        emit(r, 0)
    return lines


def depth_first(rig: Rig) -> list[int]:
    """Joint order of the channels in a MOTION line (the order the HIERARCHY lists them)."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in (k for k, p in enumerate(rig.parents) if p == j):
            visit(c)

    for r in (j for j, p in enumerate(rig.parents) if p < 0):
        visit(r)
    return order


def bvh_text(rig: Rig, motion: Motion, frame_idx: np.ndarray, frame_times: np.ndarray) -> str:
    """The whole BVH file: `frame_idx`/`frame_times` are the run's processed frames (sorted)."""
    span = (frame_idx >= motion.frame_idx[0]) & (frame_idx <= motion.frame_idx[-1])
    frames = frame_idx[span]
    # the track's row holding each frame's pose: the latest row at or before it (holds the pose across gaps)
    row = np.searchsorted(motion.frame_idx, frames, side="right") - 1
    steps = np.diff(frame_times)
    frame_time = float(np.median(steps)) if len(steps) else 1 / 30
    order = depth_first(rig)
    angles = euler_zyx_deg(motion.rotations[row][:, order])  # (F, 55, 3): z, y, x
    values = np.concatenate([motion.root_translation[row], angles.reshape(len(row), -1)], 1)
    lines = hierarchy(rig) + ["MOTION", f"Frames: {len(row)}", f"Frame Time: {frame_time:.6f}"]
    lines += [" ".join(f"{v:.6f}" for v in frame) for frame in values]
    return "\n".join(lines) + "\n"


def write_bvh(target, rig: Rig, motion: Motion, frame_idx: np.ndarray, frame_times: np.ndarray) -> None:
    """Write one track's BVH to a `tasks.scenes.outfiles.Target`."""
    text = bvh_text(rig, motion, frame_idx, frame_times)
    with target.write() as tmp:
        tmp.write_text(text)
