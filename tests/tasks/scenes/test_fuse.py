"""Scene fusion (tasks.scenes.fuse, tasks.scenes.people): a scene of known geometry comes back within one voxel, the
streamed voxel grid equals an in-memory numpy reference, people are left out, the scenes table records it, re-runs are
free."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, write_video
from tasks.scenes.fuse import FuseOptions, VoxelGrid, fuse_video, reduce_batch

VOXEL = 0.05
FLOOR = (np.array([-1.0, 1.013, 1.0]), np.array([1.0, 1.013, 3.0]))  # a horizontal plane (y down: the floor)
BOX = (np.array([-0.31, 0.413, 1.69]), np.array([0.29, 1.013, 2.29]))  # a box standing on it
PERSON_XZ = np.array([0.7, 2.5])  # someone standing on the floor, head at y = -0.6


def surface_distance(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance from points (N, 3) to the surface of an axis-aligned box (a plane when one extent is 0)."""
    outside = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0), axis=1)
    inside = np.minimum(p - lo, hi - p).min(1)
    return np.where(outside > 0, outside, inside)


def scene_distance(p: np.ndarray) -> np.ndarray:
    return np.minimum(surface_distance(p, *FLOOR), surface_distance(p, *BOX))


def sample_scene(rng, n: int, noise: float = 0.003) -> np.ndarray:
    """n points on the floor and the box's 5 visible faces, area-weighted, with Gaussian noise."""
    (fl, fh), (bl, bh) = FLOOR, BOX
    size = bh - bl
    faces = [  # (origin, u, v) of each rectangle
        (fl, np.array([fh[0] - fl[0], 0, 0]), np.array([0, 0, fh[2] - fl[2]])),
        (bl, np.array([size[0], 0, 0]), np.array([0, 0, size[2]])),  # top (y = bl[1], up in y-down)
        (bl, np.array([size[0], 0, 0]), np.array([0, size[1], 0])),  # front
        (bl + [0, 0, size[2]], np.array([size[0], 0, 0]), np.array([0, size[1], 0])),  # back
        (bl, np.array([0, 0, size[2]]), np.array([0, size[1], 0])),  # left
        (bl + [size[0], 0, 0], np.array([0, 0, size[2]]), np.array([0, size[1], 0])),  # right
    ]
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v in faces])
    which = rng.choice(len(faces), n, p=areas / areas.sum())
    uv = rng.random((n, 2))
    pts = np.stack([faces[k][0] + a * faces[k][1] + b * faces[k][2] for k, (a, b) in zip(which, uv)])
    return (pts + rng.normal(0, noise, pts.shape)).astype(np.float32)


def person_joints(n_frames: int) -> np.ndarray:
    """(F, 127, 3) joints of a person standing still: the 55 skeleton joints spread along a vertical line from the
    head (y = -0.6) to the floor (the chain pelvis, spine, ..., right hand links them all), then the extra joints."""
    y = np.concatenate([np.linspace(-0.6, FLOOR[0][1], 55), np.full(72, 0.2)])
    joints = np.stack([np.full(127, PERSON_XZ[0]), y, np.full(127, PERSON_XZ[1])], 1)
    return np.repeat(joints[None].astype(np.float32), n_frames, 0)


def write_scene_video(root, *, n_frames=8, per_frame=1500, with_person=True, seed=0, index=0) -> str:
    """A video of the known scene (+ low-confidence junk, a few isolated outliers, a person's points)."""
    rng = np.random.default_rng(seed)
    v = synth_video(seed, index, SynthSpec(n_frames=n_frames, max_people=1, points_per_frame=1))
    frames, pts, conf = [], [], []
    for f in range(n_frames):
        good = sample_scene(rng, per_frame)
        junk = rng.uniform([-2, -1, 0], [2, 2, 4], (100, 3)).astype(np.float32)  # low confidence: filtered
        far = rng.uniform([-2, -1, 0], [2, 2, 4], (20, 3)).astype(np.float32)  # confident but isolated: outliers
        far = far[scene_distance(far) > 0.3][:2]
        body = np.zeros((0, 3), np.float32)
        if with_person:
            a, h = rng.uniform(0, 2 * np.pi, 300), rng.uniform(-0.6, 0.95, 300)
            r = rng.uniform(0, 0.12, 300)
            body = np.stack([PERSON_XZ[0] + r * np.cos(a), h, PERSON_XZ[1] + r * np.sin(a)], 1).astype(np.float32)
        for block, c in ((good, 5.0), (junk, 1.2), (far, 5.0), (body, 5.0)):
            pts.append(block)
            conf.append(np.full(len(block), c, np.float32))
            frames.append(np.full(len(block), f, np.int32))
    xyz, n = np.concatenate(pts), sum(len(p) for p in pts)
    points = {S.FRAME_IDX: np.concatenate(frames), S.X_M: xyz[:, 0], S.Y_M: xyz[:, 1], S.Z_M: xyz[:, 2],
              S.RED: np.full(n, 100, np.int16), S.GREEN: np.full(n, 150, np.int16),
              S.BLUE: rng.integers(0, 256, n).astype(np.int16), S.CONF: np.concatenate(conf)}
    humans = {}
    if with_person:
        joints = person_joints(n_frames)
        zeros = {c: [np.zeros(d, np.float32)] * n_frames for c, d in (
            (S.GLOBAL_ORIENT_CAM, 3), (S.BODY_POSE, 63), (S.LEFT_HAND_POSE, 45), (S.RIGHT_HAND_POSE, 45),
            (S.JAW_POSE, 3), (S.BETAS, 10), (S.EXPRESSION, 10), (S.GLOBAL_ORIENT_WORLD, 3))}
        humans = {S.FRAME_IDX: np.arange(n_frames, dtype=np.int32), S.TIMESTAMP_S: np.arange(n_frames) / 30.0,
                  S.TRACK_ID: np.zeros(n_frames, np.int32), S.DETECTION_SCORE: np.ones(n_frames, np.float32),
                  **zeros, S.HEAD_CAM_M: list(joints[:, 15]), S.HEAD_WORLD_M: list(joints[:, 15]),
                  S.TRANSL_WORLD_M: list(joints[:, 0]), S.JOINTS_WORLD_M: [list(j) for j in joints]}
    else:
        humans = {k: [] for k in S.HUMANS.column_names if k not in (S.VIDEO_ID, S.RUN_ID)}
    run = RunInfo(model_version="test", preset="tiny", params={"seed": seed}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=humans, points=points)
    return v["video_id"]


