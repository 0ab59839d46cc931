"""`human3r live` against real streams on loopback (the sample camera: H.264 in MPEG-TS over TCP at 10 fps, in its
own process), in its own process with its WebSocket feed read by a client. Two cameras run at once, into one
dataset: camera `a` loses its stream twice (back within the session gap: the session goes on; back after a long
break: a new session) and is stopped with SIGTERM (its open segment is committed); camera `b`'s live process is
killed with SIGKILL mid-segment (only that segment is missing, nothing of it is visible)."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from storage import delta
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root

pytestmark = pytest.mark.slow

GAP_S = 4.0  # --session-gap
COMMON = ("--segment-seconds", "1", "--session-gap", str(GAP_S), "--reconnect-initial", "0.2", "--reconnect-max",
          "0.5", "--status-seconds", "1", "--points-per-frame", "50", "--conf-threshold", "1")
IDENTITY = np.eye(4).reshape(16).tolist()


def query(root, sql, params=None) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


def segments(root, camera: str) -> list[dict]:
    if not (root / S.DATASET_FILE).exists():
        return []
    return query(root, f"SELECT * FROM runs WHERE {S.CAMERA} = ? ORDER BY {S.STARTED_AT}", [camera])


def frames_of(root, camera: str) -> list[dict]:
    return query(root, f"""SELECT r.{S.SESSION_ID}, r.{S.SEGMENT_INDEX}, f.* FROM frames f JOIN runs r
        USING ({S.VIDEO_ID}) WHERE r.{S.CAMERA} = ? ORDER BY f.{S.TIMESTAMP_S}""", [camera])


def by_frame(messages: list[dict]) -> dict[tuple[str, int], dict]:
    return {(m[S.SESSION_ID], m[S.FRAME_IDX]): m for m in messages}


def test_live_stream_sessions_segments_feed_reconnects_and_signals(tmp_path, camera, live_process, wait_for):
    root = tmp_path / "ds"
    cam_a, cam_b = camera(10), camera(10)
    a = live_process(cam_a.url, root, "--camera", "a", *COMMON)
    b = live_process(cam_b.url, root, "--camera", "b", *COMMON)
    a.wait_connected()
    b.wait_connected()

    # segments land in the dataset while the streams run
    wait_for(lambda: len(segments(root, "a")) >= 2 and len(segments(root, "b")) >= 2, 60, "two segments each",
             logs=(a, b))
    assert cam_a.proc.poll() is None and cam_b.proc.poll() is None and a.proc.poll() is None

    # b: SIGKILL mid-segment -> the committed segments are whole, the open one is missing and invisible
    done_b = {r[S.SEGMENT_INDEX] for r in segments(root, "b")}
    wait_for(lambda: any(m[S.SEGMENT_INDEX] > max(done_b) + 1 for m in b.messages), 30, "b's next open segment")
    b.signal(signal.SIGKILL)
    assert b.wait() == -signal.SIGKILL
    committed_b = segments(root, "b")
    open_b = {m[S.SEGMENT_INDEX] for m in b.messages} - {r[S.SEGMENT_INDEX] for r in committed_b}
    assert len(open_b) == 1 and open_b == {max(m[S.SEGMENT_INDEX] for m in b.messages)}, open_b
    rows_b = frames_of(root, "b")
    fed_b = [m for m in b.messages if m[S.SEGMENT_INDEX] not in open_b]
    assert [r[S.FRAME_IDX] for r in rows_b] == [m[S.FRAME_IDX] for m in fed_b]  # one message per processed frame
    assert sum(r[S.N_FRAMES] for r in committed_b) == len(rows_b)
    lost = next(m[S.VIDEO_ID] for m in b.messages if m[S.SEGMENT_INDEX] in open_b)
    for table in (S.FRAMES, S.HUMANS, S.POINTS):  # not in the views, nor in the Delta tables a plain reader sees
        assert query(root, f"SELECT count(*) AS n FROM {table.name}_all WHERE {S.VIDEO_ID} = ?", [lost])[0]["n"] == 0
        dt = delta.open_table(open_root(root), table)
        assert lost not in set(dt.to_pyarrow_table(columns=[S.VIDEO_ID]).column(S.VIDEO_ID).to_pylist())
    assert query(root, "SELECT missing_segments FROM sessions WHERE camera = 'b'")[0]["missing_segments"] == 0

    # a: the camera dies and comes back within the gap -> the same session goes on, the break is recorded
    before = len(segments(root, "a"))
    cam_a.kill()
    time.sleep(0.3)
    cam_a.start()
    resumed = wait_for(lambda: [r for r in segments(root, "a")[before:] if r[S.GAP_BEFORE_S] is not None], 30,
                       "a segment after the short break")[0]
    first = segments(root, "a")[0]
    assert resumed[S.SESSION_ID] == first[S.SESSION_ID] and resumed[S.SEGMENT_INDEX] > 0
    assert 0 < resumed[S.GAP_BEFORE_S] < GAP_S

    # a: the camera dies for longer than the gap -> a new session, whose first segment records the break
    cam_a.kill()
    time.sleep(GAP_S + 0.5)
    cam_a.start()
    wait_for(lambda: len({r[S.SESSION_ID] for r in segments(root, "a")}) == 2, 30, "a second session of a")

    # a: SIGTERM commits the open segment: every frame fed is in the dataset
    wait_for(lambda: {m[S.SEGMENT_INDEX] for m in a.messages if m[S.SESSION_ID] != first[S.SESSION_ID]}
             - {r[S.SEGMENT_INDEX] for r in segments(root, "a") if r[S.SESSION_ID] != first[S.SESSION_ID]}, 30,
             "an open segment of the second session")
    a.signal(signal.SIGTERM)
    assert a.wait() == 0, a.log
    assert "SIGTERM: committing the open segment" in "".join(a.stderr) and "2 session(s)" in "".join(a.stdout)
    rows_a = frames_of(root, "a")
    fed = by_frame(a.messages)
    assert set(fed) == {(r[S.SESSION_ID], r[S.FRAME_IDX]) for r in rows_a}
    for r in rows_a:  # the feed carries the dataset's numbers
        np.testing.assert_allclose(fed[(r[S.SESSION_ID], r[S.FRAME_IDX])][S.CAM_TO_WORLD], r[S.CAM_TO_WORLD],
                                   atol=2e-5)

    sessions = query(root, "SELECT * FROM sessions WHERE camera = 'a' ORDER BY started_at")
    assert len(sessions) == 2 and all(s[S.MISSING_SEGMENTS] == 0 for s in sessions)
    one, two = sessions
    assert one[S.N_GAPS] == 1 and one[S.GAP_S] == pytest.approx(resumed[S.GAP_BEFORE_S])
    assert one[S.GAP_BEFORE_S] is None and two[S.GAP_BEFORE_S] > GAP_S and two[S.N_GAPS] == 0
    for s in sessions:  # each session: its own world frame, continuous across its segments and the short break
        rows = [r for r in rows_a if r[S.SESSION_ID] == s[S.SESSION_ID]]
        assert rows[0][S.TIMESTAMP_S] == 0 and rows[0][S.CAM_TO_WORLD] == pytest.approx(IDENTITY, abs=1e-6)
        assert not any(r[S.CAM_TO_WORLD] == pytest.approx(IDENTITY, abs=1e-6) for r in rows[1:])
        assert all(q[S.FRAME_IDX] > p[S.FRAME_IDX] for p, q in zip(rows, rows[1:]))
        assert [r[S.SEGMENT_INDEX] for r in rows] == sorted(r[S.SEGMENT_INDEX] for r in rows)
    after_break = [r for r in rows_a if r[S.SESSION_ID] == one[S.SESSION_ID]
                   and r[S.SEGMENT_INDEX] == resumed[S.SEGMENT_INDEX]]
    before_break = [r for r in rows_a if r[S.SESSION_ID] == one[S.SESSION_ID]
                    and r[S.SEGMENT_INDEX] == resumed[S.SEGMENT_INDEX] - 1]
    jump = after_break[0][S.TIMESTAMP_S] - before_break[-1][S.TIMESTAMP_S]
    assert jump == pytest.approx(resumed[S.GAP_BEFORE_S], abs=0.5)  # the session's clock spans the break

    status = {r[S.CAMERA]: r for r in query(root, "SELECT * FROM live_status")}
    assert status["a"][S.STATE] == "stopped" and status["a"][S.RECONNECTS] == 2
    assert status["b"][S.STATE] in ("running", "starting")  # killed: its last row says what it was doing
    assert status["a"][S.FRAMES_PROCESSED] == len(a.messages)
