"""What a benchmark loader returns: sequences of frames with their ground truth, typed.

A :class:`Sequence` is the unit the evaluation runs (the network is recurrent, so a sequence is streamed in
order). Its frames are image paths; what it carries as ground truth depends on the benchmark:

* human benchmarks (3DPW, EMDB, RICH): :class:`Camera` and :class:`Bodies` (SMPL or SMPL-X parameters);
* camera benchmarks (TUM, Bonn): a :class:`Trajectory`;
* depth benchmarks (Bonn): depth image paths (read with :func:`tasks.evaluation.benchmarks.bonn.read_depth`).

Arrays keep the dtype the benchmark file stores (3DPW annotations and RICH: float32; EMDB: float64), so
derived quantities (``inv(T_w2c)``) come out bit-identical to the reference's. Shapes and units are given per field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

BodyModelType = Literal["smpl", "smplx"]
BodyFrame = Literal["camera", "world"]

GENDER_IDS = {"neutral": 0, "male": 1, "female": 2}  # the reference's smpl_gender_id values
NO_PERSON = -1  # gender id of an empty slot in Bodies.gender


def _check(name: str, array: np.ndarray, shape: tuple) -> None:
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = tuple("*" if s is None else s for s in shape)
        raise ValueError(f"{name} has shape {array.shape}, expected {want}")


@dataclass(frozen=True)
class Camera:
    """The ground-truth camera of each frame, at the original image size."""

    T_w2c: np.ndarray  # (F, 4, 4) world -> camera, metres (3DPW: camera frame of the annotation = its own world)
    K: np.ndarray  # (F, 3, 3) pinhole intrinsics in original-image pixels
    image_wh: tuple[int, int]  # original image (width, height) in pixels

    def __post_init__(self) -> None:
        n = self.T_w2c.shape[0]
        _check("Camera.T_w2c", self.T_w2c, (None, 4, 4))
        _check("Camera.K", self.K, (n, 3, 3))

    @property
    def T_c2w(self) -> np.ndarray:
        """(F, 4, 4) camera -> world: ``np.linalg.inv(T_w2c)`` in the stored dtype (as the reference computes it)."""
        return np.linalg.inv(self.T_w2c)


@dataclass(frozen=True)
class Bodies:
    """Ground-truth body-model parameters of up to P people per frame (slots; ``mask`` says which are filled).

    SMPL (3DPW, EMDB): 23 body joints; SMPL-X (RICH): 21 body joints, hands/face at the model's defaults.
    Rotations are axis-angle in radians; ``transl`` is the body model's ``transl`` argument in metres.
    """

    model: BodyModelType  # which body model the parameters are for
    frame: BodyFrame  # "camera": params in each frame's camera; "world": apply Camera.T_w2c to get there
    global_orient: np.ndarray  # (F, P, 3) root rotation
    body_pose: np.ndarray  # (F, P, J, 3) J = 23 (SMPL) or 21 (SMPL-X)
    betas: np.ndarray  # (F, P, 10) shape coefficients of the gendered model
    transl: np.ndarray  # (F, P, 3) metres
    gender: np.ndarray  # (F, P) int8: 0 neutral, 1 male, 2 female (GENDER_IDS); NO_PERSON in empty slots
    mask: np.ndarray  # (F, P) bool: the slot holds a person

    def __post_init__(self) -> None:
        f, p = self.mask.shape
        joints = 23 if self.model == "smpl" else 21
        _check("Bodies.global_orient", self.global_orient, (f, p, 3))
        _check("Bodies.body_pose", self.body_pose, (f, p, joints, 3))
        _check("Bodies.betas", self.betas, (f, p, 10))
        _check("Bodies.transl", self.transl, (f, p, 3))
        _check("Bodies.gender", self.gender, (f, p))

    @property
    def max_people(self) -> int:
        return self.mask.shape[1]


@dataclass(frozen=True)
class Trajectory:
    """Ground-truth camera poses (camera -> world) with their time stamps, TUM convention."""

    stamps: np.ndarray  # (F,) float64 seconds
    xyz: np.ndarray  # (F, 3) float64 camera centre in the world, metres
    quat_wxyz: np.ndarray  # (F, 4) float64 camera -> world rotation, scalar first (as stored, not renormalised)

    def __post_init__(self) -> None:
        n = self.stamps.shape[0]
        _check("Trajectory.stamps", self.stamps, (n,))
        _check("Trajectory.xyz", self.xyz, (n, 3))
        _check("Trajectory.quat_wxyz", self.quat_wxyz, (n, 4))

    def __len__(self) -> int:
        return int(self.stamps.shape[0])


@dataclass(frozen=True)
class Sequence:
    """One benchmark sequence: F frames in order, and whatever ground truth the benchmark has."""

    benchmark: str  # registry name, e.g. "emdb2"
    name: str  # the reference's sequence name, e.g. "P0/09_outdoor_walk", "test/Gym_013_burpee4/cam_06"
    images: tuple[Path, ...]  # F image paths, in the order the network sees them
    frame_ids: np.ndarray  # (F,) int64: position of each frame in the benchmark's full frame list
    camera: Camera | None = None
    bodies: Bodies | None = None
    trajectory: Trajectory | None = None
    depths: tuple[Path, ...] | None = None  # F ground-truth depth images (Bonn)
    meta: dict = field(default_factory=dict)  # benchmark-specific facts (e.g. EMDB's emdb1/emdb2 flags)

    def __post_init__(self) -> None:
        n = len(self.images)
        _check(f"{self.name}: frame_ids", np.asarray(self.frame_ids), (n,))
        for what, value in (("camera", self.camera), ("bodies", self.bodies)):
            rows = None if value is None else (value.T_w2c if what == "camera" else value.mask).shape[0]
            if rows is not None and rows != n:
                raise ValueError(f"{self.name}: {what} has {rows} frames, the sequence {n}")
        if self.trajectory is not None and len(self.trajectory) != n:
            raise ValueError(f"{self.name}: trajectory has {len(self.trajectory)} poses, the sequence {n} frames")
        if self.depths is not None and len(self.depths) != n:
            raise ValueError(f"{self.name}: {len(self.depths)} depth images for {n} frames")

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int | None) -> Sequence:
        """The sequence cut to its first `n` frames, ground truth included (itself when `n` is None or longer)."""
        if n is None or n >= len(self):
            return self
        import dataclasses

        def cut(obj, fields: tuple[str, ...]):
            return None if obj is None else dataclasses.replace(obj, **{f: getattr(obj, f)[:n] for f in fields})

        return dataclasses.replace(
            self, images=self.images[:n], frame_ids=np.asarray(self.frame_ids)[:n],
            camera=cut(self.camera, ("T_w2c", "K")),
            bodies=cut(self.bodies, ("global_orient", "body_pose", "betas", "transl", "gender", "mask")),
            trajectory=cut(self.trajectory, ("stamps", "xyz", "quat_wxyz")),
            depths=None if self.depths is None else self.depths[:n])


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: its sequences in the reference's order, and the listed sequences that were not found."""

    name: str  # registry name
    root: Path  # the folder it was read from
    protocol: Literal["reference", "corrected"]  # which behaviour the loader followed where the reference has defects
    sequences: tuple[Sequence, ...]
    missing: tuple[str, ...] = ()  # sequences of the reference's list absent from `root` (a partial download)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, name: str) -> Sequence:
        for seq in self.sequences:
            if seq.name == name:
                return seq
        raise KeyError(name)