def read_ply(path):
    import open3d as o3d

    cloud = o3d.t.io.read_point_cloud(str(path))
    return cloud.point.positions.numpy(), cloud


def test_known_scene_comes_back_within_one_voxel(root):
    vid = write_scene_video(root, with_person=False)
    s = fuse_video(root, vid, FuseOptions(voxel_size_m=VOXEL, conf_min=2.0))
    assert s.status == "fused" and s.scene_path.startswith(f"_exports/{vid}/")
    xyz, cloud = read_ply(root.local_path(s.scene_path))
    assert len(xyz) == s.n_points_out and {"colors", "confidence", "hits"} <= set(cloud.point)
    # accurate: every fused point lies within one voxel of the floor or the box (junk filtered, outliers removed)
    d = scene_distance(xyz)
    assert d.max() < VOXEL and np.median(d) < 0.01, (d.max(), np.median(d))
    # complete: every part of the true surfaces has a fused point within one voxel
    truth = sample_scene(np.random.default_rng(99), 3000, noise=0.0)
    nearest = np.sqrt(((truth[:, None, :] - xyz[None, ::1]) ** 2).sum(2)).min(1)
    assert nearest.max() < VOXEL, nearest.max()
    with open_catalog(root) as cat:
        row = cat.query("SELECT * FROM scenes").to_pylist()
    assert len(row) == 1 and row[0][S.N_POINTS_OUT] == len(xyz) and row[0][S.N_POINTS_IN] == 8 * 1602
    assert row[0][S.N_POINTS_FUSED] == 8 * 1502 and row[0][S.PEOPLE_FROM] is None  # no people in this run


def test_streamed_grid_equals_numpy_voxel_means():
    rng = np.random.default_rng(1)
    xyz = (rng.normal(0, 2, (20_000, 3))).astype(np.float32)
    rgb = rng.integers(0, 256, (20_000, 3)).astype(np.int16)
    conf = rng.uniform(1, 9, 20_000).astype(np.float32)
    grid = VoxelGrid(0.25)
    for s in range(0, len(xyz), 700):  # many batches: the Open3D hash map grows (rehashes) along the way
        grid.add(*xyz[s:s + 700].T, *rgb[s:s + 700].T, conf[s:s + 700])
    mean, colour, c, hits = grid.means()
    keys = np.floor(xyz / np.float32(0.25)).astype(np.int64)
    uniq, inv, count = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    ref = np.stack([np.bincount(inv, col) for col in (*xyz.T, *rgb.T, conf)], 1) / count[:, None]
    assert len(mean) == len(uniq) == len(grid) and (hits == count).all()  # both in voxel-coordinate order
    np.testing.assert_allclose(mean, ref[:, :3], atol=1e-5)
    np.testing.assert_array_equal(colour, np.clip(np.rint(ref[:, 3:6]), 0, 255))
    np.testing.assert_allclose(c, ref[:, 6], rtol=1e-6)


def test_sparse_batches_take_the_sort_path():
    keys = np.array([[0, 0, 0], [500_000, -3, 7], [0, 0, 0], [-400_000, 9, 9]], np.int32)
    unique, inverse, hits = reduce_batch(tuple(keys.T))
    assert (unique[inverse] == keys).all() and sorted(hits) == [1, 1, 2]


