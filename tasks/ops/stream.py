"""A sample camera on this machine: the sample video's frames (`tasks.ops.sample`) encoded live (H.264,
zero-latency) and served as MPEG-TS over TCP at their frame rate, to try `human3r live` without a camera (and for
its tests and benchmark).

    python -m tasks.ops.stream --port 9000 --fps 25          # then: human3r live tcp://127.0.0.1:9000 --out data/live

Like a camera, it keeps its own clock: frames are made at `fps` from the moment it starts, whether a client
watches or not, and a client that connects gets the current frame on (each client its own encoder, starting with a
key frame). Clients are served one after another; one that goes away is dropped and the next one accepted. It
listens on 127.0.0.1 and prints ``listening on tcp://127.0.0.1:<port>`` once it accepts connections.
`--audio-only` serves a stream without video (a tone), `--seconds` stops it after that long.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from fractions import Fraction

import numpy as np

from tasks.ops.sample import sample_frames

LOOP_FRAMES = 240  # the sample's frames repeat after this many (its figures walk on)
MUX_OPTIONS = {"muxdelay": "0", "muxpreload": "0", "flush_packets": "1"}


def serve(port: int = 0, *, fps: float = 25.0, seconds: float | None = None, width: int = 320, height: int = 180,
          seed: int = 0, audio_only: bool = False, host: str = "127.0.0.1", ready=None) -> None:
    """Serve until `seconds` have passed (forever when None). `ready(port)` is called once it listens."""
    import av

    frames = _Frames(width, height, seed)
    # reuse_port: a new camera process may take over the port while the old one still runs (a camera swapped)
    with socket.create_server((host, port), reuse_port=True) as server:
        server.settimeout(0.2)
        bound = server.getsockname()[1]
        (ready or (lambda p: print(f"listening on tcp://{host}:{p}", flush=True)))(bound)
        start = time.monotonic()
        while seconds is None or time.monotonic() - start < seconds:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    _stream_to(conn, av, frames, fps, start, seconds, audio_only)
                except (OSError, av.FFmpegError):
                    pass  # the client went away: wait for the next one


class _Frames:
    """The sample's frames, made on first use and kept (`LOOP_FRAMES` of them, then again from the first)."""

    def __init__(self, width: int, height: int, seed: int):
        self._made = sample_frames(LOOP_FRAMES, width, height, seed)
        self._kept: list[np.ndarray] = []
        self.shape = (height, width, 3)

    def __getitem__(self, i: int) -> np.ndarray:
        i %= LOOP_FRAMES
        while len(self._kept) <= i:
            self._kept.append(next(self._made))
        return self._kept[i]


def _stream_to(conn: socket.socket, av, frames: _Frames, fps: float, start: float, seconds: float | None,
               audio_only: bool) -> None:
    sink = conn.makefile("wb", buffering=0)
    # every packet goes out as it is muxed: one TS packet of I/O buffer, no muxing delay
    with av.open(sink, "w", format="mpegts", buffer_size=188, container_options=MUX_OPTIONS) as out:
        if audio_only:
            return _tone(out, av, start, seconds)
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[1], frames.shape[0], "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, round(fps)))}
        stream.time_base = Fraction(1, 90000)
        stream.codec_context.thread_count = 1  # frame threads would hold frames back
        while seconds is None or time.monotonic() - start < seconds:
            i = int((time.monotonic() - start) * fps)  # the camera's clock: the current frame
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts, frame.time_base = round(i / fps * 90000), Fraction(1, 90000)
            for packet in stream.encode(frame):
                out.mux(packet)
            time.sleep(max(0.0, start + (i + 1) / fps - time.monotonic()))


def _tone(out, av, start: float, seconds: float | None) -> None:
    rate = 48000
    stream = out.add_stream("mp2", rate=rate)
    stream.layout = "mono"
    n = 1152
    t = 0
    while seconds is None or time.monotonic() - start < seconds:
        samples = (0.2 * np.sin(2 * np.pi * 440 * (t + np.arange(n)) / rate) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, t
        for packet in stream.encode(frame):
            out.mux(packet)
        t += n
        time.sleep(max(0.0, start + t / rate - time.monotonic()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.ops.stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000, help="TCP port on 127.0.0.1 (0 = any free one)")
    parser.add_argument("--fps", type=float, default=25.0, help="frames per second")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0, help="which sample figures walk")
    parser.add_argument("--audio-only", action="store_true", help="a stream without video (a tone)")
    args = parser.parse_args(argv)
    try:
        serve(args.port, fps=args.fps, seconds=args.seconds, width=args.width, height=args.height, seed=args.seed,
              audio_only=args.audio_only)
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"error: cannot serve on port {args.port}: {err.strerror or err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
