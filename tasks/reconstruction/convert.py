"""Network outputs -> dataset rows: the only place that knows both `human3r` outputs and `storage.schema` columns.

One processed frame becomes one `frames` row, one `humans` row per person and up to `points_per_frame` `points`
rows, all in the dataset's world frame (the first processed frame's camera; segments after a reset are chained into
it exactly as the stream chains the camera poses).
"""

from __future__ import annotations

import numpy as np
import torch

from human3r.body import BodyModel, read_out_bodies
from human3r.geometry import WorkingGeometry, working_to_source_intrinsics
from human3r.stream import StreamFrame
from storage import schema as S
from tasks.options import ConvertOptions


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def world_anchor(first: StreamFrame) -> torch.Tensor:
    """(4, 4) float64 map from the model's world frame to the dataset's: the inverse of the first frame's pose.

    The dataset's world frame is the first processed frame's camera exactly; a trained model predicts a first pose
    close to identity, so this only removes its small residual (and makes untrained runs obey the contract too).
    """
    return torch.linalg.inv(first.c2w.detach().to("cpu", torch.float64))


def frame_rows(
    sf: StreamFrame, *, frame_idx: int, timestamp_s: float, image: torch.Tensor, geometry: WorkingGeometry,
    body_model: BodyModel | None, options: ConvertOptions, anchor: torch.Tensor,
) -> dict[str, dict[str, np.ndarray]]:
    """Column dicts {'frames': ..., 'humans': ..., 'points': ...} for one processed frame.

    image: (1, 3, H, W) the working image the network saw, in [-1, 1] (colours of the points).
    anchor: `world_anchor` of the video's first processed frame.
    """
    out = sf.output
    model_c2w = sf.c2w.detach().to("cpu", torch.float64)  # chained across resets, in the model's world frame
    c2w = anchor @ model_c2w

    # frames ------------------------------------------------------------------------------------------------------
    k_work = sf.intrinsics.detach().to("cpu", torch.float64)  # (3, 3) at working resolution, from the stream
    k_src = working_to_source_intrinsics(k_work, geometry)
    # the scene points and their confidence: the camera-frame pointmap moved by the chained camera pose ('pose', the
    # reference demo's rule), or the world-view head's pointmap in the segment's world frame ('head')
    if options.world_points == "pose":
        pts, conf, to_world = out.pts3d_self[0], out.conf_self[0], c2w
    else:
        segment_to_world = c2w @ torch.linalg.inv(out.c2w[0].detach().to("cpu", torch.float64))
        pts, conf, to_world = out.pts3d_world[0], out.conf_world[0], segment_to_world
    conf = conf.detach().float().cpu()
    h, w = conf.shape
    humans = out.humans
    n = humans.count
    frames = {
        S.FRAME_IDX: np.array([frame_idx], np.int32), S.TIMESTAMP_S: np.array([timestamp_s]),
        S.CAM_TO_WORLD: c2w.numpy().reshape(1, 16).astype(np.float32),
        S.FX_SRC_PX: [float(k_src[0, 0])], S.FY_SRC_PX: [float(k_src[1, 1])],
        S.CX_SRC_PX: [float(k_src[0, 2])], S.CY_SRC_PX: [float(k_src[1, 2])],
        S.FX_WORK_PX: [float(k_work[0, 0])], S.FY_WORK_PX: [float(k_work[1, 1])],
        S.CX_WORK_PX: [float(k_work[0, 2])], S.CY_WORK_PX: [float(k_work[1, 2])],
        S.WORK_WIDTH_PX: [w], S.WORK_HEIGHT_PX: [h], S.N_HUMANS: [n],
        S.CONF_MEAN: [float(conf.mean())], S.CONF_MEDIAN: [float(conf.median())],
    }

    # humans ------------------------------------------------------------------------------------------------------
    body = read_out_bodies(humans.rotmat[0].float().cpu(), humans.betas[0].float().cpu(),
                           humans.expression[0].float().cpu(), humans.transl[0].float().cpu(),
                           c2w.float(), body_model, with_vertices=False)
    rows = {
        S.FRAME_IDX: np.full(n, frame_idx, np.int32), S.TIMESTAMP_S: np.full(n, timestamp_s),
        S.TRACK_ID: humans.track_id[0].cpu().numpy().astype(np.int32),
        S.DETECTION_SCORE: _np(humans.score[0]),
        S.GLOBAL_ORIENT_CAM: _np(body.global_orient_cam), S.BODY_POSE: _np(body.body_pose).reshape(n, 63),
        S.LEFT_HAND_POSE: _np(body.left_hand_pose).reshape(n, 45),
        S.RIGHT_HAND_POSE: _np(body.right_hand_pose).reshape(n, 45),
        S.JAW_POSE: _np(body.jaw_pose), S.BETAS: _np(body.betas), S.EXPRESSION: _np(body.expression),
        S.HEAD_CAM_M: _np(body.head_cam), S.HEAD_WORLD_M: _np(body.head_world),
        S.GLOBAL_ORIENT_WORLD: _np(body.global_orient_world),
        S.TRANSL_WORLD_M: _np(body.transl_world) if body.transl_world is not None else [None] * n,
        S.JOINTS_WORLD_M: _np(body.joints_world) if body.joints_world is not None else [None] * n,
    }

    # points ------------------------------------------------------------------------------------------------------
    points = _points(pts, conf, image[0], to_world, frame_idx, options)
    return {S.FRAMES.name: frames, S.HUMANS.name: rows, S.POINTS.name: points}


