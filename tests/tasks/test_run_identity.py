"""One run identity: what it records, what counts as done (old datasets included), and its checks."""

from __future__ import annotations

import json
import pickle

import pytest

from storage import schema as S
from storage.dataset import canonical_json, params_hash
from tasks.errors import OptionsError
from tasks.identity import RunIdentity, body_model_version, precision_of
from tasks.options import DecodeOptions, ModelOptions, ReconstructOptions

DEMO = ReconstructOptions.model_validate({"decode": {"max_frames": 24}, "convert": {"points_per_frame": 500}})
# What main (2010522, before the identity) recorded for the demo's options: the refusal limits included.
DEMO_BEFORE = ('{"convert":{"conf_threshold":1.5,"points_per_frame":500,"seed":0,"world_points":"pose"},"decode":'
               '{"end_s":null,"max_error_ratio":0.05,"max_frames":24,"max_side":8192,"start_s":null,"stride":1},'
               '"reset_interval":null,"use_ttt3r":false}')
DEMO_BEFORE_HASH = "cf441ade22e5399d"


@pytest.fixture(scope="module")
def weights():
    from human3r.weights import inspect_weights

    return inspect_weights("untrained:tiny")


def _run(params_json: str, model_version: str = "untrained-tiny-seed0") -> dict:
    """A live run as `storage.dataset.done_runs` gives it."""
    return {S.MODEL_VERSION: model_version, S.PARAMS_JSON: params_json,
            S.PARAMS_HASH: params_hash(json.loads(params_json)), S.SCHEMA_VERSION_COL: S.SCHEMA_VERSION}


def test_params_are_the_row_changing_options_and_nothing_else(weights):
    demo = RunIdentity(weights, "float32", None, DEMO)
    assert params_hash(json.loads(DEMO_BEFORE)) == DEMO_BEFORE_HASH  # the fixture is what main recorded
    before = json.loads(DEMO_BEFORE)
    del before["decode"]["max_side"], before["decode"]["max_error_ratio"]
    assert demo.params == before  # only the refusal limits left: the demo's hash changes for that reason alone
    assert demo.params_hash == params_hash(before) == "c5fba545a5fff33f"
    for same in (DecodeOptions(max_frames=24, max_side=64, max_error_ratio=1.0, queue_size=1),):
        tuned = RunIdentity(weights, "float32", None, DEMO.model_copy(update={"decode": same, "chunk_frames": 3}))
        assert tuned.params_hash == demo.params_hash
    other = RunIdentity(weights, "float32", None, DEMO.model_copy(update={"decode": DecodeOptions(max_frames=24,
                                                                                                   stride=2)}))
    assert other.params_hash != demo.params_hash
    head = RunIdentity(weights, "float32", None, ReconstructOptions(convert={"world_points": "head"}))
    assert "world_points" not in head.params["convert"]  # the first release's rule keeps its parameters


def test_precision_and_body_model_are_part_of_the_identity(weights):
    f32 = RunIdentity(weights, "float32", None, DEMO)
    bf16 = RunIdentity(weights, "bfloat16", None, DEMO)
    joints = RunIdentity(weights, "float32", "smplx-0123456789abcdef", DEMO)
    assert "precision" not in f32.params and "body_model" not in f32.params
    assert bf16.params["precision"] == "bfloat16" and joints.params["body_model"] == "smplx-0123456789abcdef"
    assert len({f32.params_hash, bf16.params_hash, joints.params_hash}) == 3
    assert f32.model_key == ("untrained-tiny-seed0", "float32") and bf16.model_key[1] == "bfloat16"
    assert not f32.is_done(_run(canonical_json(joints.params)))  # a run with joints is not the one without
    assert not joints.is_done(_run(canonical_json(f32.params)))  # nor the other way round
    with pytest.raises(OptionsError, match="auto"):
        RunIdentity(weights, "auto", None, DEMO)  # 'auto' is resolved before it becomes an identity


def test_it_is_small_frozen_and_picklable(weights):
    identity = RunIdentity(weights, "bfloat16", None, DEMO)
    copy = pickle.loads(pickle.dumps(identity))
    assert copy == identity and copy.params_hash == identity.params_hash and len(pickle.dumps(identity)) < 4096
    with pytest.raises(AttributeError):
        identity.precision = "float32"


