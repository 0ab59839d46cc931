"""`human3r migrate`: a real schema-1 dataset (tests/fixtures/schema1, written by the version-1 code) becomes the same
rows in the Delta layout, in place (old files kept aside) or into a new root."""

from __future__ import annotations

import json
import pathlib
import shutil

import pyarrow.parquet as pq
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import SchemaMismatchError
from storage.fs import open_root
from storage.migrate import migrate

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "schema1"


def _v1_rows(table: str) -> list[dict]:
    """What a version-1 reader saw: each live file's rows with video_id from the path."""
    rows = []
    for commit in sorted(FIXTURE.glob("_commits/*.json")):
        c = json.loads(commit.read_text())
        for r in pq.read_table(FIXTURE / c["files"][table]).to_pylist():
            rows.append({"video_id": c["video_id"], **r})
    return rows


@pytest.fixture
def v1(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "old")
    return open_root(tmp_path / "old")


def _check_same_rows(root):
    with open_catalog(root) as cat:
        for table, key in (("frames", "frame_idx"), ("humans", "track_id"), ("points", "x_m")):
            got = cat.query(f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY video_id, frame_idx, {key}").to_pylist()
            want = sorted(_v1_rows(table), key=lambda r: (r["video_id"], r["frame_idx"], r[key]))
            assert len(got) == len(want) > 0, table
            assert got == want, table  # bit for bit: float32 stays float32, colours 0-255 stay 0-255
        videos = cat.query("SELECT * FROM videos ORDER BY video_id").to_pylist()
        assert videos == sorted(_v1_rows("videos"), key=lambda r: r["video_id"])
        runs = cat.query("SELECT video_id, run_id, model_version, params_hash, n_frames, schema_version FROM runs "
                         "ORDER BY video_id").to_pylist()
        old_runs = sorted(_v1_rows("runs"), key=lambda r: r["video_id"])
        assert [(r["run_id"], r["n_frames"]) for r in runs] == [(r["run_id"], r["n_frames"]) for r in old_runs]
        assert {r["schema_version"] for r in runs} == {S.SCHEMA_VERSION}
        assert cat.query("SELECT source_uri, stage FROM failures").to_pylist() == [
            {"source_uri": "/footage/broken.mp4", "stage": "probe"}]


def test_in_place_keeps_the_rows_and_the_old_files(v1):
    with pytest.raises(SchemaMismatchError, match="human3r migrate"):
        open_catalog(v1)
    report = migrate(v1)
    assert report.videos == 3 and report.failures == 1
    _check_same_rows(v1)
    backup = pathlib.Path(report.backup)
    assert (backup / "_commits").is_dir() and len(list(backup.rglob("*.parquet"))) == 16  # nothing deleted
    assert json.loads((v1.local_path(S.DATASET_FILE)).read_text())["schema_version"] == S.SCHEMA_VERSION
    with pytest.raises(SchemaMismatchError, match="nothing to migrate"):
        migrate(v1)


def test_into_a_new_root_leaves_the_old_one_alone(v1, tmp_path):
    report = migrate(v1, open_root(tmp_path / "new"))
    assert report.backup is None
    _check_same_rows(open_root(tmp_path / "new"))
    assert json.loads((v1.local_path(S.DATASET_FILE)).read_text())["schema_version"] == 1


def test_cli(v1, human3r_cli):
    out = human3r_cli("migrate", "--root", v1.base).stdout
    assert "migrated 3 videos" in out and "_schema1" in out
    assert "3" in human3r_cli("query", "--root", v1.base, "SELECT count(*) FROM videos").stdout
