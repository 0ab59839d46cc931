"""Run options defined once: defaults, bounds, what goes into params_json, and one-line errors."""

from __future__ import annotations

import json

import pytest

from storage.dataset import params_hash
from tasks.errors import OptionsError
from tasks.options import ClusterOptions, DecodeOptions, ModelOptions, ReconstructOptions, build


def test_params_leave_out_buffer_sizes_and_keep_their_hash():
    params = ReconstructOptions().params()
    assert "chunk_frames" not in params and "queue_size" not in params["decode"]
    assert params["decode"]["stride"] == 1 and params["convert"]["points_per_frame"] == 2000
    # the hash the first release recorded for the demo's options: unchanged under the rule it used (world points
    # from the world-view head), different under the new default (camera-frame points moved by the pose)
    demo = {"decode": {"max_frames": 24}, "convert": {"points_per_frame": 500}}
    head = ReconstructOptions.model_validate({**demo, "convert": {"points_per_frame": 500, "world_points": "head"}})
    assert params_hash(head.params()) == "a9767b97d1d211a0" and "world_points" not in head.params()["convert"]
    default = ReconstructOptions.model_validate(demo)
    assert default.params()["convert"]["world_points"] == "pose"
    assert params_hash(default.params()) != "a9767b97d1d211a0"
    tuned = ReconstructOptions(decode=DecodeOptions(queue_size=2), chunk_frames=8)
    assert tuned.params() == params  # buffering never forces a re-run


def test_nested_dicts_validate_like_a_deployment_sets_them():
    opts = build(ReconstructOptions, {"decode": {"stride": 2}, "use_ttt3r": True})
    assert opts.decode.stride == 2 and opts.use_ttt3r and opts.decode.max_side == DecodeOptions().max_side
    assert json.loads(opts.model_dump_json())["decode"]["stride"] == 2


@pytest.mark.parametrize("cls, values, names, needle", [
    (ReconstructOptions, {"decode": {"stride": 0}}, {"decode.stride": "--stride"},
     "--stride: must be greater than or equal to 1 (got 0)"),
    (ReconstructOptions, {"decode": {"start_s": 3, "end_s": 1}}, None, "must come after the start"),
    (ReconstructOptions, {"decode": {"strde": 2}}, None, "decode.strde: unknown option"),
    (ClusterOptions, {"num_actors": "many"}, None, "num_actors: must be a valid integer"),
    (ModelOptions, {"device": 3}, None, "device: must be a valid string"),
])
def test_bad_values_are_one_line(cls, values, names, needle):
    with pytest.raises(OptionsError) as info:
        build(cls, values, names)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_options_are_frozen():
    with pytest.raises(ValueError, match="frozen"):
        ReconstructOptions().use_ttt3r = True


def test_precision_is_part_of_a_run_unless_float32():
    opts = ReconstructOptions()
    assert opts.params("float32") == opts.params() and "precision" not in opts.params()
    assert opts.params("bfloat16")["precision"] == "bfloat16"
    assert params_hash(opts.params("bfloat16")) != params_hash(opts.params())  # a bf16 run is not the f32 one
