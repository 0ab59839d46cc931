"""A video's live run and its people, read from the dataset, and their SMPL-X bodies in the world frame: what scene
fusion (people masks), the exports (GLB, BVH, meshes) and the Rerun recording share.

* :func:`live_run` finds the video's live run (the ``runs`` view), or says how to list the videos there are.
* :func:`read_people` reads the run's ``humans`` rows (one per person and frame: a few hundred floats each, small
  next to the points) into :class:`People` arrays, with the rotations regrouped into SMPL-X's 55-joint skeleton
  order (`storage.geometry.SMPLX_PARENTS`).
* :func:`pose_world` poses rows with a body model: the stored world orientation and ``transl_world_m`` (or, when the
  run had no body model, the translation that puts the head joint on ``head_world_m``, as the reconstruction does).

Rotations are axis-angle radians, lengths metres, in the dataset's world frame (the first camera: x right, y down,
z forward). torch, roma and the body model are imported where used.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from storage import schema as S
from storage.geometry import SMPLX_PARENTS
from tasks.errors import SourceError

NUM_SKELETON = len(SMPLX_PARENTS)  # 55 SMPL-X skeleton joints: pelvis, 21 body, jaw, 2 eyes, 2 x 15 hand joints
HEAD_JOINT = 15  # smplx joint "head" (human3r.body.HEAD_JOINT)


@dataclasses.dataclass(frozen=True)
class LiveRun:
    """The run whose rows a video shows (see storage.schema: the latest ``runs`` row of the video)."""

    video_id: str
    run_id: str
    model_version: str
    fps: float | None
    n_frames: int
    n_points: int


def live_run(catalog, video_id: str) -> LiveRun:
    """The live run of `video_id` from an open catalog (`storage.catalog.open_catalog`)."""
    rows = catalog.query(f"SELECT {S.RUN_ID}, {S.MODEL_VERSION}, {S.FPS}, {S.N_FRAMES}, {S.N_POINTS} FROM runs "
                         f"WHERE {S.VIDEO_ID} = ?", [video_id]).to_pylist()
    if not rows:
        raise SourceError(f"video {video_id!r} is not in the dataset at {catalog.root.uri}; list its videos with "
                          f"`human3r query --root {catalog.root.uri} \"SELECT video_id, source_uri FROM videos\"`")
    r = rows[0]
    return LiveRun(video_id, r[S.RUN_ID], r[S.MODEL_VERSION], r[S.FPS], r[S.N_FRAMES], r[S.N_POINTS])


@dataclasses.dataclass(frozen=True)
class People:
    """The humans rows of one run, sorted by (frame_idx, track_id). N = rows (person x frame)."""

    frame_idx: np.ndarray  # (N,) int32
    timestamp_s: np.ndarray  # (N,) float64
    track_id: np.ndarray  # (N,) int32
    rotvec: np.ndarray  # (N, 55, 3) float32 local joint rotations, SMPL-X skeleton order (eyes zero), world root
    betas: np.ndarray  # (N, 10)
    expression: np.ndarray  # (N, 10)
    head_world: np.ndarray  # (N, 3) head joint, world frame, metres
    transl_world: np.ndarray | None  # (N, 3) SMPL-X transl with the world root orientation; None when not stored
    joints_world: np.ndarray | None  # (N, 55, 3) stored skeleton joints (joints_world_m[:55]); None if absent

    def __len__(self) -> int:
        return len(self.frame_idx)

    @property
    def tracks(self) -> list[int]:
        return sorted(set(self.track_id.tolist()))

    def rows_of(self, track: int) -> np.ndarray:
        """Row indices of one track, in frame order."""
        return np.flatnonzero(self.track_id == track)


def _flat(column, width: int, inner: int = 1) -> np.ndarray:
    """A list column of `width` (or `width` lists of `inner`) floats -> (N, width[, inner]) float32."""
    values = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    for _ in range(2 if inner > 1 else 1):
        values = values.flatten()
    arr = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
    return arr.reshape(len(column), width, inner) if inner > 1 else arr.reshape(len(column), width)


def read_people(catalog, run: LiveRun) -> People:
    """Every humans row of `run`, held in memory: ~1.5 KB per person and frame (the 55 skeleton joints of the
    stored 127; the points, by far the larger part of a run, are streamed instead)."""
    cols = [c for c in S.HUMANS.column_names if c != S.JOINTS_WORLD_M]
    table = catalog.query(f"SELECT {', '.join(cols)}, {S.JOINTS_WORLD_M}[1:{NUM_SKELETON}] AS {S.JOINTS_WORLD_M} "
                          f"FROM humans_all WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? "
                          f"ORDER BY {S.FRAME_IDX}, {S.TRACK_ID}", [run.video_id, run.run_id])
    n = table.num_rows
    col = table.column
    rotvec = np.zeros((n, NUM_SKELETON, 3), np.float32)
    rotvec[:, 0] = _flat(col(S.GLOBAL_ORIENT_WORLD), 3)
    rotvec[:, 1:22] = _flat(col(S.BODY_POSE), 63).reshape(n, 21, 3)
    rotvec[:, 22] = _flat(col(S.JAW_POSE), 3)
    rotvec[:, 25:40] = _flat(col(S.LEFT_HAND_POSE), 45).reshape(n, 15, 3)
    rotvec[:, 40:55] = _flat(col(S.RIGHT_HAND_POSE), 45).reshape(n, 15, 3)
    transl = col(S.TRANSL_WORLD_M)
    joints = col(S.JOINTS_WORLD_M)
    n_joints = len(joints[0]) if n and joints.null_count == 0 else 0
    return People(
        frame_idx=col(S.FRAME_IDX).to_numpy().astype(np.int32),
        timestamp_s=col(S.TIMESTAMP_S).to_numpy().astype(np.float64),
        track_id=col(S.TRACK_ID).to_numpy().astype(np.int32),
        rotvec=rotvec,
        betas=_flat(col(S.BETAS), 10),
        expression=_flat(col(S.EXPRESSION), 10),
        head_world=_flat(col(S.HEAD_WORLD_M), 3),
        transl_world=_flat(transl, 3) if n and transl.null_count == 0 else None,
        joints_world=_flat(joints, n_joints, 3) if n_joints else None,
    )


def rotvec_to_rotmat(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle radians -> (..., 3, 3) rotation matrices (float64)."""
    import roma
    import torch

    flat = torch.as_tensor(np.asarray(rotvec, np.float64).reshape(-1, 3))
    return roma.rotvec_to_rotmat(flat).numpy().reshape(*np.shape(rotvec)[:-1], 3, 3)


