"""The writer over Delta tables: round trips, the live-run rules, re-runs, idempotent commits, crashes at every step
of a video's commit, and what a plain Delta reader sees."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from storage import dataset
from storage import delta as D
from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import DatasetNotFoundError, SchemaMismatchError
from storage.synthetic import SynthSpec, synth_video
from storage.writer import (
    RunInfo,
    VideoWriter,
    commit_runs,
    conform,
    read_failures,
    read_table,
    write_failure,
    write_video,
)

SPEC = SynthSpec(n_frames=40, points_per_frame=16)


def _run(source: str, **params) -> RunInfo:
    return RunInfo(model_version="untrained-tiny-seed0", preset="tiny", params=params,
                   started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), source_uri=source)


def _write(root, v, **params):
    return write_video(root, v["video_id"], run=_run(v["videos"][S.SOURCE_URI][0], **params), videos=v["videos"],
                       frames=v["frames"], humans=v["humans"], points=v["points"])


def _plain(root, name: str) -> pa.Table:
    """A plain Delta reader (delta-rs -> pyarrow): every stored row, no rules applied."""
    return D.read_table(root, S.TABLES[name])


@pytest.mark.parametrize("name", ["videos", "frames", "humans", "points"])
def test_round_trip_every_video_table(root, name):
    v = synth_video(0, 0, SPEC)
    _write(root, v)
    got = read_table(root, name)
    table = S.TABLES[name]
    fill = {} if name == "videos" else {S.VIDEO_ID: v["video_id"], S.RUN_ID: got.column(S.RUN_ID)[0].as_py()}
    want = conform(table, v[name] if name == "videos" else {k: c for k, c in v[name].items()}, fill=fill)
    assert got.num_rows == want.num_rows > 0
    assert got.column_names == table.column_names
    for col in want.column_names:
        assert got.column(col).to_pylist() == want.column(col).to_pylist(), col


def test_runs_row_holds_the_video_and_the_run(root):
    v = synth_video(0, 1, SPEC)
    finished = _write(root, v, stride=2)
    (r,) = read_table(root, "runs").to_pylist()
    assert r[S.RUN_ID] == finished.run_id and r[S.VIDEO_ID] == v["video_id"]
    assert r[S.CONTENT_SHA256] == v["videos"][S.CONTENT_SHA256][0] and r[S.WIDTH_PX] == SPEC.width
    assert json.loads(r[S.PARAMS_JSON]) == {"stride": 2} and r[S.PARAMS_HASH] == dataset.params_hash({"stride": 2})
    assert r[S.N_FRAMES] == SPEC.n_frames and r[S.N_POINTS] == SPEC.n_frames * SPEC.points_per_frame
    assert r[S.N_HUMAN_ROWS] == len(v["humans"][S.FRAME_IDX])
    assert r[S.N_TRACKS] == len(set(v["humans"][S.TRACK_ID].tolist()))
    assert r[S.SCHEMA_VERSION_COL] == S.SCHEMA_VERSION
    started_s = int(r[S.RUN_ID][:14], 16) / 1e6  # run ids begin with their start time (S.new_run_id)
    assert started_s == pytest.approx(dt.datetime.now(dt.UTC).timestamp(), abs=60)


def test_rerun_replaces_the_video_and_old_rows_are_invisible_until_vacuumed(root):
    from storage.maintenance import vacuum

    v = synth_video(0, 3, SPEC)
    first = _write(root, v)
    second = _write(root, v)
    assert read_table(root, "runs").column(S.RUN_ID).to_pylist() == [second.run_id]
    assert read_table(root, "frames").num_rows == SPEC.n_frames
    assert set(read_table(root, "frames").column(S.RUN_ID).to_pylist()) == {second.run_id}
    assert _plain(root, "frames").num_rows == 2 * SPEC.n_frames  # both runs are stored until vacuum
    assert vacuum(root, min_age_s=3600).rows_deleted == {}  # the replaced run is too recent to delete
    report = vacuum(root, min_age_s=0)
    assert report.dead_runs["frames"] == {first.run_id}
    assert _plain(root, "frames").num_rows == SPEC.n_frames
    assert read_table(root, "points").num_rows == SPEC.n_frames * SPEC.points_per_frame  # visible data unchanged


def test_failures_latest_per_source_until_a_run_of_it_succeeds(root):
    write_failure(root, source_uri="/a.mp4", stage="probe", error=ValueError("not a video:\n moov atom missing"))
    write_failure(root, source_uri="/b.mp4", stage="decode", error="too many decode errors", error_type="Decode")
    write_failure(root, source_uri="/a.mp4", stage="decode", error=OSError("truncated"))  # the latest counts
    rows = read_failures(root).to_pylist()
    assert [(r[S.SOURCE_URI], r[S.STAGE], r[S.ERROR_TYPE], r[S.MESSAGE]) for r in rows] == [
        ("/a.mp4", "decode", "OSError", "truncated"), ("/b.mp4", "decode", "Decode", "too many decode errors")]
    v = synth_video(0, 2, SPEC)
    write_failure(root, source_uri=v["videos"][S.SOURCE_URI][0], stage="inference", error="boom")
    assert read_failures(root).num_rows == 3
    _write(root, v)
    assert read_failures(root).num_rows == 2  # the success of that source clears its failure


def test_conform_reports_every_problem_at_once():
    bad = {S.FRAME_IDX: [1, 2], S.TIMESTAMP_S: ["x", "y"], "bogus": [1, 2]}
    with pytest.raises(SchemaMismatchError) as info:
        conform(S.FRAMES, bad)
    msg = str(info.value)
    assert "missing columns" in msg and S.CAM_TO_WORLD in msg and "bogus" in msg and S.TIMESTAMP_S in msg
    v = synth_video(0, 4, SPEC)
    v["frames"][S.N_HUMANS] = [None] * SPEC.n_frames
    with pytest.raises(SchemaMismatchError, match="nulls"):
        conform(S.FRAMES, v["frames"], fill={S.VIDEO_ID: "x", S.RUN_ID: "y"})


def test_numpy_matrices_become_lists_row_by_row():
    from storage.writer import _to_arrow

    joints = np.arange(2 * 127 * 3, dtype=np.float32).reshape(2, 127, 3)
    arr = _to_arrow(joints, S.HUMANS.arrow_schema.field(S.JOINTS_WORLD_M).type)
    assert len(arr) == 2 and arr.to_pylist()[1][126] == joints[1, 126].tolist()
    c2w = np.arange(32, dtype=np.float32).reshape(2, 16)
    assert _to_arrow(c2w, S.FRAMES.arrow_schema.field(S.CAM_TO_WORLD).type).to_pylist()[1] == c2w[1].tolist()


def test_other_schema_versions_are_refused(root):
    _write(root, synth_video(0, 5, SPEC))
    marker = root.local_path(S.DATASET_FILE)
    good = marker.read_text()
    marker.write_text(json.dumps({"schema_version": S.SCHEMA_VERSION + 1}))
    with pytest.raises(SchemaMismatchError, match=f"schema version {S.SCHEMA_VERSION + 1}"):
        open_catalog(root)
    with pytest.raises(SchemaMismatchError):  # the writer refuses to mix versions too
        _write(root, synth_video(0, 6, SPEC))
    marker.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(SchemaMismatchError, match="human3r migrate"):
        open_catalog(root)
    marker.write_text(good)
    dt_ = D.open_table(root, S.FRAMES)  # a table written under another version is refused on its own
    dt_.alter.set_table_properties({S.SCHEMA_VERSION_PROPERTY: "9"}, raise_if_not_exists=False)
    with pytest.raises(SchemaMismatchError, match="table 'frames'"):
        open_catalog(root)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="human3r reconstruct"):
        open_catalog(tmp_path / "nothing")


def test_done_depends_on_model_and_params(root):
    v = synth_video(0, 7, SPEC)
    _write(root, v, stride=1)
    done = dataset.done_runs(root)
    h = dataset.params_hash({"stride": 1})
    assert dataset.is_done(done[v["video_id"]], "untrained-tiny-seed0", h)
    assert not dataset.is_done(done[v["video_id"]], "human3r-896L-abcd", h)
    assert not dataset.is_done(done[v["video_id"]], "untrained-tiny-seed0", dataset.params_hash({"stride": 2}))
    assert dataset.pending(root, [v["video_id"], "ffff"], "untrained-tiny-seed0", h) == ["ffff"]


def test_a_repeated_commit_changes_nothing(root):
    v = synth_video(0, 8, SPEC)
    with VideoWriter(root, v["video_id"], _run("src")) as w:
        for name in S.DATA_TABLES:
            w.append(name, v[name])
        finished = w.finish(videos=v["videos"])
    commit_runs(root, [finished], txn="once")
    versions = {n: D.open_table(root, S.TABLES[n]).version() for n in (*S.DATA_TABLES, "runs")}
    commit_runs(root, [finished], txn="once")  # e.g. a retry after a lost answer
    assert {n: D.open_table(root, S.TABLES[n]).version() for n in versions} == versions
    assert _plain(root, "frames").num_rows == SPEC.n_frames and _plain(root, "runs").num_rows == 1


def test_streamed_chunks_become_row_groups_of_one_sorted_file(root):
    import pyarrow.parquet as pq

    v = synth_video(0, 12, SPEC)
    with VideoWriter(root, v["video_id"], _run("chunks")) as w:
        for lo in range(0, SPEC.n_frames, 7):
            w.append("frames", {k: val[lo:lo + 7] for k, val in v["frames"].items()})
        w.append("humans", v["humans"])
        w.append("points", v["points"])
        finished = w.commit(videos=v["videos"])
    assert read_table(root, "frames").column(S.FRAME_IDX).to_pylist() == list(range(SPEC.n_frames))
    meta = pq.ParquetFile(root.local_path(f"frames/{finished.files['frames'].path}")).metadata
    assert meta.num_row_groups == len(range(0, SPEC.n_frames, 7))
    assert pq.read_schema(root.local_path(f"frames/{finished.files['frames'].path}")).metadata[
        b"schema_version"] == str(S.SCHEMA_VERSION).encode()


def test_writer_left_without_commit_leaves_no_trace(root):
    v = synth_video(0, 13, SPEC)
    with pytest.raises(RuntimeError):
        with VideoWriter(root, v["video_id"], _run("src")) as w:
            w.append("frames", v["frames"])
            raise RuntimeError("inference failed")
    assert not list(root.local_path().rglob("*.parquet")) and D.open_table(root, S.FRAMES) is None


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys, datetime as dt
    import storage.delta as D, storage.writer as W
    from storage.fs import open_root
    from storage.synthetic import SynthSpec, synth_video
    root, target, crash_after, index = open_root(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    owner = {"append": W.VideoWriter, "commit_files": D, "append_rows": D}[target]
    real, calls = getattr(owner, target), []
    def dying(*a, **k):
        if len(calls) == crash_after:
            os._exit(17)          # a hard crash: no cleanup, no finally blocks
        calls.append(1)
        return real(*a, **k)
    setattr(owner, target, dying)
    v = synth_video(1, index, SynthSpec(n_frames=25, points_per_frame=16))  # other content for the same video id
    run = W.RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC), source_uri="x")
    with W.VideoWriter(root, sys.argv[5], run) as w:
        for lo in range(0, 25, 10):   # three chunks per streamed table
            w.append("frames", {k: val[lo:lo + 10] for k, val in v["frames"].items()})
            w.append("points", {k: val[lo * 16:(lo + 10) * 16] for k, val in v["points"].items()})
        w.append("humans", v["humans"])
        w.commit(videos={**v["videos"], "video_id": [sys.argv[5]]})
    os._exit(3)                   # the crash point was never reached
""")

