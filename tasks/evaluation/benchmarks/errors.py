"""Errors of the benchmark loaders: each is one line naming the file or field and what to do about it.

All are :class:`tasks.errors.UsageError` subclasses (the CLI prints one red line and exits with 2): a benchmark
that cannot be read is a wrong invocation (wrong folder, missing download), not a failure of one sequence.
"""

from __future__ import annotations

from tasks.errors import UsageError


class BenchmarkError(UsageError):
    """A benchmark cannot be loaded as given."""


class UnknownBenchmarkError(BenchmarkError):
    """The benchmark name is not one this package knows."""


class BenchmarkLayoutError(BenchmarkError):
    """The folder is not laid out as the benchmark's release (a missing sub-folder, no sequence file at all)."""


class BenchmarkFileError(BenchmarkError):
    """A benchmark file is missing, unreadable, or lacks a field / has a field of the wrong shape."""


class UnsafePickleError(BenchmarkFileError):
    """A pickle names a global that is not plain data (it could run code); it was refused, nothing was run."""


class ConversionFileError(BenchmarkError):
    """A SMPL / SMPL-X conversion file (smplx2smpl matrix, joint regressor, SMPL model) is missing or malformed."""
