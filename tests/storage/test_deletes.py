"""Deleting the rows of replaced runs (`storage.deletes`): a plain Delta reader sees the live rows after a re-run, in
per-run and in compacted files; runs that are live or in flight are never touched; a crash before the delete is
caught up by the next call; a recent replacement waits for the grace period."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import delta as D
from storage import schema as S
from storage.catalog import open_catalog
from storage.dataset import utc_now
from storage.deletes import COMMIT_LAG_S, WATERMARK_APP, delete_replaced
from storage.fs import open_root
from storage.maintenance import compact
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, VideoWriter, commit_runs, write_video

SPEC = SynthSpec(n_frames=12, points_per_frame=8, max_people=2)
TABLES = ("frames", "humans", "points")


def _write(root, v, seed_rows: int | None = None):
    rows = v if seed_rows is None else {**synth_video(seed_rows, 0, SPEC), "video_id": v["video_id"],
                                        "videos": v["videos"]}
    run = RunInfo(model_version="m", preset="tiny", params={}, started_at=utc_now(),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    return write_video(root, v["video_id"], run=run, videos=v["videos"], frames=rows["frames"],
                       humans=rows["humans"], points=rows["points"])


def _plain(root, name: str) -> pa.Table:
    """What Spark, Polars or `DeltaTable(...).to_pyarrow_table()` return: every row of the snapshot, no rules."""
    return D.read_table(root, S.TABLES[name])


def _live(root, name: str) -> pa.Table:
    with open_catalog(root) as cat:
        return cat.query(f"SELECT * FROM {name} ORDER BY ALL")


def _same_rows(root) -> None:
    """The plain reader and the catalog agree, row for row, on every data table."""
    with open_catalog(root) as cat:
        for name in TABLES:
            plain, live = _plain(root, name), cat.query(f"SELECT * FROM {name}")
            assert plain.num_rows == live.num_rows, (name, plain.num_rows, live.num_rows)
            order = [(c, "ascending") for c in live.column_names if not pa.types.is_list(live.schema.field(c).type)]
            assert plain.select(live.column_names).sort_by(order).to_pylist() == live.sort_by(order).to_pylist()


def test_a_rerun_of_one_video_of_two_leaves_the_plain_reader_the_live_rows(root):
    a, b = synth_video(0, 0, SPEC), synth_video(0, 1, SPEC)
    _write(root, a)
    _write(root, b)
    _write(root, a, seed_rows=5)  # a re-run (other rows) replaces video a
    assert _plain(root, "frames").num_rows == 3 * SPEC.n_frames  # before: the replaced run counted twice
    report = delete_replaced(root, grace_s=0)
    assert len(report.runs) == 1 and report.total("files_dropped") == 3 and report.total("files_rewritten") == 0
    assert _plain(root, "frames").num_rows == 2 * SPEC.n_frames
    _same_rows(root)
    assert not delete_replaced(root, grace_s=0).runs  # nothing left: idempotent


def test_compacted_files_are_rewritten_without_the_replaced_rows_only(root):
    videos = [synth_video(1, i, SPEC) for i in range(4)]
    for v in videos:
        _write(root, v)
    compact(root, min_age_s=0)  # one sorted file per table holding every video
    before = {name: _live(root, name) for name in TABLES}
    _write(root, videos[2], seed_rows=9)
    report = delete_replaced(root, grace_s=0)
    assert report.tables["points"].files_rewritten == 1 and report.tables["points"].files_dropped == 0
    assert report.tables["frames"].rows_deleted == SPEC.n_frames
    assert report.tables["frames"].rows_copied == 3 * SPEC.n_frames
    _same_rows(root)
    others = [v["video_id"] for i, v in enumerate(videos) if i != 2]
    for name in TABLES:  # the other videos' rows are untouched, and the rewritten file is still sorted by video
        keep = before[name].filter(pa.compute.is_in(before[name].column(S.VIDEO_ID), pa.array(others)))
        now = _live(root, name)
        assert now.filter(pa.compute.is_in(now.column(S.VIDEO_ID), pa.array(others))).equals(keep), name
    rewritten = [f for f in root.local_path("points").glob("*.parquet") if f.name.startswith("part-rewrite-")]
    assert len(rewritten) == 1
    ids = pq.read_table(rewritten[0], columns=[S.VIDEO_ID]).column(S.VIDEO_ID).to_pylist()
    assert ids == sorted(ids) and set(ids) == set(others)
    for i in (0, 1, 3):  # a model upgrade: every row of the rewritten file is replaced, so it is dropped, not written
        _write(root, videos[i], seed_rows=9)
    report = delete_replaced(root, grace_s=0)
    assert report.total("files_dropped") == 3 and report.total("files_rewritten") == 0
    _same_rows(root)


def _in_flight(root, v, seed: int):
    """A run whose rows are committed but whose runs row is not yet (what a writer is between its commits)."""
    rows = synth_video(seed, 0, SPEC)
    run = RunInfo(model_version="m", preset="tiny", params={}, started_at=utc_now(), source_uri="x")
    with VideoWriter(root, v["video_id"], run) as writer:
        for name in TABLES:
            writer.append(name, rows[name])
        finished = writer.finish(videos=v["videos"])
        writer.committed = finished  # keep the files when the block ends
    for name in TABLES:
        D.commit_files(root, S.TABLES[name], [finished.files[name]], finished.run_id)
    return finished


def test_rows_of_live_and_in_flight_runs_are_never_deleted(root):
    v = synth_video(2, 0, SPEC)
    first = _write(root, v)
    second = _write(root, v, seed_rows=3)
    flying = _in_flight(root, v, seed=4)  # committed rows, no runs row: a plain reader may see it, nobody deletes it
    report = delete_replaced(root, grace_s=0)
    assert report.runs == {first.run_id}
    assert set(_plain(root, "frames").column(S.RUN_ID).to_pylist()) == {second.run_id, flying.run_id}
    commit_runs(root, [flying], txn=flying.run_id)  # it lands: now it replaces the second run
    assert delete_replaced(root, grace_s=0).runs == {second.run_id}
    assert set(_plain(root, "points").column(S.RUN_ID).to_pylist()) == {flying.run_id}
    _same_rows(root)


def test_a_crash_before_the_delete_is_caught_up_by_the_next_call(root):
    a, b = synth_video(3, 0, SPEC), synth_video(3, 1, SPEC)
    _write(root, a)
    _write(root, b)
    _write(root, a, seed_rows=1)
    assert delete_replaced(root, grace_s=0).runs  # a clean run leaves a watermark on each table
    assert D.open_table(root, S.FRAMES).transaction_version(WATERMARK_APP) is not None
    assert not delete_replaced(root, grace_s=0).runs
    crashed = _write(root, b, seed_rows=2)  # this writer dies between its runs commit and its delete
    assert _plain(root, "frames").num_rows == 3 * SPEC.n_frames
    _write(root, synth_video(3, 2, SPEC))  # the next run, of another video, deletes what the crash left
    report = delete_replaced(root, grace_s=0)
    assert len(report.runs) == 1 and crashed.run_id not in report.runs
    _same_rows(root)
    later = time.time() + 2 * COMMIT_LAG_S  # once every replacement is older than the watermark's margin ...
    assert delete_replaced(root, grace_s=0, now=later).checked == 2
    assert delete_replaced(root, grace_s=0, now=later).checked == 0  # ... a call with nothing to do reads no file


def test_a_recent_replacement_waits_for_the_grace_period(root, monkeypatch):
    v = synth_video(4, 0, SPEC)
    first = _write(root, v)
    _write(root, v, seed_rows=1)
    report = delete_replaced(root, grace_s=600)  # a reader may have read runs a moment ago: keep its rows
    assert not report.runs and report.too_recent == 1
    monkeypatch.setattr(S, "REPLACED_GRACE_S", 0.5)
    assert delete_replaced(root, wait=True).runs == {first.run_id}  # the end of a command: wait, then delete
    _same_rows(root)


def test_a_commit_that_loses_a_race_leaves_no_file_behind_and_is_retried(root, monkeypatch):
    videos = [synth_video(5, i, SPEC) for i in range(3)]
    for v in videos:
        _write(root, v)
    compact(root, min_age_s=0)
    _write(root, videos[0], seed_rows=1)
    real, raced = D.commit_changes, []

    def racing(dt, table, added, removed, properties):
        if not raced:  # meanwhile another writer (a compaction) replaces the compacted file by a copy of it
            raced.append(table.name)
            f = next(f for f in removed if f.single(S.RUN_ID) is None)
            copy = f"part-copy-{uuid.uuid4().hex}.parquet"
            root.fs.copy_file(root.path(f"{table.name}/{f.path}"), root.path(f"{table.name}/{copy}"))
            real(D.open_table(root, table), table, [D.DataFile(copy, f.size, f.rows, f.min_values, f.max_values)],
                 [f], properties.__class__())
        return real(dt, table, added, removed, properties)  # the first time: a real conflict

    monkeypatch.setattr(D, "commit_changes", racing)
    report = delete_replaced(root, grace_s=0)
    assert raced == ["points"] and report.tables["points"].files_rewritten == 1
    _same_rows(root)
    for name in TABLES:
        files = {p.name for p in root.local_path(name).glob("*.parquet")}
        live = {f.rsplit("/", 1)[-1] for f in D.live_files(D.open_table(root, S.TABLES[name]))}
        orphans = {f for f in files - live if f.startswith("part-rewrite-")}
        assert not orphans, (name, orphans)


def test_on_s3(s3_endpoint):
    root = open_root(f"s3://archive/datasets/deletes-{uuid.uuid4().hex[:8]}?endpoint_override={s3_endpoint}")
    v = synth_video(6, 0, SPEC)
    _write(root, v)
    _write(root, v, seed_rows=2)
    D.open_table(root, S.HUMANS).optimize.compact()  # one file of both runs: read and written through S3
    report = delete_replaced(root, grace_s=0)
    assert report.tables["humans"].files_rewritten == 1 and report.tables["points"].files_dropped == 1
    _same_rows(root)


def _default_row(table: S.Table, **values) -> dict:
    """One row of `table` with a plain value of the right type in every column, and `values`."""
    def plain(t: pa.DataType):
        if pa.types.is_list(t):
            return [plain(t.value_type)] * 3
        if pa.types.is_timestamp(t):
            return utc_now()
        return {pa.types.is_string: "x", pa.types.is_boolean: False, pa.types.is_integer: 0,
                pa.types.is_floating: 0.0}[next(k for k in (pa.types.is_string, pa.types.is_boolean,
                                                            pa.types.is_integer, pa.types.is_floating) if k(t))]
    return {c.name: [values.get(c.name, plain(c.type))] for c in table.columns}


@pytest.mark.parametrize("name", [t.name for t in S.TABLES.values() if t.kind == "derived"])
def test_derived_rows_of_replaced_runs_go_too(root, name):
    from storage.writer import write_rows

    v = synth_video(7, 0, SPEC)
    first = _write(root, v)
    write_rows(root, name, _default_row(S.TABLES[name], video_id=v["video_id"], run_id=first.run_id))
    second = _write(root, v, seed_rows=1)
    write_rows(root, name, _default_row(S.TABLES[name], video_id=v["video_id"], run_id=second.run_id))
    assert delete_replaced(root, grace_s=0).tables[name].runs == {first.run_id}
    assert _plain(root, name).column(S.RUN_ID).to_pylist() == [second.run_id]
