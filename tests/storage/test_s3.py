"""The dataset on S3: a real S3 API server (moto's) on 127.0.0.1, Delta commits with conditional puts, queried through
pyarrow + DuckDB; concurrent writers, re-runs, vacuum and compaction there too."""

from __future__ import annotations

import datetime as dt
import threading

from storage import delta as D
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.maintenance import compact
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, read_failures, read_table, write_failure, write_video

SPEC = SynthSpec(n_frames=20, points_per_frame=8)


def _write(root, v):
    run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    return write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                       points=v["points"])


def test_s3_round_trip_rerun_compaction_and_catalog(s3_endpoint):
    root = open_root(f"s3://archive/datasets/a?endpoint_override={s3_endpoint}")
    assert dict(root.delta_options)["aws_conditional_put"] == "etag"  # the safe commit mode
    videos = [synth_video(0, i, SPEC) for i in range(2)]
    for v in videos:
        _write(root, v)
    second = _write(root, videos[0])  # re-run: replaced, not duplicated
    write_failure(root, source_uri="s3://archive/inbox/bad.mp4", stage="probe", error="not a video")

    assert read_table(root, "frames").num_rows == 2 * SPEC.n_frames
    runs = read_table(root, "runs")
    assert runs.num_rows == 2 and second.run_id in runs.column(S.RUN_ID).to_pylist()
    assert read_failures(root).column(S.STAGE).to_pylist() == ["probe"]

    report = compact(root, min_age_s=0)
    assert report.rows_deleted["frames"] == SPEC.n_frames  # the replaced run's rows
    assert D.read_table(root, S.FRAMES).num_rows == 2 * SPEC.n_frames
    with open_catalog(root) as cat:
        n = cat.query("SELECT count(*) FROM humans").column(0)[0].as_py()
        assert n == sum(len(v["humans"][S.FRAME_IDX]) for v in videos)
        one = cat.query("SELECT count(*) FROM frames WHERE video_id = ?", [videos[1]["video_id"]])
        assert one.column(0)[0].as_py() == SPEC.n_frames
        assert cat.query("SELECT count(*) FROM track_speed()").column(0)[0].as_py() > 0
        assert cat.query("SELECT count(*) FROM failures").column(0)[0].as_py() == 1


def test_s3_concurrent_writers_all_land(s3_endpoint):
    root = open_root(f"s3://archive/datasets/c?endpoint_override={s3_endpoint}")
    errors = []

    def writer(start):
        try:
            for i in range(start, start + 3):
                _write(root, synth_video(3, i, SynthSpec(n_frames=5, points_per_frame=4)))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k * 10,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert read_table(root, "videos").num_rows == 9 and read_table(root, "frames").num_rows == 45


def test_s3_endpoint_from_environment(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    root = open_root("s3://archive/datasets/b")
    _write(root, synth_video(0, 5, SPEC))
    assert read_table(root, "videos").num_rows == 1
