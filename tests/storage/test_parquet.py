"""Round trips, atomic commits, re-runs and schema checks of the Parquet writer."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from storage import manifest
from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import DatasetNotFoundError, SchemaMismatchError
from storage.parquet import RunInfo, VideoWriter, conform, read_failures, read_table, write_failure, write_video
from storage.synthetic import SynthSpec, synth_video

SPEC = SynthSpec(n_frames=40, points_per_frame=16)


def _run(run_id: str, source: str, **params) -> RunInfo:
    return RunInfo(run_id=run_id, model_version="untrained:tiny:0", preset="tiny", params=params,
                   started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), source_uri=source)


def _write(root, v, run_id="r1", **params):
    return write_video(root, v["video_id"], run=_run(run_id, v["videos"][S.SOURCE_URI][0], **params),
                       videos=v["videos"], frames=v["frames"], humans=v["humans"], points=v["points"])


def _expected(table: S.Table, columns: dict, video_id: str) -> pa.Table:
    data = {k: val for k, val in columns.items() if k != S.VIDEO_ID}
    t = conform(table, data)
    return t.add_column(0, S.VIDEO_ID, pa.array([video_id] * t.num_rows, pa.string()))


@pytest.mark.parametrize("name", ["videos", "frames", "humans", "points"])
def test_round_trip_every_video_table(root, name):
    v = synth_video(0, 0, SPEC)
    _write(root, v)
    got = read_table(root, name)
    want = _expected(S.TABLES[name], v[name], v["video_id"])
    assert got.num_rows == want.num_rows > 0
    assert got.column_names == S.TABLES[name].column_names
    for col in want.column_names:
        assert got.column(col).to_pylist() == want.column(col).to_pylist(), col


def test_round_trip_runs(root):
    v = synth_video(0, 1, SPEC)
    commit = _write(root, v, run_id="abc", stride=2)
    runs = read_table(root, "runs").to_pylist()
    assert len(runs) == 1
    r = runs[0]
    assert r[S.RUN_ID] == "abc" and r[S.VIDEO_ID] == v["video_id"]
    assert json.loads(r[S.PARAMS_JSON]) == {"stride": 2}
    assert r[S.PARAMS_HASH] == commit.params_hash == manifest.params_hash({"stride": 2})
    assert r[S.N_FRAMES] == SPEC.n_frames
    assert r[S.N_POINTS] == SPEC.n_frames * SPEC.points_per_frame
    assert r[S.N_HUMAN_ROWS] == len(v["humans"][S.FRAME_IDX])
    assert r[S.N_TRACKS] == len(set(v["humans"][S.TRACK_ID].tolist()))
    assert r[S.SCHEMA_VERSION_COL] == S.SCHEMA_VERSION


def test_failures_round_trip_and_replace(root):
    write_failure(root, source_uri="/a.mp4", stage="probe", error=ValueError("not a video:\n moov atom missing"))
    write_failure(root, source_uri="/b.mp4", stage="decode", error="too many decode errors", error_type="Decode")
    write_failure(root, source_uri="/a.mp4", stage="decode", error=OSError("truncated"))  # replaces /a.mp4
    rows = sorted(read_failures(root).to_pylist(), key=lambda r: r[S.SOURCE_URI])
    assert [(r[S.SOURCE_URI], r[S.STAGE], r[S.ERROR_TYPE], r[S.MESSAGE]) for r in rows] == [
        ("/a.mp4", "decode", "OSError", "truncated"), ("/b.mp4", "decode", "Decode", "too many decode errors")]


def test_success_clears_failure_of_same_source(root):
    v = synth_video(0, 2, SPEC)
    write_failure(root, source_uri=v["videos"][S.SOURCE_URI][0], stage="inference", error="boom")
    assert read_failures(root).num_rows == 1
    _write(root, v)
    assert read_failures(root).num_rows == 0


def test_rerun_replaces_and_never_duplicates(root):
    v = synth_video(0, 3, SPEC)
    first = _write(root, v, run_id="first")
    second = _write(root, v, run_id="second")
    assert read_table(root, "frames").num_rows == SPEC.n_frames
    assert read_table(root, "runs").column(S.RUN_ID).to_pylist() == ["second"]
    # the first generation's files are gone, the second's are live
    for rel in first.files.values():
        assert not (root.local_path(rel)).exists()
    for rel in second.files.values():
        assert (root.local_path(rel)).exists()
    with open_catalog(root) as cat:
        assert cat.query("SELECT count(*) AS n FROM points").column("n")[0].as_py() == SPEC.n_frames * 16


def test_conform_reports_every_problem_at_once():
    bad = {S.FRAME_IDX: [1, 2], S.TIMESTAMP_S: ["x", "y"], "bogus": [1, 2]}
    with pytest.raises(SchemaMismatchError) as info:
        conform(S.FRAMES, bad)
    msg = str(info.value)
    assert "missing columns" in msg and S.CAM_TO_WORLD in msg and "bogus" in msg and S.TIMESTAMP_S in msg


def test_not_nullable_column_rejects_nulls():
    v = synth_video(0, 4, SPEC)
    v["frames"][S.N_HUMANS] = [None] * SPEC.n_frames
    with pytest.raises(SchemaMismatchError, match="nulls"):
        conform(S.FRAMES, v["frames"])


def test_other_schema_version_is_refused(root):
    _write(root, synth_video(0, 5, SPEC))
    marker = root.local_path(S.DATASET_FILE)
    marker.write_text(json.dumps({"schema_version": S.SCHEMA_VERSION + 1}))
    with pytest.raises(SchemaMismatchError, match=f"schema version {S.SCHEMA_VERSION + 1}"):
        open_catalog(root)
    with pytest.raises(SchemaMismatchError):
        read_table(root, "frames")
    with pytest.raises(SchemaMismatchError):  # the writer refuses to mix versions too
        _write(root, synth_video(0, 6, SPEC))


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="human3r reconstruct"):
        open_catalog(tmp_path / "nothing")


def test_is_done_depends_on_model_and_params(root):
    v = synth_video(0, 7, SPEC)
    commit = _write(root, v, stride=1)
    assert manifest.is_done(root, v["video_id"], "untrained:tiny:0", commit.params_hash)
    assert not manifest.is_done(root, v["video_id"], "human3r_896L@abcd", commit.params_hash)
    assert not manifest.is_done(root, v["video_id"], "untrained:tiny:0", manifest.params_hash({"stride": 2}))
    assert manifest.pending(root, [v["video_id"], "ffff"], "untrained:tiny:0", commit.params_hash) == ["ffff"]


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys, datetime as dt
    import storage.fs, storage.manifest, storage.parquet as P
    from storage.fs import open_root
    from storage.synthetic import SynthSpec, synth_video
    root, target, crash_after, video_id = open_root(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    owner = {"append": P.VideoWriter, "publish": storage.fs, "write_parquet": P, "write_commit": storage.manifest}
    name = {"append": "append", "publish": "publish", "write_parquet": "_write_parquet",
            "write_commit": "write_commit"}[target]
    real, calls = getattr(owner[target], name), []
    def dying(*a, **k):
        if len(calls) == crash_after:
            os._exit(17)          # a hard crash: no cleanup, no finally blocks
        calls.append(1)
        return real(*a, **k)
    setattr(owner[target], name, dying)
    v = synth_video(1, 0, SynthSpec(n_frames=25, points_per_frame=16))   # other content for the same video
    run = P.RunInfo(run_id="crashed", model_version="m", preset="tiny", params={},
                    started_at=dt.datetime.now(dt.UTC), source_uri="x")
    with P.VideoWriter(root, video_id, run) as w:
        for lo in range(0, 25, 10):   # three chunks per streamed table
            sel = slice(lo, lo + 10)
            w.append("frames", {k: val[sel] for k, val in v["frames"].items()})
            w.append("points", {k: val[lo * 16:(lo + 10) * 16] for k, val in v["points"].items()})
        w.append("humans", v["humans"])
        w.commit(videos=v["videos"])
    os._exit(3)                   # the crash point was never reached
""")

