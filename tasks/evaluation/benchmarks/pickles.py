"""Reading benchmark pickles without running their code: a restricted unpickler, and ``.pt`` files.

The benchmark files that are pickles (3DPW's ``sequenceFiles/*/*.pkl``, Python-2 pickles read with
``encoding="latin1"``; the ``3dpw_test.pkl`` annotation file; EMDB's ``*_data.pkl``; BEDLAM's ``smplx2smpl.pkl``)
hold only numpy arrays, numpy scalars and Python containers. :func:`load_pickle` reads them through the project's
restricted unpickler (`tasks.pickles`) and turns a refused global into :class:`UnsafePickleError`, before anything
is called.

Callers that read richer files (the SMPL model pickle, whose arrays are chumpy / scipy.sparse objects) pass inert
stand-in classes in ``extra``: they only keep the pickled state. RICH's ``.pt`` files go through
:func:`load_torch_file`, i.e. ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, UnsafePickleError
from tasks.pickles import RefusedPickle, restricted_load

__all__ = ["load_pickle", "load_torch_file"]


def load_pickle(
    path: str | os.PathLike,
    *,
    encoding: str = "ASCII",
    extra: Mapping[tuple[str, str], Any] | None = None,
    what: str = "benchmark file",
) -> Any:
    """Unpickle ``path`` allowing only plain data (numpy arrays/dtypes/scalars, containers) and ``extra`` globals.

    ``encoding="latin1"`` reads Python-2 pickles (3DPW's sequence files). Raises :class:`UnsafePickleError` when
    the file names any other global (nothing of it is called) and :class:`BenchmarkFileError` when the file is
    missing or not a readable pickle.
    """
    p = Path(path)
    if not p.is_file():
        raise BenchmarkFileError(f"{what} not found: {p}")
    try:
        with p.open("rb") as f:
            return restricted_load(f, encoding=encoding, extra=extra)
    except RefusedPickle as err:
        raise UnsafePickleError(
            f"{what} {p} was refused ({err}): it could run code, and a benchmark file holds only numpy arrays "
            f"and plain containers. Re-download it from the benchmark's site."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, OSError) as err:
        raise BenchmarkFileError(
            f"{what} {p} is not a readable pickle ({type(err).__name__}: {err}); re-download it"
        ) from err


def load_torch_file(path: str | os.PathLike, *, what: str = "benchmark file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors naming the file."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise BenchmarkFileError(f"{what} not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0]
        raise UnsafePickleError(
            f"{what} {p} was refused by torch.load(weights_only=True): {reason}. Re-download it."
        ) from None
    except Exception as err:  # torch raises many types on a damaged file; all mean the same to the user
        raise BenchmarkFileError(
            f"{what} {p} is not a readable torch file ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
