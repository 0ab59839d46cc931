"""A 4D Rerun recording of one video (`human3r view`): scrub through its frames in the Rerun viewer.

Entities (world frame of the dataset: the first camera's, x right, y down, z forward, metres; ``world`` carries
that as view coordinates RDF):

* ``world/points``: the frame's scene points with their colours;
* ``world/camera``: the camera pose (``Transform3D``), and ``world/camera/image`` its pinhole with the source-video
  intrinsics and size; ``world/camera_path``: the camera centres (static);
* ``world/people/<track>``: ``mesh`` (SMPL-X, faces logged once, vertices per frame; with a body model),
  ``skeleton`` (the 55-joint skeleton as line strips; from the posed bodies or the stored joints), ``head`` (the
  head joint, labelled with the track id), ``trajectory`` (the head's path, static); cleared while the track is
  out of view;
* ``world/scene``: the fused scene (`human3r fuse`), static.

Timelines: ``frame`` (the frame index in the source stream) and ``time`` (seconds). Points are read in windows of
frames, so memory does not grow with the video.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from storage import schema as S
from storage.geometry import SMPLX_PARENTS
from tasks.scenes.bodies import HEAD_JOINT, NUM_SKELETON, pose_world

WINDOW_FRAMES = 128  # frames of points read per query
SKELETON_CHAINS = []  # the skeleton as line strips: each strip a chain of joints from a branch point to a leaf
for _leaf in sorted(set(range(NUM_SKELETON)) - set(SMPLX_PARENTS)):
    _chain = [_leaf]
    while SMPLX_PARENTS[_chain[-1]] >= 0 and (len(_chain) == 1 or SMPLX_PARENTS.count(_chain[-1]) == 1):
        _chain.append(SMPLX_PARENTS[_chain[-1]])
    SKELETON_CHAINS.append(_chain[::-1])


@dataclasses.dataclass(frozen=True)
class RecordingSummary:
    video_id: str
    path: str
    frames: int
    tracks: int
    points: int
    people_as: str  # 'mesh', 'skeleton' or 'head'
    scene_points: int
    seconds: float

    @property
    def line(self) -> str:
        scene = f", fused scene of {self.scene_points:,} points" if self.scene_points else ""
        return (f"{self.video_id}: {self.frames} frames, {self.points:,} points, {self.tracks} people as "
                f"{self.people_as}{scene} -> {self.path} ({self.seconds:.1f} s); open it with `rerun {self.path}`")


def _frames_table(catalog, run):
    cols = [S.FRAME_IDX, S.TIMESTAMP_S, S.CAM_TO_WORLD, S.FX_SRC_PX, S.FY_SRC_PX, S.CX_SRC_PX, S.CY_SRC_PX]
    return catalog.query(f"SELECT {', '.join(cols)} FROM frames_all WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? "
                         f"ORDER BY {S.FRAME_IDX}", [run.video_id, run.run_id])


def _points_by_frame(catalog, run, first: int, last: int, per_frame: int | None) -> dict:
    cols = [S.FRAME_IDX, S.X_M, S.Y_M, S.Z_M, S.RED, S.GREEN, S.BLUE]
    t = catalog.query(f"SELECT {', '.join(cols)} FROM points_all WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? AND "
                      f"{S.FRAME_IDX} BETWEEN ? AND ? ORDER BY {S.FRAME_IDX}", [run.video_id, run.run_id, first, last])
    f = t.column(0).to_numpy()
    xyz = np.stack([t.column(i).to_numpy() for i in (1, 2, 3)], 1).astype(np.float32)
    rgb = np.stack([t.column(i).to_numpy() for i in (4, 5, 6)], 1).clip(0, 255).astype(np.uint8)
    frames, starts = np.unique(f, return_index=True)
    ends = np.append(starts[1:], len(f))
    out = {}
    for frame, s, e in zip(frames.tolist(), starts, ends):
        step = 1 if not per_frame or e - s <= per_frame else (e - s) / per_frame
        idx = (s + np.arange(0, e - s, step)).astype(np.int64)[: per_frame or None]
        out[frame] = (xyz[idx], rgb[idx])
    return out


def record_video(root, video_id: str, out, *, body_model=None, points_per_frame: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> RecordingSummary:
    """Write the recording of `video_id` to `out` (.rrd; local path or s3:// URI). `progress(frames, total)`."""
    import rerun as rr

    from storage.catalog import open_catalog
    from tasks.scenes.bodies import live_run, read_people
    from tasks.scenes.export import live_scene_cloud
    from tasks.scenes.outfiles import Target

    t0 = time.perf_counter()
    target = Target.at(out)
    n_points = 0
    with open_catalog(root) as catalog:
        run = live_run(catalog, video_id)
        people = read_people(catalog, run)
        frames = _frames_table(catalog, run)
        scene = live_scene_cloud(root, catalog, run)
        size = catalog.query(f"SELECT {S.WIDTH_PX}, {S.HEIGHT_PX} FROM runs WHERE {S.VIDEO_ID} = ?", [video_id])
        width, height = size.column(0)[0].as_py(), size.column(1)[0].as_py()
        people_as = "mesh" if body_model is not None else "skeleton" if people.joints_world is not None else "head"
        frame_idx = frames.column(S.FRAME_IDX).to_numpy()
        seconds = frames.column(S.TIMESTAMP_S).to_numpy()
        c2w = np.asarray(frames.column(S.CAM_TO_WORLD).combine_chunks().flatten().to_numpy(), np.float32)
        c2w = c2w.reshape(-1, 4, 4)
        intr = np.stack([frames.column(c).to_numpy() for c in (S.FX_SRC_PX, S.FY_SRC_PX, S.CX_SRC_PX, S.CY_SRC_PX)], 1)
        with target.write() as tmp:
            rec = rr.RecordingStream("human3r", recording_id=f"{video_id}-{run.run_id}")
            rec.save(tmp)
            _static_layers(rec, rr, people, c2w, scene, body_model)
            visible: set[int] = set()
            for w0 in range(0, len(frame_idx), WINDOW_FRAMES):
                window = frame_idx[w0:w0 + WINDOW_FRAMES]
                points = _points_by_frame(catalog, run, int(window[0]), int(window[-1]), points_per_frame)
                rows = np.flatnonzero(np.isin(people.frame_idx, window))
                verts, joints = _bodies(people, rows, body_model)
                for i, frame in enumerate(window.tolist(), start=w0):
                    rec.set_time("frame", sequence=frame)
                    rec.set_time("time", duration=float(seconds[i]))
                    rec.log("world/camera", rr.Transform3D(translation=c2w[i, :3, 3], mat3x3=c2w[i, :3, :3]))
                    fx, fy, cx, cy = intr[i]
                    rec.log("world/camera/image", rr.Pinhole(focal_length=[fx, fy], principal_point=[cx, cy],
                                                             resolution=[width, height], image_plane_distance=0.5))
                    xyz, rgb = points.get(frame, (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)))
                    n_points += len(xyz)
                    rec.log("world/points", rr.Points3D(xyz, colors=rgb, radii=0.01))
                    seen = set()
                    for k in np.flatnonzero(people.frame_idx[rows] == frame):
                        r = rows[k]
                        track = int(people.track_id[r])
                        seen.add(track)
                        _log_person(rec, rr, f"world/people/{track}", track, people.head_world[r],
                                    None if verts is None else verts[k], None if joints is None else joints[k])
                    for track in visible - seen:  # out of view from this frame on: hide what changes per frame
                        for part in ("skeleton", "head"):
                            rec.log(f"world/people/{track}/{part}", rr.Clear(recursive=False))
                        if body_model is not None:  # no vertices (the static faces stay for its return)
                            rec.log(f"world/people/{track}/mesh",
                                    rr.Mesh3D.from_fields(vertex_positions=np.zeros((0, 3), np.float32)))
                    visible = seen
                    if progress is not None:
                        progress(i + 1, len(frame_idx))
            rec.flush()
            rec.disconnect()
    return RecordingSummary(video_id, target.shown, len(frame_idx), len(people.tracks), n_points, people_as,
                            0 if scene is None else len(scene[0]), time.perf_counter() - t0)


