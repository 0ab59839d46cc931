"""Quality of every person track: the `track_quality` table (`human3r labels score`, or `score_video` per video).

The metrics are defined, with units and formulas, in `storage.schema.TRACK_QUALITY` (what `human3r schema` prints);
this module computes exactly those. Pure functions first (`track_metrics` on one track's arrays, `points_near` for the
point confidence under a person), then the dataset side: `score_videos` reads the live humans, frames and points of a
batch of videos through the read-only catalog, fits each video's ground plane (`tasks.labels.ground`), and appends the
rows with `storage.writer.write_rows`, one transaction per batch. Videos whose live run is already scored are skipped
unless ``force``; re-scoring appends newer rows (the catalog serves the latest per track).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from storage import schema as S
from storage.arrays import as_joints, as_vectors
from storage.catalog import Catalog, open_catalog
from storage.fs import Root, open_root
from storage.geometry import SMPLX_BODY_JOINTS
from storage.writer import write_rows
from tasks.labels.ground import GroundPlane, fit_ground_plane

log = logging.getLogger(__name__)

# The thresholds the metrics are defined with (storage.schema's track_quality column docs state them)
BODY_JOINTS = SMPLX_BODY_JOINTS  # skeleton joints 0-21 (pelvis .. wrists): the joints of jitter and point_conf_mean
FOOT_JOINTS = (60, 61, 62, 63, 64, 65)  # smplx's left/right big toe, small toe, heel (on the sole)
CONTACT_M = 0.05  # a foot point within this height of the ground (or below it) is in contact
NEAR_JOINT_M = 0.25  # a scene point this close to a body joint is "under the person"
NEAR_HEAD_M = 0.5  # ... or this close to the head joint when there are no joints

# joints read for the metrics: the body joints, then the foot points (positions in `joints` below)
METRIC_JOINTS = (*range(BODY_JOINTS), *FOOT_JOINTS)
_BODY = slice(0, BODY_JOINTS)
_FEET = slice(BODY_JOINTS, len(METRIC_JOINTS))
MAX_BATCH_POINTS = 4_000_000  # scene points read at once (a batch of videos)
MAX_BATCH_HUMAN_ROWS = 200_000


# ------------------------------------------------------------------------------------------------------------------
# Pure metrics
# ------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrackArrays:
    """One track's rows, sorted by frame (N rows)."""

    track_id: int
    frame_idx: np.ndarray  # (N,) int
    position: np.ndarray  # (N,) int: index of the frame among the run's processed frames (gaps show as jumps)
    timestamp_s: np.ndarray  # (N,)
    detection_score: np.ndarray  # (N,)
    betas: np.ndarray  # (N, 10)
    head: np.ndarray  # (N, 3) head joint, world
    joints: np.ndarray | None  # (N, len(METRIC_JOINTS), 3) body joints then foot points, world; None without


def _consecutive(position: np.ndarray, k: int) -> np.ndarray:
    """Windows of k + 1 consecutive processed frames: mask over the N - k window starts."""
    return (position[k:] - position[:-k]) == k if len(position) > k else np.zeros(0, bool)


