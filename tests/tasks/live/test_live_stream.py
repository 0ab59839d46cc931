"""`human3r live` against a real stream on loopback (the sample camera: H.264 in MPEG-TS over TCP at 10 fps, in its
own process), in its own process with its WebSocket feed read by a client: segments land while the stream runs;
the camera is swapped mid-stream (back within the session gap: the session goes on, the break recorded), then dies
for longer than the gap (a new session); finally the live process is killed with SIGKILL mid-segment (only that
segment is missing, and nothing of it is visible). SIGTERM: `test_sigterm_commits_the_open_segment`."""

from __future__ import annotations

import os
import re
import signal
import threading
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
    if not (root / S.DATASET_FILE).exists():
        return []
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


def segments(root, camera: str = "a") -> list[dict]:
    return query(root, f"SELECT * FROM runs WHERE {S.CAMERA} = ? ORDER BY {S.STARTED_AT}", [camera])


def frames_of(root, camera: str = "a") -> list[dict]:
    return query(root, f"""SELECT r.{S.SESSION_ID}, r.{S.SEGMENT_INDEX}, f.* FROM frames f JOIN runs r
        USING ({S.VIDEO_ID}) WHERE r.{S.CAMERA} = ? ORDER BY r.{S.SESSION_ID}, f.{S.FRAME_IDX}""", [camera])


def test_live_stream_sessions_segments_feed_reconnects_and_kill(tmp_path, camera, live_process, wait_for):
    root = tmp_path / "ds"
    cam = camera(10)
    a = live_process(cam.url, root, "--camera", "a", *COMMON)
    a.wait_connected()

    # segments land in the dataset while the stream runs
    wait_for(lambda: len(segments(root)) >= 2, 60, "two segments", logs=(a,))
    assert cam.proc.poll() is None and a.proc.poll() is None

    # the camera is swapped mid-stream: it comes back within the gap, the same session goes on, the break recorded
    before = len(segments(root))
    cam.swap()
    resumed = wait_for(lambda: [r for r in segments(root)[before:] if r[S.GAP_BEFORE_S] is not None], 30,
                       "a segment after the short break", logs=(a,))[0]
    first = segments(root)[0]
    assert resumed[S.SESSION_ID] == first[S.SESSION_ID] and resumed[S.SEGMENT_INDEX] > 0
    assert 0 < resumed[S.GAP_BEFORE_S] < GAP_S

    # the camera dies for longer than the gap: a new session, whose first segment records the break
    cam.kill()
    time.sleep(GAP_S + 0.5)
    cam.start()
    wait_for(lambda: len({r[S.SESSION_ID] for r in segments(root)}) == 2, 30, "a second session", logs=(a,))

    # SIGKILL mid-segment (right after a commit, its next segment open): only that segment is lost, invisibly
    done = {r[S.SEGMENT_INDEX] for r in segments(root) if r[S.SESSION_ID] != first[S.SESSION_ID]}
    wait_for(lambda: any(m[S.SESSION_ID] != first[S.SESSION_ID] and m[S.SEGMENT_INDEX] > max(done) + 1
                         for m in a.messages), 30, "the next open segment", every=0.05, logs=(a,))
    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    committed = segments(root)
    fed = {(m[S.SESSION_ID], m[S.SEGMENT_INDEX]) for m in a.messages}
    lost = fed - {(r[S.SESSION_ID], r[S.SEGMENT_INDEX]) for r in committed}
    assert len(lost) == 1 and lost == {max(fed)}, lost  # the open one, the last
    rows = frames_of(root)
    kept = [m for m in a.messages if (m[S.SESSION_ID], m[S.SEGMENT_INDEX]) not in lost]
    assert [(r[S.SESSION_ID], r[S.FRAME_IDX]) for r in rows] == [(m[S.SESSION_ID], m[S.FRAME_IDX]) for m in kept]
    assert sum(r[S.N_FRAMES] for r in committed) == len(rows)  # every committed segment whole, one message a frame
    lost_video = next(m[S.VIDEO_ID] for m in a.messages if (m[S.SESSION_ID], m[S.SEGMENT_INDEX]) in lost)
    for table in (S.FRAMES, S.HUMANS, S.POINTS):  # not in the views, nor in the Delta tables a plain reader reads
        assert not query(root, f"SELECT 1 FROM {table.name}_all WHERE {S.VIDEO_ID} = ?", [lost_video])
        ids = delta.open_table(open_root(root), table).to_pyarrow_table(columns=[S.VIDEO_ID]).column(S.VIDEO_ID)
        assert lost_video not in set(ids.to_pylist())
    by_frame = {(m[S.SESSION_ID], m[S.FRAME_IDX]): m for m in kept}
    for r in rows:  # the feed carries the dataset's numbers
        np.testing.assert_allclose(by_frame[(r[S.SESSION_ID], r[S.FRAME_IDX])][S.CAM_TO_WORLD], r[S.CAM_TO_WORLD],
                                   atol=2e-5)

    sessions = query(root, "SELECT * FROM sessions ORDER BY started_at")
    assert len(sessions) == 2 and all(s[S.MISSING_SEGMENTS] == 0 for s in sessions)
    one, two = sessions
    assert one[S.N_GAPS] == 1 and one[S.GAP_S] == pytest.approx(resumed[S.GAP_BEFORE_S])
    assert one[S.GAP_BEFORE_S] is None and two[S.GAP_BEFORE_S] > GAP_S and two[S.N_GAPS] == 0
    for s in sessions:  # each session: its own world frame, continuous across its segments and the short break
        mine = [r for r in rows if r[S.SESSION_ID] == s[S.SESSION_ID]]
        assert mine[0][S.TIMESTAMP_S] == 0 and mine[0][S.CAM_TO_WORLD] == pytest.approx(IDENTITY, abs=1e-6)
        assert not any(r[S.CAM_TO_WORLD] == pytest.approx(IDENTITY, abs=1e-6) for r in mine[1:])
        assert all(q[S.FRAME_IDX] > p[S.FRAME_IDX] for p, q in zip(mine, mine[1:]))
        assert [r[S.SEGMENT_INDEX] for r in mine] == sorted(r[S.SEGMENT_INDEX] for r in mine)
    of_one = [r for r in rows if r[S.SESSION_ID] == one[S.SESSION_ID]]
    after = [r for r in of_one if r[S.SEGMENT_INDEX] == resumed[S.SEGMENT_INDEX]]
    before_break = [r for r in of_one if r[S.SEGMENT_INDEX] == resumed[S.SEGMENT_INDEX] - 1]
    jump = after[0][S.TIMESTAMP_S] - before_break[-1][S.TIMESTAMP_S]
    assert jump == pytest.approx(resumed[S.GAP_BEFORE_S], abs=0.5)  # the session's clock spans the break
    status = query(root, "SELECT * FROM live_status")[0]
    assert status[S.CAMERA] == "a" and status[S.RECONNECTS] == 2 and status[S.STATE] == "running"  # as it died


