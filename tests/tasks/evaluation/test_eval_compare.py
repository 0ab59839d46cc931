"""`human3r eval compare` on the demo footage reconstructed in float32 and in bfloat16 (untrained tiny weights, the
SMPL-X stand-in for joints): the differences are reported per video, and a run compared with itself differs by
nothing."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, smplx_npz, human3r_cli):
    from tasks.ops.sample import make_sample_video

    base = tmp_path_factory.mktemp("compare")
    (base / "footage").mkdir()
    clip = make_sample_video(base / "footage" / "sample-00.mp4", n_frames=8, width=192, height=108, seed=0)
    roots = {}
    for precision in ("float32", "bfloat16"):
        roots[precision] = base / precision
        human3r_cli("reconstruct", clip, "--out", roots[precision], "--checkpoint", "untrained:tiny", "--precision",
                    precision, "--body-model", smplx_npz, "--conf-threshold", "1.0", "--points-per-frame", "800")
    return roots


def test_float32_against_bfloat16_reports_their_differences(human3r_cli, two_runs, tmp_path):
    out = human3r_cli("eval", "compare", "--root", two_runs["float32"], "--root", two_runs["bfloat16"], "--out",
                      tmp_path / "agreement.md")
    text = (tmp_path / "agreement.md").read_text()
    assert "untrained-tiny-seed0 (float32)" in text and "untrained-tiny-seed0 (bfloat16)" in text
    assert "videos compared: 1 (only in A: 0, only in B: 0)" in out.stdout
    rows = json.loads(human3r_cli("eval", "compare", "--root", two_runs["float32"], "--root", two_runs["bfloat16"],
                                  "--format", "json").stdout)
    (video,) = rows
    assert video["frames"] == 8 and video["tracks_matched"] >= 1 and video["depth_cells"] > 0
    for key in ("ate_m", "joint_mm", "head_mm", "depth_abs_rel"):
        assert math.isfinite(video[key]) and video[key] > 0, key  # bfloat16 moves every output a little
    assert 0 <= video["depth_delta_1_25"] <= 1 and 0 <= video["same_count_pct"] <= 100


def test_a_run_against_itself_differs_by_nothing(two_runs):
    from storage.fs import open_root
    from tasks.evaluation.agreement import Side, compare

    root = open_root(two_runs["float32"])
    (video,) = compare(Side(root), Side(root)).videos
    assert video.note == "the same run on both sides" and video.frames == 8
    assert video.ate_m == pytest.approx(0, abs=1e-6) and video.joint_mm == 0 and video.head_mm == 0
    assert video.depth_abs_rel == 0 and video.depth_delta_1_25 == 1 and video.same_count_pct == 100
    assert video.tracks_matched == video.tracks_a == video.tracks_b


def test_one_root_two_model_versions_names_what_is_missing(human3r_cli, two_runs):
    result = human3r_cli("eval", "compare", "--root", two_runs["float32"], "--model-version", "untrained-tiny-seed0",
                         "--model-version", "human3r-896L-0123456789abcdef", code=2)
    assert "no run of model version human3r-896L-0123456789abcdef" in result.stderr
    assert result.stderr.count("\n") == 1
