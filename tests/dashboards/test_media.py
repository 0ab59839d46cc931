"""Source frames decoded on demand are the frames the pipeline saw (same index, same rotation); projection math."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboards import media
from dashboards.geometry import project_world
from storage.errors import MediaError
from storage.geometry import camera_centres
from tasks.ops.sample import make_sample_video
from tasks.reconstruction.decode import FrameReader


def _decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("rotation", [0, 90])
def test_frame_at_a_timestamp_is_the_pipelines_frame(tmp_path, rotation):
    path = make_sample_video(tmp_path / "v.mp4", n_frames=30, width=160, height=96, fps=12, rotation=rotation)
    with FrameReader(path) as reader:
        frames = list(reader)
    assert frames[0].rgb.shape[:2] == ((160, 96) if rotation else (96, 160))
    for k in (0, 13, 29):  # first, a frame between keyframes (g=12), last
        got = _decode_jpeg(media.frame_jpeg(path, frames[k].timestamp_s))
        assert got.shape == frames[k].rgb.shape
        errors = [np.abs(got - f.rgb).mean() for f in frames]
        assert int(np.argmin(errors)) == k and errors[k] < 6, (k, errors[k])


def test_unreadable_sources_say_why(tmp_path):
    with pytest.raises(MediaError, match="no such file: .*gone.mp4 .moved, deleted, or a path on another machine"):
        media.frame_jpeg(str(tmp_path / "gone.mp4"), 0.0)
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    with pytest.raises(MediaError, match="not a readable video"):
        media.frame_jpeg(str(text), 0.0)
    with pytest.raises(MediaError, match="unsupported location 'synthetic://0/1.mp4'"):
        media.check_source("synthetic://0/1.mp4")


def test_project_inverts_the_pinhole_model():
    rng = np.random.default_rng(0)
    c2w = np.eye(4)
    angle = 0.4
    c2w[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    c2w[:3, 3] = [1.0, -0.5, 2.0]
    fx, fy, cx, cy = 500.0, 510.0, 320.0, 180.0
    uv = rng.uniform([0, 0], [640, 360], (20, 2))
    depth = rng.uniform(1, 10, 20)
    cam = np.stack([(uv[:, 0] - cx) / fx * depth, (uv[:, 1] - cy) / fy * depth, depth], -1)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    got, ok = project_world(world, c2w.ravel(), fx, fy, cx, cy)
    np.testing.assert_allclose(got, uv, atol=1e-6)
    assert ok.all()
    behind = c2w[:3, 3] - c2w[:3, 2]  # one metre behind the camera
    assert not project_world(behind, c2w.ravel(), fx, fy, cx, cy)[1]
    np.testing.assert_allclose(camera_centres([c2w.ravel()]), [c2w[:3, 3]])
