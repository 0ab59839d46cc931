"""The dashboard tests' dataset: synthetic videos, one real video reconstructed with untrained weights, one failure,
track-quality rows for one video, and benchmark results of two models (made once per session; tests only read it,
except the refresh test, which writes into a copy)."""

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
    return {"root": root, "synthetic": ids, "real": real, "video_path": video, "bad_path": str(bad),
            "quality_video": quality_video, "spec": SPEC}


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
