"""Network outputs -> rows: the dataset's world anchor, segments chained across resets, points and heads in that
frame, intrinsics in source pixels, and the point subsampling."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from human3r.geometry import WorkingGeometry
from human3r.outputs import FrameOutput, Humans
from human3r.stream import StreamFrame, run_stream
from storage import schema as S
from tasks.identity import RunIdentity
from tasks.options import ConvertOptions
from tasks.reconstruction.convert import frame_rows, world_anchor

H, W = 4, 6
pytestmark = pytest.mark.filterwarnings("ignore:no SMPL-X body model given")
GEOMETRY = WorkingGeometry.for_source(W * 10, H * 10, 64)  # any geometry: only K's mapping depends on it


def _pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = roma.rotvec_to_rotmat(torch.randn(3, generator=g, dtype=torch.float64))
    c2w[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
    return c2w


def _transform(c2w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ c2w[:3, :3].T + c2w[:3, 3]


def _frame(raw_c2w: torch.Tensor, chained_c2w: torch.Tensor, cam_points: torch.Tensor, head_cam: torch.Tensor
           ) -> StreamFrame:
    """A view whose segment-world pointmap is `raw_c2w` applied to camera-frame points, with one person."""
    world = _transform(raw_c2w, cam_points).float().reshape(1, H, W, 3)
    humans = Humans.empty(8)
    humans.transl = head_cam.float().reshape(1, 1, 3)
    humans.rotmat = torch.eye(3).expand(1, 1, 53, 3, 3).clone()
    humans.betas, humans.expression = torch.zeros(1, 1, 10), torch.zeros(1, 1, 10)
    humans.score, humans.track_id = torch.full((1, 1), 0.9), torch.zeros(1, 1, dtype=torch.long)
    humans.loc = torch.zeros(1, 1, 2)
    out = FrameOutput(pts3d_self=cam_points.float().reshape(1, H, W, 3), conf_self=torch.full((1, H, W), 5.0),
                      pts3d_world=world, conf_world=torch.full((1, H, W), 5.0), rgb=None,
                      camera_pose=torch.zeros(1, 7), c2w=raw_c2w.float()[None], human_mask=None,
                      det_scores=torch.zeros(1, 1, 1, 1), humans=humans)
    k = torch.tensor([[7.0, 0, W // 2], [0, 7.0, H // 2], [0, 0, 1]])
    return StreamFrame(0, 0, out, chained_c2w.float(), k, False, False, None)


def _rows(sf: StreamFrame, anchor: torch.Tensor, points: int = H * W, conf_threshold: float = 1.0,
          world_points: str = "pose") -> dict:
    image = torch.zeros(1, 3, H, W)
    options = ConvertOptions(points_per_frame=points, conf_threshold=conf_threshold, world_points=world_points)
    return frame_rows(sf, frame_idx=0, timestamp_s=0.0, image=image, geometry=GEOMETRY, body_model=None,
                      options=options, anchor=anchor)


CAM_POINTS = torch.randn(H * W, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + torch.tensor(
    [0.0, 0.0, 4.0], dtype=torch.float64)
HEAD_CAM = torch.tensor([0.2, -0.3, 3.0], dtype=torch.float64)


WORLD_POINTS = pytest.mark.parametrize("world_points", ["pose", "head"])


@WORLD_POINTS
def test_first_frame_is_the_world_frame(world_points):
    first = _pose(0)
    sf = _frame(first, first, CAM_POINTS, HEAD_CAM)
    anchor = world_anchor(sf)
    torch.testing.assert_close(anchor, torch.linalg.inv(first.float().double()), atol=1e-6, rtol=0)
    rows = _rows(sf, anchor, world_points=world_points)
    np.testing.assert_allclose(rows[S.FRAMES.name][S.CAM_TO_WORLD].reshape(4, 4), np.eye(4), atol=1e-5)
    points = rows[S.POINTS.name]
    xyz = np.stack([points[S.X_M], points[S.Y_M], points[S.Z_M]], 1)
    np.testing.assert_allclose(xyz, CAM_POINTS.numpy(), atol=1e-4)  # world = the first camera exactly
    np.testing.assert_allclose(rows[S.HUMANS.name][S.HEAD_WORLD_M][0], HEAD_CAM.numpy(), atol=1e-5)


@WORLD_POINTS
def test_a_later_segment_is_chained_into_the_first_frame(world_points):
    """After a reset the network predicts poses relative to the new segment's first frame (raw); the stream chains
    them (`sf.c2w`). Points (camera-frame ones moved by the pose, or the head's in the segment's world) and heads in
    the camera land where the chained camera puts them in the dataset frame."""
    first, reset_raw, raw = _pose(0), _pose(1), _pose(2)
    anchor = world_anchor(_frame(first, first, CAM_POINTS, HEAD_CAM))
    chained = reset_raw @ raw  # what the stream yields: raw pose of the reset frame @ raw pose in the new segment
    rows = _rows(_frame(raw, chained, CAM_POINTS, HEAD_CAM), anchor, world_points=world_points)
    expected_c2w = anchor @ chained
    np.testing.assert_allclose(rows[S.FRAMES.name][S.CAM_TO_WORLD].reshape(4, 4), expected_c2w.numpy(), atol=1e-5)
    points = rows[S.POINTS.name]
    xyz = np.stack([points[S.X_M], points[S.Y_M], points[S.Z_M]], 1)
    np.testing.assert_allclose(xyz, _transform(expected_c2w, CAM_POINTS).numpy(), atol=1e-4)
    head = _transform(expected_c2w, HEAD_CAM[None])[0].numpy()
    np.testing.assert_allclose(rows[S.HUMANS.name][S.HEAD_WORLD_M][0], head, atol=1e-5)


def test_intrinsics_are_stored_in_both_pixel_frames():
    first = _pose(0)
    sf = _frame(first, first, CAM_POINTS, HEAD_CAM)
    frames = _rows(sf, world_anchor(sf))[S.FRAMES.name]
    sx, sy = GEOMETRY.scale_xy
    left, top = GEOMETRY.crop_box[:2]
    assert frames[S.FX_WORK_PX] == [7.0] and frames[S.CX_WORK_PX] == [W // 2]
    assert frames[S.FX_SRC_PX][0] == pytest.approx(7.0 / sx)
    assert frames[S.CX_SRC_PX][0] == pytest.approx((W // 2 + left + 0.5) / sx - 0.5)
    assert frames[S.CY_SRC_PX][0] == pytest.approx((H // 2 + top + 0.5) / sy - 0.5)


@WORLD_POINTS
def test_points_are_a_deterministic_subsample_of_confident_pixels(world_points):
    first = _pose(0)
    sf = _frame(first, first, CAM_POINTS, HEAD_CAM)
    conf = sf.output.conf_self if world_points == "pose" else sf.output.conf_world
    conf[0, 0, :] = 1.2  # the first row is not confident (by the confidence of the pointmap the rule reads)
    anchor = world_anchor(sf)
    a, b = (_rows(sf, anchor, points=5, conf_threshold=1.5, world_points=world_points)[S.POINTS.name]
            for _ in range(2))
    assert len(a[S.X_M]) == 5 and np.array_equal(a[S.X_M], b[S.X_M])
    confident = CAM_POINTS[W:, 0].numpy()  # world = first camera, so x stays the camera-frame x
    assert all(np.abs(confident - x).min() < 1e-4 for x in a[S.X_M]) and (a[S.CONF] >= 1.5).all()
    assert _rows(sf, anchor, world_points=world_points)[S.FRAMES.name][S.CONF_MEAN][0] < 5.0  # the same confidence


@pytest.mark.usefixtures("one_torch_thread")
def test_stored_poses_follow_the_stream_across_resets(tiny_model, sample_video, tmp_path):
    """End to end with resets: each stored cam_to_world is the first frame's inverse times the product of the raw
    poses of the earlier reset frames times the frame's own raw pose."""
    from storage.catalog import open_catalog
    from storage.fs import open_root
    from tasks.options import DecodeOptions, ReconstructOptions
    from tasks.reconstruction.decode import FrameReader
    from tasks.reconstruction.video import reconstruct_video

    options = ReconstructOptions(decode=DecodeOptions(max_frames=7), reset_interval=3)
    root = open_root(tmp_path / "ds")
    identity = RunIdentity.of_network(tiny_model, options)
    assert reconstruct_video(sample_video, root, tiny_model, identity).status == "ok"
    with open_catalog(root) as cat:
        stored = [np.array(r[S.CAM_TO_WORLD]).reshape(4, 4) for r in
                  cat.query("SELECT cam_to_world FROM frames ORDER BY frame_idx").to_pylist()]
    with FrameReader(sample_video, options.decode) as reader:
        frames = [f.rgb for f in reader]
    views = [v for v in run_stream(tiny_model, frames, reset_interval=3) if not v.duplicate]
    raw = [v.output.c2w[0].double() for v in views]
    base, expected = torch.eye(4, dtype=torch.float64), []
    for i, pose in enumerate(raw):
        expected.append(base @ pose)
        if (i + 1) % 3 == 0:
            base = base @ pose
    first_inv = torch.linalg.inv(expected[0])
    assert len(stored) == 7
    for got, want in zip(stored, expected, strict=True):
        np.testing.assert_allclose(got, (first_inv @ want).numpy(), atol=2e-4)
    assert not np.allclose(stored[3], stored[2], atol=1e-3)  # the poses do move (a real check, not identities)


@pytest.mark.usefixtures("one_torch_thread")
@WORLD_POINTS
def test_the_world_view_head_runs_only_for_the_head_rule(tiny_model, sample_video, tmp_path, world_points):
    """The default ('pose') stores camera-frame points moved by the stored camera, and the world-view branch
    (final_transform + dpt_cross) never runs; 'head' runs it and stores its points."""
    from storage.catalog import open_catalog
    from storage.fs import open_root
    from tasks.options import DecodeOptions, ReconstructOptions
    from tasks.reconstruction.video import reconstruct_video

    calls = []
    hook = tiny_model.downstream_head.dpt_cross.register_forward_hook(lambda *a: calls.append(1))
    try:
        options = ReconstructOptions(decode=DecodeOptions(max_frames=3), convert={"world_points": world_points})
        root = open_root(tmp_path / "ds")
        identity = RunIdentity.of_network(tiny_model, options)
        assert reconstruct_video(sample_video, root, tiny_model, identity).status == "ok"
    finally:
        hook.remove()
    assert len(calls) == (3 if world_points == "head" else 0)
    with open_catalog(root) as cat:
        n = cat.query("SELECT count(*) AS n FROM points").to_pylist()[0]["n"]
    assert n > 0