def smplx_rotmats(rotvec: np.ndarray) -> np.ndarray:
    """(N, 55, 3) skeleton-order rotations -> (N, 53, 3, 3) in the order `human3r.body.BodyModel` takes
    (global, 21 body, 15 left hand, 15 right hand, jaw)."""
    order = [0, *range(1, 22), *range(25, 40), *range(40, 55), 22]
    return rotvec_to_rotmat(rotvec[:, order])


def pose_world(body_model, people: People, rows: np.ndarray, *, with_vertices: bool = True):
    """Pose `rows` of `people` with a `human3r.body.BodyModel`: (vertices (R, 10475, 3) or None, joints (R, J, 3)),
    world frame, float32. The stored shape and expression of each row are used."""
    import torch

    from human3r.body import pelvis_transl_from_head

    rows = np.asarray(rows)
    rotmat = torch.as_tensor(smplx_rotmats(people.rotvec[rows]), dtype=torch.float32)
    betas = torch.as_tensor(people.betas[rows])
    expression = torch.as_tensor(people.expression[rows])
    verts, joints = body_model.pose(rotmat, betas, expression)
    if people.transl_world is not None:
        transl = torch.as_tensor(people.transl_world[rows])
    else:  # as the reconstruction does: the head joint lands on the stored head position
        transl = pelvis_transl_from_head(torch.as_tensor(people.head_world[rows]), joints[:, HEAD_JOINT].float())
    transl = transl.to(joints)[:, None]
    joints = (joints + transl).float().numpy()
    return ((verts + transl).float().numpy() if with_vertices else None), joints
