"""The protocol table (as the reference's run scripts) and the benchmark registry."""

from __future__ import annotations

import pytest

from tasks.errors import UsageError
from tasks.evaluation.benchmarks import (
    BENCHMARK_PROTOCOLS,
    QUIRKS,
    UnknownBenchmarkError,
    benchmark_names,
    benchmark_protocol,
    load_benchmark,
)


def test_the_reference_run_scripts():
    reset = {name: p.reset_interval for name, p in BENCHMARK_PROTOCOLS.items()}
    assert reset == {"3dpw": 100, "emdb1": 100, "emdb2": 50, "rich": None, "tum": 100, "bonn": None}
    assert all(p.working_size == 512 and p.use_ttt3r for p in BENCHMARK_PROTOCOLS.values())
    p3, e1, e2, rich = (BENCHMARK_PROTOCOLS[n] for n in ("3dpw", "emdb1", "emdb2", "rich"))
    assert (p3.joint_set, p3.pelvis_joints, p3.max_people, p3.gt_frame) == ("h36m14", (2, 3), 2, "camera")
    assert (e1.joint_set, e1.pelvis_joints, e1.world_metrics) == ("smpl24", (1, 2), False)
    assert e2.world_metrics and rich.world_metrics and not p3.world_metrics
    assert (rich.gt_body_model, rich.gt_hand_pca, e2.gt_body_model) == ("smplx", 12, "smpl")
    assert p3.metrics == e1.metrics == ("pa_mpjpe", "mpjpe", "pve")
    assert e2.metrics == rich.metrics == ("pa_mpjpe", "mpjpe", "pve", "wa_mpjpe100", "w_mpjpe100", "rte_pct",
                                          "jitter", "foot_sliding")
    tum, bonn = BENCHMARK_PROTOCOLS["tum"], BENCHMARK_PROTOCOLS["bonn"]
    assert tum.metrics == ("ate_m", "rpe_trans_m", "rpe_rot_deg") and (tum.frame_stride, tum.n_frames) == (3, 90)
    assert bonn.metrics == ("abs_rel", "delta_1_25") and (bonn.first_frame, bonn.n_frames) == (30, 110)
    assert bonn.depth_max_m == 70.0 and bonn.depth_alignments == ("scale", "metric")
    assert all(p.needs_smpl_files == (p.kind == "human") for p in BENCHMARK_PROTOCOLS.values())


def test_metric_names_are_the_metrics_modules():
    from tasks.evaluation.metrics.results import METRICS

    for protocol in BENCHMARK_PROTOCOLS.values():
        assert set(protocol.metrics) <= set(METRICS), protocol.name


def test_long_variants_and_unknown_names():
    assert (benchmark_protocol("tum_300").n_frames, benchmark_protocol("tum_300").frame_stride) == (300, 1)
    assert benchmark_protocol("bonn_500").n_frames == 500 and benchmark_protocol("bonn_500").first_frame == 30
    assert "tum_1000" in benchmark_names() and "bonn_50" in benchmark_names()
    for bad in ("emdb3", "tum_123", "bonn_110x", "3DPW"):
        with pytest.raises(UnknownBenchmarkError, match="known: 3dpw, emdb1, emdb2, rich") as err:
            benchmark_protocol(bad)
        assert isinstance(err.value, UsageError) and "\n" not in str(err.value)
    with pytest.raises(UnknownBenchmarkError, match="unknown benchmark 'nope'"):
        load_benchmark("nope", ".")
    with pytest.raises(UnknownBenchmarkError, match="unknown protocol 'fixed'"):
        load_benchmark("tum", ".", protocol="fixed")


def test_quirks_name_benchmarks_and_a_correction_only_for_defects():
    names = {q.name for q in QUIRKS}
    assert {"max_two_people", "gender_slot_index", "intrinsics_per_axis", "neutral_gender", "all_zero_depth",
            "frame_id_positional"} <= names
    kept = {q.name for q in QUIRKS if q.corrected is None}
    assert kept == {"good_frames_mask", "frame_id_positional", "positional_subsets", "association"}
