"""reconstruct-archive over an S3 prefix (moto's S3 server): the Ray actors stream the videos from the bucket."""

from __future__ import annotations

import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.writer import read_failures
from tasks.ops.sample import make_sample_video
from tasks.options import ConvertOptions, DecodeOptions, ModelOptions, ReconstructOptions

pytest.importorskip("ray")


def test_archive_from_an_s3_prefix(prefect_harness, s3_endpoint, tmp_path):
    import boto3

    from flows.reconstruct import reconstruct_archive

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for i in range(2):
        path = make_sample_video(tmp_path / f"clip{i}.mp4", n_frames=8, width=160, height=96, seed=i)
        client.upload_file(str(path), "archive", f"flow-inbox/cam{i}/clip{i}.mp4")
    client.put_object(Bucket="archive", Key="flow-inbox/broken.mp4", Body=b"\x00" * 1000)

    def uri(key: str) -> str:
        return f"s3://archive/flow-inbox/{key}?endpoint_override={s3_endpoint}"

    options = ReconstructOptions(decode=DecodeOptions(max_frames=3), convert=ConvertOptions(points_per_frame=50))
    report = reconstruct_archive(source=uri(""), dataset=str(tmp_path / "ds"),
                                 model=ModelOptions(checkpoint="untrained:tiny"), options=options)
    assert report.counts == {"ok": 2, "skipped": 0, "failed": 1}
    with open_catalog(open_root(tmp_path / "ds")) as cat:
        got = cat.query("SELECT source_uri FROM videos ORDER BY source_uri").column(0).to_pylist()
        assert got == [uri("cam0/clip0.mp4"), uri("cam1/clip1.mp4")]
        assert cat.query("SELECT count(*) FROM frames").column(0)[0].as_py() == 6
    (failure,) = read_failures(open_root(tmp_path / "ds")).to_pylist()
    assert failure[S.SOURCE_URI] == uri("broken.mp4") and failure[S.STAGE] == "probe"
