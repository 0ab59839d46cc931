"""The runner's pieces without the network: averages made from stored rows equal the metrics' own summaries over
every sequence at once (the pack's sequences, both protocols); a prediction that is the ground truth shifted by
10 cm scores what it must through the whole human pipeline (ground-truth posing, SMPL conversion, matching, world
metrics); the identity; sequences cut short."""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest
import torch

from tasks.evaluation.averages import benchmark_average
from tasks.evaluation.benchmarks import benchmark_protocol, load_benchmark
from tasks.evaluation.metrics.results import COUNT_METRICS
from tasks.evaluation.scoring import ScoredRow, _rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same(rows_a, rows_b):
    a = {(r.metric, r.alignment): (r.value, r.count) for r in rows_a}
    b = {(r.metric, r.alignment): (r.value, r.count) for r in rows_b}
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        assert va[1] == vb[1], k
        assert (math.isnan(va[0]) and math.isnan(vb[0])) or va[0] == pytest.approx(vb[0], rel=1e-12, abs=1e-12), k


def _as_scored(ev, sequence=None, alignment=None):
    return [ScoredRow(r.metric, r.value, r.count, r.unit, alignment) for r in ev.rows if r.sequence == sequence]


@pytest.mark.parametrize("protocol", ["reference", "corrected"])
def test_human_average_from_rows_equals_the_summary_over_all_sequences(aggregate, protocol):
    from tasks.evaluation.metrics.summary import summarize_humans

    seqs = aggregate[protocol]
    bp = benchmark_protocol("emdb2")
    stored = {}
    for name, seq in seqs.items():  # what each sequence's evaluation stores: its rows and its counter
        ev = summarize_humans("emdb2", {name: seq}, world=True, protocol=protocol)
        counts = dict(zip(COUNT_METRICS, (seq.counter["count"], seq.counter["n_human"], seq.counter["miss"],
                                          seq.counter["fp"]), strict=True))
        stored[name] = _rows(ev, name) + [ScoredRow(m, float(v), int(v), "count") for m, v in counts.items()]
    rows, used = benchmark_average(bp, protocol, stored)
    whole = summarize_humans("emdb2", seqs, world=True, protocol=protocol)
    _same(rows, _as_scored(whole))
    assert used == len(seqs) == 3


@pytest.mark.parametrize("protocol", ["reference", "corrected"])
def test_camera_average_from_rows_equals_the_summary(pack, protocol):
    from tasks.evaluation.metrics.camera import (
        evaluate_trajectory,
        read_gt_tum,
        read_pred_traj,
        summarize_trajectories,
    )

    results = {}
    for name in ("seqA", "seqB"):
        stamps, rows = read_pred_traj(pack / f"camera/{name}/pred_traj.txt")
        gt_file = next((pack / f"camera/{name}").glob("groundtruth_*.txt"))
        results[name] = evaluate_trajectory(rows, stamps, read_gt_tum(gt_file), name, protocol)
    stored = {n: _as_scored(summarize_trajectories("tum", {n: r}, protocol), n) for n, r in results.items()}
    rows, used = benchmark_average(benchmark_protocol("tum"), protocol, stored)
    _same(rows, _as_scored(summarize_trajectories("tum", results, protocol)))
    assert used == 2


@pytest.mark.parametrize("protocol", ["reference", "corrected"])
def test_depth_average_from_rows_equals_the_summary(pack, protocol):
    from tasks.evaluation.metrics.depth import depth_metrics, summarize_depth

    z = np.load(pack / "depth/depth.npz")
    bp = benchmark_protocol("bonn")
    stored, expected = {}, []
    for align in bp.depth_alignments:
        per = {f"seq{i}": depth_metrics(z[f"seq{i}__pred_resized"], z[f"seq{i}__gt"].astype(np.float64), align, 70.0,
                                        protocol) for i in range(3)}
        for name, vals in per.items():
            stored.setdefault(name, []).extend(_as_scored(summarize_depth("bonn", {name: vals}, align, protocol),
                                                          name, align))
        expected += _as_scored(summarize_depth("bonn", per, align, protocol), None, align)
    rows, used = benchmark_average(bp, protocol, stored)
    _same(rows, expected)
    assert used == 3