def test_people_are_left_out_and_kept_on_request(root):
    vid = write_scene_video(root, with_person=True)
    dropped = fuse_video(root, vid, FuseOptions(voxel_size_m=VOXEL))
    kept = fuse_video(root, vid, FuseOptions(voxel_size_m=VOXEL, drop_people=False), out=root.local_path("k.ply"))
    axis = lambda p: np.linalg.norm(p[:, [0, 2]] - PERSON_XZ, axis=1)  # noqa: E731 - distance to the body's axis
    on_body = lambda p: (axis(p) < 0.12) & (p[:, 1] < 0.8)  # noqa: E731
    with_people, _ = read_ply(kept.scene_path)
    without, _ = read_ply(root.local_path(dropped.scene_path))
    assert on_body(with_people).sum() > 20 and on_body(without).sum() == 0
    away = lambda p: (axis(p) > 0.5) & (np.abs(p[:, 1] - FLOOR[0][1]) < 0.02)  # noqa: E731 - the floor elsewhere
    assert abs(away(without).sum() - away(with_people).sum()) <= 2
    assert dropped.n_points_fused < kept.n_points_fused
    with open_catalog(root) as cat:  # the live view keeps the latest fusion of the video; both rows are stored
        assert cat.query("SELECT people_from FROM scenes").column(0).to_pylist() == [None]
        assert sorted(cat.query("SELECT coalesce(people_from, '-') FROM scenes_all").column(0).to_pylist()) == [
            "-", "joints"]


def test_people_mask_uses_the_posed_meshes_with_a_body_model(root, body_model):
    from tasks.scenes.bodies import live_run, pose_world, read_people
    from tasks.scenes.people import PeopleMask

    vid = write_scene_video(root, n_frames=2, per_frame=10)
    with open_catalog(root) as cat:
        people = read_people(cat, live_run(cat, vid))
    mask = PeopleMask(people, 0.05, body_model)
    verts = pose_world(body_model, people, np.array([1]))[0][0]
    near = verts[::50] + 0.02  # 2 cm off the surface
    far = verts[::50] + [3.0, 0, 0]
    pts = np.concatenate([near, far])
    keep = mask(np.ones(len(pts), np.int32), *pts.T)
    assert mask.source == "mesh" and not keep[:len(near)].any() and keep[len(near):].all()
    assert mask(np.full(len(pts), 7, np.int32), *pts.T).all()  # a frame without people keeps everything


def test_rerun_is_free_and_force_redoes(root):
    vid = write_scene_video(root, n_frames=3, per_frame=300, with_person=False)
    first = fuse_video(root, vid, FuseOptions(outlier_neighbors=0))
    again = fuse_video(root, vid, FuseOptions(outlier_neighbors=0))
    forced = fuse_video(root, vid, FuseOptions(outlier_neighbors=0), force=True)
    assert (first.status, again.status, forced.status) == ("fused", "skipped", "fused")
    assert again.n_points_out == first.n_points_out == forced.n_points_out
    with open_catalog(root) as cat:
        assert cat.query("SELECT count(*) FROM scenes_all").column(0)[0].as_py() == 2


def test_mesh_and_cli(root, human3r_cli, tmp_path):
    vid = write_scene_video(root, n_frames=4, per_frame=2500, with_person=False)
    out = tmp_path / "scene.ply"
    result = human3r_cli("fuse", "--root", root.base, "--video", vid, "--out", out, "--mesh", "--poisson-depth", 6,
                         "--voxel-size", 0.04)
    assert f"): {out} + mesh" in result.stdout and out.exists()
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "scene-mesh.ply"))
    assert len(mesh.triangles) > 100
    assert np.median(scene_distance(np.asarray(mesh.vertices, np.float32))) < 0.02  # Poisson: on the surfaces
    bad = human3r_cli("fuse", "--root", root.base, "--video", "0123456789abcdef", code=2)
    assert "not in the dataset" in bad.stderr and "human3r query" in bad.stderr
    bad = human3r_cli("fuse", "--root", root.base, "--video", vid, "--voxel-size", 0, code=2)
    assert "--voxel-size" in bad.stderr
    bad = human3r_cli("fuse", "--root", root.base, "--video", vid, "--conf-min", 100, code=2)
    assert "nothing to fuse" in bad.stderr and "lower --conf-min" in bad.stderr


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_tiny_batches(n):
    grid = VoxelGrid(0.1)
    grid.add(*np.ones((7, n), np.float32))
    assert len(grid) == n and grid.n_points == n


def test_an_error_downstream_stops_the_pipeline_threads():
    import threading

    from tasks.scenes.fuse import _prefetched

    closed = []

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.append(True)

    stages = _prefetched(_prefetched(source(), lambda x: x), lambda x: x)
    with pytest.raises(RuntimeError):
        for i in stages:
            if i == 3:
                raise RuntimeError("the voxel grid failed")
    stages.close()
    assert closed == [True] and not [t for t in threading.enumerate() if t.name == "fuse-stage"]