CRASH_POINTS = [("append", 0), ("append", 4), ("publish", 1), ("publish", 3), ("write_parquet", 0),
                ("write_parquet", 1), ("write_commit", 0)]


def _crash_writer(root, video_id: str, target: str, crash_after: int) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(root.base), target, str(crash_after), video_id],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr


def _live_and_all_files(root):
    live = {f for c in manifest.list_commits(root) for f in c.files.values()}
    every = {str(p.relative_to(root.local_path())) for t in S.VIDEO_TABLES
             for p in root.local_path(t).rglob("*") if p.is_file()}
    return live, every


@pytest.mark.parametrize("target, crash_after", CRASH_POINTS)
def test_crash_mid_write_leaves_old_video_visible(root, target, crash_after):
    v = synth_video(0, 8, SPEC)
    _write(root, v, run_id="old")
    before = {name: read_table(root, name) for name in S.VIDEO_TABLES}
    _crash_writer(root, v["video_id"], target, crash_after)
    for name in S.VIDEO_TABLES:
        assert read_table(root, name).equals(before[name]), name
    with open_catalog(root) as cat:
        n = cat.query("SELECT count(*) AS n FROM frames").column("n")[0].as_py()
        assert n == SPEC.n_frames  # old video, not the crashed 25-frame one, and not both
        assert cat.query("SELECT run_id FROM runs").column(0).to_pylist() == ["old"]
    # the crash left orphans (temporary or unreferenced files); vacuum removes exactly those
    live, every = _live_and_all_files(root)
    assert every >= live and (every > live or (target, crash_after) == ("append", 0))
    removed = manifest.vacuum(root, min_age_s=0)
    assert set(removed) == every - live
    assert _live_and_all_files(root)[1] == live
    assert read_table(root, "frames").equals(before["frames"])