# before any file is complete; between the data commits; before the runs commit
CRASH_POINTS = [("append", 0), ("append", 4), ("commit_files", 0), ("commit_files", 2), ("append_rows", 0)]


def _crash_writer(root, video_id: str, target: str, crash_after: int) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, root.base, target, str(crash_after), "3", video_id],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr


@pytest.mark.parametrize("target, crash_after", CRASH_POINTS)
def test_crash_mid_commit_leaves_the_old_run_visible(root, target, crash_after):
    from storage.maintenance import vacuum

    v = synth_video(0, 8, SPEC)
    old = _write(root, v)
    before = {name: read_table(root, name) for name in (*S.DATA_TABLES, "videos", "runs")}
    _crash_writer(root, v["video_id"], target, crash_after)
    for name, table in before.items():
        assert read_table(root, name).equals(table), name  # the old run, not the crashed 25-frame one, not both
    assert read_table(root, "runs").column(S.RUN_ID).to_pylist() == [old.run_id]
    vacuum(root, min_age_s=0)  # crashed rows and files go; visible data stays
    for name in S.DATA_TABLES:
        assert set(_plain(root, name).column(S.RUN_ID).to_pylist()) == {old.run_id}
        assert read_table(root, name).equals(before[name])
        files = {p.name for p in root.local_path(name).glob("*.parquet")}
        assert files == {p.rsplit("/", 1)[-1] for p in D.live_files(D.open_table(root, S.TABLES[name]))}


def test_two_processes_writing_at_once_both_land(root):
    script = textwrap.dedent("""
        import sys, datetime as dt
        from storage.fs import open_root
        from storage.synthetic import SynthSpec, synth_video
        from storage.writer import RunInfo, write_video
        root = open_root(sys.argv[1])
        for i in range(int(sys.argv[2]), int(sys.argv[2]) + 4):
            v = synth_video(5, i, SynthSpec(n_frames=10, points_per_frame=4))
            run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                          source_uri=v["videos"]["source_uri"][0])
            write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                        points=v["points"])
    """)
    dataset.init_dataset(root)
    procs = [subprocess.Popen([sys.executable, "-c", script, root.base, str(start)], stderr=subprocess.PIPE,
                              text=True) for start in (0, 100)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert read_table(root, "videos").num_rows == 8 and read_table(root, "frames").num_rows == 80
