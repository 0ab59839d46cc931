"""track_quality: the metrics come out right (numbers) on tracks with known motion, written and read for real
(Delta tables, DuckDB), and the ground plane is the floor, not the wall or the ceiling."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.recipes import NEEDS, RECIPES
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, write_video
from tasks.labels import ground as ground_fit
from tasks.labels import quality as metrics
from tasks.labels.ground import GroundPlane, apply, fit_ground_plane, zup_transform
from tasks.labels.quality import score_video, score_videos

FPS, N = 30.0, 61  # 60 frame pairs: the alternating jitter averages out exactly
FLOOR_Y = 1.6  # the floor in the world frame (the first camera's; y down): height h is at y = FLOOR_Y - h
FEET = list(metrics.FOOT_JOINTS)


def template(seed: int = 0) -> np.ndarray:
    """(127, 3) a standing body in the world: body joints 0.3-1.5 m above the floor, head (15) at 1.7 m, the six
    foot points 1 cm above it."""
    rng = np.random.default_rng(seed)
    heights = rng.uniform(0.3, 1.5, 127)
    heights[15], heights[FEET] = 1.7, 0.01
    xz = rng.uniform(-0.2, 0.2, (127, 2))
    return np.stack([xz[:, 0], FLOOR_Y - heights, 4.0 + xz[:, 1]], 1)


def humans_of(tracks: dict[int, tuple[np.ndarray, np.ndarray]], with_joints: bool = True, betas=None) -> dict:
    """humans columns for {track_id: (frame indices, joints (n, 127, 3))} (head = joint 15, identity cameras)."""
    frames = np.concatenate([f for f, _ in tracks.values()]).astype(np.int32)
    joints = np.concatenate([j for _, j in tracks.values()]).astype(np.float32)
    track = np.concatenate([np.full(len(f), t) for t, (f, _) in tracks.items()]).astype(np.int32)
    n = len(frames)
    zeros = lambda k: list(np.zeros((n, k), np.float32))  # noqa: E731
    head = joints[:, 15]
    return {
        S.FRAME_IDX: frames, S.TIMESTAMP_S: frames / FPS, S.TRACK_ID: track,
        S.DETECTION_SCORE: np.full(n, 0.8, np.float32), S.GLOBAL_ORIENT_CAM: zeros(3), S.BODY_POSE: zeros(63),
        S.LEFT_HAND_POSE: zeros(45), S.RIGHT_HAND_POSE: zeros(45), S.JAW_POSE: zeros(3),
        S.BETAS: list(np.tile(np.float32([0.5, -2.5] + [0] * 8), (n, 1)) if betas is None else betas),
        S.EXPRESSION: zeros(10), S.HEAD_CAM_M: list(head), S.HEAD_WORLD_M: list(head),
        S.GLOBAL_ORIENT_WORLD: zeros(3),
        S.TRANSL_WORLD_M: list(joints[:, 0]) if with_joints else [None] * n,
        S.JOINTS_WORLD_M: [list(j) for j in joints] if with_joints else [None] * n,
    }


def scene_points(extra: dict[int, np.ndarray] | None = None) -> dict:
    """Per frame: 40 floor points, 30 on a wall and 60 on a ceiling 2.6 m up (more than the floor: the head rule must
    reject it), conf 2; plus `extra` points {frame: (k, 3)} with conf 5."""
    rng = np.random.default_rng(1)
    frames, xyz, conf = [], [], []
    for f in range(N):
        floor = np.stack([rng.uniform(-3, 3, 40), np.full(40, FLOOR_Y), rng.uniform(1, 9, 40)], 1)
        wall = np.stack([rng.uniform(-3, 3, 30), rng.uniform(-1, 1.4, 30), np.full(30, 10.0)], 1)  # clear of the floor
        ceiling = np.stack([rng.uniform(-3, 3, 60), np.full(60, FLOOR_Y - 2.6), rng.uniform(1, 9, 60)], 1)
        pts = [floor, wall, ceiling] + ([extra[f]] if extra and f in extra else [])
        k = sum(len(p) for p in pts)
        frames.append(np.full(k, f))
        xyz.append(np.concatenate(pts))
        conf.append(np.r_[np.full(130, 2.0), np.full(k - 130, 5.0)])
    xyz, frames, conf = np.concatenate(xyz).astype(np.float32), np.concatenate(frames), np.concatenate(conf)
    n = len(frames)
    return {S.FRAME_IDX: frames.astype(np.int32), S.X_M: xyz[:, 0], S.Y_M: xyz[:, 1], S.Z_M: xyz[:, 2],
            S.RED: np.zeros(n, np.int16), S.GREEN: np.zeros(n, np.int16), S.BLUE: np.zeros(n, np.int16),
            S.CONF: conf.astype(np.float32)}


def write(root, index: int, humans: dict, points: dict) -> str:
    v = synth_video(7, index, SynthSpec(n_frames=N, fps=FPS, points_per_frame=0))
    v["frames"][S.CAM_TO_WORLD] = list(np.tile(np.eye(4, dtype=np.float32).reshape(1, 16), (N, 1)))
    run = RunInfo(model_version="test", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=humans, points=points)
    return v["video_id"]


def quality(root, video_id: str) -> dict[int, dict]:
    with open_catalog(root) as cat:
        rows = cat.query("SELECT * FROM track_quality WHERE video_id = ?", [video_id]).to_pylist()
    return {r[S.TRACK_ID]: r for r in rows}


A, V = 0.01, 1.2  # jitter amplitude (m), walking speed (m/s)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Three videos: a jittered walker (+ a second track with a 5-frame gap, + points on the walker), a standing
    body with one sliding foot, and a body sunk 10 cm into the floor; then the same walker without joints."""
    from storage.fs import open_root

    root = open_root(tmp_path_factory.mktemp("quality") / "ds")
    t = np.arange(N)
    sign = (-1.0) ** t
    walker = template()[None] + (V * t / FPS + A * sign)[:, None, None] * np.array([1.0, 0, 0])
    gap_frames = np.r_[0:20, 25:N]
    on_walker = {f: walker[f, 0] + np.array([[0.05, 0, 0], [0, 0.05, 0], [0, 0, 0.05]]) for f in t}
    ids = {"walker": write(root, 0, humans_of({0: (t, walker), 1: (gap_frames, template(1)[None].repeat(
        len(gap_frames), 0))}), scene_points(on_walker))}
    sliding = template()[None].repeat(N, 0)
    sliding[:, FEET[:3], 0] += (0.5 * t / FPS)[:, None]  # the left foot's three points glide at 0.5 m/s
    ids["sliding"] = write(root, 1, humans_of({0: (t, sliding)}), scene_points())
    ids["sunk"] = write(root, 2, humans_of({0: (t, template()[None].repeat(N, 0) + [0, 0.1, 0])}), scene_points())
    ids["head_only"] = write(root, 3, humans_of({0: (t, walker)}, with_joints=False), scene_points())
    report = score_videos(root)
    assert (report.videos, report.tracks, report.skipped) == (4, 5, 0)
    return root, ids