def test_crash_on_new_video_leaves_nothing_visible(root):
    _write(root, synth_video(0, 9, SPEC))
    _crash_writer(root, "00000000deadbeef", "publish", 2)
    assert "00000000deadbeef" not in set(read_table(root, "frames").column(S.VIDEO_ID).to_pylist())
    with open_catalog(root) as cat:
        assert cat.query("SELECT count(DISTINCT video_id) AS n FROM humans").column("n")[0].as_py() == 1


def test_streamed_chunks_round_trip(root):
    v = synth_video(0, 12, SPEC)
    run = _run("chunks", v["videos"][S.SOURCE_URI][0])
    with VideoWriter(root, v["video_id"], run) as w:
        for lo in range(0, SPEC.n_frames, 7):
            w.append("frames", {k: val[lo:lo + 7] for k, val in v["frames"].items()})
        w.append("humans", v["humans"])
        w.append("points", v["points"])
        commit = w.commit(videos=v["videos"])
    got = read_table(root, "frames")
    assert got.column(S.FRAME_IDX).to_pylist() == list(range(SPEC.n_frames))
    assert commit.rows["frames"] == SPEC.n_frames
    assert read_table(root, "runs").column(S.N_FRAMES).to_pylist() == [SPEC.n_frames]


def test_writer_left_without_commit_leaves_no_trace(root):
    v = synth_video(0, 13, SPEC)
    with pytest.raises(RuntimeError):
        with VideoWriter(root, v["video_id"], _run("x", "src")) as w:
            w.append("frames", v["frames"])
            raise RuntimeError("inference failed")
    assert _live_and_all_files(root) == (set(), set())


def test_one_row_group_per_file_and_schema_metadata(root):
    import pyarrow.parquet as pq

    commit = _write(root, synth_video(0, 10, SPEC))
    for name, rel in commit.files.items():
        meta = pq.ParquetFile(root.local_path(rel)).metadata
        assert meta.num_row_groups == 1, name
        kv = pq.read_schema(root.local_path(rel)).metadata
        assert kv[b"schema_version"] == str(S.SCHEMA_VERSION).encode()
        assert kv[b"table"] == name.encode()


def test_frames_sorted_and_humans_sorted(root):
    v = synth_video(0, 11, SPEC)
    perm = np.random.default_rng(0).permutation(SPEC.n_frames)
    v["frames"] = {k: [val[i] for i in perm] if isinstance(val, list) else np.asarray(val)[perm]
                   for k, val in v["frames"].items()}
    _write(root, v)
    assert read_table(root, "frames").column(S.FRAME_IDX).to_pylist() == list(range(SPEC.n_frames))
