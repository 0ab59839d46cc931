"""Readers never see a half-written or doubled video: writer processes re-run videos and are killed at random points
while two readers poll — our DuckDB catalog, and a plain Delta reader (delta-rs -> pyarrow) that applies the rules
documented in storage.schema — and a process deleting the rows of replaced runs and a vacuum, both with a grace
period, run alongside. Once the writers stop, a reader that applies no rule sees the live rows."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from storage import delta as D
from storage import schema as S
from storage.catalog import open_catalog
from storage.dataset import utc_now
from storage.deletes import delete_replaced
from storage.maintenance import vacuum
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, write_video

pytestmark = pytest.mark.slow

WRITER = textwrap.dedent("""
    import datetime as dt, random, sys
    from storage.fs import open_root
    from storage.synthetic import SynthSpec, synth_video
    from storage.writer import RunInfo, write_video
    root, ids, rnd = open_root(sys.argv[1]), sys.argv[2].split(","), random.Random(int(sys.argv[3]))
    while True:  # re-run a random video with a random length, for ever (until killed)
        vid, n = rnd.choice(ids), rnd.randint(5, 25)
        v = synth_video(rnd.randint(0, 10**6), 0, SynthSpec(n_frames=n, points_per_frame=4, max_people=2))
        run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                      source_uri=f"/v/{vid}.mp4")
        write_video(root, vid, run=run, videos={**v["videos"], "video_id": [vid]}, frames=v["frames"],
                    humans=v["humans"], points=v["points"])
""")


PRUNER = textwrap.dedent("""
    import sys, time
    from storage.deletes import delete_replaced
    from storage.fs import open_root
    root = open_root(sys.argv[1])
    while True:  # what each writer's batch ends with, in a loop (until killed)
        print(len(delete_replaced(root, grace_s=3).runs), flush=True)
        time.sleep(0.2)
""")


def _check(runs: list[dict], frames: pa.Table, points: pa.Table) -> None:
    """Every live video has exactly its run's frames and points, once each."""
    expected = {r[S.VIDEO_ID]: r for r in runs}
    keys = pc.binary_join_element_wise(frames.column(S.VIDEO_ID), pc.cast(frames.column(S.FRAME_IDX), pa.string()),
                                       ":")
    assert len(set(keys.to_pylist())) == frames.num_rows, "a frame appears twice"
    got_frames = dict(zip(*[c.to_pylist() for c in pc.value_counts(frames.column(S.VIDEO_ID)).flatten()],
                          strict=True))
    got_points = dict(zip(*[c.to_pylist() for c in pc.value_counts(points.column(S.VIDEO_ID)).flatten()],
                          strict=True))
    assert set(got_frames) == set(expected), "a video is missing or unexpected"
    for vid, run in expected.items():
        assert got_frames[vid] == run[S.N_FRAMES], f"video {vid}: {got_frames[vid]} frames, run has {run[S.N_FRAMES]}"
        assert got_points.get(vid, 0) == run[S.N_POINTS], f"video {vid}: partial points"


def _read_with_catalog(root) -> None:
    with open_catalog(root) as cat:
        runs = cat.query(f"SELECT {S.VIDEO_ID}, {S.N_FRAMES}, {S.N_POINTS} FROM runs").to_pylist()
        frames = cat.query(f"SELECT {S.VIDEO_ID}, {S.FRAME_IDX} FROM frames")
        points = cat.query(f"SELECT {S.VIDEO_ID} FROM points")
    _check(runs, frames, points)


