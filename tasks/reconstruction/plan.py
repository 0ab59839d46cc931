"""Planning a run over many videos: probe what is new or changed (in parallel), reuse what discovery saw before,
refuse what today's options or the network cannot process, skip what the dataset already holds.

The ``sources`` table remembers facts about every file seen (`tasks.reconstruction.sources`): its size and
modification time, and what probing it found (content hash, header facts, or why it cannot be read). A rescan reads
only files whose size or modification time changed, plus those whose last probe failed for a transient reason
once their back-off has passed (and, with ``force``, every file whose probe failed); an unchanged archive is
planned from the listing and three reads (the dataset marker, the sources and the runs tables), without opening a
single video. Refusals are decided here from the facts with this run's options, never cached. New files are probed
by a pool of threads (hashing and PyAV release the GIL) and recorded in one commit, refusals in another. The probe
travels with each pending video to whoever reconstructs it, so a video is hashed once, and `Plan.root` (the dataset
marker checked) spares the writers another read of the marker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from human3r.config import Human3RConfig
from human3r.errors import InputShapeError
from human3r.geometry import WorkingGeometry
from storage import dataset
from storage import schema as S
from storage.fs import Root
from storage.writer import write_sources
from tasks.errors import VideoError
from tasks.identity import RunIdentity
from tasks.reconstruction import sources
from tasks.reconstruction.decode import DecodeOptions, VideoProbe, probe_video
from tasks.reconstruction.discover import Listed
from tasks.reconstruction.outcomes import VideoSummary, failed, record_failures

PROBE_WORKERS = 8  # files probed at once (I/O bound: local disks, object storage)


def check_frame_size(found: VideoProbe, config: Human3RConfig) -> VideoProbe:
    """`found`, when the network `config` can process its frames; else VideoError (before any model loads)."""
    try:
        WorkingGeometry.for_source(found.width, found.height, config.image_size)
    except InputShapeError as err:
        raise VideoError(f"its {found.width}x{found.height} frames cannot be processed: {err}") from None
    return found


def check_video(found: VideoProbe, config: Human3RConfig, options: DecodeOptions) -> VideoProbe:
    """`found`, when today's options (``max_side``) accept its frames and the network `config` can process them;
    else VideoError. Decided from the probe's facts, never stored with them."""
    if max(found.width, found.height) > options.max_side:
        raise VideoError(f"frame size {found.width}x{found.height} exceeds the limit of {options.max_side} px per "
                         f"side (raise --max-side if this is intended)")
    return check_frame_size(found, config)


def probe(path: str, config: Human3RConfig, options: DecodeOptions) -> VideoProbe:
    """Header facts and content hash of a video these options and the network `config` accept; else VideoError."""
    return check_video(probe_video(path), config, options)


def already_done(done: dict[str, dict], video: VideoProbe, identity: RunIdentity) -> VideoSummary | None:
    """The "skipped" summary when the dataset holds this video made with this identity (model, precision, body
    model and row-changing parameters: `tasks.identity.RunIdentity.is_done`).

    done: the dataset's live runs by video id (`storage.dataset.done_runs`, read once per batch of videos).
    """
    run = done.get(video.video_id)
    if not identity.is_done(run):
        return None
    return VideoSummary(video.path, "skipped", video.video_id, frames=run[S.N_FRAMES], human_rows=run[S.N_HUMAN_ROWS],
                        tracks=run[S.N_TRACKS], points=run[S.N_POINTS],
                        message="already in the dataset with this model and these parameters")


# ------------------------------------------------------------------------------------------------ the plan
@dataclasses.dataclass(frozen=True)
class Plan:
    pending: list[VideoProbe]  # probed videos to reconstruct, in the given order
    done: list[VideoSummary]  # skipped (already in the dataset) or refused (a failures row each)
    probed: int  # files read to plan (new or changed since the last scan, or retried)
    reused: int  # files planned from the sources table without reading them
    root: Root | None = None  # the dataset, its marker checked: writers handed it do not read the marker again


def plan(listed: Iterable[Listed | str], root: Root, identity: RunIdentity, *, force: bool = False,
         workers: int = PROBE_WORKERS, progress: Callable[[int, int], None] | None = None) -> Plan:
    """Probe what changed (or is due again), reuse what did not, and split into pending and done (see the module
    docstring). Reads the dataset marker, the sources table and the runs table once each, whatever the number of
    videos.

    identity: the planned run (`tasks.identity.RunIdentity.planned`): its network, decode options and what is done.
    """
    options = identity.options
    items = [i if isinstance(i, Listed) else Listed(i, None, None) for i in listed]
    root = dataset.init_dataset(root)
    known = sources.read_known(root)
    live = {} if force else dataset.done_runs(root)
    now = dataset.utc_now()
    stale = [i for i in items if sources.due(i, known.get(i.uri), now, force=force)]

    def probe_one(item: Listed) -> VideoProbe | VideoError:
        try:
            return probe_video(item.uri)
        except VideoError as err:
            return err

    results: dict[str, VideoProbe | VideoError] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, (item, result) in enumerate(zip(stale, pool.map(probe_one, stale), strict=True), 1):
            results[item.uri] = result
            if progress is not None:
                progress(n, len(stale))
    now = dataset.utc_now()
    rows = {i.uri: sources.row_for(i, results[i.uri], known.get(i.uri), now) for i in stale}
    write_sources(root, {c: [r[c] for r in rows.values()] for c in S.SOURCES.column_names})
    pending, done, recorded = [], [], []
    for item in items:
        fresh = item.uri in rows
        found = results[item.uri] if fresh else None
        if not isinstance(found, VideoProbe):  # an error says here when it is tried again
            found = sources.cached(rows[item.uri] if fresh else known[item.uri])
        if isinstance(found, VideoError):  # cannot be probed (a transient error: not this time)
            done.append(failed(item.uri, found))
            if fresh:  # a cached error was recorded when it was found
                recorded.append(done[-1])
            continue
        try:
            check_video(found, identity.weights.config, options.decode)
        except VideoError as err:  # refused by today's options or the network: this run's verdict
            done.append(failed(item.uri, err, video_id=found.video_id))
            recorded.append(done[-1])
            continue
        skipped = None if force else already_done(live, found, identity)
        if skipped is not None:
            done.append(skipped)
        else:
            pending.append(found)
    record_failures(root, recorded, now)
    return Plan(pending, done, probed=len(stale), reused=len(items) - len(stale), root=root)
