"""Fine-tuning end to end on one local Ray cluster: the finetune-model flow (Prefect test harness) trains the untrained
tiny network on a pseudo-label build of the demo footage with Ray Train, and its model is a product (loads by path,
its .pth verifies, the reconstruct flow's Ray actors run it and the rows carry its model_version, its people differ
from the base model's); two workers, killed after a checkpoint and resumed, end with the weights of one worker
with the combined batch uninterrupted; bad inputs are one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from storage.catalog import open_catalog
from storage.fs import open_root
from tasks.identity import RunIdentity
from tasks.labels.build import build_labels
from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions
from tasks.ops.sample import make_sample_video
from tasks.options import ConvertOptions, DecodeOptions, ModelOptions, ReconstructOptions

ray = pytest.importorskip("ray")
RAY_ENV = {"RAY_memory_monitor_refresh_ms": "0",  # a shared machine: other processes' memory is not ours to judge
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
DECODE = DecodeOptions(max_frames=12)


@pytest.fixture(scope="module")
def ray_cluster():
    mp = pytest.MonkeyPatch()
    for key, value in RAY_ENV.items():
        mp.setenv(key, value)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="human3r-finetune-test")
    yield
    ray.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, body_model):
    """The demo footage reconstructed with the untrained tiny network, and its pseudo-label build (frames)."""
    from human3r.weights import load_model
    from tasks.reconstruction.video import reconstruct_video

    folder = tmp_path_factory.mktemp("finetune")
    (folder / "inbox").mkdir()
    video = make_sample_video(folder / "inbox" / "sample.mp4", n_frames=24, width=192, height=108)
    root = open_root(folder / "base-ds")
    options = ReconstructOptions(decode=DECODE, convert=ConvertOptions(points_per_frame=50))
    tiny = load_model("untrained:tiny")
    assert reconstruct_video(video, root, tiny, RunIdentity.of_network(tiny, options, body_model),
                             body_model=body_model).status == "ok"
    labels = LabelOptions(clips=ClipOptions(min_frames=1), split=SplitOptions(train=1, val=0, test=0), images="frames")
    build_labels(root, folder / "build", "true", labels)
    return {"folder": folder, "video": video, "root": root, "build": folder / "build", "options": options}


def _options(demo, smplx_standin, name, **cluster):
    from tasks.training.config import TrainOptions

    build = str(demo["build"])
    source = {"resolution": [[64, 48]], "num_views": 2, "people": "body", "samples": 8}
    return TrainOptions.for_labels(
        build, base_checkpoint="untrained:tiny", steps=4, body_model=str(smplx_standin),
        output_root=str(demo["folder"] / "runs"), name=name, overrides={
            "loop": {"batch_size": 1, "accumulation": 2 // cluster.get("num_workers", 1), "checkpoint_every": 1},
            "data": {"loader_workers": 0, "sources": [source], "validation": {
                "sources": [{"source": "labels", "root": build, **source, "seed": 5}], "max_batches": 1}},
            "step": {"gradient_checkpointing": False},
            "cluster": {"torch_threads": 1, "max_failures": 1, **cluster}})


@pytest.fixture(scope="module")
def finetuned(ray_cluster, demo, smplx_standin, prefect_harness):
    from flows.finetune import finetune_model

    return finetune_model(options=_options(demo, smplx_standin, "one-worker"))


def test_the_flow_makes_a_model_that_is_a_product(finetuned, demo, smplx_standin, human3r_cli):
    from human3r.training.config import TRAINABLE
    from human3r.weights import load_model
    from human3r.weights.keys import reference_key

    assert finetuned["steps"] == 4 and finetuned["base_version"] == "untrained-tiny-seed0"
    assert finetuned["model_version"].startswith("finetune-untrained-tiny-seed0-")
    assert np.isfinite(finetuned["metrics"]["val/loss"]) and np.isfinite(finetuned["metrics"]["train/loss"])
    events = list((demo["folder"] / "runs" / "one-worker" / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    model = load_model(finetuned["model_path"])
    assert model.identity.model_version == finetuned["model_version"]
    described = json.loads(open(finetuned["model_path"].replace(".safetensors", ".json")).read())
    assert described["source"]["base"]["model_version"] == "untrained-tiny-seed0"
    assert described["source"]["run"]["steps"] == 4
    from tasks.errors import OptionsError
    from tasks.training.plan import plan_run

    with pytest.raises(OptionsError, match="holds a run of another config"):  # same output.name, other config
        plan_run(_options(demo, smplx_standin, "one-worker", num_workers=2))
    verified = human3r_cli("weights", "verify", finetuned["pth_path"], "--preset", "tiny", "--json")
    assert json.loads(verified.stdout)["preset"] == "tiny"
    base = dict(load_model("untrained:tiny").named_parameters())
    moved = {reference_key(n) for n, p in model.named_parameters() if not torch.equal(p, base[n])}
    assert moved and all(any(k == t or k.startswith(f"{t}.") for t in TRAINABLE) for k in moved), sorted(moved)


def test_the_reconstruct_flow_runs_the_finetuned_model(finetuned, demo, smplx_npz, tmp_path):
    from flows.reconstruct import reconstruct_archive

    dataset = tmp_path / "ds"
    report = reconstruct_archive(
        source=str(demo["video"]), dataset=str(dataset),
        model=ModelOptions(checkpoint=finetuned["model_path"], body_model=str(smplx_npz)), options=demo["options"])
    assert report.counts["ok"] == 1, report.rows
    with open_catalog(dataset) as cat:
        versions = cat.query("SELECT DISTINCT model_version FROM runs").column(0).to_pylist()
        mine = cat.query("SELECT frame_idx, betas FROM humans ORDER BY frame_idx, track_id").to_pylist()
    with open_catalog(demo["root"]) as cat:
        base = cat.query("SELECT frame_idx, betas FROM humans ORDER BY frame_idx, track_id").to_pylist()
    assert versions == [finetuned["model_version"]]
    assert mine and base and [r["betas"] for r in mine] != [r["betas"] for r in base]


def test_two_workers_killed_and_resumed_equal_one_worker_uninterrupted(finetuned, demo, smplx_standin):
    from tasks.training.run import fine_tune

    killed = fine_tune(_options(demo, smplx_standin, "two-workers", num_workers=2), progress=False, kill_after=2)
    events = list((demo["folder"] / "runs" / "two-workers" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 2  # rank 0 started twice: killed after step 2, resumed from its checkpoint
    one, two = load_file(finetuned["model_path"]), load_file(killed.model_path)
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst <= 1e-6, worst
    assert killed.model_version != finetuned["model_version"]  # the number of workers is part of the run's key


def _write(path, text):
    path.write_text(text)
    return path


def test_bad_inputs_are_one_line_and_exit_2(demo, smplx_standin, human3r_cli, tmp_path):
    base = f"base: {{checkpoint: 'untrained:tiny', body_model: '{smplx_standin}'}}\n"
    labels = f"data: {{sources: [{{source: labels, root: '{demo['build']}'}}]}}\n"
    no_images = tmp_path / "no-images"
    shutil.copytree(demo["build"], no_images)
    info = json.loads((no_images / "build.json").read_text())
    info["images"]["mode"] = "none"
    (no_images / "build.json").write_text(json.dumps(info))
    cases = {
        "unknown key": (base + labels + "loop: {epochz: 3}\n", "loop.epochz: unknown option"),
        "bad value": (base + labels + "loop: {batch_size: 0}\n", "loop.batch_size: must be greater than or equal"),
        "not YAML": ("base: [\n", "is not valid YAML"),
        "wrong layout": (base + f"data: {{sources: [{{source: bedlam, root: '{tmp_path}'}}]}}\n", "BEDLAM"),
        "other preset": (f"base: {{checkpoint: 'untrained:tiny', preset: 672S, body_model: '{smplx_standin}'}}\n"
                         + labels, "holds a tiny network, the config asks for 672S"),
        "no images": (base + f"data: {{sources: [{{source: labels, root: '{no_images}'}}]}}\n", "has no images"),
    }
    for what, (text, expected) in cases.items():
        config = _write(tmp_path / f"{what.replace(' ', '-')}.yaml", text)
        result = human3r_cli("train", "--config", config, "--dry-run", code=2)
        line = result.stderr.strip()
        assert expected in line and "\n" not in line, (what, line)
    ok = human3r_cli("train", "--config", _write(tmp_path / "ok.yaml", base + labels), "--dry-run", "--json")
    assert json.loads(ok.stdout)["model_version"].startswith("finetune-untrained-tiny-seed0-")
    assert os.path.exists(demo["build"])