def test_jittered_walker(scored):
    root, ids = scored
    q = quality(root, ids["walker"])[0]
    assert q[S.HAS_JOINTS] and q[S.N_FRAMES_TRACK] == N and q[S.VISIBLE_FRAC] == 1 and q[S.N_GAPS] == 0
    assert q[S.DURATION_S] == pytest.approx((N - 1) / FPS)
    # third difference of A(-1)^t is 8A per step on every joint; a constant velocity adds nothing
    assert q[S.JITTER_MPS3] == pytest.approx(8 * A * FPS**3, rel=1e-3)
    assert q[S.MAX_JUMP_M] == pytest.approx(V / FPS + 2 * A, rel=1e-3)
    # both feet glide with the body: steps of V/FPS +- 2A alternate, so the mean speed is V
    assert q[S.FOOT_SLIDING_MPS] == pytest.approx(V, rel=1e-3)
    assert q[S.FOOT_CONTACT_FRAC] == 1 and q[S.GROUND_PENETRATION_M] == 0
    assert q[S.POINT_CONF_MEAN] == pytest.approx(5.0) and q[S.N_POINTS_NEAR] == 3 * N  # the points on the walker
    assert q[S.DETECTION_SCORE_MEAN] == pytest.approx(0.8)
    assert q[S.BETAS_NORM_MIN] == pytest.approx(np.hypot(0.5, 2.5)) and q[S.BETAS_ABS_MAX] == pytest.approx(2.5)
    np.testing.assert_allclose(q[S.GROUND_NORMAL_WORLD], [0, -1, 0], atol=1e-5)  # the floor, not the ceiling
    assert q[S.GROUND_OFFSET_M] == pytest.approx(FLOOR_Y, abs=1e-5)


def test_gaps_and_visibility(scored):
    root, ids = scored
    q = quality(root, ids["walker"])[1]
    assert (q[S.N_FRAMES_TRACK], q[S.N_GAPS], q[S.MAX_GAP_FRAMES]) == (N - 5, 1, 5)
    assert q[S.VISIBLE_FRAC] == pytest.approx((N - 5) / N)
    assert q[S.JITTER_MPS3] == pytest.approx(0, abs=1e-2) and q[S.MAX_JUMP_M] == pytest.approx(0, abs=1e-6)


def test_sliding_foot(scored):
    root, ids = scored
    q = quality(root, ids["sliding"])[0]
    assert q[S.FOOT_SLIDING_MPS] == pytest.approx((3 * 0.5 + 3 * 0) / 6, rel=1e-3)  # mean over the six foot points
    assert q[S.JITTER_MPS3] == pytest.approx(0, abs=1e-2) and q[S.GROUND_PENETRATION_M] == 0


