"""Videos on object storage, against a real S3 API server (moto's): listed, probed, decoded and reconstructed
straight from the bucket, identical to the same files read locally, and never downloaded whole."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from storage import media
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.writer import read_failures
from tasks.errors import SourceError, TransientReadError, VideoError
from tasks.ops.sample import make_sample_video
from tasks.options import DecodeOptions
from tasks.reconstruction.decode import DECODE_BUFFER, FrameReader, probe_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BUCKET = "archive"


@pytest.fixture(scope="module")
def bucket(s3_endpoint, sample_video, make_video, tmp_path_factory):
    """Objects under s3://archive/sources/: two videos and a text file in `inbox/`, bad objects in `bad/`, a larger
    video in `big/`. Returns the endpoint, the `uri(key)` builder and the local originals."""
    import boto3

    folder = tmp_path_factory.mktemp("s3-sources")
    second = make_sample_video(folder / "b.mp4", n_frames=12, width=160, height=96, seed=3)
    noise = np.random.default_rng(0).integers(0, 256, (120, 96, 160, 3), dtype=np.uint8)
    big = make_video(folder / "big.mp4", noise, fps=12, options={"crf": "5"})  # about 2.2 MB
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for key, path in {"inbox/clip-a.mp4": sample_video, "inbox/day2/clip-b.MP4": second, "big/noise.mp4": big}.items():
        client.upload_file(str(path), BUCKET, f"sources/{key}")
    for key, body in {"inbox/notes.txt": b"not a video", "bad/empty.mp4": b"", "bad/text.mp4": b"not a video\n",
                      "only-text/readme.txt": b"x"}.items():
        client.put_object(Bucket=BUCKET, Key=f"sources/{key}", Body=body)

    def uri(key: str, bucket: str = BUCKET) -> str:
        return f"s3://{bucket}/sources/{key}?endpoint_override={s3_endpoint}"

    return {"endpoint": s3_endpoint, "uri": uri, "local": {"clip-a": sample_video, "clip-b": second, "big": big}}


# ------------------------------------------------------------------------------------------------------- listing
def test_listing_a_prefix_finds_exactly_the_videos(bucket, list_videos):
    uri = bucket["uri"]
    expected = [uri("inbox/clip-a.mp4"), uri("inbox/day2/clip-b.MP4")]
    assert list_videos([uri("inbox")]) == expected  # the query travels with every object, as given
    assert list_videos([uri("inbox/")]) == expected
    assert list_videos([uri("inbox/day2/clip-b.MP4"), uri("inbox"), uri("bad/missing.mp4")]) == [
        expected[1], expected[0], uri("bad/missing.mp4")]  # objects kept as given, duplicates dropped


def test_endpoint_from_the_environment_leaves_the_uris_bare(bucket, monkeypatch, list_videos):
    monkeypatch.setenv("AWS_ENDPOINT_URL", bucket["endpoint"])
    assert list_videos([f"s3://{BUCKET}/sources/inbox"]) == [
        f"s3://{BUCKET}/sources/inbox/clip-a.mp4", f"s3://{BUCKET}/sources/inbox/day2/clip-b.MP4"]
    assert probe_video(f"s3://{BUCKET}/sources/inbox/clip-a.mp4").video_id == probe_video(
        bucket["local"]["clip-a"]).video_id


def test_listing_errors_name_the_cause(bucket, list_videos):
    uri = bucket["uri"]
    for where in (uri("only-text"), uri("nothing-here/")):
        with pytest.raises(SourceError, match="holds no video files"):
            list_videos([where])
    with pytest.raises(SourceError, match="patterns are not supported"):
        list_videos([uri("inbox/*.mp4")])
    for scheme in ("ftp://host/clips/", "http://host/clip.mp4"):
        with pytest.raises(SourceError, match="unsupported location .* s3://bucket/key"):
            list_videos([scheme])


# ------------------------------------------------------------------------------------------------ probe / decode
def test_probe_of_an_s3_object_equals_the_local_probe(bucket):
    for name, key in (("clip-a", "inbox/clip-a.mp4"), ("clip-b", "inbox/day2/clip-b.MP4")):
        local = probe_video(bucket["local"][name])
        remote = probe_video(bucket["uri"](key))
        assert remote.path == bucket["uri"](key)
        assert dataclasses.replace(remote, path=local.path) == local  # hash, size, w/h, fps, frame count, ...
        assert remote.video_id == local.video_id and remote.frame_count == local.frame_count > 0


def test_frame_reader_over_s3_yields_the_local_frames(bucket):
    options = DecodeOptions(stride=2, max_frames=8)

    def read(path):
        with FrameReader(path, options) as reader:
            return [(f.index, f.timestamp_s, f.rgb) for f in reader], reader.stats

    local, local_stats = read(bucket["local"]["clip-a"])
    remote, remote_stats = read(bucket["uri"]("inbox/clip-a.mp4"))
    assert len(remote) == len(local) == 8
    for (i, t, rgb), (i_l, t_l, rgb_l) in zip(remote, local):
        assert (i, t) == (i_l, t_l) and np.array_equal(rgb, rgb_l)
    assert remote_stats == local_stats


def test_bad_objects_raise_the_probe_errors(bucket):
    uri = bucket["uri"]
    cases = {uri("bad/missing.mp4"): "no such file", uri("bad/empty.mp4"): "empty (0 bytes)",
             uri("bad/text.mp4"): "not a readable video", uri("inbox"): "is a folder",
             uri("clip.mp4", bucket="no-such-bucket"): "no such file",
             "gopher://host/clip.mp4": "unsupported location"}
    for where, reason in cases.items():
        with pytest.raises(VideoError, match=re.escape(reason)) as info:
            probe_video(where)
        assert info.value.stage == "probe" and "\n" not in info.value.message


class _Counted:
    """A file object that counts what goes through it (bytes, reads, largest read)."""

    def __init__(self, file, log: list, fail_after: int | None = None):
        self._file, self.bytes, self.reads, self.largest = file, 0, 0, 0
        self._fail_after = fail_after  # reads that succeed before the connection "drops"
        log.append(self)

    def read(self, n=-1):
        if self._fail_after is not None and self.reads >= self._fail_after:
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: connection reset by peer")
        data = self._file.read(n)
        self.bytes, self.reads, self.largest = self.bytes + len(data), self.reads + 1, max(self.largest, len(data))
        return data

    def seek(self, offset, whence=0):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _CountingFilesystem:
    """Wraps the S3 filesystem: every file opened on it is counted, random-access and stream apart."""

    def __init__(self, fs, fail_after: int | None = None):
        self._fs, self.random, self.streams, self._fail_after = fs, [], [], fail_after

    def get_file_info(self, path):
        return self._fs.get_file_info(path)

    def open_input_file(self, path):
        return _Counted(self._fs.open_input_file(path), self.random, self._fail_after)

    def open_input_stream(self, path, **kwargs):
        return _Counted(self._fs.open_input_stream(path, **kwargs), self.streams)


@pytest.fixture
def counting(monkeypatch):
    """Every filesystem `storage.media` opens is counted; `counting.fail_after = n` makes PyAV's n+1-th
    read fail."""

    class Seen(list):
        fail_after = None

    seen = Seen()
    real = media.open_location

    def open_counted(uri):
        fs, path = real(uri)
        seen.append(_CountingFilesystem(fs, seen.fail_after))
        return seen[-1], path

    monkeypatch.setattr(media, "open_location", open_counted)
    return seen


def test_a_probe_reads_the_header_and_first_frame_and_hashes_once(bucket, counting):
    found = probe_video(bucket["uri"]("big/noise.mp4"))
    size = found.size_bytes
    assert size > 2_000_000 and found.frame_count == 120
    (fs,) = counting
    (pyav_file,) = fs.random  # what PyAV read, by ranged reads: the header and the first frame
    (hash_stream,) = fs.streams  # the hash: every byte exactly once
    assert hash_stream.bytes == size
    assert pyav_file.bytes < size / 10, (pyav_file.bytes, size)
    assert pyav_file.reads <= 8

    counting.clear()  # decoding streams the object in bounded reads, never one whole-object read
    with FrameReader(bucket["uri"]("big/noise.mp4")) as reader:
        assert sum(1 for _ in reader) == 120
    (fs,) = counting
    (decoder_file,) = fs.random
    assert not fs.streams and decoder_file.bytes >= size and decoder_file.largest <= DECODE_BUFFER < size


def test_a_connection_lost_midway_is_a_one_line_transient_failure(bucket, counting):
    counting.fail_after = 2
    reason = "could not be read this time .*connection reset.*tried again"
    with pytest.raises(TransientReadError, match=reason) as info:
        probe_video(bucket["uri"]("big/noise.mp4"))
    assert info.value.stage == "probe"
    with FrameReader(bucket["uri"]("big/noise.mp4")) as reader:
        with pytest.raises(TransientReadError, match="connection reset") as info:
            list(reader)
    assert info.value.stage == "decode"


# ------------------------------------------------------------------------------------------------ end to end (CLI)
def test_reconstruct_an_s3_prefix_then_one_object(bucket, tmp_path, human3r_cli):
    uri, out = bucket["uri"], tmp_path / "ds"
    args = ("--out", out, "--checkpoint", "untrained:tiny", "--max-frames", "3", "--points-per-frame", "50")
    result = human3r_cli("reconstruct", uri("inbox/"), *args)
    assert "2 reconstructed, 0 skipped, 0 failed" in result.stdout
    with open_catalog(open_root(out)) as cat:
        rows = cat.query("SELECT source_uri, frame_count FROM videos ORDER BY source_uri").to_pylist()
        assert [r[S.SOURCE_URI] for r in rows] == [uri("inbox/clip-a.mp4"), uri("inbox/day2/clip-b.MP4")]
        assert cat.query("SELECT count(*) FROM frames").column(0)[0].as_py() == 6
    again = human3r_cli("reconstruct", uri("inbox/clip-a.mp4"), *args)  # same content: probed, not redone
    assert "0 reconstructed, 1 skipped, 0 failed" in again.stdout


def test_unreadable_missing_and_empty_objects_become_failure_rows(bucket, tmp_path, human3r_cli):
    uri, out = bucket["uri"], tmp_path / "ds"
    reasons = {uri("bad/empty.mp4"): "empty (0 bytes)", uri("bad/missing.mp4"): "no such file",
               uri("bad/text.mp4"): "not a readable video", uri("x.mp4", bucket="no-such-bucket"): "no such file"}
    result = human3r_cli("reconstruct", *reasons, "--out", out, "--checkpoint", "untrained:tiny", code=1)
    assert "0 reconstructed, 0 skipped, 4 failed" in result.stdout and "Traceback" not in result.stderr
    rows = {r[S.SOURCE_URI]: r for r in read_failures(open_root(out)).to_pylist()}
    assert set(rows) == set(reasons)
    for where, reason in reasons.items():
        assert rows[where][S.STAGE] == "probe" and reason in rows[where][S.MESSAGE]
        assert rows[where][S.ERROR_TYPE] == "VideoError"


def test_wrong_sources_are_one_line_usage_errors(bucket, tmp_path, human3r_cli):
    for source, needle in ((bucket["uri"]("only-text/"), "holds no video files (looked for .3gp, .avi"),
                           ("http://host/clip.mp4", "unsupported location 'http://host/clip.mp4'"),
                           ("ftp://host/clips/", "use a local path, file://, s3://bucket/key")):
        result = human3r_cli("reconstruct", source, "--out", tmp_path / "ds", "--checkpoint", "untrained:tiny",
                             code=2)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert needle in result.stderr
    assert not (tmp_path / "ds").exists()
