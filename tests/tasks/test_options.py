"""Run options defined once: defaults, bounds, which fields change the rows, the body model, one-line errors."""

from __future__ import annotations

import json
import pickle

import pytest

from tasks.errors import OptionsError
from tasks.options import (
    ClusterOptions,
    DecodeOptions,
    ModelOptions,
    ReconstructOptions,
    build,
    not_in_params,
    row_params,
)


def test_row_params_leave_out_buffer_sizes_and_refusal_limits():
    params = row_params(ReconstructOptions())
    assert "chunk_frames" not in params and "queue_size" not in params["decode"]
    assert "max_side" not in params["decode"] and "max_error_ratio" not in params["decode"]
    assert params["decode"]["stride"] == 1 and params["convert"]["points_per_frame"] == 2000
    tuned = ReconstructOptions(decode=DecodeOptions(queue_size=2, max_side=4096, max_error_ratio=0.5), chunk_frames=8)
    assert row_params(tuned) == params  # none of them forces a re-run
    assert sorted(not_in_params(ReconstructOptions)) == [
        ("chunk_frames",), ("decode", "max_error_ratio"), ("decode", "max_side"), ("decode", "queue_size")]


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


def test_the_body_model_variable_is_read_where_the_options_are_built(monkeypatch, tmp_path):
    """$HUMAN3R_BODY_MODEL fills an empty body_model once, as an absolute path, so whoever gets the options (a Ray
    actor on another node, with another environment and working folder) gets the same answer."""
    from human3r.smplx_file import BODY_MODEL_ENV

    assert BODY_MODEL_ENV == "HUMAN3R_BODY_MODEL"  # tasks.options spells it without importing human3r
    monkeypatch.delenv(BODY_MODEL_ENV, raising=False)
    assert ModelOptions().body_model is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(BODY_MODEL_ENV, "models/smplx")
    built = ModelOptions(checkpoint="untrained:tiny")
    assert built.body_model == str(tmp_path / "models" / "smplx")
    assert build(ModelOptions, {"device": "cpu"}).body_model == built.body_model  # flow parameters, CLI flags
    assert ModelOptions(body_model="/elsewhere/SMPLX_NEUTRAL.npz").body_model == "/elsewhere/SMPLX_NEUTRAL.npz"
    monkeypatch.delenv(BODY_MODEL_ENV)
    assert pickle.loads(pickle.dumps(built)).body_model == built.body_model  # not read again on the other side
