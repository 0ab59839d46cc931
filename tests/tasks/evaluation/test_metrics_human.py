"""Human metrics against the pack (camera frame, world frame, matcher, P/R/F1, the launch loop's log and summary),
and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluation.metrics.camcoord import PELVIS_LSP14, PELVIS_SMPL24, eval_camcoord, mpjpe_mm, pa_mpjpe_mm
from tasks.evaluation.metrics.errors import DegenerateBoxError, NoMatchedFramesError
from tasks.evaluation.metrics.gt_bodies import gt_body_genders
from tasks.evaluation.metrics.humans import HumanFrame, evaluate_human_sequence
from tasks.evaluation.metrics.matching import box_iou, match_2d_greedy, prf1_pct
from tasks.evaluation.metrics.summary import parse_log_lines, reference_average, summarize_humans
from tasks.evaluation.metrics.world import eval_global, feet_of, rte_pct


def _within(mine, ref, t, abs_key="abs"):
    ref = np.asarray(ref, np.float64)
    return np.all(np.abs(mine - ref) <= np.maximum(t[abs_key], t["rel"] * np.abs(ref)))


@pytest.mark.parametrize("tag, n_joints, pelvis", [("j24", 24, PELVIS_SMPL24), ("h36m14", 14, PELVIS_LSP14)])
def test_camcoord_matches_the_reference_per_sample(camcoord, tol, tag, n_joints, pelvis):
    z = camcoord
    out = eval_camcoord(z[f"pred_j{n_joints}"], z[f"gt_j{n_joints}"], z["pred_v"], z["gt_v"], pelvis)
    for k, v in out.items():
        assert v.shape == (40,)
        assert _within(v, z[f"{tag}__{k}"], tol["human"][k], "abs_mm"), k
    # the single-metric functions agree with the batch, and batch size does not matter
    assert np.allclose(mpjpe_mm(z[f"pred_j{n_joints}"], z[f"gt_j{n_joints}"], pelvis), out["ca_mpjpe"], rtol=1e-12)
    one_by_one = [pa_mpjpe_mm(z[f"pred_j{n_joints}"][i:i + 1], z[f"gt_j{n_joints}"][i:i + 1], pelvis)[0]
                  for i in range(3)]
    assert np.allclose(one_by_one, out["pa_mpjpe"][:3], rtol=1e-12)
    # the hips, not joint 0: another pelvis gives other numbers
    assert not np.allclose(mpjpe_mm(z["pred_j24"], z["gt_j24"], (0,)), eval_camcoord(
        z["pred_j24"], z["gt_j24"], z["pred_v"], z["gt_v"])["ca_mpjpe"], rtol=1e-3)


def test_world_metrics_match_the_reference(pack, tol):
    z = np.load(pack / "human/global.npz")
    out = eval_global(z["pred_j3d"], z["target_j3d"], z["pred_feet"], z["target_feet"])
    for k, v in out.items():
        ref = z[f"out__{k}"]
        assert v.shape == ref.shape, k
        assert _within(v, ref, tol["human"][k]), k
        assert abs(v.mean() - ref.mean()) <= tol["human"][k]["mean_rel"] * abs(ref.mean()), k
    # the feet are SMPL vertices 3216/3387/6617/6787 of a (F, 6890, 3) array
    verts = np.zeros((2, 6890, 3))
    verts[:, [3216, 3387, 6617, 6787]] = z["target_feet"][:2]
    assert np.array_equal(feet_of(verts), z["target_feet"][:2])


def test_rte_of_a_static_person_is_inf_and_three_frames_have_no_jitter():
    gt = np.zeros((5, 3)) + [1.0, 2.0, 3.0]
    assert np.all(np.isinf(rte_pct(gt + np.random.default_rng(0).normal(0, 0.01, gt.shape), gt)))
    rng = np.random.default_rng(1)
    gt_j = rng.normal(0, 0.3, (3, 24, 3)) + np.arange(3)[:, None, None] * 0.05
    out = eval_global(gt_j + 0.01, gt_j, np.zeros((3, 4, 3)), np.zeros((3, 4, 3)))
    assert [len(v) for v in out.values()] == [3, 3, 3, 3, 0, 8]


def test_matcher_crowded_and_the_early_stop_quirk(pack):
    z = np.load(pack / "human/matching.npz")
    crowded = [match_2d_greedy(z["crowded__pred_j2d"], z["crowded__gt_j2d"], protocol=p)
               for p in ("reference", "corrected")]
    for m in crowded:  # no quirk here: both protocols agree with the reference
        assert m.matches.tolist() == [[3, 0], [1, 1]]
        assert m.false_positives.tolist() == [0, 2] and m.misses.tolist() == [2]
    assert prf1_pct(3, 1, 2) == (50.0, 67.0, 56.99999999999999)
    ref = match_2d_greedy(z["quirk__pred_j2d"], z["quirk__gt_j2d"])
    assert ref.matches.tolist() == [[1, 1]] and ref.false_positives.tolist() == [0] and ref.misses.tolist() == [0]
    cor = match_2d_greedy(z["quirk__pred_j2d"], z["quirk__gt_j2d"], protocol="corrected")
    assert cor.matches.tolist() == [[1, 1], [0, 0]] and cor.false_positives.size == 0 and cor.misses.size == 0
    assert box_iou(z["quirk__pred_j2d"][0], z["quirk__gt_j2d"][0]) >= 0.05  # the pair the reference never looks at


def test_matcher_and_prf1_edges():
    gt = np.random.default_rng(0).uniform(0, 100, (2, 24, 2))
    m = match_2d_greedy(np.zeros((0, 24, 2)), gt)
    assert m.matches.shape == (0, 2) and m.false_positives.size == 0 and m.misses.tolist() == [0, 1]
    flat = gt[:1].copy()
    flat[..., 1] = 3.0
    with pytest.raises(DegenerateBoxError):
        match_2d_greedy(flat, gt[:1])
    assert prf1_pct(0, 0, 0) == (0, 0, 0)
    assert prf1_pct(4, 4, 1) == (0.0, 0.0, 0.0)
    assert prf1_pct(250, 0, 2) == (99.0, 100.0, 100.0)  # after rounding F1 exceeds precision
    assert prf1_pct(250, 0, 2, "corrected")[0] == pytest.approx(100 * 250 / 252)


def test_launch_loop_log_and_summary_are_the_reference_text(pack, tol, aggregate):
    ev = summarize_humans("emdb2", aggregate["reference"], world=True)
    assert ev.text["log"] == (pack / "human/aggregate_log.txt").read_text()
    assert ev.text["summary"] == (pack / "human/aggregate_summary.txt").read_text()
    assert ev.value("jitter") == 154.2 and ev.value("rte_pct") == pytest.approx(4.058198198198198, abs=1e-12)
    assert {r.protocol for r in ev.rows} == {"reference"}
    units = {r.metric: r.unit for r in ev.rows}
    assert units["w_mpjpe100"] == "mm" and units["rte_pct"] == "pct" and units["jitter"] == "10m/s3"
    assert ev.value("mpjpe", "synthetic_walk_0") == 69.3  # one decimal per sequence, as logged


def test_summary_drops_inf_lines_silently_under_reference(pack):
    import json

    edge = json.loads((pack / "edges.json").read_text())["summary_drops_sequences_with_inf_or_nan"]["result"]
    total, avgs = reference_average(parse_log_lines(edge["log"]))
    assert [total, *avgs] == edge["parsed"]


def test_a_sequence_without_any_match_has_no_world_metrics():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 0.3, (1, 24, 3)) + [0, 0, 4]
    frame = HumanFrame(np.zeros((0, 24, 3)), np.zeros((0, 4, 3)), np.zeros((0, 24, 2)), gt, gt[:, :4],
                       rng.uniform(0, 100, (1, 24, 2)), np.eye(4), gt, gt[:, :4])
    assert evaluate_human_sequence([frame], world=False).counter["miss"] == 1
    with pytest.raises(NoMatchedFramesError):
        evaluate_human_sequence([frame], world=True)


def test_3dpw_gt_gender_rows():
    gender = np.array([[1, 2], [1, 2], [2, 1], [1, 0]])
    mask = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], bool)
    assert gt_body_genders(gender, mask).tolist() == [2, 2, 1, 1, 1, 1, 1]  # the pack's README example
    assert gt_body_genders(gender, mask, "corrected").tolist() == [1, 2, 1, 2, 2, 1, 1]
    males = np.ones((3, 2), int)
    assert gt_body_genders(males, np.ones((3, 2), bool)).tolist() == [1] * 6
