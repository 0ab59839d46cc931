"""The dataset on S3: a real S3 API server (moto's) on 127.0.0.1, written and queried through pyarrow + DuckDB."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from storage import manifest
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.parquet import RunInfo, read_failures, read_table, write_failure, write_video
from storage.synthetic import SynthSpec, synth_video

SPEC = SynthSpec(n_frames=20, points_per_frame=8)


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    mp.delenv("AWS_ENDPOINT_URL", raising=False)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="archive")
    yield endpoint
    mp.undo()
    server.stop()


def _write(root, v, run_id):
    run = RunInfo(run_id=run_id, model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    return write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                       points=v["points"])


def test_s3_round_trip_rerun_and_catalog(s3_endpoint):
    root = open_root(f"s3://archive/datasets/a?endpoint_override={s3_endpoint}")
    videos = [synth_video(0, i, SPEC) for i in range(2)]
    for v in videos:
        _write(root, v, "first")
    _write(root, videos[0], "second")  # re-run: replaced, not duplicated
    write_failure(root, source_uri="s3://archive/inbox/bad.mp4", stage="probe", error="not a video")

    assert read_table(root, "frames").num_rows == 2 * SPEC.n_frames
    assert sorted(read_table(root, "runs").column(S.RUN_ID).to_pylist()) == ["first", "second"]
    assert read_failures(root).column(S.STAGE).to_pylist() == ["probe"]
    assert len(manifest.list_commits(root)) == 2

    with open_catalog(root) as cat:
        n = cat.query("SELECT count(*) FROM humans").column(0)[0].as_py()
        assert n == sum(len(v["humans"][S.FRAME_IDX]) for v in videos)
        one = cat.query("SELECT count(*) FROM frames WHERE video_id = ?", [videos[1]["video_id"]])
        assert one.column(0)[0].as_py() == SPEC.n_frames
        assert cat.query("SELECT count(*) FROM track_speed()").column(0)[0].as_py() > 0
        assert cat.query("SELECT count(*) FROM failures").column(0)[0].as_py() == 1


def test_s3_endpoint_from_environment(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    root = open_root("s3://archive/datasets/b")
    _write(root, synth_video(0, 5, SPEC), "r")
    assert read_table(root, "videos").num_rows == 1