def track_metrics(track: TrackArrays, plane: GroundPlane | None) -> dict:
    """Every metric of `storage.schema.TRACK_QUALITY` that depends on the track alone (see the column docs)."""
    pos, t = track.position, track.timestamp_s
    n = len(pos)
    steps = np.diff(pos) - 1
    pairs = _consecutive(pos, 1)
    dt = float(np.median(np.diff(t)[pairs])) if pairs.any() else (float(np.median(np.diff(t))) if n > 1 else 0.0)
    norms = np.linalg.norm(track.betas, axis=1)
    out = {
        S.TRACK_ID: int(track.track_id), S.N_FRAMES_TRACK: n,
        S.FIRST_FRAME_IDX: int(track.frame_idx[0]), S.LAST_FRAME_IDX: int(track.frame_idx[-1]),
        S.DURATION_S: float(t[-1] - t[0]), S.VISIBLE_FRAC: n / float(pos[-1] - pos[0] + 1),
        S.N_GAPS: int((steps > 0).sum()), S.MAX_GAP_FRAMES: int(steps.max(initial=0)),
        S.DETECTION_SCORE_MEAN: float(np.mean(track.detection_score)),
        S.HAS_JOINTS: track.joints is not None and bool(np.isfinite(track.joints).all()),
        S.BETAS_NORM_MIN: float(norms.min()), S.BETAS_NORM_MAX: float(norms.max()),
        S.BETAS_ABS_MAX: float(np.abs(track.betas).max()),
        S.JITTER_MPS3: None, S.MAX_JUMP_M: None, S.FOOT_SLIDING_MPS: None, S.FOOT_CONTACT_FRAC: None,
        S.GROUND_PENETRATION_M: None, S.GROUND_PENETRATION_MAX_M: None,
    }
    x = track.joints[:, _BODY] if out[S.HAS_JOINTS] else track.head[:, None, :]  # (N, K, 3)
    windows = _consecutive(pos, 3)
    if windows.any() and dt > 0:
        jerk = x[3:] - 3 * x[2:-1] + 3 * x[1:-2] - x[:-3]  # (N - 3, K, 3)
        out[S.JITTER_MPS3] = float(np.linalg.norm(jerk[windows], axis=-1).mean() / dt**3)
    if pairs.any():
        out[S.MAX_JUMP_M] = float(np.linalg.norm(np.diff(track.head, axis=0)[pairs], axis=-1).max())
    if out[S.HAS_JOINTS] and plane is not None:
        out.update(_ground_metrics(track, plane, pairs))
    return out


def _ground_metrics(track: TrackArrays, plane: GroundPlane, pairs: np.ndarray) -> dict:
    joints = track.joints
    heights = plane.height(joints)  # (N, K)
    lowest = heights.min(axis=1)
    penetration = np.maximum(0.0, -lowest)
    feet = joints[:, _FEET]  # (N, F, 3)
    contact = heights[:, _FEET] < CONTACT_M  # (N, F)
    both = contact[1:] & contact[:-1] & pairs[:, None]  # (N - 1, F)
    sliding = None
    if both.any():
        move = np.diff(feet, axis=0)
        move -= (move @ plane.normal)[..., None] * plane.normal  # the part parallel to the ground
        speed = np.linalg.norm(move, axis=-1) / np.diff(track.timestamp_s)[:, None]
        sliding = float(speed[both].mean())
    return {S.FOOT_SLIDING_MPS: sliding, S.FOOT_CONTACT_FRAC: float(contact.any(axis=1).mean()),
            S.GROUND_PENETRATION_M: float(penetration.mean()), S.GROUND_PENETRATION_MAX_M: float(penetration.max())}


