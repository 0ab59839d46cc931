"""Errors of the pipeline: usage errors (the invocation is wrong) and failures of one video (recorded as rows).

* :class:`UsageError` and its subclasses say what to type instead; the CLI prints them as one red line and exits
  with 2. Nothing was processed.
* :class:`PipelineError` and its subclasses are failures of one video at one stage; they become `failures` rows
  (``error_type`` is the class name, ``stage`` the stage) and the rest of the archive goes on.
"""

from __future__ import annotations

import contextlib

from storage.errors import MediaError


class UsageError(Exception):
    """The command or flow was given something it cannot use; the message says what to give instead."""


class OptionsError(UsageError):
    """An option has a bad value (out of range, wrong type, contradicting another)."""


class SourceError(UsageError):
    """The videos to process cannot be found: a missing path, an empty folder, an unsupported location."""


class PipelineError(Exception):
    """A video failed at `stage`; the message is the one-line reason stored in the failures table."""

    stage = "pipeline"

    def __init__(self, message: str, stage: str | None = None):
        super().__init__(message)
        self.message = message
        if stage is not None:
            self.stage = stage


class VideoError(PipelineError):
    """The file cannot be used as a video: missing, empty, not a video, corrupt, absurd or unprocessable size."""

    stage = "probe"  # "decode" when it shows only while decoding


class TransientReadError(VideoError):
    """The file could not be read this time (network error, throttling, a timeout: `storage.media.is_transient`).
    No verdict on the file: the next run tries it again (the probe after the back-off its `sources` row records),
    and its failures row is superseded by the next successful probe or run."""


def video_error(err: MediaError, stage: str = "probe") -> VideoError:
    """The pipeline's failure for a `storage.media` error: the one place a MediaError becomes a VideoError
    (a transient one a :class:`TransientReadError`)."""
    return (TransientReadError if err.transient else VideoError)(err.message, stage=stage)


@contextlib.contextmanager
def video_errors(stage: str = "probe"):
    """Turn the `storage.media` errors raised inside the block into :func:`video_error`'s."""
    try:
        yield
    except MediaError as err:
        raise video_error(err, stage) from err


class VideoTimeout(PipelineError):
    """A video took longer than its time limit; its model replica was replaced."""

    stage = "timeout"


class ActorDied(PipelineError):
    """The model replica died on this video every time it was tried (killed, out of memory)."""

    stage = "inference"


class ServiceError(UsageError):
    """A local service (Prefect server or worker) could not be started or used."""
