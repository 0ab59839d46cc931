"""What SOURCE may be, what the dataset records of it, the frame queue between the decoder and the model, and bad
sources refused in one line with exit code 2 before the model loads."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.errors import SourceError
from tasks.live.framequeue import NewestQueue
from tasks.live.source import Connected, Disconnected, parse_source, public_uri


def test_sources_are_classified_and_recorded_without_credentials(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert parse_source("rtsp://user:secret@cam.local:554/stream").kind == "stream"
    assert parse_source("/dev/video0").kind == "device"
    assert parse_source(str(clip), realtime=True).kind == "file"
    assert public_uri("rtsp://user:secret@cam.local:554/s?token=abc&fps=25") == "rtsp://cam.local:554/s?token=***&fps=25"
    assert parse_source("srt://10.0.0.7:9000?passphrase=hunter22").public_uri == "srt://10.0.0.7:9000?passphrase=***"
    assert parse_source("rtsp://u:p@cam.local:554/s").name == "cam.local-554"
    for bad, says in (("ftp://cam/stream", "unsupported source"), ("rtsp:///stream", "names no host"),
                      (str(clip), "add --realtime"), (str(tmp_path / "nope.mp4"), "no such file or stream"),
                      (str(tmp_path), "is a folder")):
        with pytest.raises(SourceError, match=says):
            parse_source(bad)


def test_the_queue_never_blocks_the_producer_drops_the_oldest_and_keeps_events():
    q = NewestQueue(2, (Connected, Disconnected))
    up = Connected(1, None)
    q.put_event(up)
    for i in range(5):
        q.put(i)  # never waits, whatever the consumer does
    assert q.dropped == 3 and q.waiting() == 2
    assert q.take(0) is up  # events keep their place
    assert q.take(0) == 4 and q.dropped == 4  # the newest frame; the older one waiting is dropped too
    q.put(5)
    down = Disconnected(1, "end of stream", 0.5, 1.0)
    q.put_event(down)
    q.put(6)
    q.put(7)  # the queue is full of frames: the oldest frame goes, never the event
    assert q.take(0) is down and q.dropped == 5  # frame 5 was dropped to make room; it came before the event
    assert q.take(0) == 7 and q.dropped == 6 and q.take(0.01) is None
    assert q.put_frames == 8 == q.dropped + 2

    got = []
    consumer = threading.Thread(target=lambda: got.append(q.take(5)))
    consumer.start()
    time.sleep(0.05)
    q.put(8)  # wakes a waiting consumer
    consumer.join(5)
    assert got == [8]


def test_bad_sources_are_one_line_and_exit_2(human3r_cli, tmp_path, request):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    audio_only = request.getfixturevalue("camera")(10, "--audio-only")
    root = tmp_path / "ds"
    for source, says in ((f"tcp://127.0.0.1:{closed}", "cannot open tcp://127.0.0.1"),
                         ("gopher://cam/stream", "unsupported source"),
                         (audio_only.url, "carries no video stream (streams: audio)"),
                         (str(tmp_path / "missing.mp4"), "no such file or stream")):
        result = human3r_cli("live", source, "--out", root, "--checkpoint", "untrained:tiny", "--open-timeout", "5",
                             code=2)
        assert result.stderr.count("\n") == 1 and says in result.stderr, (source, result.stderr)
    with socket.socket() as silent:  # a host that answers but sends nothing: the open times out
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        result = human3r_cli("live", f"tcp://127.0.0.1:{silent.getsockname()[1]}", "--out", root, "--checkpoint",
                             "untrained:tiny", "--open-timeout", "1", code=2)
    assert result.stderr.count("\n") == 1 and "no video within 1 s (--open-timeout" in result.stderr, result.stderr
    assert not root.exists()  # refused before anything was written
    result = human3r_cli("live", "tcp://127.0.0.1:1", "--out", root, "--camera", "bad name!", code=2)
    assert "--camera" in result.stderr and result.stderr.count("\n") == 1
    result = human3r_cli("live", "tcp://127.0.0.1:1", "--out", root, "--segment-seconds", "0", code=2)
    assert "--segment-seconds" in result.stderr and result.stderr.count("\n") == 1
