"""What happened to each video: one summary type, one way to record a failure, one report over many videos.

Every path that ends a video (the CLI, the Ray actor, the pool when an actor dies or times out, the flow's plan
step) returns a :class:`VideoSummary`; a failure goes through :func:`record_failure` (or :func:`failed` and one
:func:`record_failures` for a batch), which writes the `failures` row with ``error_type`` = the exception's class
name and ``stage`` = the stage it failed at; :func:`summarize`
turns many summaries into the counts, one-line verdict and table the CLI prints and the flow reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from storage import schema as S
from storage.fs import Root
from storage.writer import write_failure, write_rows
from tasks.errors import PipelineError

log = logging.getLogger(__name__)

REPORT_COLUMNS = ("source_uri", "status", "video_id", "frames", "tracks", "points", "seconds", "attempts", "message")


@dataclasses.dataclass(frozen=True)
class VideoSummary:
    """The outcome of one video."""

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
    error_type: str | None = None  # the exception class of a failure
    message: str = ""  # one line
    attempts: int = 1  # tries it took (a replica that died mid-video is replaced and the video retried)
    node_id: str | None = None  # the Ray node that ran it, in the archive pipeline

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split())
    return text or (type(err).__name__ if isinstance(err, BaseException) else "error")


def record_failure(root: Root, source_uri: str, err: BaseException, *, stage: str = "inference",
                   video_id: str | None = None, run_id: str | None = None, seconds: float = 0.0,
                   decode_errors: int = 0, attempts: int = 1) -> VideoSummary:
    """Write the `failures` row of a video and return its summary. Never raises (a failure to record is logged).

    stage: used for exceptions that are not a :class:`PipelineError` (which carries its own stage).
    """
    stage = err.stage if isinstance(err, PipelineError) else stage
    message = one_line(err)
    error_type = type(err).__name__
    try:
        write_failure(root, source_uri=source_uri, stage=stage, error=message, error_type=error_type, run_id=run_id,
                      video_id=video_id)
    except Exception:  # noqa: BLE001 - the summary still reports the failure
        log.exception("could not record the failure of %s", source_uri)
    return VideoSummary(source_uri, "failed", video_id, seconds=seconds, decode_errors=decode_errors, stage=stage,
                        error_type=error_type, message=message, attempts=attempts)


def failed(source_uri: str, err: BaseException, *, stage: str = "inference", video_id: str | None = None
           ) -> VideoSummary:
    """The summary of a failure, not recorded yet (see :func:`record_failures`)."""
    return VideoSummary(source_uri, "failed", video_id, stage=err.stage if isinstance(err, PipelineError) else stage,
                        error_type=type(err).__name__, message=one_line(err))


def record_failures(root: Root, summaries: list[VideoSummary], at: dt.datetime) -> None:
    """Write the `failures` rows of many failed videos in one commit (a plan's refusals). Never raises."""
    if not summaries:
        return
    rows = {S.SOURCE_URI: [s.source_uri for s in summaries], S.VIDEO_ID: [s.video_id for s in summaries],
            S.STAGE: [s.stage for s in summaries], S.ERROR_TYPE: [s.error_type for s in summaries],
            S.MESSAGE: [s.message[:2000] for s in summaries], S.RUN_ID: [None] * len(summaries),
            S.FAILED_AT: [at] * len(summaries)}
    try:
        write_rows(root, S.FAILURES.name, rows)
    except Exception:  # noqa: BLE001 - the summaries still report the failures
        log.exception("could not record the failures of %d videos", len(summaries))


@dataclasses.dataclass(frozen=True)
class Report:
    """Many videos' outcomes: what the CLI prints and the flow returns and publishes as an artifact."""

    counts: dict[str, int]  # ok / skipped / failed
    line: str  # "2 reconstructed, 1 skipped, 0 failed -> data/archive"
    rows: list[dict]  # one per video, REPORT_COLUMNS
    frames: int  # frames written by this run

    @property
    def failed(self) -> bool:
        return self.counts["failed"] > 0


def summarize(summaries: list[VideoSummary], dataset: str) -> Report:
    counts = {k: sum(s.status == k for s in summaries) for k in ("ok", "skipped", "failed")}
    line = f"{counts['ok']} reconstructed, {counts['skipped']} skipped, {counts['failed']} failed -> {dataset}"
    rows = [{k: getattr(s, k) for k in REPORT_COLUMNS} for s in summaries]
    return Report(counts, line, rows, sum(s.frames for s in summaries if s.status == "ok"))
