"""The build-labels flow under the Prefect test harness: scores the unscored runs, then builds; a re-run replaces
the build in place."""

from __future__ import annotations

import json

from storage.catalog import open_catalog
from storage.fs import open_root
from storage.synthetic import SynthSpec, write_synthetic_dataset


def test_build_labels_flow(prefect_harness, tmp_path):
    from flows.labels import build_labels
    from tasks.labels.options import ClipOptions, LabelOptions

    root = open_root(tmp_path / "ds")
    write_synthetic_dataset(root, 3, SynthSpec(n_frames=30, points_per_frame=16, max_people=2), seed=2)
    options = LabelOptions(clips=ClipOptions(min_frames=8, max_frames=30))
    out = build_labels(dataset=str(root.base), out=str(tmp_path / "labels"), where="n_frames >= 10", options=options)
    with open_catalog(root) as cat:
        scored = cat.query("SELECT count(*) FROM track_quality WHERE n_frames >= 10").column(0)[0].as_py()
    assert scored > 0 and out["counts"]["tracks"] == scored and out["counts"]["clips"] >= scored
    assert sum(s["clips"] for s in out["splits"]) == out["counts"]["clips"]
    first = json.loads((tmp_path / "labels" / "build.json").read_text())["created_at"]
    again = build_labels(dataset=str(root.base), out=str(tmp_path / "labels"), where="n_frames >= 10",
                         options=options)  # overwrite=True by default: replaced in one rename
    assert again["counts"] == out["counts"]
    assert json.loads((tmp_path / "labels" / "build.json").read_text())["created_at"] >= first
    assert not list(tmp_path.glob(".labels.building-*"))
