"""Live segments in the dataset contract: the runs columns a segment carries, the `sessions` view that puts a session
back together, the `live_status` view, and datasets written before these columns existed (they read as before,
and take live segments: the columns are added on the next append)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from storage import delta
from storage import schema as S
from storage.catalog import open_catalog
from storage.synthetic import SynthSpec, synth_video, write_synthetic_dataset
from storage.writer import RunInfo, VideoWriter, write_rows

SPEC = SynthSpec(n_frames=6, points_per_frame=8, max_people=2)
LIVE = (S.CAMERA, S.SESSION_ID, S.SEGMENT_INDEX, S.SEGMENT_START_S, S.GAP_BEFORE_S, S.N_FRAMES_DROPPED)


def segment(root, session: str, index: int, *, gap: float | None = None, dropped: int = 0) -> str:
    """Commit one live segment (synthetic rows) of `session`; returns its video id."""
    v = synth_video(sum(map(ord, session)), index, SPEC)
    run = RunInfo(model_version="synthetic:0", preset="synthetic", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri="rtsp://cam/stream")
    with VideoWriter(root, v["video_id"], run) as writer:
        for name in S.DATA_TABLES:
            writer.append(name, v[name])
        writer.commit(videos=v["videos"], runs_extra={
            S.CAMERA: "lobby", S.SESSION_ID: session, S.SEGMENT_INDEX: index, S.SEGMENT_START_S: 2.0 * index,
            S.GAP_BEFORE_S: gap, S.N_FRAMES_DROPPED: dropped})
    return v["video_id"]


def query(root, sql: str) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql).to_pylist()


def test_a_dataset_from_before_live_segments_reads_and_takes_them(root, monkeypatch):
    old = dataclasses.replace(S.RUNS, columns=tuple(c for c in S.RUNS.columns if c.name not in LIVE))
    with monkeypatch.context() as m:  # write the dataset as the code before this change did
        m.setattr(S, "RUNS", old)
        m.setitem(S.TABLES, "runs", old)
        files = write_synthetic_dataset(root, 2, SPEC, seed=3)
    assert not set(LIVE) & set(delta.open_table(root, S.RUNS).schema().to_arrow().names)
    before = query(root, f"SELECT {S.VIDEO_ID}, {', '.join(LIVE)} FROM runs ORDER BY 1")
    assert [r[S.VIDEO_ID] for r in before] == sorted(files) and all(r[c] is None for r in before for c in LIVE)
    assert query(root, "SELECT * FROM sessions") == [] and query(root, "SELECT * FROM live_status") == []

    ids = [segment(root, "s1", 0), segment(root, "s1", 1, dropped=3), segment(root, "s1", 3, gap=1.5),
           segment(root, "s2", 0, gap=40.0)]
    assert set(LIVE) <= set(delta.open_table(root, S.RUNS).schema().to_arrow().names)  # schema evolution
    sessions = {r[S.SESSION_ID]: r for r in query(root, "SELECT * FROM sessions")}
    s1, s2 = sessions["s1"], sessions["s2"]
    assert s1[S.N_SEGMENTS] == 3 and s1[S.FIRST_SEGMENT] == 0 and s1[S.LAST_SEGMENT] == 3
    assert s1[S.MISSING_SEGMENTS] == 1 and s1[S.VIDEO_IDS] == ids[:3]
    assert s1[S.N_GAPS] == 1 and s1[S.GAP_S] == 1.5 and s1[S.GAP_BEFORE_S] is None
    assert s1[S.N_FRAMES_DROPPED] == 3 and s1[S.N_FRAMES] == 3 * SPEC.n_frames and s1[S.CAMERA] == "lobby"
    assert s1[S.STREAM_S] == pytest.approx(3 * SPEC.n_frames / SPEC.fps)
    assert s2[S.N_SEGMENTS] == 1 and s2[S.GAP_BEFORE_S] == 40.0 and s2[S.N_GAPS] == 0 and s2[S.GAP_S] == 0
    assert len(query(root, "SELECT * FROM runs")) == 6  # the old videos are still there
    n = query(root, f"""SELECT count(*) AS n FROM humans h JOIN runs r USING ({S.VIDEO_ID})
                        WHERE r.{S.SESSION_ID} = 's1'""")[0]["n"]
    assert n == s1[S.N_HUMAN_ROWS] > 0  # the schema's recipe: a whole session's people


def test_live_status_keeps_the_latest_row_per_camera(root):
    now = dt.datetime.now(dt.UTC)
    rows = []
    for camera, state, minutes in (("lobby", "running", 2), ("lobby", "stopped", 1), ("gate", "reconnecting", 0)):
        row = {c.name: None for c in S.LIVE_STATUS.columns}
        row.update({S.CAMERA: camera, S.SOURCE_URI: "rtsp://cam", S.STATE: state, S.SEGMENTS_COMMITTED: 1,
                    S.FRAMES_DECODED: 10, S.FRAMES_PROCESSED: 8, S.FRAMES_DROPPED: 2, S.FPS_IN: 25.0, S.FPS_OUT: 20.0,
                    S.PEOPLE_NOW: 1, S.RECONNECTS: 0, S.RESTARTS: 0, S.MODEL_VERSION: "m", S.PID: 1,
                    S.STARTED_AT: now, S.UPDATED_AT: now - dt.timedelta(minutes=minutes), S.STATUS_INTERVAL_S: 10.0})
        rows.append(row)
    write_rows(root, S.LIVE_STATUS.name, {c: [r[c] for r in rows] for c in S.LIVE_STATUS.column_names})
    latest = {r[S.CAMERA]: r[S.STATE] for r in query(root, "SELECT * FROM live_status")}
    assert latest == {"lobby": "stopped", "gate": "reconnecting"}
    assert len(query(root, "SELECT * FROM live_status_all")) == 3