def test_excluded_sequences_stay_out_of_every_average(aggregate):
    from tasks.evaluation.metrics.summary import summarize_humans
    from tasks.evaluation.scoring import _excluded, human_metric_names

    seqs = aggregate["corrected"]
    bp = benchmark_protocol("emdb2")
    stored = {n: _rows(summarize_humans("emdb2", {n: s}, world=True, protocol="corrected"), n) + [
        ScoredRow(m, float(v), int(v), "count") for m, v in zip(COUNT_METRICS, (
            s.counter["count"], s.counter["n_human"], s.counter["miss"], s.counter["fp"]), strict=True)]
        for n, s in seqs.items()}
    stored["broken"] = _excluded(human_metric_names(bp), ValueError("no match"))
    rows, used = benchmark_average(bp, "corrected", stored)
    assert used == 3 and all(r.status == "excluded" for r in stored["broken"])
    del stored["broken"]
    _same(rows, benchmark_average(bp, "corrected", stored)[0])


# ------------------------------------------------------------------------------------------------------------------
# The human pipeline on a prediction that is the ground truth, shifted
# ------------------------------------------------------------------------------------------------------------------


class _ShiftedTruth:
    """A body model stand-in whose SMPL-X vertices, through a selection conversion (SMPL vertex i = SMPL-X vertex
    i), are the ground truth's SMPL vertices shifted by `offset_w` in the world frame (in each frame's camera:
    R_w2c offset_w, as long). The frame comes in as the x of the predicted head (free for a stand-in)."""

    def __init__(self, gt, T_w2c, offset_w):
        self.gt, self.T_w2c, self.offset_w = gt, T_w2c, np.asarray(offset_w, np.float64)

    def __call__(self, rotmat, betas, expression, head_cam, cam_to_world, with_vertices=True):
        f = int(head_cam[0, 0])
        v = self.gt.v3d_c[self.gt.frame(f)] + (self.T_w2c[f, :3, :3] @ self.offset_w).astype(np.float32)
        out = torch.zeros(len(v), 10475, 3)
        out[:, :6890] = torch.from_numpy(v)
        return types.SimpleNamespace(vertices_cam=out)


@pytest.mark.parametrize("protocol", ["reference", "corrected"])
def test_a_prediction_of_the_truth_shifted_10_cm_scores_what_it_must(tmp_path, smpl_files, protocol):
    from tasks.evaluation.benchmarks.synthetic import write_mini_emdb
    from tasks.evaluation.benchmarks.views import frame_targets
    from tasks.evaluation.bodies import load_eval_bodies
    from tasks.evaluation.groundtruth import ground_truth_people
    from tasks.evaluation.predict import PredictedFrame
    from tasks.evaluation.scoring import score

    write_mini_emdb(tmp_path / "emdb", n_frames=12)
    bp = benchmark_protocol("emdb2")
    seq = load_benchmark("emdb2", tmp_path / "emdb", protocol=protocol)["P0/09_outdoor_walk"]
    bodies = load_eval_bodies(smpl_files, bp)
    select = torch.sparse_coo_tensor(torch.stack([torch.arange(6890)] * 2), torch.ones(6890), (6890, 10475),
                                     check_invariants=True)
    bodies = dataclasses.replace(bodies, conversion=dataclasses.replace(bodies.conversion,
                                                                        smplx2smpl=select.coalesce()))
    size = 512
    gt = ground_truth_people(seq, bp, protocol, bodies, size)
    K = frame_targets(seq, size=size, protocol=protocol).intrinsics.astype(np.float64)
    preds = []
    for f in range(len(seq)):
        n = gt.frame(f).stop - gt.frame(f).start
        head = torch.zeros(n, 3)
        head[:, 0] = f
        preds.append(PredictedFrame(position=f, c2w=seq.camera.T_c2w[f].astype(np.float64), K=K[f],
                                    working_wh=(384, 512), rotmat=torch.eye(3).expand(n, 53, 3, 3),
                                    betas=torch.zeros(n, 10), expression=torch.zeros(n, 10), head_cam=head))
    shifted = _ShiftedTruth(gt, seq.camera.T_w2c, [0.1, 0.0, 0.0])
    rows = {r.metric: r for r in score(seq, preds, bp, protocol, body_model=shifted, bodies=bodies,
                                       working_size=size)}
    # the walk never plants a foot (< 1 cm between frames): no foot-sliding entry, 0.0 (reference) or NaN
    assert {m for m, r in rows.items() if r.status != "ok"} <= {"foot_sliding"}
    n = len(seq)
    assert rows["n_gt"].value == rows["n_matched"].value == n and rows["n_missed"].value == 0
    assert rows["precision"].value == rows["recall"].value == 100
    for m in ("mpjpe", "pa_mpjpe", "pve", "pa_pve", "w_mpjpe100", "wa_mpjpe100", "rte_pct"):
        assert rows[m].value == pytest.approx(0, abs=0.051), m  # centred or aligned: a constant shift is gone
    for m in ("metric_mpjpe", "metric_pve", "root_error"):
        assert rows[m].value == pytest.approx(100.0, abs=0.051), m  # 10 cm, in mm
    assert rows["mpjpe"].count == n and rows["pve"].unit == "mm" and rows["rte_pct"].unit == "pct"