def _bodies(people, rows: np.ndarray, body_model):
    """(vertices or None, skeleton joints or None) of `rows`, world frame."""
    if body_model is not None and len(rows):
        verts, joints = [], []
        for s in range(0, len(rows), 64):
            v, j = pose_world(body_model, people, rows[s:s + 64])
            verts.append(v)
            joints.append(j[:, :NUM_SKELETON])
        return np.concatenate(verts), np.concatenate(joints)
    if people.joints_world is not None and people.joints_world.shape[1] >= NUM_SKELETON:
        return None, people.joints_world[rows, :NUM_SKELETON]
    return None, None


def _log_person(rec, rr, path: str, track: int, head: np.ndarray, verts, joints) -> None:
    if verts is not None:
        rec.log(f"{path}/mesh", rr.Mesh3D.from_fields(vertex_positions=verts))
    if joints is not None:
        rec.log(f"{path}/skeleton", rr.LineStrips3D([joints[c] for c in SKELETON_CHAINS], radii=0.01))
        head = joints[HEAD_JOINT]
    rec.log(f"{path}/head", rr.Points3D([head], labels=[f"track {track}"], radii=0.05, show_labels=True))


def _static_layers(rec, rr, people, c2w: np.ndarray, scene, body_model) -> None:
    """What does not change with time: axes, camera path, trajectories, mesh faces, the fused scene."""
    rec.log("world", rr.ViewCoordinates.RDF, static=True)
    if len(c2w):
        rec.log("world/camera_path", rr.LineStrips3D([c2w[:, :3, 3]], radii=0.01), static=True)
    for track in people.tracks:
        rows = people.rows_of(track)
        rec.log(f"world/people/{track}/trajectory", rr.LineStrips3D([people.head_world[rows]], radii=0.01),
                static=True)
        if body_model is not None:
            faces = body_model.faces.numpy().astype(np.uint32)
            rec.log(f"world/people/{track}/mesh", rr.Mesh3D.from_fields(triangle_indices=faces), static=True)
    if scene is not None:
        rec.log("world/scene", rr.Points3D(scene[0], colors=scene[1], radii=0.01), static=True)
