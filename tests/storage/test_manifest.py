"""The commit log on its own: the dataset marker, commit pointers, the skip check, failure keys and vacuum."""

from __future__ import annotations

import json
import os
import time

import pytest

from storage import manifest
from storage import schema as S
from storage.errors import DatasetNotFoundError, RootError, SchemaMismatchError
from storage.fs import open_root


def _commit(video_id: str, generation: str = "g1", model_version: str = "untrained-tiny-seed0",
            params_hash: str = "p1") -> manifest.Commit:
    files = {t: S.TABLE_FILE.format(table=t, video_id=video_id, generation=generation) for t in S.VIDEO_TABLES}
    return manifest.Commit(video_id=video_id, generation=generation, run_id="r" * 32, model_version=model_version,
                           params_hash=params_hash, schema_version=S.SCHEMA_VERSION, files=files,
                           rows=dict.fromkeys(S.VIDEO_TABLES, 1), source_uri=f"/v/{video_id}.mp4",
                           committed_at="2026-01-01T00:00:00+00:00")


def test_marker_is_created_once_and_checked(root):
    manifest.init_dataset(root)
    marker = manifest.check_dataset(root)
    assert marker["schema_version"] == S.SCHEMA_VERSION and marker["producer"] == S.PRODUCER
    created = marker["created_at"]
    manifest.init_dataset(root)  # a second writer keeps the first marker
    assert manifest.check_dataset(root)["created_at"] == created


@pytest.mark.parametrize("content, error, needle", [
    (json.dumps({"schema_version": S.SCHEMA_VERSION + 1}), SchemaMismatchError, "schema version"),
    ("{not json", SchemaMismatchError, "not valid JSON"),
    (json.dumps([1, 2]), SchemaMismatchError, "not a dataset marker"),
])
def test_bad_markers_are_refused_with_a_reason(root, content, error, needle):
    manifest.init_dataset(root)
    root.local_path(S.DATASET_FILE).write_text(content)
    with pytest.raises(error, match=needle):
        manifest.check_dataset(root)
    with pytest.raises(error):  # the writer refuses as well
        manifest.init_dataset(root)


def test_missing_and_unreadable_roots(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no dataset at"):
        manifest.check_dataset(open_root(tmp_path / "none"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="cannot read the dataset"):
        manifest.check_dataset(open_root(tmp_path / "file"))
    with pytest.raises(RootError, match="cannot create a dataset"):
        manifest.init_dataset(open_root(tmp_path / "file"))


def test_commits_round_trip_and_list_sorted(root):
    manifest.init_dataset(root)
    for vid in ("bb", "aa", "cc"):
        manifest.write_commit(root, _commit(vid))
    assert [c.video_id for c in manifest.list_commits(root)] == ["aa", "bb", "cc"]
    assert manifest.read_commit(root, "bb") == _commit("bb")
    assert manifest.read_commit(root, "zz") is None
    manifest.write_commit(root, _commit("bb", generation="g2"))  # a re-run replaces the pointer
    assert manifest.read_commit(root, "bb").generation == "g2" and len(manifest.list_commits(root)) == 3


def test_done_means_same_model_params_and_schema(root):
    manifest.init_dataset(root)
    manifest.write_commit(root, _commit("aa", model_version="m1", params_hash="p1"))
    assert manifest.is_done(root, "aa", "m1", "p1")
    assert not manifest.is_done(root, "aa", "m2", "p1")
    assert not manifest.is_done(root, "aa", "m1", "p2")
    assert not manifest.is_done(root, "bb", "m1", "p1")
    assert manifest.pending(root, ["bb", "aa", "cc"], "m1", "p1") == ["bb", "cc"]


def test_params_hash_is_canonical():
    a = manifest.params_hash({"decode": {"stride": 2, "max_frames": None}, "use_ttt3r": False})
    b = manifest.params_hash({"use_ttt3r": False, "decode": {"max_frames": None, "stride": 2}})
    assert a == b and len(a) == 16
    assert manifest.params_hash({"decode": {"stride": 3, "max_frames": None}, "use_ttt3r": False}) != a


def test_generations_are_unique_and_sortable():
    names = [manifest.new_generation() for _ in range(50)]
    assert len(set(names)) == 50
    time.sleep(0.002)
    assert manifest.new_generation() > max(names)


def test_failure_keys_are_stable_per_source(root):
    a, b = manifest.failure_path("/v/a.mp4"), manifest.failure_path("/v/b.mp4")
    assert a == manifest.failure_path("/v/a.mp4") and a != b and a.startswith("failures/source=")
    manifest.clear_failure(root, "/v/never-failed.mp4")  # clearing what is not there is fine


def test_vacuum_removes_only_old_unreferenced_files(root):
    manifest.init_dataset(root)
    live = _commit("aa")
    manifest.write_commit(root, live)
    for rel in live.files.values():
        root.local_path(rel).parent.mkdir(parents=True, exist_ok=True)
        root.local_path(rel).write_bytes(b"live")
    orphan = root.local_path(S.TABLE_FILE.format(table="frames", video_id="aa", generation="crashed"))
    orphan.write_bytes(b"orphan")
    fresh = root.local_path(S.TABLE_FILE.format(table="points", video_id="aa", generation="writing"))
    fresh.write_bytes(b"in progress")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    removed = manifest.vacuum(root)  # default: only orphans older than an hour
    assert removed == [str(orphan.relative_to(root.local_path()))]
    assert fresh.exists() and all(root.local_path(rel).exists() for rel in live.files.values())