# ------------------------------------------------------------------------------------------------------------------
# Identity, options, sequences
# ------------------------------------------------------------------------------------------------------------------


def test_identity_params_decide_what_is_evaluated_again(smplx_npz, smpl_files, isolated_weight_caches):
    from tasks.evaluation.identity import EvalIdentity
    from tasks.options import ModelOptions

    model = ModelOptions(checkpoint="untrained:tiny", body_model=str(smplx_npz))
    base = EvalIdentity.planned(model, str(smpl_files))
    assert base.body_model.startswith("smplx-") and base.smpl_files.startswith("smpl-")
    params = base.params("emdb2")
    assert params["benchmark"] == {"working_size": 128, "use_ttt3r": True, "reset_interval": 50, "frame_stride": 1,
                                   "n_frames": None, "first_frame": 0}
    assert "precision" not in params and "max_frames" not in params
    short = EvalIdentity.planned(model, str(smpl_files), max_frames=8)
    bf16 = dataclasses.replace(base, precision="bfloat16")
    hashes = {i.params_hash("emdb2") for i in (base, short, bf16)}
    assert len(hashes) == 3 and base.params_hash("emdb2") != base.params_hash("emdb1")
    assert "body_model" not in base.params("tum") and base.params_hash("tum") == dataclasses.replace(
        base, body_model=None, smpl_files=None).params_hash("tum")  # camera benchmarks use neither


def test_options_protocols_and_smpl_files_from_the_environment(monkeypatch, tmp_path):
    from tasks.errors import OptionsError
    from tasks.evaluation.options import EvalOptions
    from tasks.options import build

    monkeypatch.setenv("HUMAN3R_SMPL_FILES", str(tmp_path))
    assert EvalOptions().smpl_files == str(tmp_path) and EvalOptions(protocol="both").protocols == (
        "reference", "corrected")
    with pytest.raises(OptionsError, match="--protocol: must be reference, corrected or both"):
        build(EvalOptions, {"protocol": "paper"}, {"protocol": "--protocol"})


def test_a_sequence_cut_short_keeps_its_ground_truth_aligned(tmp_path):
    from tasks.evaluation.benchmarks.synthetic import write_mini_emdb, write_mini_tum

    write_mini_emdb(tmp_path / "emdb", n_frames=12)
    seq = load_benchmark("emdb2", tmp_path / "emdb")["P0/09_outdoor_walk"]
    short = seq.head(4)
    assert len(short) == 4 and short.images == seq.images[:4] and short.bodies.mask.shape[0] == 4
    np.testing.assert_array_equal(short.camera.T_w2c, seq.camera.T_w2c[:4])
    np.testing.assert_array_equal(short.frame_ids, seq.frame_ids[:4])
    assert seq.head(None) is seq and seq.head(100) is seq
    write_mini_tum(tmp_path / "tum", n_frames=9)
    tum = load_benchmark("tum_50", tmp_path / "tum").sequences[0]
    assert len(tum) == 9 and len(tum.head(5).trajectory) == 5
