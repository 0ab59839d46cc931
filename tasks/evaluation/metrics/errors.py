"""Errors of the metric functions.

* :class:`MetricInputError` (a :class:`tasks.errors.UsageError`): the arrays, files or names given cannot be used at
  all (wrong shape, missing file, unknown protocol); one line naming the fix, exit code 2 on the command line.
* The other :class:`MetricError` subclasses are failures of one sequence's data, as the reference meets them; a
  benchmark run records them as rows with the reason and goes on.
"""

from __future__ import annotations

from tasks.errors import UsageError


class MetricError(ValueError):
    """A metric cannot be computed on this sequence's data."""


class MetricInputError(MetricError, UsageError):
    """The arrays, files or names given to a metric cannot be used (shape, missing file, unknown name)."""


class DegenerateBoxError(MetricError):
    """A 2D box of the matcher has zero width or height (the reference asserts x1 < x2 and y1 < y2)."""


class NoValidPixelsError(MetricError):
    """No sequence has a valid depth pixel, so the pixel-weighted average has no weight (the reference:
    ZeroDivisionError from numpy.average)."""


class NoMatchedFramesError(MetricError):
    """A world-frame benchmark sequence has no matched person (the reference crashes on it: IndexError)."""


class MatcherStalledError(MetricError):
    """The reference's greedy matcher has looked at every pair and would loop forever."""
