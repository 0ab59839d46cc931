"""The dashboard tests' dataset: synthetic videos, one real video reconstructed with untrained weights, one failure,
track-quality rows for one video, benchmark results of two models, and a live session of two segments with the
health rows of two cameras (made once per session; tests only read it, except the refresh test, which writes into a
copy)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.synthetic import SynthSpec, write_synthetic_dataset

N_SYNTH = 6
SPEC = SynthSpec(n_frames=40, points_per_frame=64, max_people=3, width=640, height=360)


def query(root, sql: str, params=None) -> list[dict]:
    """What DuckDB says: the reference the pages are checked against."""
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


def write_quality_rows(root, video_id: str) -> list[dict]:
    """Plausible track_quality rows for the tracks of one video (every column filled: values differ per track)."""
    table = S.TABLES["track_quality"]
    tracks = query(root, f"SELECT {S.RUN_ID}, {S.TRACK_ID}, count(*) AS n FROM humans WHERE {S.VIDEO_ID} = ? "
                         "GROUP BY ALL ORDER BY 2", [video_id])
    rows = []
    for i, t in enumerate(tracks):
        row = {}
        for col in table.columns:
            kind = col.type
            if pa.types.is_integer(kind):
                row[col.name] = t["n"] + i
            elif pa.types.is_floating(kind):
                row[col.name] = round(0.25 + 0.2 * i, 3)
            elif pa.types.is_boolean(kind):
                row[col.name] = True
            elif pa.types.is_list(kind):
                row[col.name] = [0.0, -1.0, 0.0]
            elif pa.types.is_timestamp(kind):
                row[col.name] = dt.datetime.now(dt.UTC)
            else:
                row[col.name] = None
        row.update({S.VIDEO_ID: video_id, S.RUN_ID: t[S.RUN_ID], S.TRACK_ID: t[S.TRACK_ID]})
        rows.append(row)
    from storage.writer import write_rows

    write_rows(open_root(root), table.name, {c: [r[c] for r in rows] for c in table.column_names})
    return rows


def write_live_rows(root) -> dict:
    """What live cameras leave: a session of two segments (synthetic rows, session columns filled) and the health
    rows of two cameras, `lobby` reporting now and `gate` silent for ten minutes while 'running' (its process
    died)."""
    from storage.synthetic import synth_video
    from storage.writer import RunInfo, VideoWriter, write_rows

    session, ids = "0" * 31 + "1", []
    for index in range(2):
        v = synth_video(4242, index, SynthSpec(n_frames=10, points_per_frame=16, max_people=2, width=640, height=360))
        run = RunInfo(model_version="synthetic:0", preset="synthetic", params={},
                      started_at=dt.datetime.now(dt.UTC), source_uri="rtsp://lobby.local/stream")
        with VideoWriter(open_root(root), v["video_id"], run) as writer:
            for name in S.DATA_TABLES:
                writer.append(name, v[name])
            writer.commit(videos=v["videos"], runs_extra={
                S.CAMERA: "lobby", S.SESSION_ID: session, S.SEGMENT_INDEX: index, S.SEGMENT_START_S: 10.0 * index,
                S.GAP_BEFORE_S: 2.5 if index else None, S.N_FRAMES_DROPPED: 4})
        ids.append(v["video_id"])
    now = dt.datetime.now(dt.UTC)
    rows = []
    for camera, age_s, people in (("lobby", 1, 2), ("gate", 600, 0)):
        lobby = camera == "lobby"
        row = {c.name: None for c in S.LIVE_STATUS.columns}
        row.update({S.CAMERA: camera, S.SOURCE_URI: f"rtsp://{camera}.local/stream", S.STATE: "running",
                    S.SESSION_ID: session if lobby else None, S.SEGMENT_INDEX: 2 if lobby else None,
                    S.SEGMENTS_COMMITTED: 2 if lobby else 0, S.FRAMES_DECODED: 250, S.FRAMES_PROCESSED: 200,
                    S.FRAMES_DROPPED: 50, S.FPS_IN: 25.0, S.FPS_OUT: 20.0, S.LATENCY_P50_MS: 41.0,
                    S.LATENCY_P95_MS: 77.0, S.PEOPLE_NOW: people, S.RECONNECTS: 1, S.RESTARTS: 0,
                    S.MODEL_VERSION: "synthetic:0", S.PID: 4242, S.STARTED_AT: now,
                    S.LAST_VIDEO_ID: ids[-1] if lobby else None, S.LAST_COMMITTED_AT: now if lobby else None,
                    S.UPDATED_AT: now - dt.timedelta(seconds=age_s),
                    S.STATUS_INTERVAL_S: 3600.0 if lobby else 10.0})  # lobby stays fresh for the whole session
        rows.append(row)
    write_rows(open_root(root), S.LIVE_STATUS.name, {c: [r[c] for r in rows] for c in S.LIVE_STATUS.column_names})
    return {"session": session, "segments": ids}


@pytest.fixture(scope="session")
def dash_dataset(tmp_path_factory, human3r_cli):
    """{'root', 'synthetic': [ids], 'real': id, 'video_path', 'bad_path', 'quality_video', 'spec'}."""
    import torch

    from tasks.ops.sample import make_sample_video

    base = tmp_path_factory.mktemp("dashboard")
    root = base / "dataset"
    ids = write_synthetic_dataset(open_root(root), N_SYNTH, SPEC, seed=7)
    video = make_sample_video(base / "walkers.mp4", n_frames=24, width=192, height=108)
    bad = base / "not-a-video.mp4"
    bad.write_bytes(b"this is text, not a video" * 10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        human3r_cli("reconstruct", video, bad, "--out", root, "--checkpoint", "untrained:tiny", "--stride", "2",
                    "--points-per-frame", "200", "--conf-threshold", "1.0", code=1)
    finally:
        torch.set_num_threads(threads)
    real = query(root, f"SELECT {S.VIDEO_ID} FROM runs WHERE {S.SOURCE_URI} = ?", [video])[0][S.VIDEO_ID]
    quality_video = ids[0]
    if "track_quality" in S.TABLES:
        write_quality_rows(root, quality_video)
    write_evaluations(root)
    live = write_live_rows(root)
    return {"root": root, "synthetic": ids, "real": real, "video_path": video, "bad_path": str(bad),
            "quality_video": quality_video, "spec": SPEC, "live": live}


def write_evaluations(root) -> None:
    """Benchmark results: 896L float32 under both protocols (EMDB-2, and TUM), 672S bfloat16 (EMDB-2), and a
    sequence of 3DPW that failed."""
    from storage.synthetic import synth_evaluation
    from storage.writer import write_rows

    tum = {"ate_m": ("m", 0.05), "rpe_trans_m": ("m", 0.01), "rpe_rot_deg": ("deg", 0.5)}
    batches = [
        dict(seed=1, protocol="reference"), dict(seed=2, protocol="corrected"),
        dict(seed=3, model_version="human3r-672S-fedcba9876543210", precision="bfloat16"),
        dict(seed=4, benchmark="tum", metrics=tum, sequences=("walking_xyz", "sitting_static", "walking_rpy")),
        dict(seed=5, benchmark="3dpw", status="failed", sequences=("downtown_walking_00",)),
    ]
    for kw in batches:
        rows = synth_evaluation(**kw)
        write_rows(open_root(root), S.EVALUATIONS.name, rows, txn=rows[S.RUN_ID][0])
