"""Mini benchmarks in EMDB's and TUM's exact release formats, for smoke runs of the evaluation (no download, no
licence).

:func:`write_mini_emdb` writes a few short sequences: ``P<k>/<nn>_<action>/P<k>_<nn>_<action>_data.pkl`` with every
field of a real EMDB data file (plausible SMPL parameters of one walking person, a slowly panning camera, its
intrinsics, 2-D keypoints and boxes, a ``good_frames_mask`` with dropped frames, the ``emdb1``/``emdb2`` flags) and
``images/00000.jpg ...`` rendered by the sample-footage generator (:func:`tasks.ops.sample.sample_frames`). The
sequence names are from the reference's lists, so ``load_benchmark("emdb1"|"emdb2", root)`` reads it under
either protocol. The numbers are plausible, not a real capture: use it to check that an evaluation runs end to
end, not for scores.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MINI_SEQUENCES", "MiniSequence", "write_mini_emdb", "write_mini_tum"]


@dataclass(frozen=True)
class MiniSequence:
    name: str  # "P0/09_outdoor_walk" (from the reference's lists)
    emdb1: bool
    emdb2: bool
    gender: str  # "male" / "female"


MINI_SEQUENCES = (
    MiniSequence("P7/57_outdoor_rock_chair", emdb1=True, emdb2=True, gender="male"),  # listed in both splits
    MiniSequence("P0/09_outdoor_walk", emdb1=False, emdb2=True, gender="female"),
)


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _sequence_data(seq: MiniSequence, n_frames: int, width: int, height: int, dropped: tuple[int, ...],
                   rng: np.random.Generator) -> dict:
    t = np.arange(n_frames, dtype=np.float64)
    # one person walking along x, 4 m in front of the first camera; world axes = first camera's (y down)
    trans = np.stack([-0.6 + 0.04 * t, np.full_like(t, 0.3), 4.0 + 0.01 * t], axis=1)
    poses_root = np.tile([np.pi, 0.0, 0.0], (n_frames, 1))  # SMPL's +y up -> camera's y down
    poses_root[:, 1] = 0.3 * np.sin(t / 10)  # a slow turn
    poses_body = np.zeros((n_frames, 69))
    swing = 0.4 * np.sin(t / 2)
    poses_body[:, 0], poses_body[:, 3] = swing, -swing  # hips (joints 1, 2) about x
    poses_body[:, 9], poses_body[:, 12] = np.clip(-swing, 0, None), np.clip(swing, 0, None)  # knees (4, 5)
    betas = rng.normal(0.0, 0.5, 10)
    # the camera pans slowly and drifts sideways: T_w2c
    extrinsics = np.tile(np.eye(4), (n_frames, 1, 1))
    for i in range(n_frames):
        extrinsics[i, :3, :3] = _rotation_y(0.004 * i)
        extrinsics[i, :3, 3] = [-0.01 * i, 0.0, 0.0]
    focal = 0.78 * height  # EMDB's iPhone: ~1498 px at 1440x1920
    K = np.array([[focal, 0, width / 2 - 3.6], [0, focal, height / 2 + 3.1], [0, 0, 1.0]])
    # 2-D keypoints: the projected root with a fixed stick-figure offset (plausible, not a body model)
    offsets = np.concatenate([rng.normal(0, 0.15, (24, 2)), np.zeros((24, 1))], axis=1)
    kp3d = np.einsum("fij,fkj->fki", extrinsics[:, :3, :3], trans[:, None] + offsets) + extrinsics[:, None, :3, 3]
    kp2d = np.einsum("ij,fkj->fki", K, kp3d)
    kp2d = kp2d[..., :2] / kp2d[..., 2:]
    bboxes = np.concatenate([kp2d.min(1) - 20, kp2d.max(1) + 20], axis=1)
    mask = np.ones(n_frames, bool)
    mask[[d for d in dropped if d < n_frames]] = False
    return {
        "gender": seq.gender,
        "name": seq.name.replace("/", "_"),
        "emdb1": seq.emdb1,
        "emdb2": seq.emdb2,
        "n_frames": n_frames,
        "good_frames_mask": mask,
        "camera": {"intrinsics": K, "extrinsics": extrinsics, "width": width, "height": height},
        "smpl": {"poses_root": poses_root, "poses_body": poses_body, "trans": trans, "betas": betas},
        "kp2d": kp2d,
        "bboxes": {"bboxes": bboxes, "invalid_idxs": np.nonzero(~mask)[0], "vis_thr": 0.1},
    }


def write_mini_emdb(root: str | os.PathLike, *, n_frames: int = 12, width: int = 192, height: int = 256,
                    seed: int = 0, sequences: tuple[MiniSequence, ...] = MINI_SEQUENCES,
                    dropped: tuple[int, ...] = (0, 5)) -> list[str]:
    """Write the mini benchmark under ``root``; returns the sequence names. Frames ``dropped`` are masked out of
    ``good_frames_mask`` (as EMDB's occluded frames are). Portrait frames like EMDB's (1440x1920, 3:4)."""
    from PIL import Image

    from tasks.evaluation.benchmarks.emdb import data_file
    from tasks.ops.sample import sample_frames

    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, seq in enumerate(sequences):
        folder = root / seq.name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(sample_frames(n_frames, width, height, seed=seed + k, people=1)):
            Image.fromarray(frame).save(folder / "images" / f"{i:05d}.jpg", quality=90)
        data = _sequence_data(seq, n_frames, width, height, dropped, rng)
        path = data_file(root, seq.name)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            pickle.dump(data, f, protocol=4)
        os.replace(tmp, path)
    return [s.name for s in sequences]


def write_mini_tum(root: str | os.PathLike, *, n_frames: int = 12, width: int = 160, height: int = 120,
                   seed: int = 0, names: tuple[str, ...] = ("rgbd_dataset_freiburg3_walking_xyz",)) -> list[str]:
    """Raw TUM RGB-D sequences under ``root`` (``rgb.txt``, ``groundtruth.txt`` at 100 Hz, ``rgb/<stamp>.png`` at
    30 Hz), as the release unpacks them: a camera moving on a slow arc around a scene of walking figures. Read by
    ``load_benchmark("tum_50", root)`` (the first 50 associated frames, here all of them). Returns the names."""
    from PIL import Image

    from tasks.ops.sample import sample_frames

    root = Path(root)
    for k, name in enumerate(names):
        folder = root / name
        (folder / "rgb").mkdir(parents=True, exist_ok=True)
        t0 = 1305031100.0 + 100 * k
        rgb_lines = ["# color images", "# file: 'rgbd_dataset_freiburg3_walking_xyz.bag'", "# timestamp filename"]
        for i, frame in enumerate(sample_frames(n_frames, width, height, seed=seed + k, people=2)):
            stamp = f"{t0 + i / 30:.6f}"
            Image.fromarray(frame).save(folder / "rgb" / f"{stamp}.png")
            rgb_lines.append(f"{stamp} rgb/{stamp}.png")
        gt_lines = ["# ground truth trajectory", "# file: 'rgbd_dataset_freiburg3_walking_xyz.bag'",
                    "# timestamp tx ty tz qx qy qz qw"]
        for j in range(int(n_frames / 30 * 100) + 5):  # 100 Hz, covering every image
            t = j / 100
            yaw = 0.3 * t
            xyz = f"{0.8 * np.sin(yaw):.4f} {0.05 * t:.4f} {1.2 - 0.8 * np.cos(yaw):.4f}"
            gt_lines.append(f"{t0 + t - 0.003:.4f} {xyz} 0.0000 {np.sin(yaw / 2):.4f} 0.0000 {np.cos(yaw / 2):.4f}")
        (folder / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
        (folder / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return list(names)
