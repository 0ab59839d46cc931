"""Video file -> `human3r reconstruct` -> DuckDB: the rows a user gets, re-runs, resets, preprocessing parity."""

from __future__ import annotations

import json
import pathlib
import tempfile

import numpy as np
import pytest
import torch

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from tasks.identity import RunIdentity
from tasks.options import DecodeOptions, ReconstructOptions
from tasks.reconstruction.decode import FrameReader
from tasks.reconstruction.video import reconstruct_video

PARITY = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "parity"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def q(root, sql):
    with open_catalog(root) as cat:
        return cat.query(sql).to_pylist()


def reconstruct(video, root, model, options=ReconstructOptions(), body_model=None, **kw):
    """`reconstruct_video` with the identity of `model`, `options` and `body_model`."""
    identity = RunIdentity.of_network(model, options, body_model)
    return reconstruct_video(video, root, model, identity, body_model=body_model, **kw)


ARGS = ("--checkpoint", "untrained:tiny", "--stride", "2", "--points-per-frame", "100", "--conf-threshold", "1.0")


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory, sample_video, human3r_cli):
    root = tmp_path_factory.mktemp("e2e") / "ds"
    result = human3r_cli("reconstruct", sample_video, "--out", root, *ARGS)
    assert "UNTRAINED" in result.stderr and "1 reconstructed" in result.stdout
    return root


def test_end_to_end_rows(reconstructed, sample_video):
    with FrameReader(sample_video, DecodeOptions(stride=2)) as reader:
        expected = [(f.index, f.timestamp_s) for f in reader]
    frames = q(reconstructed, "SELECT * FROM frames ORDER BY frame_idx")
    assert [(f[S.FRAME_IDX], f[S.TIMESTAMP_S]) for f in frames] == [(i, pytest.approx(t)) for i, t in expected]
    for f in frames:
        c2w = np.array(f[S.CAM_TO_WORLD]).reshape(4, 4)
        np.testing.assert_allclose(c2w[3], [0, 0, 0, 1])
        np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-4)  # a rotation
        assert (f[S.WORK_WIDTH_PX], f[S.WORK_HEIGHT_PX]) == (128, 64)  # 192x108 -> long side 128, crop to /16
    np.testing.assert_allclose(np.array(frames[0][S.CAM_TO_WORLD]).reshape(4, 4), np.eye(4), atol=1e-5)

    humans = q(reconstructed, "SELECT frame_idx, track_id, head_world_m, body_pose FROM humans")
    assert humans and all(h[S.TRACK_ID] is not None and h[S.TRACK_ID] >= 0 for h in humans)
    per_frame = q(reconstructed, "SELECT f.frame_idx, f.n_humans, count(h.track_id) AS n FROM frames f LEFT JOIN "
                                 "humans h USING (video_id, frame_idx) GROUP BY ALL")
    assert all(r["n_humans"] == r["n"] for r in per_frame)
    points = q(reconstructed, "SELECT frame_idx, count(*) AS n, min(conf) AS c FROM points GROUP BY 1")
    assert len(points) == len(frames) and all(p["n"] == 100 and p["c"] >= 1.0 for p in points)

    run = q(reconstructed, "SELECT * FROM runs")[0]
    assert run[S.MODEL_VERSION] == "untrained-tiny-seed0" and run[S.CHECKPOINT_SHA256] is None
    assert json.loads(run[S.PARAMS_JSON])["decode"]["stride"] == 2
    video = q(reconstructed, "SELECT * FROM videos")[0]
    assert (video[S.WIDTH_PX], video[S.HEIGHT_PX], video[S.FRAME_COUNT]) == (192, 108, 24)