def _points(pts: torch.Tensor, conf: torch.Tensor, image: torch.Tensor, to_world: torch.Tensor,
            frame_idx: int, options: ConvertOptions) -> dict[str, np.ndarray]:
    """Up to `points_per_frame` confident pixels: world position (`to_world` applied to `pts`), colour from the
    frame, confidence."""
    flat_conf = conf.reshape(-1).numpy()
    valid = np.flatnonzero(flat_conf >= options.conf_threshold)
    k = min(options.points_per_frame, valid.size)
    if k < valid.size:
        rng = np.random.default_rng([options.seed, frame_idx])
        valid = np.sort(rng.choice(valid, size=k, replace=False))
    xyz = pts.detach().to("cpu", torch.float64).reshape(-1, 3)[torch.from_numpy(valid)]
    xyz = (xyz @ to_world[:3, :3].T + to_world[:3, 3]).float().numpy()
    rgb = ((image.detach().float().cpu().reshape(3, -1)[:, torch.from_numpy(valid)] + 1) * 127.5)
    rgb = rgb.round().clamp(0, 255).to(torch.uint8).numpy()
    return {
        S.FRAME_IDX: np.full(valid.size, frame_idx, np.int32),
        S.X_M: xyz[:, 0], S.Y_M: xyz[:, 1], S.Z_M: xyz[:, 2],
        S.RED: rgb[0], S.GREEN: rgb[1], S.BLUE: rgb[2], S.CONF: flat_conf[valid].astype(np.float32),
    }


class RowBuffer:
    """Collects per-frame column dicts and hands them to a writer in chunks (bounded memory)."""

    def __init__(self, flush, chunk_frames: int = 64):
        self._flush, self.chunk_frames = flush, chunk_frames
        self._rows: dict[str, list[dict]] = {}
        self._frames = 0

    def add(self, tables: dict[str, dict]) -> None:
        for name, cols in tables.items():
            self._rows.setdefault(name, []).append(cols)
        self._frames += 1
        if self._frames >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        for name, parts in self._rows.items():
            merged = {}
            for col in parts[0]:
                values = [p[col] for p in parts]
                if all(isinstance(v, np.ndarray) for v in values):
                    merged[col] = np.concatenate(values)
                else:
                    merged[col] = [x for v in values for x in v]
            self._flush(name, merged)
        self._rows.clear()
        self._frames = 0
