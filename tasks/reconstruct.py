"""One video -> one committed piece of the dataset: probe, skip if done, stream frames through Human3R, write rows.

`reconstruct_video` is plain Python (the Ray actor and the CLI both call it). Memory stays flat in the video's
length: frames are decoded ahead into a bounded queue, the network carries only its recurrent state, and rows go to
the writer in chunks. A failure of any kind becomes a `failures` row with a one-line reason, and nothing of the
failed run becomes visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import torch

from human3r.body import BodyModel
from human3r.geometry import WorkingGeometry
from human3r.preprocess import Frame, prepare_frame
from human3r.stream import run_stream
from human3r.weights import ModelIdentity
from storage import manifest
from storage import schema as S
from storage.fs import Root
from storage.parquet import RunInfo, VideoWriter, write_failure
from tasks.convert import ConvertOptions, RowBuffer, frame_rows, world_anchor
from tasks.decode import DecodedFrame, DecodeOptions, FrameReader, VideoProbe, probe_video
from tasks.errors import PipelineError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReconstructOptions:
    """Every parameter that changes the rows of a video (it all goes into `runs.params_json`)."""

    decode: DecodeOptions = DecodeOptions()
    convert: ConvertOptions = ConvertOptions()
    reset_interval: int | None = None  # re-initialise the state every N frames (long videos), None = never
    use_ttt3r: bool = False  # TTT3R gated state update instead of CUT3R's overwrite
    chunk_frames: int = 64  # frames of rows buffered before they are appended to the files

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ReconstructOptions:
        d = dict(d)
        return cls(decode=DecodeOptions(**d.pop("decode", {})), convert=ConvertOptions(**d.pop("convert", {})), **d)

    def params(self) -> dict:
        """The parameters that define the output (buffering and queue sizes excluded)."""
        d = dataclasses.asdict(self)
        d.pop("chunk_frames")
        d["decode"].pop("queue_size")
        return d


@dataclasses.dataclass(frozen=True)
class VideoSummary:
    source_uri: str
    status: str  # "ok", "skipped" (already in the dataset) or "failed"
    video_id: str | None = None
    frames: int = 0
    human_rows: int = 0
    tracks: int = 0
    points: int = 0
    seconds: float = 0.0
    decode_errors: int = 0
    stage: str | None = None  # where it failed
    message: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _prepared(reader: FrameReader, cfg, geometry_box: dict) -> Iterator[Frame]:
    """Decoded frames -> network inputs, remembering the last decoded frame for the row conversion."""
    for decoded in reader:
        if "geometry" not in geometry_box:
            h, w = decoded.rgb.shape[:2]
            geometry_box["geometry"] = WorkingGeometry.for_source(w, h, cfg.image_size)
        frame = prepare_frame(decoded.rgb, cfg.image_size, cfg.dino.image_res)
        geometry_box["decoded"], geometry_box["frame"] = decoded, frame
        yield frame


def reconstruct_video(
    path: str,
    root: Root,
    model: torch.nn.Module,
    identity: ModelIdentity,
    *,
    options: ReconstructOptions = ReconstructOptions(),
    body_model: BodyModel | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    probe: VideoProbe | None = None,
) -> VideoSummary:
    """Reconstruct one video into `root`. Never raises for a bad video: it returns status "failed" (and records
    a failures row). `progress(frames_done, frames_expected_or_None)` is called after every frame."""
    started = time.perf_counter()
    run_id = uuid.uuid4().hex
    video_id = None
    stats = None
    try:
        probe = probe or probe_video(path, max_side=options.decode.max_side)
        video_id = probe.video_id
        params = options.params()
        run = RunInfo(run_id=run_id, model_version=identity.model_version, preset=identity.preset, params=params,
                      started_at=dt.datetime.now(dt.UTC), source_uri=str(path),
                      checkpoint_sha256=identity.sha256)
        if not force and manifest.is_done(root, video_id, identity.model_version, run.params_hash):
            commit = manifest.read_commit(root, video_id)
            return VideoSummary(str(path), "skipped", video_id, frames=commit.rows.get(S.FRAMES.name, 0),
                                human_rows=commit.rows.get(S.HUMANS.name, 0),
                                points=commit.rows.get(S.POINTS.name, 0),
                                message="already in the dataset with this model and these parameters")
        expected = _expected_frames(probe, options.decode)
        box: dict = {}
        with FrameReader(path, options.decode) as reader, VideoWriter(root, video_id, run) as writer:
            stats = reader.stats
            buffer = RowBuffer(writer.append, options.chunk_frames)
            done = 0
            stream = run_stream(model, _prepared(reader, model.cfg, box), use_ttt3r=options.use_ttt3r,
                                reset_interval=options.reset_interval)
            anchor = None
            for sf in stream:
                decoded: DecodedFrame = box["decoded"]
                anchor = world_anchor(sf) if anchor is None else anchor
                buffer.add(frame_rows(sf, frame_idx=decoded.index, timestamp_s=decoded.timestamp_s,
                                      image=box["frame"].img, geometry=box["geometry"], body_model=body_model,
                                      options=options.convert, anchor=anchor))
                done += 1
                if progress is not None:
                    progress(done, expected)
            buffer.flush()
            commit = writer.commit(videos=_video_row(probe, stats.frames_decoded, str(path)),
                                   n_decode_errors=stats.decode_errors)
        return VideoSummary(
            str(path), "ok", video_id, frames=commit.rows[S.FRAMES.name], human_rows=commit.rows[S.HUMANS.name],
            tracks=writer.n_tracks, points=commit.rows[S.POINTS.name],
            seconds=time.perf_counter() - started, decode_errors=stats.decode_errors,
        )
    except PipelineError as err:
        return _failed(root, path, video_id, run_id, err.stage, err, started, stats)
    except Exception as err:  # noqa: BLE001 - a bug or OOM in one video must not stop the archive
        log.exception("reconstruction of %s failed", path)
        return _failed(root, path, video_id, run_id, "inference", err, started, stats)


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` = the first CUDA GPU when there is one, else the CPU; otherwise any torch device string."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError("setup", f"device {spec!r} asked for, but CUDA is not available; use --device cpu")
    return device


def _expected_frames(probe: VideoProbe, opts: DecodeOptions) -> int | None:
    if not probe.frame_count:
        return opts.max_frames
    n = -(-probe.frame_count // opts.stride)
    return min(n, opts.max_frames) if opts.max_frames else n


def _video_row(probe: VideoProbe, frames_decoded: int, source_uri: str) -> dict:
    return {
        S.VIDEO_ID: [probe.video_id], S.CONTENT_SHA256: [probe.content_sha256], S.SOURCE_URI: [source_uri],
        S.SIZE_BYTES: [probe.size_bytes], S.DURATION_S: [probe.duration_s], S.FPS: [probe.fps],
        S.WIDTH_PX: [probe.width], S.HEIGHT_PX: [probe.height], S.ROTATION_DEG: [probe.rotation_deg],
        S.FRAME_COUNT: [probe.frame_count or frames_decoded], S.CODEC: [probe.codec],
    }


def _failed(root: Root, path, video_id, run_id, stage, err, started, stats) -> VideoSummary:
    message = " ".join(str(err).split()) or type(err).__name__
    error_type = "VideoError" if isinstance(err, PipelineError) else type(err).__name__
    try:
        write_failure(root, source_uri=str(path), stage=stage, error=message, error_type=error_type, run_id=run_id,
                      video_id=video_id)
    except Exception:  # noqa: BLE001 - the summary still reports the failure
        log.exception("could not record the failure of %s", path)
    return VideoSummary(str(path), "failed", video_id, seconds=time.perf_counter() - started,
                        decode_errors=stats.decode_errors if stats else 0, stage=stage, message=message)