@pytest.mark.usefixtures("one_torch_thread")
def test_sigterm_commits_the_open_segment(human3r_cli, tmp_path, wait_for):
    """SIGTERM to the `human3r live` process (this one: the command runs in-process, on a file replayed at its frame
    rate) while a segment is open: it is committed, the command exits 0 and says what it did."""
    from tasks.ops.sample import make_sample_video

    clip = make_sample_video(tmp_path / "clip.mp4", n_frames=60, width=160, height=96, fps=10)
    root = tmp_path / "ds"

    def terminate() -> None:  # once a segment is committed (the handler is in place), mid-way through the next
        wait_for(lambda: segments(root, "clip"), 60, "a first segment", every=0.1)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    result = human3r_cli("live", clip, "--realtime", "--out", root, "--checkpoint", "untrained:tiny", "--feed-port",
                         "0", "--segment-seconds", "1", "--points-per-frame", "20")
    assert "SIGTERM: committing the open segment" in result.stderr
    processed, decoded = map(int, re.search(r"(\d+) of (\d+) frames processed", result.stdout).groups())
    committed = segments(root, "clip")
    assert 2 <= len(committed) and sum(r[S.N_FRAMES] for r in committed) == processed  # the open one included
    assert sum(r[S.FRAME_COUNT] for r in committed) <= decoded < 60  # it stopped before the clip's end (a frame
    # or two decoded after the last one processed belong to no segment)
    assert query(root, "SELECT state FROM live_status")[0][S.STATE] == "stopped"