def test_runs_recorded_before_the_identity_are_done_whatever_their_refusal_limits(weights):
    """Defect 4: the old parameters held max_side / max_error_ratio, so raising --max-side re-ran every video."""
    old = _run(DEMO_BEFORE)
    assert old[S.PARAMS_HASH] == DEMO_BEFORE_HASH
    demo = RunIdentity(weights, "float32", None, DEMO)
    assert demo.is_done(old)
    raised = DEMO.model_copy(update={"decode": DecodeOptions(max_frames=24, max_side=16384, max_error_ratio=0.2)})
    assert RunIdentity(weights, "float32", None, raised).is_done(old)
    assert RunIdentity(weights, "float32", "smplx-0123456789abcdef", DEMO).is_done(old)  # old runs: no body model
    assert not RunIdentity(weights, "bfloat16", None, DEMO).is_done(old)
    stride = DEMO.model_copy(update={"decode": DecodeOptions(max_frames=24, stride=2)})
    assert not RunIdentity(weights, "float32", None, stride).is_done(old)
    assert not demo.is_done(_run(DEMO_BEFORE, model_version="untrained-tiny-seed1"))
    assert not demo.is_done({**old, S.SCHEMA_VERSION_COL: S.SCHEMA_VERSION - 1})


@pytest.mark.usefixtures("one_torch_thread")
def test_a_dataset_written_with_the_old_params_is_skipped_not_redone(weights, tiny_model, sample_video, tmp_path,
                                                                     monkeypatch):
    """End to end: a run recorded as main recorded it (refusal limits in params_json) is skipped by the planner and
    by `reconstruct_video`, also after the limits change."""
    from storage.catalog import open_catalog
    from storage.fs import open_root
    from tasks.reconstruction.plan import plan
    from tasks.reconstruction.video import reconstruct_video

    root = open_root(tmp_path / "ds")
    options = ReconstructOptions(decode=DecodeOptions(max_frames=2))
    old_params = {**RunIdentity(weights, "float32", None, options).params}
    old_params["decode"] = {**old_params["decode"], "max_side": 8192, "max_error_ratio": 0.05}
    with monkeypatch.context() as patch:  # write the run as main did
        patch.setattr(RunIdentity, "params", property(lambda self: old_params))
        assert reconstruct_video(sample_video, root, tiny_model, RunIdentity.of_network(tiny_model, options)
                                 ).status == "ok"
    with open_catalog(root) as cat:
        stored = cat.query("SELECT params_json, run_id FROM runs").to_pylist()
    assert json.loads(stored[0]["params_json"])["decode"]["max_side"] == 8192

    raised = RunIdentity(weights, "float32", None, ReconstructOptions(decode=DecodeOptions(max_frames=2,
                                                                                           max_side=16384)))
    planned = plan([sample_video], root, raised)
    assert planned.pending == [] and [s.status for s in planned.done] == ["skipped"]
    again = reconstruct_video(sample_video, root, tiny_model, RunIdentity.of_network(tiny_model, raised.options))
    assert again.status == "skipped"
    with open_catalog(root) as cat:
        assert cat.query("SELECT run_id FROM runs").to_pylist() == [{"run_id": stored[0]["run_id"]}]


def test_the_identity_must_match_the_network_it_runs_on(weights, tiny_model, sample_video, tmp_path):
    """Defect 5: a network that does not say its precision is an error, not float32; a mismatch writes nothing."""
    from storage.fs import open_root
    from tasks.reconstruction.video import reconstruct_video

    class Bare(type(tiny_model)):
        pass

    bare = object.__new__(Bare)
    bare.__dict__.update({k: v for k, v in tiny_model.__dict__.items() if k != "compute_dtype"})
    with pytest.raises(OptionsError, match="compute_dtype"):
        precision_of(bare)
    with pytest.raises(OptionsError, match="compute_dtype"):
        RunIdentity.of_network(bare)
    root = open_root(tmp_path / "ds")
    with pytest.raises(OptionsError, match="computes in float32"):
        reconstruct_video(sample_video, root, tiny_model, RunIdentity(weights, "bfloat16", None, DEMO))
    with pytest.raises(OptionsError, match="planned for untrained-tiny-seed7"):
        other = RunIdentity(weights.__class__(**{**weights.__dict__, "model_version": "untrained-tiny-seed7"}),
                            "float32", None, DEMO)
        reconstruct_video(sample_video, root, tiny_model, other)
    with pytest.raises(OptionsError, match="body model"):
        reconstruct_video(sample_video, root, tiny_model, RunIdentity(weights, "float32", "smplx-00", DEMO))
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").rglob("*.parquet"))
    bf16 = RunIdentity(weights, "bfloat16", None, DEMO)
    assert bf16.computed_by(tiny_model).precision == "float32"  # an actor adopts what its network computes in


def test_planned_reads_the_weights_precision_and_body_model(smplx_npz, monkeypatch):
    monkeypatch.setenv("HUMAN3R_BODY_MODEL", str(smplx_npz.parent))
    planned = RunIdentity.planned(ModelOptions(checkpoint="untrained:tiny"), DEMO)
    assert planned.model_version == "untrained-tiny-seed0" and planned.precision == "float32"
    assert planned.body_model == body_model_version(str(smplx_npz)) and planned.body_model.startswith("smplx-")
    monkeypatch.delenv("HUMAN3R_BODY_MODEL")
    assert RunIdentity.planned(ModelOptions(checkpoint="untrained:tiny"), DEMO).body_model is None
