"""The DuckDB catalog: views, motion macros with known answers, read-only enforcement, pruning."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import QueryError
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, write_failure, write_video

SPEC = SynthSpec(n_frames=30, points_per_frame=8, max_people=3)


def _write(root, v):
    run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                points=v["points"])


def _known_motion_video(fps=10.0, n=11):
    """Two people over n frames: track 0 walks +x at 1.5 m/s, track 1 stands 2 m away (x) from the start."""
    v = synth_video(0, 0, SynthSpec(n_frames=n, fps=fps, points_per_frame=4, max_people=1))
    t = np.arange(n) / fps
    walk = np.stack([1.5 * t, np.zeros(n), np.full(n, 5.0)], -1).astype(np.float32)
    still = np.tile(np.array([[2.0, 0.0, 5.0]], np.float32), (n, 1))
    frames = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int32)
    heads = np.concatenate([walk, still])
    h = 2 * n
    v["humans"] = {
        S.FRAME_IDX: frames, S.TIMESTAMP_S: t[frames], S.TRACK_ID: np.repeat([0, 1], n).astype(np.int32),
        S.DETECTION_SCORE: np.full(h, 0.9, np.float32),
        **{c: list(np.zeros((h, k), np.float32)) for c, k in [
            (S.GLOBAL_ORIENT_CAM, 3), (S.BODY_POSE, 63), (S.LEFT_HAND_POSE, 45), (S.RIGHT_HAND_POSE, 45),
            (S.JAW_POSE, 3), (S.BETAS, 10), (S.EXPRESSION, 10), (S.HEAD_CAM_M, 3), (S.GLOBAL_ORIENT_WORLD, 3)]},
        S.HEAD_WORLD_M: list(heads), S.TRANSL_WORLD_M: [None] * h, S.JOINTS_WORLD_M: [None] * h,
    }
    v["frames"][S.N_HUMANS] = np.full(n, 2, np.int16)
    return v


def _scalar(cat, sql):
    return cat.query(sql).column(0)[0].as_py()


def test_views_cover_every_table_with_video_id_first(root):
    for i in range(3):
        _write(root, synth_video(0, i, SPEC))
    write_failure(root, source_uri="/bad.mp4", stage="probe", error="not a video")
    with open_catalog(root) as cat:
        for name, table in S.TABLES.items():
            cols = cat.query(f"SELECT * FROM {name} LIMIT 0").column_names
            assert sorted(cols) == sorted(table.column_names), name
            if table.kind in ("data", "runs", "view"):  # a table of videos starts with video_id, sessions with theirs
                assert cols[0] == (S.SESSION_ID if table is S.SESSIONS else S.VIDEO_ID)
            if table.stored:
                assert cat.query(f"SELECT * FROM {name}_all LIMIT 0").column_names == table.column_names
        assert _scalar(cat, "SELECT count(*) FROM videos") == 3
        assert _scalar(cat, "SELECT count(*) FROM frames") == 3 * SPEC.n_frames
        assert _scalar(cat, "SELECT count(*) FROM failures") == 1
        # frames.n_humans agrees with the humans rows
        assert _scalar(cat, """SELECT count(*) FROM frames f LEFT JOIN
            (SELECT video_id, frame_idx, count(*) n FROM humans GROUP BY ALL) h USING (video_id, frame_idx)
            WHERE f.n_humans <> coalesce(h.n, 0)""") == 0


def test_empty_dataset_has_typed_empty_views(root):
    write_failure(root, source_uri="/x", stage="probe", error="nope")  # creates the dataset, no videos
    with open_catalog(root) as cat:
        assert _scalar(cat, "SELECT count(*) FROM humans") == 0
        assert "head_world_m" in cat.query("SELECT * FROM humans").column_names


def test_motion_macros_give_known_answers(root):
    _write(root, _known_motion_video())
    with open_catalog(root) as cat:
        speed = {r["track_id"]: r for r in cat.query("SELECT * FROM track_speed()").to_pylist()}
        assert speed[0]["mean_speed_mps"] == pytest.approx(1.5, rel=1e-5)
        assert speed[0]["max_speed_mps"] == pytest.approx(1.5, rel=1e-4)
        assert speed[0]["length_m"] == pytest.approx(1.5, rel=1e-5)  # 1 s of walking
        assert speed[1]["mean_speed_mps"] == pytest.approx(0.0, abs=1e-6)
        assert speed[0]["n_frames"] == 11 and speed[0]["duration_s"] == pytest.approx(1.0)
        lengths = {r["track_id"]: r["length_m"] for r in cat.query("SELECT * FROM trajectory_length()").to_pylist()}
        assert lengths[0] == pytest.approx(1.5, rel=1e-5) and lengths[1] == pytest.approx(0, abs=1e-6)
        d = cat.query("SELECT frame_idx, distance_m FROM person_distances() ORDER BY frame_idx").to_pylist()
        assert len(d) == 11
        assert d[0]["distance_m"] == pytest.approx(2.0) and d[10]["distance_m"] == pytest.approx(0.5, abs=1e-5)
        assert _scalar(cat, "SELECT dist3([0,0,0], [3,4,0])") == pytest.approx(5.0)


def test_camera_path_macro_matches_cam_to_world(root):
    v = synth_video(0, 1, SPEC)
    _write(root, v)
    with open_catalog(root) as cat:
        got = np.array(cat.query("SELECT center_m FROM camera_path() ORDER BY frame_idx").column(0).to_pylist())
    c2w = np.array(v["frames"][S.CAM_TO_WORLD]).reshape(-1, 4, 4)
    np.testing.assert_allclose(got, c2w[:, :3, 3], atol=1e-6)


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1) TO 'out.csv'",
    "CREATE TABLE x AS SELECT 1",
    "INSERT INTO humans SELECT * FROM humans",
    "ATTACH 'other.db'",
    "SET enable_external_access = true",
    "SELECT 1; DROP VIEW humans",
    "INSTALL httpfs",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO 'out.csv'",
])
def test_user_sql_cannot_write(root, sql):
    _write(root, synth_video(0, 2, SPEC))
    with open_catalog(root) as cat:
        with pytest.raises(QueryError, match="only read queries"):
            cat.query(sql)
        assert _scalar(cat, "SELECT count(*) FROM humans") > 0  # still there


def test_user_sql_cannot_read_outside_the_dataset(root, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    _write(root, synth_video(0, 3, SPEC))
    with open_catalog(root) as cat:
        with pytest.raises(QueryError, match="[Pp]ermission"):
            cat.query(f"SELECT * FROM read_csv('{secret}')")


def test_bad_sql_is_one_line(root):
    _write(root, synth_video(0, 4, SPEC))
    with open_catalog(root) as cat:
        for sql in ["SELEC 1", "SELECT no_such_column FROM humans", ""]:
            with pytest.raises(QueryError) as info:
                cat.query(sql)
            assert "\n" not in str(info.value)


def test_filter_on_video_id_reaches_the_parquet_scan(root):
    ids = []
    for i in range(4):
        v = synth_video(0, i, SPEC)
        _write(root, v)
        ids.append(v["video_id"])
    with open_catalog(root) as cat:
        plan = cat.query(f"EXPLAIN SELECT avg(detection_score) FROM humans WHERE video_id = '{ids[1]}'")
        text = "\n".join(str(v) for row in plan.to_pylist() for v in row.values())
        scan = text[text.index("READ_PARQUET"):] if "READ_PARQUET" in text else text[text.index("PARQUET"):]
        assert "video_id" in scan and ids[1] in scan, text  # pushed into the scan: row groups skip by statistics
        n = _scalar(cat, f"SELECT count(*) FROM humans WHERE video_id = '{ids[1]}'")
        assert n == len(synth_video(0, 1, SPEC)["humans"][S.FRAME_IDX])


def test_catalog_is_a_snapshot(root):
    _write(root, synth_video(0, 5, SPEC))
    with open_catalog(root) as cat:
        _write(root, synth_video(0, 6, SPEC))
        assert _scalar(cat, "SELECT count(*) FROM videos") == 1
    with open_catalog(root) as cat:
        assert _scalar(cat, "SELECT count(*) FROM videos") == 2
