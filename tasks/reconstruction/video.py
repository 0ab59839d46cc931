"""One video -> one committed run in the dataset: stream its frames through Human3R and write the rows.

`reconstruct_video` is plain Python (the Ray actor and the CLI both call it) and takes the video's probe (from
`tasks.reconstruction.plan`), so a video is hashed once, the plan's root (`Plan.root`), so the dataset marker is
not read again (what it reads of the dataset before writing, the video's own live run, does not grow with the
archive), and the run's identity (`tasks.identity.RunIdentity`: weights, precision, body model and options), which
it checks against the network and body model it is given. Memory stays flat in the video's length: frames are
decoded ahead into a bounded queue, the network carries only its recurrent state, and rows go to the writer in
chunks. Each frame travels through the stream with its own tag (source index, timestamp, working geometry and
image), so frames may be prepared ahead (`prefetch`). A failure of any kind becomes a `failures` row with a one-line
reason, and nothing of the failed run becomes visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from human3r.body import BodyModel
from human3r.config import Human3RConfig
from human3r.geometry import WorkingGeometry
from human3r.preprocess import Frame, prepare_frame
from human3r.stream import run_stream
from storage import dataset
from storage import schema as S
from storage.fs import Root
from storage.writer import VideoWriter
from tasks.errors import OptionsError, PipelineError
from tasks.identity import RunIdentity, body_model_version, precision_of
from tasks.options import ReconstructOptions
from tasks.reconstruction.convert import RowBuffer, frame_rows, world_anchor
from tasks.reconstruction.decode import DecodeOptions, FrameReader, VideoProbe
from tasks.reconstruction.outcomes import VideoSummary, record_failure
from tasks.reconstruction.plan import already_done, probe

log = logging.getLogger(__name__)

# Frames prepared ahead of a GPU forward (preparation and the host-to-device copy overlap it). Off on a CPU, where
# the preparing thread competes with torch's for the cores (bench/pipeline.py `prefetch<N>_vs_0`: 1.1-1.6x with one
# torch thread on a loaded 2-core machine, not measured idle).
PREFETCH_CUDA = 2


def stored_outputs(options: ReconstructOptions) -> frozenset[str]:
    """The optional network outputs the dataset stores (`human3r.outputs.OPTIONAL_OUTPUTS`;
    tasks.reconstruction.convert reads the pose, humans, the camera-frame pointmap and, with `world_points='head'`, the
    world-view one): the colour head and the person mask never run, the world-view branch only for 'head'."""
    return frozenset({"pts3d_world"}) if options.convert.world_points == "head" else frozenset()


# ------------------------------------------------------------------------------------------------------------------
# One video
# ------------------------------------------------------------------------------------------------------------------


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` = the first CUDA GPU when there is one, else the CPU; otherwise any torch device string."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise OptionsError(f"--device: {spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError(f"--device: {spec!r} asked for, but CUDA is not available here; use --device cpu")
    return device


@dataclasses.dataclass(frozen=True)
class FrameTag:
    """What the rows of one frame need besides the network's outputs; rides with the frame through the stream."""

    index: int  # index among all decoded frames of the source (`frame_idx`)
    timestamp_s: float  # presentation time, seconds from the stream start
    geometry: WorkingGeometry  # source frame -> working image
    image: torch.Tensor  # (1, 3, H, W) the working image the network sees, in [-1, 1] (colours of the points)
    source: Any = None  # the decoded frame it was made from (a live frame carries its arrival time)


def tagged_frames(frames: Iterable, cfg: Human3RConfig) -> Iterator[tuple[FrameTag, Frame]]:
    """Decoded frames (anything with ``index``, ``timestamp_s`` and ``rgb``: a `FrameReader`'s, a live source's)
    -> `(tag, network input)` pairs for `human3r.stream.run_stream`."""
    geometry = None
    for decoded in frames:
        rgb = decoded.rgb
        h, w = rgb.shape[:2]
        if geometry is None or geometry.source_wh != (w, h):
            geometry = WorkingGeometry.for_source(w, h, cfg.image_size)
        frame = prepare_frame(rgb, cfg.image_size, cfg.dino.image_res)
        yield FrameTag(decoded.index, decoded.timestamp_s, geometry, frame.img, decoded), frame


def check_identity(identity: RunIdentity, model: torch.nn.Module, body_model: BodyModel | None) -> None:
    """OptionsError unless `model` and `body_model` make the rows `identity` says (use
    `RunIdentity.computed_by(model)` to adopt the precision a model computes in)."""
    identity.computed_by(model)  # same weights
    if precision_of(model) != identity.precision:
        raise OptionsError(f"the network computes in {precision_of(model)}, the run identity says "
                           f"{identity.precision}: build the identity with RunIdentity.computed_by(model)")
    held = body_model_version(str(body_model.path)) if body_model is not None else None
    if held != identity.body_model:
        raise OptionsError(f"the body model given ({held or 'none'}) is not the run identity's "
                           f"({identity.body_model or 'none'}): load the body model the options name")


