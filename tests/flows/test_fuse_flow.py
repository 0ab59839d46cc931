"""The fuse-scenes flow under the Prefect test harness: a SQL selection is fused next to the dataset and recorded in
the scenes table; a re-run fuses nothing again; its deployment in prefect.yaml points at it."""

from __future__ import annotations

import pathlib

import yaml

from storage.catalog import open_catalog
from storage.fs import open_root
from storage.synthetic import SynthSpec, write_synthetic_dataset

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_fuse_scenes_over_a_sql_selection(prefect_harness, tmp_path):
    from flows.fuse import fuse_scenes
    from tasks.scenes.fuse import FuseOptions

    root = open_root(tmp_path / "ds")
    ids = sorted(write_synthetic_dataset(root, 3, SynthSpec(n_frames=6, points_per_frame=200)))
    sql = "SELECT video_id FROM videos ORDER BY video_id LIMIT 2"
    options = FuseOptions(voxel_size_m=0.1, outlier_neighbors=5)

    first = fuse_scenes(dataset=root.base, sql=sql, options=options)
    assert (first["fused"], first["skipped"], first["failed"]) == (2, 0, 0), first["line"]
    with open_catalog(root) as cat:
        rows = cat.query("SELECT video_id, scene_path, n_points_out FROM scenes ORDER BY video_id").to_pylist()
    assert [r["video_id"] for r in rows] == ids[:2]
    assert all((tmp_path / "ds" / r["scene_path"]).is_file() and r["n_points_out"] > 0 for r in rows)

    again = fuse_scenes(dataset=root.base, videos=ids, options=options)  # all three: two are already fused
    assert (again["fused"], again["skipped"], again["failed"]) == (1, 2, 0), again["line"]


def test_fuse_scenes_reports_a_video_that_fails_and_goes_on(prefect_harness, tmp_path):
    from flows.fuse import fuse_scenes

    root = open_root(tmp_path / "ds")
    ids = write_synthetic_dataset(root, 2, SynthSpec(n_frames=4, points_per_frame=50))
    blocker = tmp_path / "ds" / "_exports" / ids[0]
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the video's export folder should be")
    out = fuse_scenes(dataset=root.base)
    assert (out["fused"], out["failed"]) == (1, 1), out["line"]
    failed = next(v for v in out["videos"] if v["status"] == "failed")
    assert failed["video_id"] == ids[0] and "Error" in failed["message"]


def test_deployment_runs_the_flow():
    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    d = deployments["after-compaction"]
    assert d["entrypoint"] == "flows/fuse.py:fuse_scenes" and d["schedules"][0]["cron"]
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    from flows.fuse import fuse_scenes

    assert fuse_scenes.name == "fuse-scenes"
    schema = parameter_schema(fuse_scenes).model_dump_for_openapi()  # what `prefect deploy` checks them against
    assert validate(d["parameters"], schema, raise_on_error=True, ignore_required=True) == []
    assert validate({"options": {"voxel_size_m": -1}}, schema, ignore_required=True)  # a bad value is caught


def test_selection_is_read_only_sql_with_a_video_id_column(tmp_path):
    import pytest

    from storage.errors import QueryError
    from tasks.errors import SourceError, UsageError
    from tasks.scenes.stages import select_videos

    root = open_root(tmp_path / "ds")
    ids = sorted(write_synthetic_dataset(root, 2, SynthSpec(n_frames=2, points_per_frame=4)))
    assert select_videos(root.base) == ids
    assert select_videos(root.base, sql="SELECT video_id FROM runs WHERE n_frames = 2 ORDER BY video_id") == ids
    with pytest.raises(QueryError, match="only read queries"):
        select_videos(root.base, sql="DELETE FROM runs")
    with pytest.raises(UsageError, match="video_id column"):
        select_videos(root.base, sql="SELECT 1 AS x")
    with pytest.raises(SourceError, match="not in the dataset"):
        select_videos(root.base, videos=["ffffffffffffffff"])
