"""The improve-model flow end to end under the Prefect test harness, on the demo footage at the tiny configuration:
score -> select -> labels -> a few fine-tuning steps on Ray Train -> base and tuned on a mini TUM benchmark and on
the same video -> the report. A second run finds everything done: same build, same training run, nothing evaluated
or reconstructed again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.catalog import open_catalog
from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions
from tasks.loop.options import CompareOptions, ImproveOptions
from tasks.options import ClusterOptions, ConvertOptions, DecodeOptions, ModelOptions, ReconstructOptions

pytest.importorskip("ray")

BASE = "untrained-tiny-seed0"
WHERE = "n_frames >= 10 AND detection_score_mean >= 0.5"
TUM = "rgbd_dataset_freiburg3_walking_xyz"
FINETUNE = {  # a few steps at the tiny configuration: 64x48, 2 views, batch 1, no warm-up (so the weights move)
    "loop": {"max_steps": 3, "epochs": 1, "batch_size": 1},
    "step": {"gradient_checkpointing": False, "optimizer": {"lr": 1e-3, "warmup_epochs": 0}},
    "data": {"loader_workers": 0, "validation": None,
             "sources": [{"resolution": [[64, 48]], "num_views": 2, "aug_crop": 0, "color_jitter": False,
                          "seed": 0, "people": "body"}]},  # untrained labels are rarely flagged valid
    "cluster": {"torch_threads": 1, "max_failures": 0},
    "tracking": {"tensorboard": False},
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory, smplx_standin):
    """A demo clip reconstructed with the untrained tiny network and the SMPL-X stand-in (the base's archive); the
    training parity pack's stand-in, since the training poses 11 shape components."""
    import torch

    from human3r.body import BodyModel
    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.ops.sample import make_sample_video
    from tasks.reconstruction.video import reconstruct_video

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("improve")
    (folder / "footage").mkdir()
    model, body = load_model("untrained:tiny"), BodyModel(smplx_standin)
    root = open_root(folder / "archive")
    identity = RunIdentity.of_network(model, ReconstructOptions(convert=ConvertOptions(points_per_frame=300,
                                                                                       conf_threshold=1.0)), body)
    video = make_sample_video(folder / "footage" / "clip-0.mp4", n_frames=24, width=192, height=108)
    assert reconstruct_video(video, root, model, identity, body_model=body).status == "ok"
    return folder


def test_improve_model_runs_the_whole_loop(prefect_harness, archive, smplx_standin):
    from flows.improve import improve_model
    from human3r.weights import inspect_weights
    from tasks.evaluation.benchmarks.synthetic import write_mini_tum

    write_mini_tum(archive / "tum", n_frames=6, names=(TUM,))
    out = archive / "loop"
    options = ImproveOptions(
        labels=LabelOptions(clips=ClipOptions(min_frames=4), split=SplitOptions(train=1, val=0, test=0),
                            images="frames"),
        finetune=FINETUNE,
        compare=CompareOptions(max_videos=1, reconstruct=ReconstructOptions(
            decode=DecodeOptions(max_frames=12), convert=ConvertOptions(points_per_frame=300, conf_threshold=1.0))))
    kw = dict(dataset=str(archive / "archive"), out=str(out), where=WHERE, benchmarks={"tum_50": str(archive / "tum")},
              model=ModelOptions(checkpoint="untrained:tiny", body_model=str(smplx_standin)), options=options,
              cluster=ClusterOptions(torch_threads=1))
    result = improve_model(**kw)

    # labels built from the selected tracks, with full frames
    (build,) = (out / "labels").iterdir()
    info = json.loads((build / "build.json").read_text())
    assert info["counts"]["clips"] > 0 and info["images"]["mode"] == "frames" and info["where"] == WHERE
    # a fine-tuned model file whose model_version names the base
    assert result.base_version == BASE and result.tuned_version.startswith(f"finetune-{BASE}-")
    assert Path(result.model_path).is_file() and inspect_weights(result.model_path).model_version == \
        result.tuned_version
    # evaluation rows of both models on the benchmark, per sequence and averaged
    with open_catalog(out / "evaluations") as cat:
        rows = cat.query("SELECT model_version, sequence, metric, status FROM evaluations").to_pylist()
    assert {r["model_version"] for r in rows} == {BASE, result.tuned_version} and {r["status"] for r in rows} == {"ok"}
    for version in (BASE, result.tuned_version):
        assert {(r["sequence"], r["metric"]) for r in rows if r["model_version"] == version} == {
            (s, m) for s in (TUM, None) for m in ("ate_m", "rpe_trans_m", "rpe_rot_deg")}
    # both models on the same video: 12 frames each, and the fine-tune moved the output
    (video,) = result.videos
    assert video["frames"] == 12 and video["source_uri"].endswith("clip-0.mp4")
    assert video["ate_m"] > 0 or video["depth_abs_rel"] > 0
    # the report: per metric base, tuned, difference and the better side; the comparison; one verdict line
    assert [(b["benchmark"], b["metric"]) for b in result.benchmarks] == [
        ("tum_50", "ate_m"), ("tum_50", "rpe_rot_deg"), ("tum_50", "rpe_trans_m")]
    text = (out / "report.md").read_text()
    assert text == result.markdown and result.verdict in text and result.verdict.startswith("Verdict: ")
    for b in result.benchmarks:
        assert b["better"] in ("tuned", "base", "tie") and b["sequences"] == 1
        assert b["difference"] == pytest.approx(b["tuned"] - b["base"])
        assert f"| {b['label']} | reference |" in text and f"**{b['better']}**" in text
    assert "seen in training" in text and "| `" + video["video_id"] + "` | 12 |" in text
    assert json.loads((out / "report.json").read_text())["tuned_version"] == result.tuned_version

    again = improve_model(**kw)  # the same selection: the same build and training run, nothing new to evaluate
    assert again.tuned_version == result.tuned_version and len(list((out / "labels").iterdir())) == 1
    assert "built before" in again.markdown and "its model reused" in again.markdown
    with open_catalog(out / "evaluations") as cat:
        assert cat.query("SELECT count(DISTINCT run_id) FROM evaluations_all WHERE sequence IS NOT NULL"
                         ).column(0)[0].as_py() == 2


def test_a_selection_of_nothing_stops_the_loop_in_one_line(prefect_harness, archive):
    from flows.improve import improve_model
    from tasks.loop.selection import NothingSelectedError

    out = archive / "nothing"
    with pytest.raises(NothingSelectedError) as err:
        improve_model(dataset=str(archive / "archive"), out=str(out), where="n_frames > 100000",
                      model=ModelOptions(checkpoint="untrained:tiny"))
    assert "\n" not in str(err.value) and "selects none of the" in str(err.value)
    assert not out.exists()  # no labels, no training run, no report


def test_a_bad_finetune_override_stops_the_loop_before_anything_is_built(prefect_harness, archive):
    from flows.improve import improve_model
    from tasks.errors import OptionsError

    out = archive / "bad-override"
    with pytest.raises(OptionsError, match="loop.max_steps") as err:
        improve_model(dataset=str(archive / "archive"), out=str(out), where=WHERE,
                      model=ModelOptions(checkpoint="untrained:tiny"),
                      options=ImproveOptions(finetune={"loop": {"max_steps": 0}}))
    assert "\n" not in str(err.value) and not out.exists()


def test_the_deployment_runs_the_flow():
    import yaml
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    from flows.improve import improve_model

    deployments = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())["deployments"]
    (d,) = [d for d in deployments if d["entrypoint"] == "flows/improve.py:improve_model"]
    assert improve_model.name == "improve-model"
    schema = parameter_schema(improve_model).model_dump_for_openapi()
    assert validate(d["parameters"], schema, raise_on_error=True, ignore_required=True) == []
    assert validate({"options": {"compare": {"max_videos": 0}}}, schema, ignore_required=True)
