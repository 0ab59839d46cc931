"""One video -> one committed run in the dataset: stream its frames through Human3R and write the rows.

`reconstruct_video` is plain Python (the Ray actor and the CLI both call it) and takes the video's probe (from
`tasks.reconstruction.plan`), so a video is hashed once, and the plan's root (`Plan.root`), so the dataset marker
is not read again; what it reads of the dataset before writing (the video's own live run) does not grow with the
archive. Memory stays flat in the video's length: frames are decoded
ahead into a bounded queue, the network carries only its recurrent state, and rows go to the writer in chunks. A
failure of any kind becomes a `failures` row with a one-line reason, and nothing of the failed run becomes visible.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

import torch

from human3r.body import BodyModel
from human3r.config import Human3RConfig
from human3r.geometry import WorkingGeometry
from human3r.preprocess import Frame, prepare_frame
from human3r.stream import run_stream
from human3r.weights import ModelIdentity
from storage import dataset
from storage import schema as S
from storage.fs import Root
from storage.writer import RunInfo, VideoWriter
from tasks.errors import OptionsError, PipelineError
from tasks.options import ReconstructOptions
from tasks.reconstruction.convert import RowBuffer, frame_rows, world_anchor
from tasks.reconstruction.decode import DecodedFrame, DecodeOptions, FrameReader, VideoProbe
from tasks.reconstruction.outcomes import VideoSummary, record_failure
from tasks.reconstruction.plan import already_done, probe

log = logging.getLogger(__name__)


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


def _prepared(reader: FrameReader, cfg: Human3RConfig, box: dict) -> Iterator[Frame]:
    """Decoded frames -> network inputs, remembering the last decoded frame for the row conversion."""
    for decoded in reader:
        if "geometry" not in box:
            h, w = decoded.rgb.shape[:2]
            box["geometry"] = WorkingGeometry.for_source(w, h, cfg.image_size)
        frame = prepare_frame(decoded.rgb, cfg.image_size, cfg.dino.image_res)
        box["decoded"], box["frame"] = decoded, frame
        yield frame


def reconstruct_video(
    video: VideoProbe | str,
    root: Root,
    model: torch.nn.Module,
    *,
    options: ReconstructOptions = ReconstructOptions(),
    body_model: BodyModel | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoSummary:
    """Reconstruct one video (its probe, or a path to probe) into `root` with `model` (from `load_model`, which
    carries its identity). Never raises for a bad video: it returns status "failed" and records a failures row.
    `progress(frames_done, frames_expected_or_None)` is called after every frame."""
    identity: ModelIdentity = model.identity
    started = time.perf_counter()
    run_id = S.new_run_id()
    path = video.path if isinstance(video, VideoProbe) else str(video)
    found, stats = None, None
    try:
        found = video if isinstance(video, VideoProbe) else probe(path, model.cfg, options.decode)
        precision = str(getattr(model, "compute_dtype", torch.float32)).removeprefix("torch.")
        # the dataset may have changed since the plan (another run): check this video alone (its run, not all)
        done = {} if force else dataset.done_runs(root, [found.video_id])
        skipped = None if force else already_done(done, found, identity, options, precision)
        if skipped is not None:
            return skipped
        run = RunInfo(run_id=run_id, model_version=identity.model_version, preset=identity.preset,
                      params=options.params(precision), started_at=dt.datetime.now(dt.UTC), source_uri=path,
                      checkpoint_sha256=identity.sha256)
        expected = _expected_frames(found, options.decode)
        box: dict = {}
        with FrameReader(path, options.decode) as reader, VideoWriter(root, found.video_id, run) as writer:
            stats = reader.stats
            buffer = RowBuffer(writer.append, options.chunk_frames)
            stream = run_stream(model, _prepared(reader, model.cfg, box), use_ttt3r=options.use_ttt3r,
                                reset_interval=options.reset_interval, outputs=stored_outputs(options))
            anchor = None
            for done, sf in enumerate(stream, 1):
                decoded: DecodedFrame = box["decoded"]
                anchor = world_anchor(sf) if anchor is None else anchor
                buffer.add(frame_rows(sf, frame_idx=decoded.index, timestamp_s=decoded.timestamp_s,
                                      image=box["frame"].img, geometry=box["geometry"], body_model=body_model,
                                      options=options.convert, anchor=anchor))
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
    if not found.frame_count:
        return opts.max_frames
    n = -(-found.frame_count // opts.stride)
    return min(n, opts.max_frames) if opts.max_frames else n


def _video_row(found: VideoProbe, frames_decoded: int) -> dict:
    return {
        S.VIDEO_ID: [found.video_id], S.CONTENT_SHA256: [found.content_sha256], S.SOURCE_URI: [found.path],
        S.SIZE_BYTES: [found.size_bytes], S.DURATION_S: [found.duration_s], S.FPS: [found.fps],
        S.WIDTH_PX: [found.width], S.HEIGHT_PX: [found.height], S.ROTATION_DEG: [found.rotation_deg],
        S.FRAME_COUNT: [found.frame_count or frames_decoded], S.CODEC: [found.codec],
    }
