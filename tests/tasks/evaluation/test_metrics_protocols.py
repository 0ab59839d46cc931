"""The corrected protocol differs from the reference where the pack's README (section 6) says, and nowhere else."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.evaluation.metrics import Protocol, ProtocolOptions
from tasks.evaluation.metrics.compare import compare_protocols, differing
from tasks.evaluation.metrics.depth import depth_metrics, summarize_depth
from tasks.evaluation.metrics.errors import MetricInputError
from tasks.evaluation.metrics.results import CAMCOORD_METRICS, DETECTION_METRICS, WORLD_METRICS
from tasks.evaluation.metrics.summary import summarize_humans
from tasks.evaluation.metrics.world import eval_global


def test_protocol_option():
    assert ProtocolOptions().protocol is Protocol.REFERENCE
    assert ProtocolOptions(protocol="corrected").protocol is Protocol.CORRECTED
    with pytest.raises(MetricInputError, match="unknown protocol"):
        eval_global(np.zeros((4, 24, 3)), np.zeros((4, 24, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4, 3)),
                    protocol="fixed")


def test_without_gaps_the_world_metrics_are_the_same(pack):
    z = np.load(pack / "human/global.npz")
    args = z["pred_j3d"], z["target_j3d"], z["pred_feet"], z["target_feet"]
    ref, cor = eval_global(*args), eval_global(*args, frame_ids=np.arange(len(args[0])), protocol="corrected")
    assert all(np.array_equal(ref[k], cor[k]) for k in ref)
    gaps = np.arange(len(args[0])) + (np.arange(len(args[0])) >= 120)  # frame 120 missed
    cor_gap = eval_global(*args, frame_ids=gaps, protocol="corrected")
    assert len(cor_gap["jitter"]) == len(ref["jitter"]) - 3  # no jerk across the gap
    assert not np.array_equal(cor_gap["wa2_mpjpe"], ref["wa2_mpjpe"])  # chunks by frame number
    assert np.array_equal(cor_gap["rte"], ref["rte"])  # RTE has no chunks or differences: unchanged


def test_human_summary_differs_only_by_rounding_pooling_and_gaps(aggregate):
    sequences = {p: aggregate[p] for p in ("reference", "corrected")}
    ref, cor, diffs = compare_protocols(lambda p: summarize_humans("emdb2", sequences[p.value], world=True,
                                                                   protocol=p))
    assert {r.protocol for r in ref.rows} == {"reference"} and {r.protocol for r in cor.rows} == {"corrected"}
    gap_free = "synthetic_walk_0"  # the only sequence without a missed frame
    for d in diffs:
        assert not math.isnan(d.difference), d
        if d.sequence is not None and d.metric in CAMCOORD_METRICS:
            assert abs(d.difference) <= 0.05 + 1e-9, d  # one-decimal rounding, nothing else
        if d.sequence == gap_free and d.metric in WORLD_METRICS:
            assert abs(d.difference) <= 0.05 + 1e-9, d
        if d.metric in DETECTION_METRICS and d.sequence is not None:
            assert abs(d.difference) < 1.0, d  # whole percents vs unrounded
    changed = {(d.sequence, d.metric) for d in differing(diffs) if abs(d.difference) > 0.05 + 1e-9}
    assert ("synthetic_walk_1", "jitter") in changed  # the compacted frames span the gaps in the reference
    assert not {m for s, m in changed if s is not None and m in CAMCOORD_METRICS}
    assert "(cm)" in ref.text["summary"] and "(cm)" not in cor.text["summary"]


def test_an_inf_sequence_is_dropped_by_the_reference_and_reported_by_the_corrected(aggregate):
    import copy

    seqs = {p: copy.deepcopy(aggregate[p]) for p in ("reference", "corrected")}
    for p in seqs:  # a static GT root makes RTE infinite
        seqs[p]["synthetic_walk_2"].values["rte"] = [np.full(129, np.inf)]
    ref = summarize_humans("emdb2", seqs["reference"], world=True)
    cor = summarize_humans("emdb2", seqs["corrected"], world=True, protocol="corrected")
    assert ref.value("mpjpe", None) != summarize_humans("emdb2", aggregate["reference"], world=True).value("mpjpe")
    assert [(e.sequence, e.metric) for e in ref.exclusions] == [("synthetic_walk_2", None)]  # the whole line
    assert [(e.sequence, e.metric) for e in cor.exclusions] == [("synthetic_walk_2", "rte_pct")]  # that metric
    assert math.isinf(cor.value("rte_pct", "synthetic_walk_2"))
    full = summarize_humans("emdb2", aggregate["corrected"], world=True, protocol="corrected")
    assert cor.value("mpjpe") == full.value("mpjpe")  # the other metrics keep the sequence


def test_depth_metric_mode_differs_only_by_delta_one_and_precision(pack):
    z = np.load(pack / "depth/depth.npz")
    per = {p: {f"seq{i}": depth_metrics(z[f"seq{i}__pred_resized"], z[f"seq{i}__gt"].astype(np.float64), "metric",
                                        70.0, protocol=p) for i in range(3)} for p in Protocol}
    _, _, diffs = compare_protocols(lambda p: summarize_depth("bonn", per[p], "metric", p))
    for d in diffs:
        if d.metric == "delta_1":
            assert d.reference == 0.0 and math.isnan(d.corrected)
        else:
            assert d.corrected == pytest.approx(d.reference, rel=5e-7, abs=1e-7), d