def test_body_sunk_into_the_floor(scored):
    root, ids = scored
    q = quality(root, ids["sunk"])[0]
    assert q[S.GROUND_PENETRATION_M] == pytest.approx(0.09, abs=1e-5)  # feet at 1 cm, sunk by 10 cm
    assert q[S.GROUND_PENETRATION_MAX_M] == pytest.approx(0.09, abs=1e-5)
    assert q[S.FOOT_CONTACT_FRAC] == 1 and q[S.FOOT_SLIDING_MPS] == pytest.approx(0, abs=1e-6)


def test_head_only_track(scored):
    root, ids = scored
    q = quality(root, ids["head_only"])[0]
    assert not q[S.HAS_JOINTS]
    assert q[S.JITTER_MPS3] == pytest.approx(8 * A * FPS**3, rel=1e-3)  # the head jitters like every joint
    assert q[S.FOOT_SLIDING_MPS] is None and q[S.GROUND_PENETRATION_M] is None
    assert q[S.GROUND_OFFSET_M] == pytest.approx(FLOOR_Y, abs=1e-5)  # the plane needs no joints


def test_rescoring_appends_and_the_view_keeps_the_latest(scored):
    root, ids = scored
    before = quality(root, ids["sunk"])[0][S.COMPUTED_AT]
    assert score_videos(root).videos == 0  # nothing new
    assert score_video(root, ids["sunk"]).tracks == 1
    with open_catalog(root) as cat:
        assert cat.query("SELECT count(*) FROM track_quality_all WHERE video_id = ?", [ids["sunk"]])[0][0].as_py() == 2
    assert quality(root, ids["sunk"])[0][S.COMPUTED_AT] > before


def test_recipes_answer_on_scored_data(scored):
    root, _ = scored
    with open_catalog(root) as cat:
        for name in NEEDS:
            assert cat.query(RECIPES[name][1]).num_rows > 0, name


def test_ground_plane_tilted_floor_and_zup_frame():
    rng = np.random.default_rng(3)
    tilt = np.radians(12)
    up = np.array([0, -np.cos(tilt), np.sin(tilt)])  # the camera pitched by 12 degrees
    u, w = np.cross(up, [1, 0, 0]), np.array([1.0, 0, 0])
    u /= np.linalg.norm(u)
    floor = 1.4 * -up + rng.uniform(-4, 4, (3000, 1)) * w + rng.uniform(-4, 4, (3000, 1)) * u
    floor += rng.normal(0, 0.005, floor.shape)
    clutter = rng.uniform(-4, 4, (1500, 3))
    plane = fit_ground_plane(np.concatenate([floor, clutter]), heads=np.array([[0.0, -0.2, 4.0]]))
    assert isinstance(plane, GroundPlane)
    np.testing.assert_allclose(plane.normal, up, atol=2e-3)
    assert plane.offset_m == pytest.approx(1.4, abs=2e-3)
    T = zup_transform(plane)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1)
    assert np.abs(apply(T, floor)[:, 2]).max() < 0.03  # the floor is z = 0 (noise 5 mm)
    np.testing.assert_allclose(apply(T, [0, 0, 0]), [0, 0, 1.4], atol=2e-3)  # the first camera, 1.4 m up
    assert apply(T, [0, 0, 5.0])[1] > 4  # the camera looks along +y
    assert fit_ground_plane(floor[:10]) is None  # too few points


def test_the_contract_states_the_thresholds_the_metrics_use():
    """The thresholds live with the algorithm; `human3r schema` (the column docs) must say the values in use."""
    docs = {c.name: c.doc for c in S.TRACK_QUALITY.columns}
    assert f"within {metrics.NEAR_JOINT_M:g} m of one of its {metrics.BODY_JOINTS} body joints" in docs[
        S.POINT_CONF_MEAN]
    assert f"within {metrics.NEAR_HEAD_M:g} m of the head joint" in docs[S.POINT_CONF_MEAN]
    assert f"over the {metrics.BODY_JOINTS} body joints" in docs[S.JITTER_MPS3]
    for name in (S.FOOT_SLIDING_MPS, S.FOOT_CONTACT_FRAC):
        assert f"within {metrics.CONTACT_M * 100:g} cm of the ground" in docs[name]
    assert f"joints {metrics.FOOT_JOINTS[0]}-{metrics.FOOT_JOINTS[-1]}" in docs[S.FOOT_SLIDING_MPS]
    assert f"within {ground_fit.GROUND_INLIER_M * 100:g} cm of the ground plane" in docs[S.GROUND_INLIER_FRAC]
    assert (f"within {ground_fit.GROUND_MAX_TILT_DEG:g} deg of the first camera's up axis" in S.TRACK_QUALITY.doc
            and f"{ground_fit.GROUND_INLIER_M * 100:g} cm inliers" in S.TRACK_QUALITY.doc)
