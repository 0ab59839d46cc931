"""Depth metrics against the pack (resize, both alignments, the average, the Bonn folder) and their edge cases."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from tasks.evaluation.metrics.bonn import InvalidDepthFrameError, evaluate_bonn, read_bonn_depth, result_json
from tasks.evaluation.metrics.depth import average_depth, depth_metrics, irls_scale, l1_scale, resize_bicubic
from tasks.evaluation.metrics.errors import NoValidPixelsError
from tasks.evaluation.metrics.results import METRICS


@pytest.fixture(scope="module")
def depth(pack):
    z = np.load(pack / "depth/depth.npz")
    return {k: z[k] for k in z.files}, json.loads((pack / "depth/depth.json").read_text())


def test_resize_is_opencv_bicubic_to_the_bit(depth):
    z, _ = depth
    for i in range(3):
        gt = z[f"seq{i}__gt"]
        out = np.stack([resize_bicubic(f, *gt.shape[1:]) for f in z[f"seq{i}__pred_lowres"]])
        assert out.dtype == np.float32 and np.array_equal(out, z[f"seq{i}__pred_resized"])


@pytest.mark.parametrize("align", ["scale", "metric"])
def test_metrics_match_the_reference(depth, tol, align):
    z, meta = depth
    seqs = []
    for i in range(3):
        mine = depth_metrics(z[f"seq{i}__pred_resized"], z[f"seq{i}__gt"].astype(np.float64), align, 70.0)
        ref = meta["sequences"][i][align]
        assert mine["valid_pixels"] == ref["valid_pixels"]
        for m in ("abs_rel", "sq_rel", "rmse", "log_rmse"):
            assert mine[m] == pytest.approx(ref[METRICS[m].ref_key], rel=tol["depth"][align]["torch_f32"][m]["rel"])
        assert mine["delta_1_25"] == pytest.approx(ref["δ < 1.25"], abs=2e-7) and mine["delta_1"] == 0.0
        seqs.append(mine)
    avg = average_depth(seqs)
    assert avg["abs_rel"] == pytest.approx(meta["average"][align]["Abs Rel"], rel=1e-7)


def test_the_corrected_scale_is_the_converged_l1_fit(depth):
    z, meta = depth
    gt = z["seq0__gt"].astype(np.float64)
    valid = (gt > 0) & (gt < 70)
    p, g = z["seq0__pred_resized"][valid], gt[valid]
    s = l1_scale(p, g)
    cost = lambda c: np.abs(c * p.astype(np.float64) - g).sum()  # noqa: E731
    assert cost(s) <= cost(s * (1 + 1e-6)) and cost(s) <= cost(s * (1 - 1e-6))
    ten = irls_scale(p, g)  # the reference's 10 steps: not there yet
    assert ten == pytest.approx(meta["sequences"][0]["scale_s"], rel=1e-7)
    assert abs(irls_scale(p, g, steps=400) - s) < abs(ten - s)
    ref = depth_metrics(z["seq0__pred_resized"], gt, "scale", 70.0)
    cor = depth_metrics(z["seq0__pred_resized"], gt, "scale", 70.0, protocol="corrected")
    assert "delta_1" not in cor and cor["abs_rel"] != ref["abs_rel"]
    assert cor["abs_rel"] == pytest.approx(ref["abs_rel"], rel=5e-3)


def test_edge_cases(pack):
    edges = json.loads((pack / "edges.json").read_text())
    invalid = depth_metrics(np.ones((2, 4, 4), np.float32), np.zeros((2, 4, 4)), "scale")
    assert {METRICS[k].ref_key if k in METRICS else k: v for k, v in invalid.items()} == \
        edges["depth_invalid_sequence_result"]["result"]
    with pytest.raises(NoValidPixelsError):
        average_depth([invalid, invalid])
    assert all(math.isnan(v) for v in average_depth([invalid], "corrected").values())
    # the function's default max depth is 80 m: 8 GT pixels at 75 m count (predicted 5 m), one exact pixel
    gt, pred = np.full((1, 3, 3), 75.0), np.full((1, 3, 3), 5.0, np.float32)
    gt[0, 0, 0] = pred[0, 0, 0] = 5.0
    mine = depth_metrics(pred, gt, "metric")
    ref = edges["depth_evaluation_default_max_depth_is_80"]["result"]
    for m, v in mine.items():
        assert v == pytest.approx(ref[METRICS[m].ref_key] if m in METRICS else ref[m], rel=1e-7), m
    assert depth_metrics(pred, gt, "metric", 70.0)["valid_pixels"] == 1


def test_bonn_folder_end_to_end(pack, tol):
    bonn = pack / "depth/bonn"
    for align in ("scale", "metric"):
        ev = evaluate_bonn(bonn / "long_bonn", bonn / "pred", align)
        ref = json.loads((bonn / f"result_{align}.json").read_text())
        mine = json.loads(result_json(ev))
        assert mine.keys() == ref.keys()
        rel = tol["depth"][align]["torch_f32"]["abs_rel"]["rel"]
        assert mine["Abs Rel"] == pytest.approx(ref["Abs Rel"], rel=rel)
        assert mine["δ < 1.25"] == pytest.approx(ref["δ < 1.25"], abs=tol["depth"][align]["torch_f32"]["d1"]["abs"])
        assert [r.sequence for r in ev.rows if r.metric == "abs_rel"] == ["balloon2", "crowd2", "person_tracking2",
                                                                          None]


def test_an_all_zero_png_crashes_the_reference_and_is_invalid_when_corrected(pack, tmp_path):
    root = tmp_path / "long_bonn"
    shutil.copytree(pack / "depth/bonn/long_bonn/rgbd_bonn_crowd2", root / "rgbd_bonn_crowd2")
    shutil.copytree(pack / "depth/bonn/pred/crowd2", tmp_path / "pred/crowd2")
    first = sorted((root / "rgbd_bonn_crowd2/depth_110").glob("*.png"))[0]
    Image.fromarray(np.zeros((96, 128), np.uint16)).save(first)
    with pytest.raises(InvalidDepthFrameError):
        read_bonn_depth(first)
    assert np.all(read_bonn_depth(first, "corrected") == -1.0)
    with pytest.raises(InvalidDepthFrameError):
        evaluate_bonn(root, tmp_path / "pred", "metric")
    ev = evaluate_bonn(root, tmp_path / "pred", "metric", protocol="corrected")
    full = evaluate_bonn(pack / "depth/bonn/long_bonn", pack / "depth/bonn/pred", "metric", protocol="corrected")
    n_full = next(r.count for r in full.rows if r.sequence == "crowd2" and r.metric == "abs_rel")
    assert 0 < next(r.count for r in ev.rows if r.sequence == "crowd2" and r.metric == "abs_rel") < n_full
