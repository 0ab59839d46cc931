"""The SQL page's engine: one read-only statement, the row limit applied inside DuckDB, the time limit, CSV; the
snapshot's refresh; and the bounded page queries (pagination, track speeds)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time

import numpy as np
import pytest

from dashboards import queries, usersql
from dashboards.geometry import step_speeds
from dashboards.snapshot import Snapshot
from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import QueryError
from storage.fs import open_root
from storage.synthetic import write_synthetic_dataset


def query(root, sql: str, params=None) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


@pytest.fixture(scope="module")
def snap(dash_dataset):
    s = Snapshot(open_root(dash_dataset["root"]), refresh_s=3600)
    yield s
    s.close()


def test_row_limit_is_applied_in_duckdb_and_order_kept(snap, dash_dataset):
    n_points = query(dash_dataset["root"], "SELECT count(*) AS n FROM points")[0]["n"]
    result = usersql.run(snap, "SELECT * FROM points -- every point", limit=25, timeout_s=10)
    assert result.table.num_rows == 25 and result.truncated and n_points > 25
    result = usersql.run(snap, "SELECT frame_idx FROM frames ORDER BY frame_idx DESC;", limit=7, timeout_s=10)
    assert result.table.column("frame_idx").to_pylist() == sorted(
        [r["frame_idx"] for r in query(dash_dataset["root"], "SELECT frame_idx FROM frames")], reverse=True)[:7]
    exact = usersql.run(snap, "SELECT count(*) AS n FROM videos", limit=5, timeout_s=10)
    n_videos = len(dash_dataset["synthetic"]) + 1 + len(dash_dataset["live"]["segments"])
    assert exact.table.to_pylist() == [{"n": n_videos}] and not exact.truncated
    for text in ("DESCRIBE humans", "SHOW TABLES", "SUMMARIZE runs", "EXPLAIN SELECT count(*) FROM frames",
                 "FROM track_speed() LIMIT 3", "WITH t AS (SELECT 1 AS a) SELECT * FROM t"):
        assert usersql.run(snap, text, limit=100, timeout_s=10).table.num_rows > 0, text


@pytest.mark.parametrize("text, says", [
    ("CREATE TABLE x AS SELECT 1", "got a CREATE statement"),
    ("INSERT INTO runs_all SELECT * FROM runs_all", "got a INSERT statement"),
    ("DROP VIEW runs", "got a DROP statement"),
    ("COPY runs TO '/tmp/stolen.csv'", "got a COPY statement"),
    ("ATTACH '/tmp/other.db' AS o", "got a ATTACH statement"),
    ("SET enable_external_access = true", "got a SET statement"),
    ("PRAGMA enable_profiling", "got a PRAGMA statement"),
    ("INSTALL httpfs", "statement"),
    ("SELECT 1; DROP VIEW runs", "2 statements given"),
    ("EXPLAIN ANALYZE CREATE TABLE y AS SELECT 1", "only read queries"),
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_text('/etc/hostname')", "Permission Error"),
    ("SELECT * FROM query('CREATE TABLE z AS SELECT 1')", "single SELECT"),
    ("", "empty"),
    ("SELEC 1", "Parser Error"),
])
def test_writes_files_and_settings_are_refused(snap, text, says):
    with pytest.raises(QueryError, match=says):
        usersql.run(snap, text, limit=10, timeout_s=10)
    assert usersql.run(snap, "SELECT count(*) AS n FROM runs", limit=10, timeout_s=10).table.num_rows == 1
    assert "z" not in [r["name"] for r in usersql.run(snap, "SHOW TABLES", limit=100, timeout_s=10).table.to_pylist()]


def test_time_limit_stops_a_long_query_and_the_connection_goes_on(snap):
    start = time.perf_counter()
    with pytest.raises(QueryError, match="time limit of 0.5 s"):
        usersql.run(snap, "SELECT count(*) FROM range(100000000000) a", limit=10, timeout_s=0.5)
    assert time.perf_counter() - start < 5
    assert usersql.run(snap, "SELECT 42 AS x", limit=10, timeout_s=5).table.to_pylist() == [{"x": 42}]


def test_csv_has_lists_as_json_and_nulls_empty(snap):
    result = usersql.run(snap, "SELECT frame_idx, cam_to_world, NULL AS nothing FROM frames ORDER BY video_id, "
                               "frame_idx", limit=3, timeout_s=10)
    rows = list(csv.reader(io.StringIO(usersql.to_csv(result.table))))
    assert rows[0] == ["frame_idx", "cam_to_world", "nothing"] and len(rows) == 4
    assert len(json.loads(rows[1][1])) == 16 and rows[1][2] == ""


def test_pages_of_videos_cover_every_video_once(snap, dash_dataset):
    every = [r[S.VIDEO_ID] for r in query(dash_dataset["root"], "SELECT video_id FROM videos ORDER BY video_id")]
    seen = []
    page = queries.videos_page(snap, 1, size=3)
    while True:
        seen += [r[S.VIDEO_ID] for r in page.rows]
        if page.page == page.pages:
            break
        page = queries.videos_page(snap, page.page + 1, size=3)
    assert seen == every and page.total == len(every) and page.pages == -(-len(every) // 3)
    assert queries.videos_page(snap, 1, search=every[2][:12]).rows[0][S.VIDEO_ID] == every[2]
    assert queries.videos_page(snap, 1, search="walkers.MP4").total == 1  # part of a source, any case
    assert queries.videos_page(snap, 99).rows == []


def test_speeds_match_the_catalog_macro(snap, dash_dataset):
    vid = dash_dataset["synthetic"][1]
    run = queries.video(snap, vid)
    heads, k = queries.head_tracks(snap, vid, run[S.N_HUMAN_ROWS])
    assert k == 1 and len(heads) == run[S.N_HUMAN_ROWS]
    speeds = step_speeds([h[S.TRACK_ID] for h in heads], [h[S.TIMESTAMP_S] for h in heads],
                         [h[S.HEAD_WORLD_M] for h in heads])
    steps = query(dash_dataset["root"], "SELECT step_m / dt_s AS v FROM track_steps() WHERE video_id = ? AND "
                                        "dt_s > 0 ORDER BY track_id, frame_idx", [vid])
    np.testing.assert_allclose(speeds, [s["v"] for s in steps], rtol=1e-5)
    assert 0.3 < np.median(speeds) < 3  # people walk


def test_snapshot_reopens_only_when_the_dataset_changed(tmp_path, dash_dataset):
    root = tmp_path / "copy"
    shutil.copytree(dash_dataset["root"], root)
    snap = Snapshot(open_root(root), refresh_s=0)
    try:
        before = snap.one("SELECT count(*) AS n FROM videos")["n"]
        opened = snap.opened_at
        assert snap.refresh() is False and snap.opened_at == opened  # nothing changed: no reopen
        write_synthetic_dataset(open_root(root), 1, dash_dataset["spec"], seed=99)
        assert snap.one("SELECT count(*) AS n FROM videos")["n"] == before + 1  # the next query sees it
        assert snap.opened_at > opened
        slow = Snapshot(open_root(root), refresh_s=3600)
        write_synthetic_dataset(open_root(root), 1, dash_dataset["spec"], seed=100)
        assert slow.one("SELECT count(*) AS n FROM videos")["n"] == before + 1  # within the interval: as opened
        assert slow.refresh(force=True) and slow.one("SELECT count(*) AS n FROM videos")["n"] == before + 2
        slow.close()
    finally:
        snap.close()


@pytest.mark.parametrize("max_rows", [0, 10_000])  # frame by frame, and the whole video read once
def test_frame_people_match_the_humans_rows(snap, dash_dataset, max_rows):
    people = queries.FramePeople(max_videos=1, max_rows=max_rows)
    for vid in (dash_dataset["synthetic"][2], dash_dataset["real"]):  # with joints, and without (no body model)
        run = queries.video(snap, vid)
        want = query(dash_dataset["root"], "SELECT frame_idx, track_id, joints_world_m FROM humans WHERE "
                                           "video_id = ? ORDER BY frame_idx, track_id", [vid])
        for frame_idx in sorted({w["frame_idx"] for w in want}):
            got = people.frame(snap, run, frame_idx)
            rows = [w for w in want if w["frame_idx"] == frame_idx]
            assert [g[S.TRACK_ID] for g in got] == [w["track_id"] for w in rows]
            for g, w in zip(got, rows):
                np.testing.assert_allclose(g[S.JOINTS_WORLD_M], np.array(w["joints_world_m"] or [],
                                                                         dtype=np.float32).reshape(-1, 3))
        assert people.frame(snap, run, 10_000) == []
