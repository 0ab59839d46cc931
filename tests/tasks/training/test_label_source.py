"""A pseudo-label build of the demo footage (the generated clip reconstructed with the untrained tiny network and the
SMPL-X stand-in, built with ``--images frames``) as a training source: views in BEDLAM's format with the missing
ground truth flagged, people taken from the build's camera-frame rows, the distillation hook, and one-line errors for
builds that cannot be used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from torch.utils.data import default_collate

from storage.fs import open_root
from tasks.errors import UsageError
from tasks.identity import RunIdentity
from tasks.labels.build import build_labels
from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions
from tasks.options import ConvertOptions, ReconstructOptions
from tasks.reconstruction.video import reconstruct_video
from tasks.training.data.bedlam import BedlamDataset
from tasks.training.data.errors import DataLayoutError, LabelBuildError
from tasks.training.data.labels import LabelBuildDataset
from tasks.training.data.views import FLAG_KEYS, depth_to_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"
OPTIONS = dict(resolution=[(64, 48)], num_views=3, seed=4, allow_repeat=True)


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory, sample_video, tiny_model, body_model):
    folder = tmp_path_factory.mktemp("label-source")
    root = open_root(folder / "ds")
    options = ReconstructOptions(convert=ConvertOptions(points_per_frame=300, conf_threshold=1.0))
    identity = RunIdentity.of_network(tiny_model, options, body_model)
    assert reconstruct_video(sample_video, root, tiny_model, identity, body_model=body_model).status == "ok"
    labels = LabelOptions(clips=ClipOptions(min_frames=1), split=SplitOptions(train=1, val=0, test=0), images="frames")
    build_labels(root, folder / "frames", "true", labels)
    return root, folder / "frames"


def test_build_views_flag_the_missing_ground_truth(demo_build):
    _, build = demo_build
    ds = LabelBuildDataset(build, people="body", **OPTIONS)
    rows = pq.read_table(build / "labels" / "train.parquet").to_pylist()
    assert len(ds) > 0 and sum(len(s) for s in ds.sequences) + ds.skipped_frames == len({r["frame_idx"] for r in rows})
    views = ds[0]
    assert [v["dataset"] for v in views] == ["labels"] * 3
    for view in views:
        assert (view["has_depth"], view["has_msk"], view["pseudo"]) == (False, False, True)
        assert not view["valid_mask"].any() and not view["depthmap"].any() and not view["msk"].any()
        assert view["img"].shape == (3, 48, 64) and view["true_shape"].tolist() == [48, 64]
        # the people are the frame's rows with a body, nearest first, in the camera frame as the build stores them
        video, frame = view["label"].rsplit("_", 1)
        mine = sorted((r for r in rows if r["video_id"] == video and r["frame_idx"] == int(frame)
                       and r["transl_cam_m"] is not None and r["transl_cam_m"][2] > 0.01),
                      key=lambda r: r["transl_cam_m"][2])
        n = int(view["smpl_mask"].sum())
        assert n == len(mine) > 0 and not view["smpl_mask"][n:].any()
        assert np.allclose(view["smplx_transl"][:n], [r["transl_cam_m"] for r in mine])
        assert np.allclose(view["smplx_body_pose"][:n].reshape(n, -1), [r["body_pose"] for r in mine])
        assert np.allclose(view["smplx_shape"][:n, :10], [r["betas"] for r in mine])
        assert not view["smplx_shape"][:, 10].any()
        assert np.isfinite(view["ray_map"]).all()
    # the quality gate: by default only the labels flagged valid fill the slots
    for view in LabelBuildDataset(build, **OPTIONS)[0]:
        video, frame = view["label"].rsplit("_", 1)
        valid = [r for r in rows if r["video_id"] == video and r["frame_idx"] == int(frame) and r["valid"]
                 and r["transl_cam_m"] is not None and r["transl_cam_m"][2] > 0.01]
        assert view["smpl_mask"].sum() == len(valid)


def test_build_and_bedlam_views_collate_into_one_batch(demo_build):
    _, build = demo_build
    labels = LabelBuildDataset(build, people="body", **OPTIONS)
    bedlam = BedlamDataset(PACK / "bedlam", flags=True, **OPTIONS)
    assert set(labels[0][0]) == set(bedlam[0][0])  # the same keys, flags included
    batch = default_collate([bedlam[1], labels[0]])
    assert batch[0]["img"].shape == (2, 3, 48, 64)
    assert [batch[1][k].tolist() for k in FLAG_KEYS] == [[True, False], [True, False], [False, True]]


def test_the_distillation_hook_fills_depth(demo_build):
    _, build = demo_build

    def fill(views):
        for view in views:
            view["depthmap"] = np.full(view["depthmap"].shape, 2.0, np.float32)
            view["has_depth"] = True

    views = LabelBuildDataset(build, people="body", targets=fill, **OPTIONS)[0]
    for view in views:
        assert view["has_depth"] and view["valid_mask"].all()
        points, _ = depth_to_world(np.full((48, 64), 2.0, np.float32), view["camera_intrinsics"], view["camera_pose"])
        assert np.array_equal(view["pts3d"], points)  # the world points follow from the filled depth


def test_builds_that_cannot_be_used_are_one_line_errors(demo_build, tmp_path):
    root, build = demo_build
    crops = tmp_path / "crops"
    build_labels(root, crops, "true", LabelOptions(clips=ClipOptions(min_frames=1), images="crops"), score=False)
    with pytest.raises(LabelBuildError,
                       match="person crops, not full frames .*rebuild it with .*--images frames") as e:
        LabelBuildDataset(crops, **OPTIONS)
    assert isinstance(e.value, UsageError) and "\n" not in str(e.value)
    info = json.loads((crops / "build.json").read_text())
    info["images"]["mode"] = "none"
    (crops / "build.json").write_text(json.dumps(info))
    with pytest.raises(LabelBuildError, match=r"has no images \(--images none\)"):
        LabelBuildDataset(crops, **OPTIONS)
    with pytest.raises(LabelBuildError, match="has no val split"):
        LabelBuildDataset(build, split="val", **OPTIONS)
    with pytest.raises(DataLayoutError, match="is not a pseudo-label build"):
        LabelBuildDataset(tmp_path, **OPTIONS)
    copy = tmp_path / "copy"
    shutil.copytree(build, copy)
    image = sorted((copy / "images").rglob("*.jpg"))[5]
    image.unlink()
    with pytest.raises(DataLayoutError, match=f"{image.relative_to(copy)} is missing"):
        LabelBuildDataset(copy, people="body", **OPTIONS)