def _read_plain(root) -> None:
    """Any Delta reader: runs first, latest per video; then rows whose run_id is live."""
    runs = D.open_table(root, S.RUNS, version_check=False).to_pyarrow_table(
        columns=[S.VIDEO_ID, S.RUN_ID, S.FINISHED_AT, S.N_FRAMES, S.N_POINTS]).to_pylist()
    latest: dict[str, dict] = {}
    for r in runs:
        best = latest.get(r[S.VIDEO_ID])
        if best is None or (r[S.FINISHED_AT], r[S.RUN_ID]) > (best[S.FINISHED_AT], best[S.RUN_ID]):
            latest[r[S.VIDEO_ID]] = r
    live = pa.array([r[S.RUN_ID] for r in latest.values()])
    frames = D.open_table(root, S.FRAMES, version_check=False).to_pyarrow_table(
        columns=[S.VIDEO_ID, S.RUN_ID, S.FRAME_IDX])
    points = D.open_table(root, S.POINTS, version_check=False).to_pyarrow_table(columns=[S.VIDEO_ID, S.RUN_ID])
    frames = frames.filter(pc.is_in(frames.column(S.RUN_ID), live))
    points = points.filter(pc.is_in(points.column(S.RUN_ID), live))
    _check(list(latest.values()), frames, points)


def test_readers_never_see_a_partial_or_doubled_video_while_writers_die(root):
    ids = []
    for i in range(4):  # every video exists before the storm
        v = synth_video(7, i, SynthSpec(n_frames=8, points_per_frame=4, max_people=2))
        run = RunInfo(model_version="m", preset="tiny", params={}, started_at=utc_now(), source_uri=f"/v/{i}.mp4")
        write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                    points=v["points"])
        ids.append(v["video_id"])
    rnd = random.Random(0)
    spawn = lambda seed: subprocess.Popen(  # noqa: E731
        [sys.executable, "-c", WRITER, root.base, ",".join(ids), str(seed)], stderr=subprocess.PIPE, text=True)
    writers = [spawn(s) for s in range(2)]
    pruner = subprocess.Popen([sys.executable, "-c", PRUNER, root.base], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    polls = kills = vacuums = 0
    deadline = time.monotonic() + 25
    try:
        while time.monotonic() < deadline:
            _read_with_catalog(root)
            _read_plain(root)
            polls += 1
            if rnd.random() < 0.3:  # kill a writer at a random point of whatever it is doing, start another
                k = rnd.randrange(len(writers))
                assert writers[k].poll() is None, writers[k].stderr.read()  # it was alive: no crash of its own
                writers[k].kill()
                writers[k].wait()
                writers[k] = spawn(rnd.randrange(10**6))
                kills += 1
            if polls % 5 == 0:  # replaced and crashed runs older than the grace period go, under the readers
                vacuum(root, min_age_s=3)
                vacuums += 1
        assert pruner.poll() is None, pruner.stderr.read()  # no error of its own (conflicts are retried)
    finally:
        for w in (*writers, pruner):
            w.kill()
            w.wait()
    runs = D.read_table(root, S.RUNS).num_rows
    pruned = sum(int(line) for line in pruner.stdout.read().split())
    assert polls >= 10 and kills >= 3 and vacuums >= 2 and runs > 10 and pruned, (polls, kills, vacuums, runs, pruned)

    delete_replaced(root, grace_s=0)  # the writers are gone: a plain reader sees live rows and crashed runs' only
    committed = set(D.read_table(root, S.RUNS, [S.RUN_ID]).column(S.RUN_ID).to_pylist())
    with open_catalog(root) as cat:
        live = set(cat.query(f"SELECT {S.RUN_ID} FROM runs").column(0).to_pylist())
    for name in S.DATA_TABLES:
        stored = set(D.read_table(root, S.TABLES[name], [S.RUN_ID]).column(S.RUN_ID).to_pylist())
        assert stored & committed <= live, name  # no replaced run left
    vacuum(root, min_age_s=0)  # and the killed writers' never-committed rows
    for name in S.DATA_TABLES:
        with open_catalog(root) as cat:
            n = cat.query(f"SELECT count(*) FROM {name}").column(0)[0].as_py()
        assert D.read_table(root, S.TABLES[name], [S.RUN_ID]).num_rows == n, name
