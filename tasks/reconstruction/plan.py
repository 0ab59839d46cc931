"""Planning a run over many videos: probe what is new or changed (in parallel), reuse what discovery saw before,
refuse what cannot be processed, skip what the dataset already holds.

The ``sources`` table remembers every file seen: its size and modification time, and what probing it found (content
hash, header facts, or why it cannot be used). A rescan reads only files whose size or modification time changed;
an unchanged archive is planned from the listing and two table reads, without opening a single video. New files
are probed by a pool of threads (hashing and PyAV release the GIL) and recorded in one commit. The probe travels
with each pending video to whoever reconstructs it, so a video is hashed once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from human3r.config import Human3RConfig
from human3r.errors import InputShapeError
from human3r.geometry import WorkingGeometry
from human3r.weights import ModelIdentity
from storage import dataset
from storage import schema as S
from storage.fs import Root
from storage.writer import read_sources, write_sources
from tasks.errors import PipelineError, VideoError
from tasks.options import ReconstructOptions
from tasks.reconstruction.decode import DecodeOptions, VideoProbe, probe_video
from tasks.reconstruction.discover import Listed
from tasks.reconstruction.outcomes import VideoSummary, record_failure

PROBE_WORKERS = 8  # files probed at once (I/O bound: local disks, object storage)


def check_frame_size(found: VideoProbe, config: Human3RConfig) -> VideoProbe:
    """`found`, when the network `config` can process its frames; else VideoError (before any model loads)."""
    try:
        WorkingGeometry.for_source(found.width, found.height, config.image_size)
    except InputShapeError as err:
        raise VideoError(f"its {found.width}x{found.height} frames cannot be processed: {err}") from None
    return found


def probe(path: str, config: Human3RConfig, options: DecodeOptions) -> VideoProbe:
    """Header facts and content hash of a video whose frames the network `config` can process; else VideoError."""
    return check_frame_size(probe_video(path, options), config)


def already_done(done: dict[str, dict], video: VideoProbe, identity: ModelIdentity, options: ReconstructOptions,
                 precision: str = "float32") -> VideoSummary | None:
    """The "skipped" summary when the dataset holds this video made by this model with these parameters (and in this
    precision: see `ReconstructOptions.params`).

    done: the dataset's live runs by video id (`storage.dataset.done_runs`, read once per batch of videos).
    """
    run = done.get(video.video_id)
    if not dataset.is_done(run, identity.model_version, dataset.params_hash(options.params(precision))):
        return None
    return VideoSummary(video.path, "skipped", video.video_id, frames=run[S.N_FRAMES], human_rows=run[S.N_HUMAN_ROWS],
                        tracks=run[S.N_TRACKS], points=run[S.N_POINTS],
                        message="already in the dataset with this model and these parameters")


def planned_precision(precision: str, device: str = "auto") -> str:
    """The dtype a run with this `precision` option computes in, as this machine can tell (``auto`` is measured here:
    an actor on other hardware may decide otherwise, and checks again before it writes)."""
    import torch

    from human3r.precision import resolve_precision

    target = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return str(resolve_precision(precision, target)).removeprefix("torch.")


# ------------------------------------------------------------------------------------------------ the sources cache
_PROBE_FIELDS = ("content_sha256", "width", "height", "rotation_deg", "fps", "duration_s", "frame_count", "codec")
_COLUMN_OF = {"content_sha256": S.CONTENT_SHA256, "width": S.WIDTH_PX, "height": S.HEIGHT_PX,
              "rotation_deg": S.ROTATION_DEG, "fps": S.FPS, "duration_s": S.DURATION_S, "frame_count": S.FRAME_COUNT,
              "codec": S.CODEC}


def _source_row(item: Listed, result: VideoProbe | VideoError, now: dt.datetime) -> dict:
    found = result if isinstance(result, VideoProbe) else None
    row = {S.SOURCE_URI: item.uri, S.SIZE_BYTES: item.size_bytes, S.MTIME_NS: item.mtime_ns, S.PROBED_AT: now,
           S.VIDEO_ID: found.video_id if found else None, S.PROBE_ERROR: None if found else str(result)}
    row.update({_COLUMN_OF[f]: getattr(found, f) if found else None for f in _PROBE_FIELDS})
    return row


def _from_row(row: dict) -> VideoProbe | VideoError:
    if row[S.PROBE_ERROR] is not None:
        return VideoError(row[S.PROBE_ERROR])
    return VideoProbe(path=row[S.SOURCE_URI], size_bytes=row[S.SIZE_BYTES],
                      **{field: row[_COLUMN_OF[field]] for field in _PROBE_FIELDS})


def _unchanged(item: Listed, row: dict | None) -> bool:
    return (row is not None and item.size_bytes is not None and item.mtime_ns is not None
            and row[S.SIZE_BYTES] == item.size_bytes and row[S.MTIME_NS] == item.mtime_ns)


# ------------------------------------------------------------------------------------------------ the plan
@dataclasses.dataclass(frozen=True)
class Plan:
    pending: list[VideoProbe]  # probed videos to reconstruct, in the given order
    done: list[VideoSummary]  # skipped (already in the dataset) or refused (a failures row each)
    probed: int  # files read to plan (new or changed since the last scan)
    reused: int  # files planned from the sources table without reading them


def plan(listed: Iterable[Listed | str], root: Root, identity: ModelIdentity, options: ReconstructOptions, *,
         force: bool = False, precision: str = "float32", workers: int = PROBE_WORKERS,
         progress: Callable[[int, int], None] | None = None) -> Plan:
    """Probe what changed, reuse what did not, and split into pending and done (see the module docstring)."""
    items = [i if isinstance(i, Listed) else Listed(i, None, None) for i in listed]
    dataset.init_dataset(root)
    known = {r[S.SOURCE_URI]: r for r in read_sources(root).to_pylist()}
    live = {} if force else dataset.done_runs(root)
    stale = [i for i in items if not _unchanged(i, known.get(i.uri))]

    def probe_one(item: Listed) -> VideoProbe | VideoError:
        try:
            return probe_video(item.uri, options.decode)
        except VideoError as err:
            return err

    results: dict[str, VideoProbe | VideoError] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, (item, result) in enumerate(zip(stale, pool.map(probe_one, stale), strict=True), 1):
            results[item.uri] = result
            if progress is not None:
                progress(n, len(stale))
    now = dataset.utc_now()
    rows = [_source_row(i, results[i.uri], now) for i in stale]
    write_sources(root, {c: [r[c] for r in rows] for c in S.SOURCES.column_names})
    pending, done = [], []
    for item in items:
        fresh = item.uri in results
        found = results[item.uri] if fresh else _from_row(known[item.uri])
        if isinstance(found, VideoError) and not fresh:  # unchanged and still broken: its failure is recorded
            done.append(VideoSummary(item.uri, "failed", stage=found.stage, error_type=type(found).__name__,
                                     message=found.message))
            continue
        try:
            if isinstance(found, VideoError):
                raise found
            check_frame_size(found, identity.config)
        except PipelineError as err:
            done.append(record_failure(root, item.uri, err))
            continue
        skipped = None if force else already_done(live, found, identity, options, precision)
        if skipped is not None:
            done.append(skipped)
        else:
            pending.append(found)
    return Plan(pending, done, probed=len(stale), reused=len(items) - len(stale))