def reconstruct_video(
    video: VideoProbe | str,
    root: Root,
    model: torch.nn.Module,
    identity: RunIdentity,
    *,
    body_model: BodyModel | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    prefetch: int | None = None,
) -> VideoSummary:
    """Reconstruct one video (its probe, or a path to probe) into `root` with `model` (from `load_model`) and
    `body_model`, as the run `identity` says (its options; checked against the model and body model: OptionsError
    when they disagree). Never raises for a bad video: it returns status "failed" and records a failures row.
    `progress(frames_done, frames_expected_or_None)` is called after every frame. `prefetch`: frames prepared
    ahead in a background thread (None = `PREFETCH_CUDA` on a GPU, none on a CPU)."""
    check_identity(identity, model, body_model)
    options = identity.options
    if prefetch is None:
        prefetch = PREFETCH_CUDA if next(model.parameters()).device.type == "cuda" else 0
    started = time.perf_counter()
    run_id = S.new_run_id()
    path = video.path if isinstance(video, VideoProbe) else str(video)
    found, stats = None, None
    try:
        found = video if isinstance(video, VideoProbe) else probe(path, model.cfg, options.decode)
        # the dataset may have changed since the plan (another run): check this video alone (its run, not all)
        done = {} if force else dataset.done_runs(root, [found.video_id])
        skipped = None if force else already_done(done, found, identity)
        if skipped is not None:
            return skipped
        run = identity.run_info(path, run_id, dt.datetime.now(dt.UTC))
        expected = _expected_frames(found, options.decode)
        with FrameReader(path, options.decode) as reader, VideoWriter(root, found.video_id, run) as writer:
            stats = reader.stats
            buffer = RowBuffer(writer.append, options.chunk_frames)
            stream = run_stream(model, tagged_frames(reader, model.cfg), use_ttt3r=options.use_ttt3r,
                                reset_interval=options.reset_interval, outputs=stored_outputs(options),
                                prefetch=prefetch)
            anchor = None
            for done, sf in enumerate(stream, 1):
                tag: FrameTag = sf.tag
                anchor = world_anchor(sf) if anchor is None else anchor
                buffer.add(frame_rows(sf, frame_idx=tag.index, timestamp_s=tag.timestamp_s, image=tag.image,
                                      geometry=tag.geometry, body_model=body_model, options=options.convert,
                                      anchor=anchor))
                if progress is not None:
                    progress(done, expected)
            buffer.flush()
            commit = writer.commit(videos=_video_row(found, stats.frames_decoded), n_decode_errors=stats.decode_errors)
        return VideoSummary(
            path, "ok", found.video_id, frames=commit.rows[S.FRAMES.name], human_rows=commit.rows[S.HUMANS.name],
            tracks=writer.n_tracks, points=commit.rows[S.POINTS.name], seconds=time.perf_counter() - started,
            decode_errors=stats.decode_errors,
        )
    except Exception as err:  # noqa: BLE001 - a bad video, a bug or OOM in one video must not stop the archive
        if not isinstance(err, PipelineError):
            log.debug("reconstruction of %s failed", path, exc_info=True)  # `human3r -v` shows the traceback
        return record_failure(root, path, err, video_id=found.video_id if found else None, run_id=run_id,
                              seconds=time.perf_counter() - started,
                              decode_errors=stats.decode_errors if stats else 0)


def _expected_frames(found: VideoProbe, opts: DecodeOptions) -> int | None:
    """The frames the reader will keep, from the header (for progress bars): indices in the window
    [start_s, end_s) at the video's frame rate, every stride-th, at most max_frames; None when the header does not
    say (nor max_frames)."""
    count = found.frame_count or (round(found.duration_s * found.fps) if found.duration_s and found.fps else 0)
    windowed = opts.start_s is not None or opts.end_s is not None
    if not count or (windowed and not found.fps):
        return opts.max_frames
    lo, hi = 0, count  # kept indices i: lo <= i < hi, i % stride == 0 (frame i shows at i / fps)
    if opts.start_s is not None:
        lo = min(count, math.ceil(opts.start_s * found.fps - 1e-6))
    if opts.end_s is not None:
        hi = min(count, math.ceil(opts.end_s * found.fps - 1e-6))
    n = max(0, -(-hi // opts.stride) - -(-lo // opts.stride))
    return min(n, opts.max_frames) if opts.max_frames else n


def _video_row(found: VideoProbe, frames_decoded: int) -> dict:
    return {
        S.VIDEO_ID: [found.video_id], S.CONTENT_SHA256: [found.content_sha256], S.SOURCE_URI: [found.path],
        S.SIZE_BYTES: [found.size_bytes], S.DURATION_S: [found.duration_s], S.FPS: [found.fps],
        S.WIDTH_PX: [found.width], S.HEIGHT_PX: [found.height], S.ROTATION_DEG: [found.rotation_deg],
        S.FRAME_COUNT: [found.frame_count or frames_decoded], S.CODEC: [found.codec],
    }
