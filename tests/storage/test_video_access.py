"""Video access shared by the pipeline and the dashboard: read errors classified as transient or permanent (by
exception type and by the storage service's error codes, as pyarrow reports them), locations checked, PyAV loaded
only when a video is opened."""

from __future__ import annotations

import errno
import re
import subprocess
import sys

import pytest

from storage import media
from storage.errors import MediaError

TRANSIENT = [
    TimeoutError("timed out"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    BrokenPipeError(errno.EPIPE, "Broken pipe"),
    OSError(errno.ETIMEDOUT, "Connection timed out"),
    OSError("AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 56, Failure when receiving data"),
    OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate."),
    OSError("When getting information for key 'a.mp4' in bucket 'b': AWS Error UNKNOWN (HTTP status 503) during "
            "HeadObject operation: No response body."),
    OSError("AWS Error INTERNAL_FAILURE during GetObject operation: We encountered an internal error."),
    OSError("AWS Error THROTTLING during HeadObject operation"),
    OSError("GCS returned HTTP status 429: TooManyRequests"),
    OSError("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
    MediaError("already classified", transient=True),
]
PERMANENT = [
    FileNotFoundError(errno.ENOENT, "No such file or directory"),
    PermissionError(errno.EACCES, "Permission denied"),
    OSError("AWS Error ACCESS_DENIED during GetObject operation: Access Denied"),
    OSError("When getting information for key 'a.mp4' in bucket 'b': AWS Error UNKNOWN (HTTP status 403) during "
            "HeadObject operation"),
    OSError("AWS Error NO_SUCH_BUCKET during HeadObject operation: The specified bucket does not exist"),
    OSError(errno.EIO, "Input/output error"),
    ValueError("Invalid data found when processing input"),
    MediaError("not a readable video"),
]


@pytest.mark.parametrize("err", TRANSIENT, ids=lambda e: f"{type(e).__name__}:{str(e)[:40]}")
def test_transient_errors(err):
    assert media.is_transient(err)
    assert media.read_failure("s3://b/a.mp4", err).transient


@pytest.mark.parametrize("err", PERMANENT, ids=lambda e: f"{type(e).__name__}:{str(e)[:40]}")
def test_permanent_errors(err):
    assert not media.is_transient(err)
    failure = media.read_failure("s3://b/a.mp4", err)
    assert not failure.transient and "check the endpoint, the credentials and the permissions" in failure.message


def test_the_cause_chain_is_followed():
    try:
        try:
            raise OSError("AWS Error SLOW_DOWN during GetObject operation")
        except OSError as inner:
            raise RuntimeError("decoder gave up") from inner
    except RuntimeError as outer:
        assert media.is_transient(outer)


def test_local_locations_say_why_they_cannot_be_used(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "ok.mp4").write_bytes(b"x" * 10)
    for name, reason in (("gone.mp4", "no such file"), ("empty.mp4", "empty (0 bytes)"),
                         ("folder.mp4", "is a folder")):
        with pytest.raises(MediaError, match=re.escape(reason)) as info:
            media.locate(tmp_path / name)
        assert not info.value.transient
    found = media.locate(f"file://{tmp_path / 'ok.mp4'}")
    assert found.local == tmp_path / "ok.mp4" and found.size_bytes == 10 and found.name == "ok.mp4"
    with pytest.raises(MediaError, match="unsupported location"):
        media.locate("gopher://host/clip.mp4")


def test_importing_it_does_not_load_pyav():
    code = "import sys, storage.media; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