def points_near(people: np.ndarray, radius: float, points: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scene points of one frame near each person: (count (n,), sum of conf (n,)).

    people: (n, K, 3) the joints (or head) of the n people of the frame; points: (P, 3) and conf: (P,) the frame's
    scene points. A point is near a person when it is within `radius` of one of the person's K joints.
    """
    if len(points) == 0 or len(people) == 0:
        return np.zeros(len(people), np.int64), np.zeros(len(people))
    d2 = ((people[:, :, None, :] - points[None, None]) ** 2).sum(-1)  # (n, K, P)
    near = (d2 <= radius**2).any(axis=1)  # (n, P)
    return near.sum(1), near.astype(np.float64) @ conf


# ------------------------------------------------------------------------------------------------------------------
# One video's rows -> its track_quality rows
# ------------------------------------------------------------------------------------------------------------------


def video_quality(humans: pa.Table, frame_idx: np.ndarray, points: pa.Table, computed_at: dt.datetime) -> list[dict]:
    """The track_quality rows of one video.

    humans: its live rows (columns of `_HUMAN_SQL`) sorted by track and frame; frame_idx: its processed frames,
    sorted; points: its scene points (frame_idx, x_m, y_m, z_m, conf) sorted by frame.
    """
    if humans.num_rows == 0:
        return []
    col = humans.column
    tracks = col(S.TRACK_ID).to_numpy()
    frames = col(S.FRAME_IDX).to_numpy()
    head = as_vectors(col(S.HEAD_WORLD_M), 3)
    joints = as_joints(col(S.JOINTS_WORLD_M))
    xyz = np.stack([points.column(c).to_numpy() for c in (S.X_M, S.Y_M, S.Z_M)], 1).astype(np.float64)
    conf = points.column(S.CONF).to_numpy().astype(np.float64)
    plane = fit_ground_plane(xyz, head)
    near_count, near_sum = _near_per_row(frames, head, joints, points.column(S.FRAME_IDX).to_numpy(), xyz, conf)
    position = np.searchsorted(frame_idx, frames)
    betas = as_vectors(col(S.BETAS), 10)
    timestamps, scores = col(S.TIMESTAMP_S).to_numpy(), col(S.DETECTION_SCORE).to_numpy()
    ground = {S.GROUND_NORMAL_WORLD: None, S.GROUND_OFFSET_M: None, S.GROUND_INLIER_FRAC: None}
    if plane is not None:
        ground = {S.GROUND_NORMAL_WORLD: plane.normal.tolist(), S.GROUND_OFFSET_M: plane.offset_m,
                  S.GROUND_INLIER_FRAC: plane.inlier_frac}
    rows = []
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(tracks)]):
        rows_of = slice(int(start), int(stop))
        track = TrackArrays(
            int(tracks[start]), frames[rows_of], position[rows_of], timestamps[rows_of], scores[rows_of],
            betas[rows_of], head[rows_of], None if joints is None else joints[rows_of])
        count = int(near_count[rows_of].sum())
        rows.append({
            S.VIDEO_ID: col(S.VIDEO_ID)[0].as_py(), S.RUN_ID: col(S.RUN_ID)[0].as_py(), **track_metrics(track, plane),
            S.POINT_CONF_MEAN: float(near_sum[rows_of].sum() / count) if count else None, S.N_POINTS_NEAR: count,
            **ground, S.COMPUTED_AT: computed_at,
        })
    return rows


def _near_per_row(frames, head, joints, point_frames, xyz, conf) -> tuple[np.ndarray, np.ndarray]:
    """Per humans row: how many scene points of its frame are near the person, and the sum of their conf."""
    count, total = np.zeros(len(frames), np.int64), np.zeros(len(frames))
    with_joints = joints is not None and np.isfinite(joints).all()
    people = joints[:, _BODY] if with_joints else head[:, None, :]
    radius = NEAR_JOINT_M if with_joints else NEAR_HEAD_M
    order = np.argsort(frames, kind="stable")
    in_order = frames[order]
    starts = np.flatnonzero(np.r_[True, in_order[1:] != in_order[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        lo, hi = (np.searchsorted(point_frames, in_order[a], side) for side in ("left", "right"))
        rows = order[a:b]
        count[rows], total[rows] = points_near(people[rows], radius, xyz[lo:hi], conf[lo:hi])
    return count, total


# ------------------------------------------------------------------------------------------------------------------
# Dataset side
# ------------------------------------------------------------------------------------------------------------------

_JOINT_LIST = ", ".join(str(j + 1) for j in METRIC_JOINTS)  # DuckDB lists are 1-based
_HUMAN_SQL = (f"SELECT {S.VIDEO_ID}, {S.RUN_ID}, {S.TRACK_ID}, {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.DETECTION_SCORE}, "
              f"{S.BETAS}, {S.HEAD_WORLD_M}, list_select({S.JOINTS_WORLD_M}, [{_JOINT_LIST}]) AS {S.JOINTS_WORLD_M} "
              "FROM humans WHERE {where} ORDER BY " f"{S.VIDEO_ID}, {S.TRACK_ID}, {S.FRAME_IDX}")
_FRAME_SQL = f"SELECT {S.VIDEO_ID}, {S.FRAME_IDX} FROM frames WHERE {{where}} ORDER BY {S.VIDEO_ID}, {S.FRAME_IDX}"
_POINT_SQL = (f"SELECT {S.VIDEO_ID}, {S.FRAME_IDX}, {S.X_M}, {S.Y_M}, {S.Z_M}, {S.CONF} FROM points "
              f"WHERE {{where}} ORDER BY {S.VIDEO_ID}, {S.FRAME_IDX}")


@dataclasses.dataclass(frozen=True)
class ScoreReport:
    videos: int  # videos scored
    tracks: int  # rows written
    skipped: int  # videos whose live run was already scored

    @property
    def line(self) -> str:
        return (f"scored {self.tracks} tracks of {self.videos} videos"
                + (f" ({self.skipped} already scored)" if self.skipped else ""))


def pending_videos(catalog: Catalog, video_ids: Iterable[str] | None = None, *, force: bool = False) -> pa.Table:
    """Live runs (video_id, run_id, n_points, n_human_rows) to score: those without track_quality rows, or all."""
    where, params = [], []
    if video_ids is not None:
        params = list(video_ids)
        where.append(f"{S.VIDEO_ID} IN ({', '.join('?' * len(params))})" if params else "false")
    if not force:
        where.append(f"{S.RUN_ID} NOT IN (SELECT DISTINCT {S.RUN_ID} FROM {S.TRACK_QUALITY.name}_all)")
    sql = (f"SELECT {S.VIDEO_ID}, {S.RUN_ID}, {S.N_POINTS}, {S.N_HUMAN_ROWS} FROM runs"
           + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {S.VIDEO_ID}")
    return catalog.query(sql, params or None)


def _batches(runs: pa.Table) -> list[list[str]]:
    """Video ids in batches of bounded size (scene points and humans rows read at once)."""
    out, batch, points, humans = [], [], 0, 0
    for row in runs.to_pylist():
        full = points + row[S.N_POINTS] > MAX_BATCH_POINTS or humans + row[S.N_HUMAN_ROWS] > MAX_BATCH_HUMAN_ROWS
        if batch and full:
            out.append(batch)
            batch, points, humans = [], 0, 0
        batch.append(row[S.VIDEO_ID])
        points += row[S.N_POINTS]
        humans += row[S.N_HUMAN_ROWS]
    return out + ([batch] if batch else [])


def split_by_video(table: pa.Table, ids: list[str]) -> dict[str, pa.Table]:
    """A table sorted by video_id -> {video_id: its rows}."""
    column = table.column(S.VIDEO_ID).to_numpy(zero_copy_only=False)
    out = {}
    for vid in ids:
        lo, hi = np.searchsorted(column, vid, "left"), np.searchsorted(column, vid, "right")
        out[vid] = table.slice(int(lo), int(hi - lo))
    return out


def score_videos(root: Root | str, video_ids: Iterable[str] | None = None, *, force: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> ScoreReport:
    """Compute and append the track_quality rows of the live runs of `video_ids` (default: every video).

    Without `force`, videos whose live run already has rows are skipped (re-running is free).
    `progress(videos_done, videos_total)` is called after each batch.
    """
    root = root if isinstance(root, Root) else open_root(root)
    with open_catalog(root) as cat:
        todo = pending_videos(cat, video_ids, force=force)
        candidates = pending_videos(cat, video_ids, force=True).num_rows
        done = tracks = 0
        for batch in _batches(todo):
            where = f"{S.VIDEO_ID} IN ({', '.join('?' * len(batch))})"
            humans = split_by_video(cat.query(_HUMAN_SQL.format(where=where), batch), batch)
            frames = split_by_video(cat.query(_FRAME_SQL.format(where=where), batch), batch)
            points = split_by_video(cat.query(_POINT_SQL.format(where=where), batch), batch)
            now = dt.datetime.now(dt.UTC)
            rows = [r for vid in batch for r in video_quality(
                humans[vid], frames[vid].column(S.FRAME_IDX).to_numpy(), points[vid], now)]
            if rows:
                write_rows(root, S.TRACK_QUALITY.name, {c: [r[c] for r in rows] for c in S.TRACK_QUALITY.column_names})
            done, tracks = done + len(batch), tracks + len(rows)
            if progress is not None:
                progress(done, todo.num_rows)
    return ScoreReport(videos=done, tracks=tracks, skipped=candidates - todo.num_rows)


def score_video(root: Root | str, video_id: str) -> ScoreReport:
    """Score one video's live run again (what reconstruct calls after its commit)."""
    return score_videos(root, [video_id], force=True)
