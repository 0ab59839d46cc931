"""The improve-model loop's cheap parts: a selection that chooses nothing stops it in one line before anything is
built or trained, its options refuse a build training cannot read, and the verdict's arithmetic (which side is
better per metric, and the one line)."""

from __future__ import annotations

import math

import pytest

from storage.fs import open_root
from storage.synthetic import SynthSpec, write_synthetic_dataset
from tasks.errors import OptionsError, UsageError
from tasks.labels.options import LabelOptions
from tasks.loop.options import ImproveOptions
from tasks.loop.selection import NothingSelectedError, compare_videos, select
from tasks.loop.verdict import MetricDelta, benchmark_table, verdict
from tasks.options import build


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from tasks.labels.quality import score_videos

    root = open_root(tmp_path_factory.mktemp("improve-inputs") / "ds")
    write_synthetic_dataset(root, 2, SynthSpec(n_frames=20, points_per_frame=8, max_people=2), seed=3)
    score_videos(root)
    return str(root.base)


def test_a_selection_of_nothing_is_one_line_naming_the_fix(scored):
    chosen = select(scored, "n_frames >= 5")
    assert chosen.tracks > 0 and chosen.videos == 2 and chosen.tracks <= chosen.scored
    with pytest.raises(NothingSelectedError) as err:
        select(scored, "n_frames > 1000000")
    message = str(err.value)
    assert "\n" not in message and f"none of the {chosen.scored} scored tracks" in message
    assert "loosen it" in message and "nothing was built or trained" in message
    with pytest.raises(UsageError, match="not a condition over track_quality") as bad:
        select(scored, "no_such_column > 1")
    assert "\n" not in str(bad.value)


def test_an_empty_dataset_says_to_reconstruct_first(tmp_path):
    with pytest.raises(UsageError, match="reconstruct videos into it first"):
        select(str(tmp_path / "nothing-here"), "true")


def test_options_refuse_a_build_without_full_frames():
    assert ImproveOptions().labels.images == "frames"
    with pytest.raises(OptionsError, match="labels.images must be 'frames'"):
        build(ImproveOptions, {"labels": LabelOptions(images="crops").model_dump()})
    with pytest.raises(OptionsError, match="unknown option"):
        build(ImproveOptions, {"compare": {"max_vidoes": 2}})


def test_compare_videos_prefer_held_out_ones(tmp_path):
    import json

    videos = [{"video_id": "a", "split": "train", "source_uri": "/v/a.mp4"},
              {"video_id": "b", "split": "val", "source_uri": "/v/b.mp4"},
              {"video_id": "c", "split": "test", "source_uri": "/v/c.mp4"}]
    (tmp_path / "build.json").write_text(json.dumps({"videos": videos}))
    held = compare_videos(tmp_path, None, 5)
    assert held.uris == ("/v/b.mp4", "/v/c.mp4") and held.held_out
    assert compare_videos(tmp_path, None, 1).uris == ("/v/b.mp4",)
    (tmp_path / "build.json").write_text(json.dumps({"videos": videos[:1]}))
    seen = compare_videos(tmp_path, None, 5)
    assert seen.uris == ("/v/a.mp4",) and not seen.held_out and "seen in training" in seen.line


def _delta(metric, base, tuned, unit="m"):
    return MetricDelta("tum", metric, None, "reference", unit, base, tuned, 0, 1)


def test_better_follows_each_metrics_direction_and_its_digits():
    assert _delta("ate_m", 0.050, 0.040).better == "tuned"  # lower is better
    assert _delta("ate_m", 0.040, 0.050).better == "base"
    assert _delta("ate_m", 0.0401, 0.0404).better == "tie"  # equal at the table's 3 digits
    assert _delta("delta_1_25", 0.80, 0.90, "fraction").better == "tuned"  # higher is better
    assert _delta("ate_m", math.nan, 0.04).better == "n/a"
    d = _delta("ate_m", 0.050, 0.040)
    assert d.difference == pytest.approx(-0.010) and d.relative_pct == pytest.approx(-20.0)


def test_the_verdict_names_the_better_side_and_the_largest_change():
    deltas = [_delta("ate_m", 0.050, 0.040), _delta("rpe_trans_m", 0.020, 0.021), _delta("rpe_rot_deg", 1.0, 0.5,
                                                                                            "deg")]
    line = verdict(deltas, base="B0", tuned="T1")
    assert line.startswith("Verdict: the fine-tuned model (T1) is better: tuned better on 2, worse on 1")
    assert "largest change -0.50 deg, -50.0% (TUM-dynamics RPE rot (deg), reference)" in line
    assert "the base model (B0)" in verdict([_delta("ate_m", 0.04, 0.05)], base="B0", tuned="T1")
    assert "nothing says which is better" in verdict([], base="B0", tuned="T1")
    tied = verdict([_delta("ate_m", 0.0401, 0.0404)], base="B0", tuned="T1")
    assert "neither model is better" in tied and "largest change" not in tied
    table = benchmark_table(deltas)
    assert table[2].startswith("| TUM-dynamics ATE (m) | reference | 0.050 | 0.040 | -0.010 | -20.0% | **tuned** |")


def test_a_report_without_a_comparison_says_why():
    from tasks.loop.verdict import render

    text = render(title="t", facts=["selected 1 of 1 scored tracks"], deltas=[_delta("ate_m", 0.05, 0.04)],
                  comparison=None, base="B0", tuned="T1")
    assert text.startswith("# t\n\nVerdict: the fine-tuned model (T1) is better") and "fine-tune moves" not in text
    assert "Not compared: no video was reconstructed by both models" in text
    assert "| TUM-dynamics ATE (m) | reference | 0.050 | 0.040 |" in text