def test_rerun_is_skipped_and_force_replaces(reconstructed, sample_video, human3r_cli):
    args = ("reconstruct", sample_video, "--out", reconstructed, *ARGS)
    before = q(reconstructed, "SELECT run_id FROM runs")
    result = human3r_cli(*args)
    assert "skipped" in result.stderr and "0 reconstructed, 1 skipped" in result.stdout
    assert q(reconstructed, "SELECT run_id FROM runs") == before
    human3r_cli(*args, "--force")
    after = q(reconstructed, "SELECT run_id, n_frames FROM runs")
    assert len(after) == 1 and after[0]["run_id"] != before[0]["run_id"]
    assert q(reconstructed, "SELECT count(*) AS n FROM frames")[0]["n"] == after[0]["n_frames"] == 12


def test_force_rerun_of_one_of_two_videos_leaves_plain_readers_the_live_rows(sample_video, human3r_cli, tmp_path):
    """Issue 17, defect 7: after `reconstruct --force` of one video of two, a plain Delta reader (Spark, Polars,
    `DeltaTable(...).to_pyarrow_table()`, DuckDB's `delta_scan`) counted the replaced run's rows too (9 frames
    where the catalog had 6)."""
    import duckdb
    from deltalake import DeltaTable

    from tasks.ops.sample import make_sample_video

    other = make_sample_video(tmp_path / "other.mp4", n_frames=24, width=192, height=108, seed=1)
    root, args = tmp_path / "ds", (*ARGS, "--max-frames", "3")
    human3r_cli("reconstruct", sample_video, other, "--out", root, *args)
    result = human3r_cli("reconstruct", sample_video, "--out", root, *args, "--force")
    assert "deleted the rows of 1 replaced run" in result.stderr
    con = duckdb.connect()
    try:
        con.execute("SET autoinstall_known_extensions=false")
        con.execute("LOAD delta")
    except duckdb.Error:  # DuckDB 2.0's delta extension is not installable offline (PyPI has builds up to 1.5.5)
        con = None
    for name in ("frames", "humans", "points"):
        live = q(root, f"SELECT count(*) AS n FROM {name}")[0]["n"]
        assert DeltaTable(str(root / name)).to_pyarrow_table().num_rows == live > 0, name
        if con is not None:
            assert con.sql(f"SELECT count(*) FROM delta_scan('{root / name}')").fetchone()[0] == live, name
    assert q(root, "SELECT count(*) AS n FROM frames")[0]["n"] == 6


def test_other_parameters_make_a_new_run(tiny_model, sample_video, tmp_path):
    root = open_root(tmp_path / "ds")
    a = reconstruct(sample_video, root, tiny_model, ReconstructOptions(decode=DecodeOptions(max_frames=4)))
    b = reconstruct(sample_video, root, tiny_model, ReconstructOptions(decode=DecodeOptions(max_frames=5)))
    assert (a.status, b.status, b.frames) == ("ok", "ok", 5)
    assert q(root, "SELECT count(*) AS n, max(n_frames) AS f FROM runs") == [{"n": 1, "f": 5}]  # replaced


def test_reset_interval_keeps_one_row_per_frame(tiny_model, sample_video, tmp_path):
    root = open_root(tmp_path / "ds")
    s = reconstruct(sample_video, root, tiny_model, ReconstructOptions(decode=DecodeOptions(max_frames=7),
                                                                       reset_interval=3))
    assert s.status == "ok" and s.frames == 7
    frames = q(root, "SELECT frame_idx, cam_to_world FROM frames ORDER BY frame_idx")
    assert [f["frame_idx"] for f in frames] == list(range(7))  # the reset duplicates are not rows


def test_decoded_frames_preprocess_exactly_like_the_reference(make_video, tmp_path):
    """The parity frames, through a lossless video file and our decoder, give the reference's input tensors."""
    from human3r.preprocess import prepare_frame

    inputs = np.load(PARITY / "inputs.npz")
    config = json.loads((PARITY / "config.json").read_text())
    size = config.get("inputs", {}).get("size", 128)
    path = make_video(tmp_path / "parity.mkv", list(inputs["frames"]), codec="ffv1", pix_fmt="bgr0")
    with FrameReader(path) as reader:
        decoded = list(reader)
    assert len(decoded) == len(inputs["frames"])
    for i, f in enumerate(decoded):
        np.testing.assert_array_equal(f.rgb, inputs["frames"][i])
        frame = prepare_frame(f.rgb, size, 224)
        torch.testing.assert_close(frame.img, torch.from_numpy(inputs["img"][i]), atol=0, rtol=0)
        torch.testing.assert_close(frame.img_mhmr, torch.from_numpy(inputs["img_mhmr"][i]), atol=2e-7, rtol=0)


