"""Errors of the pipeline stages: each carries the stage that failed and a one-line reason for the failures table."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class for failures the pipeline records as `failures` rows."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


class VideoError(PipelineError):
    """The file cannot be used as a video: missing, empty, not a video, corrupt, absurd size."""
