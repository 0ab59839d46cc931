"""The demo path for real: a generated video reconstructed with the untrained tiny network and the SMPL-X stand-in,
then `human3r labels score` / `labels build` with JPEG crops and full frames cut from the source with PyAV."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from storage.fs import open_root
from tasks.identity import RunIdentity
from tasks.options import ConvertOptions, ReconstructOptions
from tasks.reconstruction.video import reconstruct_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory, sample_video, tiny_model, body_model):
    root = open_root(tmp_path_factory.mktemp("demo-labels") / "ds")
    options = ReconstructOptions(convert=ConvertOptions(points_per_frame=300, conf_threshold=1.0))
    identity = RunIdentity.of_network(tiny_model, options, body_model)
    summary = reconstruct_video(sample_video, root, tiny_model, identity, body_model=body_model)
    assert summary.status == "ok" and summary.human_rows > 0
    return root


def test_cli_score_then_build_with_crops_and_frames(demo_root, human3r_cli, tmp_path):
    from PIL import Image

    root = str(demo_root.base)
    assert "scored" in human3r_cli("labels", "score", "--root", root).stdout
    assert "0 videos (1 already scored)" in human3r_cli("labels", "score", "--root", root).stdout
    out = tmp_path / "crops"
    result = human3r_cli("labels", "build", "--root", root, "--out", out, "--min-frames", "1", "--images", "crops",
                         "--train", "1", "--val", "0", "--test", "0")
    assert "clips" in result.stdout
    info = json.loads((out / "build.json").read_text())
    assert info["counts"]["clips"] > 0 and info["images"]["errors"] is None
    rows = pq.read_table(out / "labels" / "train.parquet").to_pylist()
    assert len(rows) == info["counts"]["frames"]
    cropped = [r for r in rows if r["image_path"]]
    assert cropped and info["images"]["written"] == len(cropped)
    for r in cropped[:5]:
        x0, y0, x1, y1 = r["crop_xyxy_src_px"]
        with Image.open(out / r["image_path"]) as im:
            assert im.size == (x1 - x0, y1 - y0) and im.format == "JPEG"
    assert all(np.asarray(r["crop_xyxy_src_px"]).min() >= 0 for r in cropped)

    frames = tmp_path / "frames"
    human3r_cli("labels", "build", "--root", root, "--out", frames, "--min-frames", "1", "--images", "frames",
                "--no-score", "--train", "1", "--val", "0", "--test", "0")
    rows = pq.read_table(frames / "labels" / "train.parquet").to_pylist()
    assert all(r["image_path"] == f"images/{r['video_id']}/{r['frame_idx']:06d}.jpg" for r in rows)
    with Image.open(frames / rows[0]["image_path"]) as im:
        assert im.size == (rows[0]["image_width_px"], rows[0]["image_height_px"]) == (192, 108)
    card = (frames / "README.md").read_text()
    assert "untrained-tiny-seed0" in card and "Warning" in card


def test_cli_errors_are_one_line(demo_root, human3r_cli, tmp_path):
    root = str(demo_root.base)
    bad_sql = human3r_cli("labels", "build", "--root", root, "--out", tmp_path / "x", "--where", "jitter <", code=2)
    assert bad_sql.stderr.count("\n") == 1 and "error:" in bad_sql.stderr
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.building-*"))
    bad_split = human3r_cli("labels", "build", "--root", root, "--out", tmp_path / "y", "--train", "0.5", code=2)
    assert "train + val + test must be 1" in bad_split.stderr
    drop = human3r_cli("labels", "build", "--root", root, "--out", tmp_path / "y", "--where",
                       "true); DELETE FROM runs; SELECT (1", code=2)
    assert "only read queries" in drop.stderr