def test_body_model_fills_world_joints(tiny_model, sample_video, smplx_npz, tmp_path):
    from human3r.body import BodyModel

    root = open_root(tmp_path / "ds")
    s = reconstruct(sample_video, root, tiny_model, ReconstructOptions(decode=DecodeOptions(max_frames=3)),
                    body_model=BodyModel(smplx_npz))
    assert s.status == "ok" and s.human_rows > 0
    rows = q(root, "SELECT head_world_m, transl_world_m, joints_world_m, detection_score FROM humans")
    for r in rows:
        joints = np.array(r["joints_world_m"])
        assert joints.shape == (127, 3) and r["transl_world_m"] is not None
        np.testing.assert_allclose(joints[15], r["head_world_m"], atol=1e-4)  # SMPL-X head joint lands on it
        assert 0.3 <= r["detection_score"] <= 1.0


def test_a_bfloat16_run_does_not_count_as_the_float32_one(sample_video, tmp_path):
    from human3r.weights import load_model

    root = open_root(tmp_path / "ds")
    options = ReconstructOptions(decode=DecodeOptions(max_frames=2))
    f32 = reconstruct(sample_video, root, load_model("untrained:tiny"), options)
    bf16_model = load_model("untrained:tiny", precision="bfloat16")
    bf16 = reconstruct(sample_video, root, bf16_model, options)
    again = reconstruct(sample_video, root, bf16_model, options)
    assert (f32.status, bf16.status, again.status) == ("ok", "ok", "skipped")
    assert json.loads(q(root, "SELECT params_json FROM runs")[0]["params_json"])["precision"] == "bfloat16"


def test_frames_prepared_ahead_give_identical_rows(tiny_model, sample_video, tmp_path):
    """Defect 3: each frame carries its own index, timestamp and image through the stream, so preparing frames
    ahead in a thread (the GPU default) writes exactly the rows of the in-step path (stride 2 and a reset: the
    stream's count, the source index and the reset duplicate all differ)."""
    from tasks.options import ConvertOptions

    options = ReconstructOptions(decode=DecodeOptions(stride=2, max_frames=6), reset_interval=4,
                                 convert=ConvertOptions(points_per_frame=50, conf_threshold=1.0))
    rows = []
    for prefetch in (0, 3):
        root = open_root(tmp_path / f"prefetch{prefetch}")
        assert reconstruct(sample_video, root, tiny_model, options, prefetch=prefetch).status == "ok"
        rows.append({t: q(root, f"SELECT * EXCLUDE (run_id) FROM {t} ORDER BY ALL") for t in ("frames", "points")})
    assert [f[S.FRAME_IDX] for f in rows[1]["frames"]] == [0, 2, 4, 6, 8, 10]
    assert rows[1] == rows[0] and len(rows[0]["points"]) == 6 * 50


def test_progress_totals_follow_the_time_window(tiny_model, sample_video):
    """Defect 5: the expected frame count of the progress bar counts only the frames of --start/--end (12 fps)."""
    calls = []
    options = ReconstructOptions(decode=DecodeOptions(start_s=0.5, end_s=1.5, stride=2))
    summary = reconstruct(sample_video, open_root(tempfile.mkdtemp()), tiny_model, options,
                          progress=lambda done, expected: calls.append((done, expected)))
    assert summary.status == "ok" and summary.frames == 6  # frames 6, 8, ..., 16
    assert calls == [(i, 6) for i in range(1, 7)]
